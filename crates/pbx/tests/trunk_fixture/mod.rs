//! The trunk goldens' fixture (`trunks.rs`, `trunk_dids.rs`): carrier A
//! sends from and listens on 198.51.100.50:5060 (`ip` trunk `carrier-a`,
//! source 198.51.100.0/24, country code 33), carrier B listens on
//! 192.0.2.80:5070 (`carrier-b`). DID `+33123456789` rings 102. Outbound
//! rule `national`: `0ZXXXXXXXX`, strip 1, prepend `+33`, trunks A then B.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use cdr::Id;
use pbx::routing::DialPattern;
use pbx::trunk::{
    DidMatch, InboundDestination, InboundRule, OutboundPolicy, OutboundRule, SourceNet, Trunk,
    TrunkId, TrunkKind, TrunkTransport, Trunks, UserOutbound,
};
use pbx::{EngineEvent, Extension, Input, TrunkRefusal};
use serde_json::Value;
use sip::Message;
use sip::transport::Peer;

use crate::common::*;

pub const SESSION: &str = "1179059904569151488";
pub const CDR: &str = "1179059904569151489";
pub const TENANT_ID: &str = "883611252155219968";
pub const FIRST_TARGET: &str = "1179059904569151490";
pub const CARRIER_A: &str = "198.51.100.50:5060";
pub const CARRIER_B: &str = "192.0.2.80:5070";
pub const DID: &str = "+33123456789";
pub const EXTERNAL: &str = "+33612345678";

pub fn trunk(id: u64, name: &str, host: &str, port: u16, sources: &[&str]) -> Trunk {
    Trunk {
        id: TrunkId(Id::from_u64(id)),
        tenant_id: tenant_id(),
        name: name.into(),
        kind: TrunkKind::Ip,
        host: host.into(),
        port,
        transport: TrunkTransport::Udp,
        username: "acct77".into(),
        auth_username: String::new(),
        password: "carrier-secret".into(),
        realm: String::new(),
        from_domain: "sip.carrier.example".into(),
        caller_id: String::new(),
        country_code: "33".into(),
        max_calls: None,
        outbound_proxy: None,
        sources: sources
            .iter()
            .map(|s| s.parse::<SourceNet>().unwrap())
            .collect(),
        source_port: None,
        register_expires: 3600,
        enabled: true,
    }
}

/// The fixture's trunks and rules, with `tweak` applied before they are
/// handed to the engine.
pub fn trunks(tweak: impl FnOnce(&mut Vec<Trunk>, &mut OutboundPolicy)) -> Trunks {
    let mut list = vec![
        trunk(1, "carrier-a", "198.51.100.50", 5060, &["198.51.100.0/24"]),
        trunk(2, "carrier-b", "192.0.2.80", 5070, &["192.0.2.80"]),
    ];
    let mut policy = OutboundPolicy::default();
    tweak(&mut list, &mut policy);
    let did = InboundRule {
        id: Id::from_u64(11),
        trunk_id: list[0].id,
        did: pbx::routing::normalise(DID, "33"),
        matching: DidMatch::Exact,
        destination: InboundDestination::Extension(Extension::new("102")),
    };
    let national = OutboundRule {
        id: Id::from_u64(21),
        name: "national".into(),
        pattern: DialPattern::parse("0ZXXXXXXXX").unwrap(),
        from_extensions: vec![],
        strip: 1,
        prepend: "+33".into(),
        trunks: list.iter().map(|t| t.id).collect(),
        caller_id: String::new(),
    };
    let mut table = Trunks::new();
    table.replace_tenant(tenant_id(), list, vec![did], vec![national]);
    table.set_outbound_policy(tenant_id(), policy);
    table
}

/// The standard cast with the fixture's trunks, and 101's caller ID.
pub fn cast(tweak: impl FnOnce(&mut Vec<Trunk>, &mut OutboundPolicy)) -> Cast {
    let mut cast = Cast::new();
    let table = trunks(|list, policy| {
        policy.users.insert(
            Extension::new("101"),
            UserOutbound {
                allowed: true,
                caller_id: "+33100000101".into(),
            },
        );
        tweak(list, policy)
    });
    cast.bench.input(Input::ReplaceTrunks(Box::new(table)));
    cast
}

/// A carrier: a phone at the carrier's address whose From and To are
/// numbers.
pub fn carrier(addr: &str) -> Phone {
    Phone::new("carrier", "", udp(addr))
}

/// The carrier's side of a call to `did` from `from`.
pub fn carrier_call(from: &str, did: &str) -> Call {
    Call {
        ruri: format!("sip:{did}@{PBX}"),
        call_id: "a84b4c76e66710@198.51.100.50".into(),
        local: format!("<sip:{from}@198.51.100.50>;tag=c4r"),
        remote: format!("<sip:{did}@{PBX}>"),
        remote_target: String::new(),
        cseq: 0,
        invite_via: String::new(),
        sdp: Some(SDP_B.into()),
    }
}

/// `response` with `extra` header lines before Content-Length.
pub fn with_header(response: String, extra: &str) -> String {
    response.replacen("Content-Length:", &format!("{extra}\r\nContent-Length:"), 1)
}

pub fn cdr(bench: &mut Bench) -> Value {
    let cdr = bench.cdr();
    bench.at(bench.now + 40_000);
    assert_eq!(bench.engine.sessions(), 0, "the session is dropped");
    assert!(bench.engine.trunk_calls().is_empty(), "no trunk call left");
    cdr
}

pub fn refusals(bench: &Bench) -> Vec<TrunkRefusal> {
    bench
        .engine_events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::TrunkCallRefused { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// 102's user with every call forwarded to `destination`.
pub fn forward_102(bench: &mut Bench, destination: &str) {
    let mut user = bench
        .engine
        .directory()
        .user(tenant_id(), "102")
        .unwrap()
        .clone();
    user.forwarding = pbx::Forwarding::default().with(pbx::ForwardCondition::Always, destination);
    bench.engine.directory_mut().upsert_user(user).unwrap();
}

/// The caller's final answer and the call's `(call_status, status_code)`.
pub fn refused_call(bench: &mut Bench, caller: Peer) -> (Message, (String, String)) {
    let refused = bench.take_one(caller);
    let cdr = bench.cdr();
    let status = (
        cdr["call_status"].as_str().unwrap().to_owned(),
        cdr["status_code"].as_str().unwrap().to_owned(),
    );
    (refused, status)
}
