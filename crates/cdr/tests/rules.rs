//! Builder behaviour beyond the golden rows: exact key order, profiles,
//! the other SPEC §3 situations the builder must represent, the REST view,
//! determinism, and the rejection of illegal sequences.

mod common;

use cdr::{
    BuildError, Builder, CallEvent, CallEventKind, CallType, Direction, DirectionVocabulary,
    EndReason, EventType, Id, NoAnswerCause, Party, Quality, Recording, RerouteReason, SessionEnd,
    TargetEnd, TargetPhase, WireProfile,
};
use common::{Call, at, ext_call_start, party, target_id, target_to};
use serde_json::{Value, json};

const PHONE_URI: &str = "sip:102@10.0.0.7:5062";

fn raw(call: &Call, index: usize, sequence: u64, profile: &WireProfile) -> String {
    call.events[index].to_json(sequence, profile).unwrap()
}

// ---------------------------------------------------------------- wire form

/// `caller`/`callee` of `call_start` are SIP URIs (SPEC §4).
#[test]
fn call_start_keys_come_out_in_portsip_order() {
    let call = Call::ext();
    assert_eq!(
        raw(&call, 0, 1, &WireProfile::tally()),
        concat!(
            r#"{"event_type":"call_start","time":"1795874587","#,
            r#""session_id":"1179059904569151488","cdr_id":"1179059904569151489","#,
            r#""tenant_id":"883611252155219968","direction":"ext","#,
            r#""call_id":"3c26a1f1e7b94f0a@10.0.0.5","caller":"sip:101@acme.example","#,
            r#""caller_display_name":"Tom","callee":"sip:102@acme.example","#,
            r#""callee_display_name":"Jason","did":"","outbound_caller_id":"","#,
            r#""user_data":"","event_id":"105cdcbc-7cc0-8100-8000-000000000000","sequence":1}"#
        )
    );
}

/// PortSIP's misspelt `destiantion` is sent by default, next to
/// `destination`; `events.misspelt_destination = false` drops it.
#[test]
fn target_events_carry_the_misspelt_key_unless_it_is_switched_off() {
    let phone = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, phone, PHONE_URI);
    let default = raw(&call, 1, 2, &WireProfile::default());
    assert_eq!(
        default,
        concat!(
            r#"{"event_type":"cdr_target_add","time":"1795874587","#,
            r#""session_id":"1179059904569151488","cdr_id":"1179059904569151489","#,
            r#""tenant_id":"883611252155219968","direction":"ext","#,
            r#""destination":"sip:102@10.0.0.7:5062","destiantion":"sip:102@10.0.0.7:5062","#,
            r#""caller":"101","callee":"102","#,
            r#""did":"","outbound_caller_id":"","target_id":"1179059904736923648","#,
            r#""event_id":"105cdcbc-7cc0-8100-8000-000000000001","sequence":2}"#
        )
    );
    let without = WireProfile {
        misspelt_destination: false,
        ..WireProfile::default()
    };
    assert_eq!(
        raw(&call, 1, 2, &without),
        default.replace(r#""destiantion":"sip:102@10.0.0.7:5062","#, "")
    );
}

#[test]
fn call_cdr_keys_come_out_in_portsip_order_with_tally_additions_last() {
    let mut call = Call::ext();
    call.end(3, 404, EndReason::NotApplicable);
    let text = raw(&call, 1, 2, &WireProfile::tally());
    // Every `":` ends a key (no value in this fixture contains one); the
    // key is what follows the previous quote.
    let parts: Vec<&str> = text.split("\":").collect();
    let keys: Vec<&str> = parts[..parts.len() - 1]
        .iter()
        .filter_map(|part| part.rsplit('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "event_type",
            "session_id",
            "cdr_id",
            "call_id",
            "tenant_id",
            "tenant_name",
            "direction",
            "caller",
            "caller_display_name",
            "caller_domain",
            "callee",
            "callee_display_name",
            "callee_domain",
            "did",
            "did_cid",
            "outbound_caller_id",
            "trunk_name",
            "start_time",
            "ring_time",
            "answered_time",
            "ended_time",
            "ring_duration",
            "talk_duration",
            "call_status",
            "status_code",
            "ended_reason",
            "end_reason",
            "user_data",
            "call_targets",
            "event_id",
            "sequence",
        ]
    );
}

