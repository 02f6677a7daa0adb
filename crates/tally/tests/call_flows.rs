//! SPEC §3's extension rows end to end on SQLite: SIPp phones call
//! through the real binary (cancel while ringing, callee hangs up, two
//! devices for one extension, ring timeout) and a `kill -9` during an
//! answered call; every flow ends with the exact CDR read back over REST.
//! The same flows run on PostgreSQL in `postgres.rs`.

mod common;

use common::{TempDir, flows, sipp_available};

#[test]
fn sipp_caller_cancels_while_ringing() {
    if !sipp_available("sipp_caller_cancels_while_ringing") {
        return;
    }
    let dir = TempDir::new("flow-cancel");
    flows::caller_cancels_while_ringing(dir.path(), &[]);
}

#[test]
fn sipp_callee_hangs_up() {
    if !sipp_available("sipp_callee_hangs_up") {
        return;
    }
    let dir = TempDir::new("flow-callee-bye");
    flows::callee_hangs_up(dir.path(), &[]);
}

#[test]
fn sipp_two_devices_one_answers_the_other_is_cancelled() {
    if !sipp_available("sipp_two_devices_one_answers_the_other_is_cancelled") {
        return;
    }
    let dir = TempDir::new("flow-two-devices");
    flows::two_devices_one_answers(dir.path(), &[]);
}

#[test]
fn sipp_ring_timeout_cancels_the_target_and_answers_408() {
    if !sipp_available("sipp_ring_timeout_cancels_the_target_and_answers_408") {
        return;
    }
    let dir = TempDir::new("flow-ring-timeout");
    flows::ring_timeout(dir.path(), &[]);
}

#[test]
fn kill_9_during_an_answered_call_gives_a_recovered_cdr() {
    let dir = TempDir::new("flow-kill");
    flows::crash_during_an_answered_call(dir.path(), &[]);
}

#[test]
fn sipp_forward_on_busy() {
    if !sipp_available("sipp_forward_on_busy") {
        return;
    }
    let dir = TempDir::new("flow-forward-busy");
    flows::forward_on_busy(dir.path(), &[]);
}

#[test]
fn sipp_forward_on_no_answer() {
    if !sipp_available("sipp_forward_on_no_answer") {
        return;
    }
    let dir = TempDir::new("flow-forward-no-answer");
    flows::forward_on_no_answer(dir.path(), &[]);
}

#[test]
fn sipp_302_is_followed() {
    if !sipp_available("sipp_302_is_followed") {
        return;
    }
    let dir = TempDir::new("flow-redirect");
    flows::redirect_followed(dir.path(), &[]);
}

#[test]
fn sipp_rest_originated_call() {
    if !sipp_available("sipp_rest_originated_call") {
        return;
    }
    let dir = TempDir::new("flow-originated");
    flows::originated_call(dir.path(), &[]);
}

#[test]
fn sipp_ring_groups_ring_all_and_hunt() {
    if !sipp_available("sipp_ring_groups_ring_all_and_hunt") {
        return;
    }
    let dir = TempDir::new("flow-ring-groups");
    flows::ring_groups(dir.path(), &[]);
}

#[test]
fn sipp_call_pickup_group_and_directed() {
    if !sipp_available("sipp_call_pickup_group_and_directed") {
        return;
    }
    let dir = TempDir::new("flow-pickup");
    flows::pickup(dir.path(), &[]);
}

#[test]
fn sipp_blind_transfer() {
    if !sipp_available("sipp_blind_transfer") {
        return;
    }
    let dir = TempDir::new("flow-blind-transfer");
    flows::blind_transfer(dir.path(), &[]);
}

#[test]
fn sipp_blind_transfer_to_a_group_and_out() {
    if !sipp_available("sipp_blind_transfer_to_a_group_and_out") {
        return;
    }
    let dir = TempDir::new("flow-transfer-out");
    flows::blind_transfer_to_a_group_and_out(dir.path(), &[]);
}

#[test]
fn sipp_blf_pickup_by_invite_with_replaces() {
    if !sipp_available("sipp_blf_pickup_by_invite_with_replaces") {
        return;
    }
    let dir = TempDir::new("flow-blf-pickup");
    flows::blf_pickup(dir.path(), &[]);
}

#[test]
fn sipp_attended_transfer_consulted_by_c() {
    if !sipp_available("sipp_attended_transfer_consulted_by_c") {
        return;
    }
    let dir = TempDir::new("flow-attended-by-c");
    flows::attended_transfer_consulted_by_c(dir.path(), &[]);
}

#[test]
fn sipp_attended_transfer() {
    if !sipp_available("sipp_attended_transfer") {
        return;
    }
    let dir = TempDir::new("flow-attended-transfer");
    flows::attended_transfer(dir.path(), &[]);
}

#[test]
fn sipp_invite_with_replaces() {
    if !sipp_available("sipp_invite_with_replaces") {
        return;
    }
    let dir = TempDir::new("flow-invite-replaces");
    flows::invite_with_replaces(dir.path(), &[]);
}
