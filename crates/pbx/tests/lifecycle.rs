//! The engine's own policy for the node's life, on the virtual clock:
//! draining for shutdown (new calls refused, calls in progress kept until
//! the grace period ends, then hung up) and directory changes that must
//! drop bindings.

mod common;

use std::time::Duration;

use cdr::TenantId;
use common::*;
use pbx::{Directory, EngineEvent, Input};
use sip::Method;

const GRACE: Duration = Duration::from_secs(5);

fn bindings(bench: &Bench, tenant: TenantId, extension: &str) -> usize {
    bench
        .engine
        .registrar()
        .location()
        .lookup(bench.instant_now(), tenant, extension)
        .count()
}

/// While draining, a new INVITE gets `503` with a Warning, before any
/// challenge; the answered call goes on and the engine is drained when it
/// ends by itself, with nobody hung up.
#[test]
fn draining_refuses_new_calls_and_waits_for_the_calls_in_progress() {
    let (mut cast, mut a_call, b_call) = answered();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(10_000);
    bench.input(Input::Drain { grace: GRACE });
    assert!(!bench.engine.is_drained());

    let mut call = bob.call("101", Some(SDP_B));
    let invite = bob.invite(&mut call, None);
    bench.send(bob.peer, &invite);
    let refused = bench.take_one(bob.peer);
    assert_eq!(refused.status(), Some(503), "{}", refused.summary());
    assert_eq!(
        refused.header_named("Warning"),
        Some("399 tally \"Shutting down\"")
    );
    // Stateless: the retransmission gets another 503.
    bench.send(bob.peer, &invite);
    assert_eq!(bench.take_one(bob.peer).status(), Some(503));
    assert_eq!(bench.engine.calls_in_progress(), 1);

    bench.at(12_000);
    bench.send(alice.peer, &alice.request(&mut a_call, "BYE", None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(200));
    let bye = bench.take_one(bob.peer);
    assert!(is(&bye, Method::Bye), "{}", bye.summary());
    bench.send(bob.peer, &bob.respond(&b_call, &bye, 200, None));
    assert!(bench.engine.is_drained());
    assert_eq!(bench.engine.hung_up_at_grace_end(), 0);
    assert!(
        !bench
            .engine_events
            .iter()
            .any(|e| matches!(e, EngineEvent::GraceOver { .. }))
    );
    assert_eq!(
        bench.timeline().last().map(String::as_str),
        Some("call_cdr")
    );
}

/// A call still ringing when the grace period ends is hung up at exactly
/// that moment, as `Input::HangUpAll` would: 503 to the caller, CANCEL to
/// the target, a whole CDR.
#[test]
fn the_end_of_the_grace_period_hangs_up_what_is_left() {
    let (mut cast, _a_call, _b_call, _invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(1_000);
    bench.input(Input::Drain { grace: GRACE });
    // A second Drain does not move the deadline.
    bench.at(2_000);
    bench.input(Input::Drain { grace: GRACE });
    bench.at(5_999);
    assert!(bench.take(alice.peer).is_empty());
    assert!(!bench.engine.is_drained());
    bench.at(6_000);
    assert_eq!(bench.take_one(alice.peer).status(), Some(503));
    assert!(is(&bench.take_one(bob.peer), Method::Cancel));
    assert!(bench.engine.is_drained());
    assert_eq!(bench.engine.hung_up_at_grace_end(), 1);
    assert!(
        bench
            .engine_events
            .contains(&EngineEvent::GraceOver { calls: 1 })
    );
    assert_eq!(bench.cdr()["status_code"], "503");
    assert_eq!(bench.cdr()["ended_time"], "1795874593");
}

/// Without calls, draining is over at once.
#[test]
fn an_idle_engine_is_drained_at_once() {
    let mut bench = Bench::new();
    assert!(!bench.engine.is_drained());
    bench.input(Input::Drain { grace: GRACE });
    assert!(bench.engine.is_drained());
}

/// A reloaded directory without 102 drops 102's bindings (its devices must
/// not ring for the number's next owner) and keeps everyone else's; a call
/// to 102 is then a 404.
#[test]
fn a_replaced_directory_forgets_the_bindings_of_users_it_lost() {
    let mut cast = Cast::new();
    let Cast { bench, alice, .. } = &mut cast;
    assert_eq!(bindings(bench, tenant_id(), "102"), 1);
    let mut reloaded = Directory::new();
    directory(&mut reloaded);
    reloaded.remove_user(tenant_id(), "102");
    bench.input(Input::ReplaceDirectory(Box::new(reloaded)));
    assert_eq!(bindings(bench, tenant_id(), "102"), 0);
    assert_eq!(bindings(bench, tenant_id(), "101"), 1);
    assert!(bench.engine.directory().user(tenant_id(), "102").is_none());

    bench.at(-40);
    let mut call = alice.call("102", Some(SDP_A));
    let text = alice.invite(&mut call, None);
    bench.send(alice.peer, &text);
    let challenge = bench.take_one(alice.peer);
    bench.send(alice.peer, &alice.ack_failure(&call, &challenge));
    let text = alice.invite(&mut call, Some(&challenge));
    bench.send(alice.peer, &text);
    assert_eq!(bench.take_one(alice.peer).status(), Some(404));
}

/// A reloaded directory without the tenant drops every binding of it.
#[test]
fn a_replaced_directory_forgets_the_bindings_of_tenants_it_lost() {
    let mut cast = Cast::new();
    let bench = &mut cast.bench;
    bench.input(Input::ReplaceDirectory(Box::default()));
    assert_eq!(bindings(bench, tenant_id(), "101"), 0);
    assert_eq!(bindings(bench, tenant_id(), "102"), 0);
}

/// Removing one user or one tenant drops its bindings with it.
#[test]
fn removing_a_user_or_a_tenant_forgets_its_bindings() {
    let mut cast = Cast::new();
    let bench = &mut cast.bench;
    bench.input(Input::RemoveUser {
        tenant: tenant_id(),
        extension: "102".into(),
    });
    assert_eq!(bindings(bench, tenant_id(), "102"), 0);
    assert_eq!(bindings(bench, tenant_id(), "101"), 1);
    bench.input(Input::RemoveTenant(tenant_id()));
    assert_eq!(bindings(bench, tenant_id(), "101"), 0);
    assert!(bench.engine.directory().tenant(tenant_id()).is_none());
}