#[test]
fn v22_6_vocabulary_changes_only_the_direction_words() {
    let mut start = ext_call_start();
    start.direction = Direction::InboundOutbound;
    let call = Call::started_with(start);
    let profile = WireProfile {
        direction_vocabulary: DirectionVocabulary::V22_6,
        ..WireProfile::tally()
    };
    let classic = call.json()[0].clone();
    let v22_6 = call.json_with(&profile)[0].clone();
    assert_eq!(classic["direction"], "in2out");
    assert_eq!(v22_6["direction"], "inbound_outbound");
    let mut patched = v22_6;
    patched["direction"] = json!("in2out");
    assert_eq!(patched, classic);
}

// ------------------------------------------------------- other SPEC §3 rows

/// +15551234567 calls DID 18005550100 over trunk `carrier-a`; 102 rings
/// out after 20 s, the call forwards on no answer to 103, who answers;
/// the caller hangs up.
fn inbound_forwarded_call() -> Call {
    let first = target_id(40);
    let forward = target_id(20_215);
    let mut start = ext_call_start();
    start.direction = Direction::Inbound;
    start.caller = Party {
        user: "+15551234567".into(),
        display_name: String::new(),
        domain: "203.0.113.9".into(),
    };
    start.did = "18005550100".into();
    start.trunk_name = "carrier-a".into();
    let mut call = Call::started_with(start);
    let mut to_102 = target_to(first, "102", PHONE_URI);
    to_102.caller = "+15551234567".into();
    to_102.did = "18005550100".into();
    let mut to_103 = target_to(forward, "103", "sip:103@10.0.0.8:5060");
    to_103.caller = "+15551234567".into();
    to_103.did = "18005550100".into();
    to_103.reroute_reason = Some(RerouteReason::ForwardingNoAnswer);
    call.add(40, to_102)
        .ring(210, first)
        .no_answer(20_210, first, NoAnswerCause::RingTimeout)
        .add(20_215, to_103)
        .ring(20_400, forward)
        .answer(23_050, forward)
        .apply(
            83_333,
            CallEventKind::TargetEnded(TargetEnd {
                target: forward,
                reason: EndReason::CallerDisconnect,
                cost: Some(0.42),
                quality: Some(Quality {
                    codec: "PCMA".into(),
                    packets: 3014,
                    lost: 3,
                    jitter_ms: 4.5,
                    mos: 4.3,
                }),
            }),
        )
        .apply(
            83_333,
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 200,
                reason: EndReason::CallerDisconnect,
                recording: Some(Recording {
                    id: Id::from_u64(1_179_060_000_000_000_000),
                    url: "/api/recordings/1179060000000000000/audio".into(),
                    duration: 60,
                }),
                recording_error: None,
            }),
        );
    call
}

