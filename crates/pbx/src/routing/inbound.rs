//! Inbound routing: a carrier's INVITE → its trunk → a DID rule.
//!
//! # Decisions
//!
//! - **The source address decides the trunk, never a header.** From,
//!   To and Request-URI are the caller's to write; accepting a call
//!   because of them is how toll fraud starts. A source no enabled trunk
//!   claims gets [`InboundRoute::UnknownSource`] (the engine answers 403
//!   and counts it in its throttle).
//! - **Several tenants may share a carrier address.** Every trunk that
//!   claims the source is a candidate, most specific network first, and
//!   the first one with a DID rule for the called number takes the call.
//! - **…or the Contact the PBX registered.** A carrier may send a
//!   `register` trunk's calls from another address than the one its
//!   host resolves to (a separate media/signalling gateway), to the
//!   Contact the PBX registered. That Contact's user part is the trunk's
//!   token ([`crate::trunk::contact_user`], unguessable without the
//!   trunk's password, never shown by the API), so a Request-URI naming
//!   it identifies the trunk from any source; the DID is then the To's
//!   user part (the Request-URI carries the token, not the number). Any
//!   other Request-URI from a source no trunk claims stays
//!   [`InboundRoute::UnknownSource`].
//! - **DID rules:** an exact DID beats a prefix; among prefixes the
//!   longest wins. Both sides are compared after the trunk's
//!   normalisation ([`super::normalise`]).

use std::net::SocketAddr;

use crate::trunk::{DidMatch, InboundRule, Trunk, Trunks};

use super::number::normalise;

/// What to do with a carrier's INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InboundRoute<'a> {
    /// Route to the rule's destination; `did` is the called number as
    /// normalised (the CDR's `did`).
    Routed {
        trunk: &'a Trunk,
        rule: &'a InboundRule,
    },
    /// The source is a trunk, but no DID rule takes the number (404).
    NoRule { trunk: &'a Trunk },
    /// No enabled trunk claims the source address (403).
    UnknownSource,
}

impl InboundRoute<'_> {
    /// The SIP status the engine answers when the call is not routed.
    pub fn refusal_status(&self) -> Option<u16> {
        match self {
            InboundRoute::Routed { .. } => None,
            InboundRoute::NoRule { .. } => Some(404),
            InboundRoute::UnknownSource => Some(403),
        }
    }
}

/// The rule of `rules` that takes `did` (already normalised).
pub fn did_rule<'a>(rules: &'a [InboundRule], did: &str) -> Option<&'a InboundRule> {
    rules
        .iter()
        .filter(|r| match r.matching {
            DidMatch::Exact => r.did == did,
            DidMatch::Prefix => did.starts_with(&r.did),
        })
        .max_by_key(|r| (r.matching == DidMatch::Exact, r.did.len()))
}

