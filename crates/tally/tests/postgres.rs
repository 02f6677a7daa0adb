//! `tally serve --database postgres://…`: the same call and CDR as on
//! SQLite, a restart that reloads the directory and the registrations
//! from PostgreSQL, and the key SIPp call flows of `common::flows` (cancel,
//! callee hangs up, two devices, ring groups, `kill -9` during a call). Runs when `TALLY_TEST_POSTGRES_URL` names a server
//! whose user may create databases; prints `SKIPPED` otherwise.

mod common;

use common::pg::PgDatabase;
use common::{Phone, Server, TempDir, answered_call, wait_for_cdrs};

const DOMAIN: &str = "pg.example.com";

#[test]
fn on_postgres_calls_are_recorded_and_a_restart_reloads_everything() {
    let Some(db) =
        PgDatabase::create("on_postgres_calls_are_recorded_and_a_restart_reloads_everything")
    else {
        return;
    };
    let dir = TempDir::new("postgres");
    let server = Server::start(dir.path(), &["--database", &db.url]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("PG", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    admin.tenant = Some(tenant.clone());

    let session_id = answered_call(&server, DOMAIN);
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["session_id"], session_id.as_str());
    assert_eq!(list["items"][0]["call_status"], "answered");
    assert!(
        !dir.path().join("tally.db").exists(),
        "no SQLite file when PostgreSQL is given"
    );

    let (status, _) = server.terminate();
    assert!(status.success());

    // The directory comes back from PostgreSQL: 101 registers without
    // being provisioned again, and the CDR is still there.
    let server = Server::start(dir.path(), &["--database", &db.url]);
    let mut phone = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    assert_eq!(phone.register(), 200);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    wait_for_cdrs(&admin, 1);
    let (status, _) = server.terminate();
    assert!(status.success());
}

/// One of the SIPp call flows (`common::flows`) on a database of its own.
fn flow_on_postgres(test: &str, flow: fn(&std::path::Path, &[&str])) {
    if !common::sipp_available(test) {
        return;
    }
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    let dir = TempDir::new("postgres-flow");
    flow(dir.path(), &["--database", &db.url]);
}

#[test]
fn on_postgres_a_caller_cancels_while_ringing() {
    flow_on_postgres(
        "on_postgres_a_caller_cancels_while_ringing",
        common::flows::caller_cancels_while_ringing,
    );
}

#[test]
fn on_postgres_a_rest_originated_call() {
    flow_on_postgres(
        "on_postgres_a_rest_originated_call",
        common::flows::originated_call,
    );
}

#[test]
fn on_postgres_the_callee_hangs_up() {
    flow_on_postgres(
        "on_postgres_the_callee_hangs_up",
        common::flows::callee_hangs_up,
    );
}

#[test]
fn on_postgres_two_devices_one_answers() {
    flow_on_postgres(
        "on_postgres_two_devices_one_answers",
        common::flows::two_devices_one_answers,
    );
}

#[test]
fn on_postgres_forward_on_busy() {
    flow_on_postgres(
        "on_postgres_forward_on_busy",
        common::flows::forward_on_busy,
    );
}

#[test]
fn on_postgres_forward_on_no_answer() {
    flow_on_postgres(
        "on_postgres_forward_on_no_answer",
        common::flows::forward_on_no_answer,
    );
}

#[test]
fn on_postgres_a_302_is_followed() {
    flow_on_postgres(
        "on_postgres_a_302_is_followed",
        common::flows::redirect_followed,
    );
}

#[test]
fn on_postgres_ring_groups_ring_all_and_hunt() {
    flow_on_postgres(
        "on_postgres_ring_groups_ring_all_and_hunt",
        common::flows::ring_groups,
    );
}

#[test]
fn on_postgres_call_pickup_group_and_directed() {
    flow_on_postgres(
        "on_postgres_call_pickup_group_and_directed",
        common::flows::pickup,
    );
}

#[test]
fn on_postgres_blind_transfer() {
    flow_on_postgres("on_postgres_blind_transfer", common::flows::blind_transfer);
}

#[test]
fn on_postgres_blind_transfer_to_a_group_and_out() {
    flow_on_postgres(
        "on_postgres_blind_transfer_to_a_group_and_out",
        common::flows::blind_transfer_to_a_group_and_out,
    );
}

#[test]
fn on_postgres_blf_pickup_by_invite_with_replaces() {
    flow_on_postgres(
        "on_postgres_blf_pickup_by_invite_with_replaces",
        common::flows::blf_pickup,
    );
}

#[test]
fn on_postgres_attended_transfer_consulted_by_c() {
    flow_on_postgres(
        "on_postgres_attended_transfer_consulted_by_c",
        common::flows::attended_transfer_consulted_by_c,
    );
}

#[test]
fn on_postgres_attended_transfer() {
    flow_on_postgres(
        "on_postgres_attended_transfer",
        common::flows::attended_transfer,
    );
}

#[test]
fn on_postgres_invite_with_replaces() {
    flow_on_postgres(
        "on_postgres_invite_with_replaces",
        common::flows::invite_with_replaces,
    );
}

#[test]
fn on_postgres_kill_9_during_an_answered_call_gives_a_recovered_cdr() {
    let test = "on_postgres_kill_9_during_an_answered_call_gives_a_recovered_cdr";
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    let dir = TempDir::new("postgres-kill");
    common::flows::crash_during_an_answered_call(dir.path(), &["--database", &db.url]);
}