#[test]
fn forward_on_no_answer_keeps_the_first_destination_as_callee() {
    let call = inbound_forwarded_call();
    let cdr = call.cdr_json();
    assert_eq!(cdr["direction"], "in");
    assert_eq!(cdr["callee"], "102");
    assert_eq!(cdr["did"], "18005550100");
    assert_eq!(cdr["did_cid"], "18005550100");
    assert_eq!(cdr["trunk_name"], "carrier-a");
    assert_eq!(cdr["ring_time"], "1795874587");
    assert_eq!(cdr["answered_time"], "1795874610");
    assert_eq!(cdr["ring_duration"], "23");
    assert_eq!(cdr["talk_duration"], 60);
    assert_eq!(
        cdr["recording"],
        json!({
            "id": "1179060000000000000",
            "url": "/api/recordings/1179060000000000000/audio",
            "duration": 60,
        })
    );
    let targets = cdr["call_targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0]["callee"], "102");
    assert_eq!(targets[0]["status_code"], 408);
    assert_eq!(targets[0]["end_reason"], "None");
    assert!(targets[0].get("cost").is_none());
    assert!(targets[0].get("quality").is_none());
    assert_eq!(targets[1]["callee"], "103");
    assert_eq!(targets[1]["status"], "answered");
    assert_eq!(targets[1]["cost"], 0.42);
    assert_eq!(
        targets[1]["quality"],
        json!({ "codec": "PCMA", "packets": 3014, "lost": 3, "jitter_ms": 4.5, "mos": 4.3 })
    );
}

#[test]
fn rest_item_uses_rest_spellings() {
    let call = inbound_forwarded_call();
    let record = call.builder.record().unwrap();
    let item = serde_json::to_value(record.rest_item()).unwrap();
    assert_eq!(
        item,
        json!({
            "id": "1179059904569151489",
            "caller": "+15551234567",
            "caller_domain": "203.0.113.9",
            "caller_display_name": "",
            "callee": "102",
            "callee_domain": "acme.example",
            "callee_display_name": "Jason",
            "started_at": "2026-11-28T14:03:07.123Z",
            "rang_at": "2026-11-28T14:03:07.333Z",
            "answered_at": "2026-11-28T14:03:30.173Z",
            "ended_at": "2026-11-28T14:04:30.456Z",
            "call_id": "3c26a1f1e7b94f0a@10.0.0.5",
            "direction": "INBOUND_CALL",
            "call_status": "answered",
            "end_reason": "CALLER_DISCONNECTED",
            "reroute_reason": "FORWARDING_NO_ANSWER",
            "status_code": 0,
            "outbound_caller_id": "",
            "did_cid": "18005550100",
            "trunk": "carrier-a",
            "duration": 60,
            "session_id": "1179059904569151488",
            "user_data": "",
        })
    );
}

#[test]
fn rest_detail_adds_the_event_spelled_targets_and_the_recording() {
    let call = inbound_forwarded_call();
    let record = call.builder.record().unwrap();
    let item = serde_json::to_value(record.rest_item()).unwrap();
    let detail = serde_json::to_value(record.rest_detail()).unwrap();
    let cdr = call.cdr_json();
    let mut expected = item;
    expected["call_targets"] = cdr["call_targets"].clone();
    expected["recording"] = cdr["recording"].clone();
    assert_eq!(detail, expected);
}

#[test]
fn rest_view_of_a_failed_and_a_recovered_call() {
    let mut failed = Call::ext();
    failed.end(3, 486, EndReason::NotApplicable);
    let item = serde_json::to_value(failed.builder.record().unwrap().rest_item()).unwrap();
    assert_eq!(item["answered_at"], "");
    assert_eq!(item["rang_at"], "");
    assert_eq!(item["end_reason"], "");
    assert_eq!(item["reroute_reason"], "");
    assert_eq!(item["status_code"], 486);
    assert_eq!(item["duration"], 0);
    assert_eq!(item["call_status"], "fail");
    assert!(item.get("recovered").is_none());

    let mut recovered = Call::ext();
    recovered.apply(900, CallEventKind::SessionRecovered);
    let item = serde_json::to_value(recovered.builder.record().unwrap().rest_item()).unwrap();
    assert_eq!(item["recovered"], true);
    assert_eq!(item["ended_at"], "2026-11-28T14:03:08.023Z");
}

#[test]
fn an_internal_call_forwarded_to_a_mobile_takes_the_trunk_of_its_first_trunk_leg() {
    let first = target_id(40);
    let mobile = target_id(5_000);
    let mut call = Call::ext();
    let mut to_mobile = target_to(mobile, "+447700900123", "sip:+447700900123@198.51.100.1");
    to_mobile.trunk_name = "carrier-b".into();
    to_mobile.outbound_caller_id = "+442079460000".into();
    to_mobile.reroute_reason = Some(RerouteReason::ForwardingBusy);
    call.add_102(40, first, PHONE_URI)
        .fail(300, first, 486)
        .add(5_000, to_mobile)
        .fail(9_000, mobile, 480)
        .end(9_001, 480, EndReason::NotApplicable);
    let cdr = call.cdr_json();
    assert_eq!(cdr["direction"], "ext");
    assert_eq!(cdr["trunk_name"], "carrier-b");
    assert_eq!(cdr["outbound_caller_id"], "+442079460000");
    assert_eq!(cdr["call_status"], "fail");
    assert_eq!(cdr["ring_time"], "0");
    let item = serde_json::to_value(call.builder.record().unwrap().rest_item()).unwrap();
    assert_eq!(item["reroute_reason"], "FORWARDING_BUSY");
}

#[test]
fn redirect_ends_the_target_redirected_and_the_next_contact_is_rerouted() {
    let first = target_id(40);
    let next = target_id(700);
    let mut call = Call::ext();
    let mut to_next = target_to(next, "102", "sip:102@10.0.0.99");
    to_next.reroute_reason = Some(RerouteReason::Redirect);
    call.add_102(40, first, PHONE_URI)
        .end_target(600, first, EndReason::Redirected)
        .add(700, to_next)
        .answer(1_900, next)
        .end_target(9_000, next, EndReason::CallerDisconnect)
        .end(9_000, 200, EndReason::CallerDisconnect);
    let cdr = call.cdr_json();
    assert_eq!(cdr["call_targets"][0]["end_reason"], "redirected");
    assert_eq!(cdr["call_targets"][0]["status"], "noanswer");
    assert_eq!(cdr["call_targets"][0]["status_code"], 0);
    // Answered without a 180: the target rang at its answer, and so did
    // the call, whose first answer it is (SPEC §2).
    assert_eq!(cdr["ring_time"], "1795874589");
    assert_eq!(cdr["answered_time"], "1795874589");
    assert_eq!(cdr["ring_duration"], "0");
    assert_eq!(cdr["call_targets"][1]["ring_time"], "1795874589");
    assert_eq!(cdr["call_targets"][1]["ring_duration"], "0");
    // The redirected target neither rang nor answered.
    assert_eq!(cdr["call_targets"][0]["ring_time"], "0");
    let item = serde_json::to_value(call.builder.record().unwrap().rest_item()).unwrap();
    assert_eq!(item["reroute_reason"], "REDIRECT");
}

#[test]
fn pickup_replaces_the_ringing_target_with_an_answered_one() {
    let ringing = target_id(40);
    let picker = target_id(3_000);
    let mut call = Call::ext();
    call.add_102(40, ringing, PHONE_URI)
        .ring(210, ringing)
        .end_target(3_000, ringing, EndReason::Replaced)
        .add(3_000, target_to(picker, "105", "sip:105@10.0.0.12:5060"))
        .answer(3_000, picker)
        .end_target(10_000, picker, EndReason::CalleeDisconnect)
        .end(10_000, 200, EndReason::CalleeDisconnect);
    let cdr = call.cdr_json();
    assert_eq!(cdr["callee"], "102");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "replaced");
    assert_eq!(cdr["call_targets"][0]["status"], "noanswer");
    assert_eq!(cdr["call_targets"][1]["callee"], "105");
    assert_eq!(cdr["call_targets"][1]["status"], "answered");
    assert_eq!(call.events[3].event_type(), EventType::TargetEnd);
}

