//! Exact `call_cdr` objects for golden tests: builders for the call and
//! its targets (the fields every golden shares written once), the CDR of
//! the n-th session, and a comparison that prints the whole actual value.
//!
//! The call is 101 (Tom) calling inside tenant `acme`; the first session
//! starts at T0, whose event ids count from there (`event_id`).

use cdr::{Builder, WireProfile};
use serde_json::{Value, json};

use super::Bench;

pub const TENANT_ID: &str = "883611252155219968";
pub const CALL_ID: &str = "3c26a1f1e7b94f0a@10.0.0.5";
/// The session at T0 and its cdr id (node 1's Snowflake).
pub const SESSION: &str = "1179059904569151488";
pub const CDR: &str = "1179059904569151489";
pub const DESK_URI: &str = "sip:102@10.0.0.7:5062";
pub const ANN_URI: &str = "sip:103@10.0.0.9:5066";

/// The id of the `ordinal`-th event of a session started at T0.
pub fn event_id(ordinal: u32) -> String {
    format!("105cdcbc-7cc0-8100-8000-{ordinal:012x}")
}

/// The `call_cdr` of the `n`th session (0: the first), with the sequence
/// numbers that session's events get.
pub fn cdr_of(bench: &Bench, n: usize) -> Value {
    let mut sessions = Vec::new();
    for (s, _, _) in &bench.call_events {
        if !sessions.contains(s) {
            sessions.push(*s);
        }
    }
    let mut builder = Builder::new();
    let mut wire = Vec::new();
    for (_, _, e) in bench
        .call_events
        .iter()
        .filter(|(s, _, _)| *s == sessions[n])
    {
        wire.extend(builder.apply(e.clone()).unwrap());
    }
    assert!(builder.is_finished(), "session {n} did not end");
    let seq = wire.len() as u64;
    let last = wire.pop().unwrap();
    serde_json::from_str(&last.to_json(seq, &WireProfile::tally()).unwrap()).unwrap()
}

/// Golden comparison that shows the whole actual value on a mismatch.
pub fn golden(actual: &Value, expected: Value) {
    assert!(
        *actual == expected,
        "actual:\n{}\nexpected:\n{}",
        serde_json::to_string_pretty(actual).unwrap(),
        serde_json::to_string_pretty(&expected).unwrap()
    );
}

/// One target of a golden CDR, rung for a call from 101.
pub fn target(
    (id, cdr_id, call_type): (&str, &str, &str),
    (callee, destination): (&str, &str),
    (start, ring, answered, ended): (&str, &str, &str, &str),
    (ring_duration, talk_duration): (&str, &str),
    (status, status_code, end_reason): (&str, u16, &str),
) -> Value {
    json!({
        "id": id,
        "cdr_id": cdr_id,
        "direction": "ext",
        "call_type": call_type,
        "caller": "101",
        "callee": callee,
        "destination": destination,
        "start_time": start,
        "ring_time": ring,
        "answered_time": answered,
        "ended_time": ended,
        "ring_duration": ring_duration,
        "talk_duration": talk_duration,
        "status": status,
        "status_code": status_code,
        "end_reason": end_reason,
        "did": "",
        "outbound_caller_id": "",
        "trunk_name": "",
    })
}

/// The `call_cdr` of a call from 101 (Tom) to `callee`; `sequence` is the
/// event's, and its id is the session's `sequence - 1`-th.
pub fn call(
    (session, cdr_id, call_id): (&str, &str, &str),
    (callee, callee_name): (&str, &str),
    (start, ring, answered, ended): (&str, &str, &str, &str),
    (ring_duration, talk_duration): (&str, u64),
    (status, status_code, ended_reason): (&str, &str, &str),
    targets: Vec<Value>,
    sequence: u32,
) -> Value {
    json!({
        "event_type": "call_cdr",
        "session_id": session,
        "cdr_id": cdr_id,
        "call_id": call_id,
        "tenant_id": TENANT_ID,
        "tenant_name": "acme",
        "direction": "ext",
        "caller": "101",
        "caller_display_name": "Tom",
        "caller_domain": "acme.example",
        "callee": callee,
        "callee_display_name": callee_name,
        "callee_domain": "acme.example",
        "did": "",
        "did_cid": "",
        "outbound_caller_id": "",
        "trunk_name": "",
        "start_time": start,
        "ring_time": ring,
        "answered_time": answered,
        "ended_time": ended,
        "ring_duration": ring_duration,
        "talk_duration": talk_duration,
        "call_status": status,
        "status_code": status_code,
        "ended_reason": ended_reason,
        "end_reason": ended_reason,
        "user_data": "",
        "call_targets": targets,
        "event_id": event_id(sequence - 1),
        "sequence": sequence,
    })
}