/// Routes an INVITE from `source` for the called user part `called` (the
/// Request-URI's, which carriers set to the DID, or to the Contact the
/// PBX registered); `to_user` is the To's user part, the DID when the
/// Request-URI names the registered Contact.
pub fn route_inbound<'a>(
    trunks: &'a Trunks,
    source: SocketAddr,
    called: &str,
    to_user: &str,
) -> InboundRoute<'a> {
    let registered = trunks.by_contact_user(called);
    let mut candidates: Vec<(u16, &Trunk)> = trunks
        .all()
        .filter_map(|t| trunks.source_match(t, source).map(|p| (u16::from(p), t)))
        .filter(|(_, t)| registered.is_none_or(|r| r.id != t.id))
        .collect();
    // The trunk the Request-URI names is the most specific of all.
    candidates.extend(registered.map(|t| (u16::MAX, t)));
    // Most specific first; the id breaks ties so the answer never depends
    // on a hash map's order.
    candidates.sort_by_key(|(prefix, t)| (std::cmp::Reverse(*prefix), t.id));
    for (_, trunk) in &candidates {
        let number = match registered.is_some_and(|r| r.id == trunk.id) {
            true => to_user,
            false => called,
        };
        let did = normalise(number, &trunk.country_code);
        if let Some(rule) = did_rule(trunks.inbound_rules(trunk.id), &did) {
            return InboundRoute::Routed { trunk, rule };
        }
    }
    match candidates.first() {
        Some((_, trunk)) => InboundRoute::NoRule { trunk },
        None => InboundRoute::UnknownSource,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::IpAddr;

    use cdr::{Id, TenantId};

    use super::*;
    use crate::directory::Extension;
    use crate::trunk::{InboundDestination, TrunkId, TrunkKind, TrunkTransport};

    pub(crate) fn trunk(id: u64, tenant: u64, kind: TrunkKind, sources: &[&str]) -> Trunk {
        Trunk {
            id: TrunkId(Id::from_u64(id)),
            tenant_id: TenantId::from(Id::from_u64(tenant)),
            name: format!("trunk{id}"),
            kind,
            host: "carrier.example".into(),
            port: 5060,
            transport: TrunkTransport::Udp,
            username: "acct".into(),
            auth_username: String::new(),
            password: "pw".into(),
            realm: String::new(),
            from_domain: String::new(),
            caller_id: String::new(),
            country_code: "33".into(),
            max_calls: None,
            outbound_proxy: None,
            sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
            source_port: None,
            register_expires: 3600,
            enabled: true,
        }
    }

    fn rule(id: u64, trunk: &Trunk, did: &str, matching: DidMatch, ext: &str) -> InboundRule {
        InboundRule {
            id: Id::from_u64(id),
            trunk_id: trunk.id,
            did: did.into(),
            matching,
            destination: InboundDestination::Extension(Extension::from(ext)),
        }
    }

    fn from(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn routed_to(route: InboundRoute<'_>) -> Option<(u64, String)> {
        match route {
            InboundRoute::Routed { trunk, rule } => {
                Some((trunk.id.0.as_u64(), rule.destination.number().to_string()))
            }
            _ => None,
        }
    }

    #[test]
    fn an_ip_trunk_takes_its_dids_and_refuses_others() {
        let t = trunk(1, 10, TrunkKind::Ip, &["198.51.100.0/24"]);
        let mut trunks = Trunks::new();
        let rules = vec![
            rule(1, &t, "123456789", DidMatch::Exact, "101"),
            rule(2, &t, "1234", DidMatch::Prefix, "102"),
            rule(3, &t, "12345", DidMatch::Prefix, "103"),
        ];
        trunks.replace_tenant(t.tenant_id, vec![t.clone()], rules, vec![]);
        let route = |src: &str, did: &str| route_inbound(&trunks, from(src), did, "");
        // `+33` is stripped before matching; exact beats prefixes.
        assert_eq!(
            routed_to(route("198.51.100.9:5060", "+33123456789")),
            Some((1, "101".into()))
        );
        // The longest prefix wins.
        assert_eq!(
            routed_to(route("198.51.100.9:5060", "123450000")),
            Some((1, "103".into()))
        );
        assert_eq!(
            routed_to(route("198.51.100.9:5060", "123400000")),
            Some((1, "102".into()))
        );
        let no_rule = route("198.51.100.9:5060", "999");
        assert_eq!(no_rule.refusal_status(), Some(404));
        let stranger = route("203.0.113.1:5060", "123456789");
        assert_eq!(stranger, InboundRoute::UnknownSource);
        assert_eq!(stranger.refusal_status(), Some(403));
    }

    #[test]
    fn source_port_and_enabled_are_checked() {
        let mut t = trunk(1, 10, TrunkKind::Ip, &["198.51.100.7"]);
        t.source_port = Some(5080);
        let mut trunks = Trunks::new();
        let rules = vec![rule(1, &t, "1", DidMatch::Prefix, "101")];
        trunks.replace_tenant(t.tenant_id, vec![t.clone()], rules.clone(), vec![]);
        assert!(routed_to(route_inbound(&trunks, from("198.51.100.7:5080"), "100", "")).is_some());
        assert_eq!(
            route_inbound(&trunks, from("198.51.100.7:5060"), "100", ""),
            InboundRoute::UnknownSource
        );
        t.enabled = false;
        trunks.replace_tenant(t.tenant_id, vec![t], rules, vec![]);
        assert_eq!(
            route_inbound(&trunks, from("198.51.100.7:5080"), "100", ""),
            InboundRoute::UnknownSource,
            "a disabled trunk claims nothing"
        );
    }

    #[test]
    fn tenants_sharing_a_carrier_are_told_apart_by_did() {
        let a = trunk(1, 10, TrunkKind::Ip, &["198.51.100.0/24"]);
        let b = trunk(2, 20, TrunkKind::Ip, &["198.51.100.7"]);
        let mut trunks = Trunks::new();
        trunks.replace_tenant(
            a.tenant_id,
            vec![a.clone()],
            vec![rule(1, &a, "111", DidMatch::Exact, "101")],
            vec![],
        );
        trunks.replace_tenant(
            b.tenant_id,
            vec![b.clone()],
            vec![rule(2, &b, "222", DidMatch::Exact, "201")],
            vec![],
        );
        let src = from("198.51.100.7:5060");
        assert_eq!(
            routed_to(route_inbound(&trunks, src, "111", "")),
            Some((1, "101".into()))
        );
        assert_eq!(
            routed_to(route_inbound(&trunks, src, "222", "")),
            Some((2, "201".into()))
        );
        // No rule anywhere: the most specific trunk answers 404.
        match route_inbound(&trunks, src, "333", "") {
            InboundRoute::NoRule { trunk } => assert_eq!(trunk.id, b.id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_register_trunk_is_known_by_its_resolved_host() {
        let t = trunk(1, 10, TrunkKind::Register, &[]);
        let mut trunks = Trunks::new();
        trunks.replace_tenant(
            t.tenant_id,
            vec![t.clone()],
            vec![rule(1, &t, "5550100", DidMatch::Exact, "101")],
            vec![],
        );
        let src = from("192.0.2.10:5060");
        assert_eq!(
            route_inbound(&trunks, src, "5550100", ""),
            InboundRoute::UnknownSource
        );
        trunks.set_resolved(t.id, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert!(routed_to(route_inbound(&trunks, src, "5550100", "")).is_some());
        // A replacement of the tenant keeps what was resolved.
        trunks.replace_tenant(
            t.tenant_id,
            vec![t.clone()],
            vec![rule(1, &t, "5550100", DidMatch::Exact, "101")],
            vec![],
        );
        assert!(routed_to(route_inbound(&trunks, src, "5550100", "")).is_some());
        trunks.remove_tenant(t.tenant_id);
        assert_eq!(
            route_inbound(&trunks, src, "5550100", ""),
            InboundRoute::UnknownSource
        );
    }

    #[test]
    fn a_register_trunks_contact_names_it_from_any_source() {
        let mut t = trunk(1, 10, TrunkKind::Register, &[]);
        let mut other = trunk(2, 20, TrunkKind::Register, &[]);
        other.password = "another".into();
        let token = crate::trunk::contact_user(&t);
        assert!(token.starts_with('t') && token.len() == 17, "{token}");
        assert_ne!(token, crate::trunk::contact_user(&other));
        t.password = "changed".into();
        assert_ne!(
            token,
            crate::trunk::contact_user(&t),
            "the password feeds it"
        );
        t.password = "pw".into();
        assert_eq!(token, crate::trunk::contact_user(&t), "stable");
        let mut trunks = Trunks::new();
        let rules = vec![rule(1, &t, "5550100", DidMatch::Exact, "101")];
        trunks.replace_tenant(t.tenant_id, vec![t.clone()], rules.clone(), vec![]);
        trunks.replace_tenant(other.tenant_id, vec![other.clone()], vec![], vec![]);
        // From an address no trunk claims: the Contact's token decides,
        // and the DID is the To's.
        let stranger = from("203.0.113.50:5060");
        assert_eq!(
            routed_to(route_inbound(&trunks, stranger, &token, "+335550100")),
            Some((1, "101".into()))
        );
        match route_inbound(&trunks, stranger, &token, "999") {
            InboundRoute::NoRule { trunk } => assert_eq!(trunk.id, t.id),
            other => panic!("{other:?}"),
        }
        // Anything else from there is still refused.
        for called in ["5550100", "acct", "t0000000000000000", ""] {
            assert_eq!(
                route_inbound(&trunks, stranger, called, "5550100"),
                InboundRoute::UnknownSource,
                "{called}"
            );
        }
        // The registrar's own address with the token works too.
        trunks.set_resolved(t.id, vec!["192.0.2.10".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            routed_to(route_inbound(
                &trunks,
                from("192.0.2.10:5060"),
                &token,
                "5550100"
            )),
            Some((1, "101".into()))
        );
        // Disabled or an ip trunk: the token names nothing.
        t.enabled = false;
        trunks.replace_tenant(t.tenant_id, vec![t.clone()], rules.clone(), vec![]);
        assert_eq!(
            route_inbound(&trunks, stranger, &token, "5550100"),
            InboundRoute::UnknownSource
        );
        t.enabled = true;
        t.kind = TrunkKind::Ip;
        trunks.replace_tenant(t.tenant_id, vec![t.clone()], rules, vec![]);
        assert_eq!(
            route_inbound(&trunks, stranger, &token, "5550100"),
            InboundRoute::UnknownSource
        );
    }
}