#[test]
fn ivr_then_queue_then_agent() {
    let ivr = target_id(40);
    let queue = target_id(6_000);
    let agent = target_id(6_100);
    let mut call = Call::ext();
    let mut to_agent = target_to(agent, "103", "sip:103@10.0.0.13:5060");
    to_agent.call_type = CallType::Queue;
    call.add(40, target_to(ivr, "5000", "sip:5000@127.0.0.1"))
        .answer(40, ivr)
        .end_target(6_000, ivr, EndReason::Referred)
        .add(6_000, target_to(queue, "8000", "sip:8000@127.0.0.1"))
        .answer(6_000, queue)
        .add(6_100, to_agent)
        .ring(6_300, agent)
        .answer(9_100, agent)
        .end_target(9_100, queue, EndReason::Referred)
        .end_target(30_000, agent, EndReason::CalleeDisconnect)
        .end(30_000, 200, EndReason::CalleeDisconnect);
    let cdr = call.cdr_json();
    // The IVR answered at once, without a 18x: the call rang then (SPEC
    // §2); the agent's ringing came after the call was answered, so it is
    // not the call's ring time.
    assert_eq!(cdr["answered_time"], "1795874587");
    assert_eq!(cdr["ring_time"], "1795874587");
    assert_eq!(cdr["call_targets"][0]["ring_time"], "1795874587");
    assert_eq!(cdr["talk_duration"], 30);
    assert_eq!(cdr["call_targets"][2]["call_type"], "queue_call");
    assert_eq!(cdr["call_targets"][2]["ring_time"], "1795874593");
    assert_eq!(cdr["call_targets"][2]["ring_duration"], "3");
    let ends: Vec<&Value> = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["end_reason"])
        .collect();
    assert_eq!(ends, ["referred", "referred", "callee_disconnect"]);
}

#[test]
fn identity_change_reports_the_new_identity_but_the_cdr_keeps_the_first() {
    let b = target_id(40);
    let c = target_id(9_000);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI)
        .answer(1_000, b)
        .end_target(9_000, b, EndReason::Referred)
        .add(9_000, target_to(c, "104", "sip:104@10.0.0.14:5060"))
        .answer(11_000, c)
        .apply(
            11_000,
            CallEventKind::IdentityChanged {
                caller: None,
                callee: Some(party("104", "Ana")),
            },
        )
        .end_target(20_000, c, EndReason::CallerDisconnect)
        .end(20_000, 200, EndReason::CallerDisconnect);
    let all = call.json();
    let update = &all[6];
    assert_eq!(
        update,
        &json!({
            "event_type": "call_update_info",
            "time": "1795874598",
            "session_id": "1179059904569151488",
            "cdr_id": "1179059904569151489",
            "tenant_id": "883611252155219968",
            "direction": "ext",
            "caller": "sip:101@acme.example",
            "caller_display_name": "Tom",
            "callee": "sip:104@acme.example",
            "callee_display_name": "Ana",
            "did": "",
            "outbound_caller_id": "",
            "event_id": "105cdcbc-7cc0-8100-8000-000000000006",
            "sequence": 7,
        })
    );
    assert_eq!(call.cdr_json()["callee"], "102");
    assert_eq!(call.cdr_json()["callee_display_name"], "Jason");
}

#[test]
fn rest_originated_call_echoes_user_data() {
    let mut start = ext_call_start();
    start.user_data = "crm-ticket-4711".into();
    let mut call = Call::started_with(start);
    call.end(10, 480, EndReason::NotApplicable);
    assert_eq!(call.json()[0]["user_data"], "crm-ticket-4711");
    assert_eq!(call.cdr_json()["user_data"], "crm-ticket-4711");
}

// ------------------------------------------------------------ time and ids

#[test]
fn time_never_runs_backwards_inside_a_session() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).answer(5_000, b);
    // The wall clock steps back two seconds before the hang-up.
    call.builder
        .apply(CallEvent::new(
            at(3_000),
            CallEventKind::TargetEnded(TargetEnd {
                target: b,
                reason: EndReason::CallerDisconnect,
                cost: None,
                quality: None,
            }),
        ))
        .unwrap();
    assert_eq!(call.builder.last_activity(), Some(at(5_000)));
    let wire = call
        .builder
        .apply(CallEvent::new(
            at(4_000),
            CallEventKind::SessionEnded(SessionEnd {
                status_code: 200,
                reason: EndReason::CallerDisconnect,
                recording: None,
                recording_error: None,
            }),
        ))
        .unwrap();
    let record = wire[0].cdr().unwrap();
    assert_eq!(record.ended_time, at(5_000));
    assert_eq!(record.targets[0].ended_time, at(5_000));
    assert_eq!(record.talk_duration(), 0);
}

#[test]
fn replaying_the_same_events_gives_identical_output() {
    let script = |call: &mut Call| {
        let b = target_id(40);
        call.add_102(40, b, PHONE_URI)
            .ring(210, b)
            .answer(5_870, b)
            .end_target(65_500, b, EndReason::CallerDisconnect)
            .end(65_500, 200, EndReason::CallerDisconnect);
    };
    let mut first = Call::ext();
    script(&mut first);
    let mut second = Call::ext();
    script(&mut second);
    assert_eq!(first.events, second.events);
    assert_eq!(first.json(), second.json());
    let ids: Vec<_> = first.events.iter().map(|e| e.event_id()).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(
        ids.iter()
            .all(|id| id.session_id() == first.events[0].session_id())
    );
}

#[test]
fn wire_events_expose_their_routing_fields() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI);
    let add = &call.events[1];
    assert_eq!(add.event_type(), EventType::TargetAdd);
    assert_eq!(add.tenant_id(), common::tenant_id());
    assert_eq!(add.session_id(), common::session_id());
    assert_eq!(add.target_id(), Some(b));
    assert_eq!(add.time(), at(40));
    assert!(add.cdr().is_none());
    assert_eq!(call.events[0].target_id(), None);
    assert_eq!(call.builder.session_id(), Some(common::session_id()));
    assert!(!call.builder.is_finished());
}

// ------------------------------------------------------------------ errors

/// Applies `kind` expecting `error`, and checks the builder did not move:
/// the next accepted event still gets the next ordinal.
fn rejects(call: &mut Call, offset_ms: u64, kind: CallEventKind, error: BuildError) {
    let before = call.events.len();
    let last = call.builder.last_activity();
    assert_eq!(call.try_apply(offset_ms, kind), Err(error));
    assert_eq!(call.events.len(), before);
    assert_eq!(call.builder.last_activity(), last);
}

fn ended(target: cdr::TargetId, reason: EndReason) -> CallEventKind {
    CallEventKind::TargetEnded(TargetEnd {
        target,
        reason,
        cost: None,
        quality: None,
    })
}

fn session_end(status_code: u16, reason: EndReason) -> CallEventKind {
    CallEventKind::SessionEnded(SessionEnd {
        status_code,
        reason,
        recording: None,
        recording_error: None,
    })
}

#[test]
fn events_before_the_start_are_rejected() {
    let mut builder = Builder::new();
    let error = builder
        .apply(CallEvent::new(
            at(0),
            CallEventKind::TargetRinging {
                target: target_id(0),
            },
        ))
        .unwrap_err();
    assert_eq!(
        error,
        BuildError::NotStarted {
            event: "target_ringing"
        }
    );
    assert_eq!(error.to_string(), "target_ringing before session_started");
    assert_eq!(builder.session_id(), None);
    assert!(
        builder
            .apply(CallEvent::new(at(0), CallEventKind::SessionRecovered))
            .is_err()
    );
}

#[test]
fn a_second_start_is_rejected() {
    let mut call = Call::ext();
    rejects(
        &mut call,
        5,
        CallEventKind::SessionStarted(Box::new(ext_call_start())),
        BuildError::AlreadyStarted(common::session_id()),
    );
}

#[test]
fn unknown_and_duplicate_targets_are_rejected() {
    let b = target_id(40);
    let stranger = target_id(41);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI);
    rejects(
        &mut call,
        50,
        CallEventKind::TargetAnswered { target: stranger },
        BuildError::UnknownTarget {
            target: stranger,
            event: "target_answered",
        },
    );
    rejects(
        &mut call,
        50,
        CallEventKind::TargetAdded(Box::new(target_to(b, "102", PHONE_URI))),
        BuildError::DuplicateTarget(b),
    );
    call.ring(210, b);
    assert_eq!(call.events.last().unwrap().event_id().ordinal(), 2);
}

#[test]
fn target_transitions_follow_the_target_life() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).ring(210, b);
    rejects(
        &mut call,
        300,
        CallEventKind::TargetRinging { target: b },
        BuildError::InvalidTransition {
            target: b,
            event: "target_ringing",
            phase: TargetPhase::Ringing,
        },
    );
    call.answer(1_000, b);
    for kind in [
        CallEventKind::TargetRinging { target: b },
        CallEventKind::TargetAnswered { target: b },
        CallEventKind::TargetNoAnswer {
            target: b,
            cause: NoAnswerCause::RingTimeout,
        },
        CallEventKind::TargetFailed {
            target: b,
            status_code: 486,
        },
    ] {
        let event = kind.name();
        rejects(
            &mut call,
            1_100,
            kind,
            BuildError::InvalidTransition {
                target: b,
                event,
                phase: TargetPhase::Answered,
            },
        );
    }
    call.end_target(2_000, b, EndReason::CalleeDisconnect);
    rejects(
        &mut call,
        2_100,
        ended(b, EndReason::CalleeDisconnect),
        BuildError::InvalidTransition {
            target: b,
            event: "target_ended",
            phase: TargetPhase::Ended,
        },
    );
}

#[test]
fn end_reasons_must_fit_the_target() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).ring(210, b);
    rejects(
        &mut call,
        300,
        ended(b, EndReason::CallerDisconnect),
        BuildError::TargetEndReason {
            target: b,
            reason: EndReason::CallerDisconnect,
            phase: TargetPhase::Ringing,
        },
    );
    rejects(
        &mut call,
        300,
        ended(b, EndReason::Cancelled),
        BuildError::TargetEndReason {
            target: b,
            reason: EndReason::Cancelled,
            phase: TargetPhase::Ringing,
        },
    );
    call.answer(1_000, b);
    for reason in [EndReason::Cancelled, EndReason::Redirected] {
        rejects(
            &mut call,
            1_100,
            ended(b, reason),
            BuildError::TargetEndReason {
                target: b,
                reason,
                phase: TargetPhase::Answered,
            },
        );
    }
}

#[test]
fn target_failure_codes_must_be_final_failures() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI);
    for status_code in [0, 180, 200, 299, 700] {
        rejects(
            &mut call,
            100,
            CallEventKind::TargetFailed {
                target: b,
                status_code,
            },
            BuildError::TargetStatusCode {
                target: b,
                status_code,
            },
        );
    }
    call.fail(100, b, 302);
}

#[test]
fn non_finite_measurements_are_rejected() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).answer(100, b);
    let mut end = TargetEnd {
        target: b,
        reason: EndReason::CallerDisconnect,
        cost: Some(f64::NAN),
        quality: None,
    };
    rejects(
        &mut call,
        200,
        CallEventKind::TargetEnded(end.clone()),
        BuildError::NotFinite { field: "cost" },
    );
    end.cost = None;
    end.quality = Some(Quality {
        codec: "PCMU".into(),
        packets: 1,
        lost: 0,
        jitter_ms: f64::INFINITY,
        mos: 4.0,
    });
    rejects(
        &mut call,
        200,
        CallEventKind::TargetEnded(end),
        BuildError::NotFinite {
            field: "quality.jitter_ms",
        },
    );
}

#[test]
fn an_identity_change_must_change_something() {
    let mut call = Call::ext();
    rejects(
        &mut call,
        10,
        CallEventKind::IdentityChanged {
            caller: None,
            callee: None,
        },
        BuildError::EmptyIdentityChange,
    );
}

#[test]
fn the_session_cannot_end_with_targets_still_up() {
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).ring(210, b);
    rejects(
        &mut call,
        5_000,
        session_end(487, EndReason::Cancelled),
        BuildError::TargetStillActive {
            target: b,
            phase: TargetPhase::Ringing,
        },
    );
}

#[test]
fn the_final_response_must_fit_the_outcome() {
    let mut unanswered = Call::ext();
    for (code, reason) in [
        (200, EndReason::NotApplicable),
        (0, EndReason::NotApplicable),
        (486, EndReason::Cancelled),
    ] {
        rejects(
            &mut unanswered,
            10,
            session_end(code, reason),
            BuildError::FinalResponse {
                status_code: code,
                answered: false,
            },
        );
    }
    for reason in [EndReason::CallerDisconnect, EndReason::Referred] {
        rejects(
            &mut unanswered,
            10,
            session_end(486, reason),
            BuildError::SessionEndReason {
                reason,
                answered: false,
            },
        );
    }

    let b = target_id(40);
    let mut answered = Call::ext();
    answered
        .add_102(40, b, PHONE_URI)
        .answer(100, b)
        .end_target(200, b, EndReason::CallerDisconnect);
    rejects(
        &mut answered,
        300,
        session_end(486, EndReason::CallerDisconnect),
        BuildError::FinalResponse {
            status_code: 486,
            answered: true,
        },
    );
    rejects(
        &mut answered,
        300,
        session_end(200, EndReason::Cancelled),
        BuildError::SessionEndReason {
            reason: EndReason::Cancelled,
            answered: true,
        },
    );
    let error = BuildError::FinalResponse {
        status_code: 486,
        answered: true,
    };
    assert_eq!(
        error.to_string(),
        "final response 486 does not fit a call that was answered"
    );
}

#[test]
fn nothing_is_accepted_after_the_session_ended() {
    let mut call = Call::ext();
    call.end(10, 404, EndReason::NotApplicable);
    assert!(call.builder.is_finished());
    for kind in [
        CallEventKind::TargetAdded(Box::new(target_to(target_id(40), "102", PHONE_URI))),
        session_end(404, EndReason::NotApplicable),
        CallEventKind::SessionRecovered,
    ] {
        let event = kind.name();
        rejects(
            &mut call,
            20,
            kind,
            BuildError::AfterSessionEnded {
                session: common::session_id(),
                event,
            },
        );
    }
}

#[test]
fn recovery_closes_any_session_after_a_rejected_sequence() {
    // The engine got the sequence wrong (ended the session while 102 still
    // rang); recovery still produces a record, so nothing is lost.
    let b = target_id(40);
    let mut call = Call::ext();
    call.add_102(40, b, PHONE_URI).ring(210, b);
    assert!(
        call.try_apply(8_000, session_end(487, EndReason::Cancelled))
            .is_err()
    );
    call.apply(8_000, CallEventKind::SessionRecovered);
    let cdr = call.cdr_json();
    assert_eq!(cdr["recovered"], true);
    assert_eq!(cdr["call_status"], "fail");
    assert_eq!(cdr["status_code"], "0");
    assert_eq!(cdr["ended_reason"], "None");
    assert_eq!(cdr["event_id"], "105cdcbc-7cc0-8100-8000-000000000003");
    let target = &cdr["call_targets"][0];
    assert_eq!(target["status"], "noanswer");
    assert_eq!(target["status_code"], 0);
    assert_eq!(target["end_reason"], "None");
    assert_eq!(target["ended_time"], "1795874595");
    assert_eq!(target["ring_duration"], "8");
}
