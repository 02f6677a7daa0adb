//! The runtime side of trunks (issue 10): the store's trunks and routing
//! rules turned into the call engine's `pbx::trunk::Trunks`, the way
//! `directory::load_directory` turns tenants and users into its
//! directory.
//!
//! Rows that no longer parse (a pattern an older version accepted, a
//! source network gone wrong) are logged and left out rather than failing
//! the start: a PBX with one broken rule must still take every other call.
//!
//! [`live`] runs each trunk's registration and OPTIONS keep-alive;
//! [`reload`] hands a fresh load to the shard and the live tasks after
//! every provisioning change.
//!
//! A load also carries who may dial out (users' `outbound_allowed` and
//! `outbound_caller_id`, tenants' `max_outbound_calls`) and where each
//! trunk's INVITEs go when its host is a name (resolved here, SRV then
//! A/AAAA: [`dns`], so the sans-IO engine never waits on DNS; a name that
//! does not resolve leaves the trunk skipped by outbound routing, reported
//! per call).

pub mod dns;
pub mod live;
pub mod reload;

use std::collections::HashMap;

use cdr::{Id, TenantId};
use pbx::trunk::{
    DidMatch, InboundDestination, InboundRule, OutboundPolicy, OutboundRule, SourceNet, Trunk,
    TrunkId, TrunkKind, TrunkTransport, Trunks, UserOutbound,
};
use store::{Store, StoreError};

/// Why a stored row was left out of the engine's trunks.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    #[error("trunk {0}: {1}")]
    Trunk(Id, String),
    #[error("inbound rule {0}: {1}")]
    Inbound(Id, String),
    #[error("outbound rule {0}: {1}")]
    Outbound(Id, String),
}

/// A stored trunk as the engine holds it.
pub fn engine_trunk(t: &store::Trunk) -> Result<Trunk, Skipped> {
    let bad = |what: String| Skipped::Trunk(t.id, what);
    Ok(Trunk {
        id: TrunkId(t.id),
        tenant_id: t.tenant_id,
        name: t.name.clone(),
        kind: TrunkKind::parse(&t.kind).ok_or_else(|| bad(format!("kind {:?}", t.kind)))?,
        host: t.host.clone(),
        port: t.port,
        transport: TrunkTransport::parse(&t.transport)
            .ok_or_else(|| bad(format!("transport {:?}", t.transport)))?,
        username: t.username.clone(),
        auth_username: t.auth_username.clone(),
        password: t.password.clone(),
        realm: t.realm.clone(),
        from_domain: t.from_domain.clone(),
        caller_id: t.caller_id.clone(),
        country_code: t.country_code.clone(),
        max_calls: t.max_calls,
        outbound_proxy: t.outbound_proxy.clone(),
        sources: t
            .source_addresses
            .iter()
            .map(|s| s.parse::<SourceNet>().map_err(|e| bad(e.to_string())))
            .collect::<Result<_, _>>()?,
        source_port: t.source_port,
        register_expires: t.register_expires,
        enabled: t.enabled,
    })
}

/// A stored DID rule as the engine holds it: the DID in `trunk`'s
/// normalised form, so it compares with what carriers send.
pub fn engine_inbound(r: &store::InboundRule, trunk: &Trunk) -> Result<InboundRule, Skipped> {
    let bad = |what: String| Skipped::Inbound(r.id, what);
    let destination = match r.destination_kind.as_str() {
        "extension" => InboundDestination::Extension(pbx::Extension::new(r.destination.clone())),
        "ring_group" => InboundDestination::RingGroup(pbx::Extension::new(r.destination.clone())),
        "external" => InboundDestination::External(r.destination.clone()),
        // The engine routes by number: an IVR's or a queue's is found by the
        // router.
        "ivr" | "queue" => {
            InboundDestination::Extension(pbx::Extension::new(r.destination.clone()))
        }
        other => return Err(bad(format!("destination type {other:?}"))),
    };
    Ok(InboundRule {
        id: r.id,
        trunk_id: trunk.id,
        did: pbx::routing::normalise(&r.did, &trunk.country_code),
        matching: DidMatch::parse(&r.match_kind)
            .ok_or_else(|| bad(format!("match {:?}", r.match_kind)))?,
        destination,
    })
}

/// A stored outbound rule as the engine holds it.
pub fn engine_outbound(r: &store::OutboundRule) -> Result<OutboundRule, Skipped> {
    Ok(OutboundRule {
        id: r.id,
        name: r.name.clone(),
        pattern: pbx::routing::DialPattern::parse(&r.pattern)
            .map_err(|e| Skipped::Outbound(r.id, format!("pattern {e}")))?,
        from_extensions: r
            .from_extensions
            .iter()
            .map(|e| pbx::Extension::new(e.clone()))
            .collect(),
        strip: r.strip_digits as usize,
        prepend: r.prepend.clone(),
        trunks: r.trunks.iter().map(|t| TrunkId(*t)).collect(),
        caller_id: r.caller_id.clone(),
    })
}

/// One tenant's trunks, DID rules and outbound rules, being gathered.
type TenantRouting = (Vec<Trunk>, Vec<InboundRule>, Vec<OutboundRule>);

/// Builds the engine's trunks from stored rows; what does not convert is
/// returned beside it.
pub fn build(
    trunks: &[store::Trunk],
    inbound: &[store::InboundRule],
    outbound: &[store::OutboundRule],
) -> (Trunks, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut per_tenant: HashMap<TenantId, TenantRouting> = HashMap::new();
    let mut by_id: HashMap<Id, Trunk> = HashMap::new();
    for t in trunks {
        match engine_trunk(t) {
            Ok(trunk) => {
                by_id.insert(t.id, trunk.clone());
                per_tenant.entry(t.tenant_id).or_default().0.push(trunk);
            }
            Err(e) => skipped.push(e),
        }
    }
    for r in inbound {
        let Some(trunk) = by_id
            .get(&r.trunk_id)
            .filter(|t| t.tenant_id == r.tenant_id)
        else {
            skipped.push(Skipped::Inbound(r.id, "its trunk was not loaded".into()));
            continue;
        };
        match engine_inbound(r, trunk) {
            Ok(rule) => per_tenant.entry(r.tenant_id).or_default().1.push(rule),
            Err(e) => skipped.push(e),
        }
    }
    // The store gives them in evaluation order per tenant; pushing keeps it.
    for r in outbound {
        match engine_outbound(r) {
            Ok(rule) => per_tenant.entry(r.tenant_id).or_default().2.push(rule),
            Err(e) => skipped.push(e),
        }
    }
    let mut table = Trunks::new();
    for (tenant, (trunks, inbound, outbound)) in per_tenant {
        table.replace_tenant(tenant, trunks, inbound, outbound);
    }
    (table, skipped)
}

/// The tenants' outbound permissions: users whose settings differ from
/// the defaults, and each tenant's limit.
async fn outbound_policies(store: &Store, table: &mut Trunks) -> Result<(), StoreError> {
    let mut policies: HashMap<TenantId, OutboundPolicy> = HashMap::new();
    for u in store.all_user_outbound().await? {
        let settings = UserOutbound {
            allowed: u.allowed,
            caller_id: u.caller_id,
        };
        let policy = policies.entry(u.tenant_id).or_default();
        if settings != UserOutbound::default() {
            policy
                .users
                .insert(pbx::Extension::new(u.extension), settings);
        }
    }
    for (tenant, policy) in &mut policies {
        policy.max_outbound_calls = store.tenant_outbound_limit(*tenant).await?.flatten();
    }
    for (tenant, policy) in policies {
        table.set_outbound_policy(tenant, policy);
    }
    Ok(())
}

/// How long one trunk's name may take to resolve.
pub(crate) const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Resolves the trunks whose host (or outbound proxy) is a name: where
/// their INVITEs go (SRV targets, then addresses: [`dns`]), and for
/// `register` trunks the addresses their calls come from (every address
/// of the carrier's servers).
async fn resolve(table: &mut Trunks, resolver: &dns::Resolver) {
    let trunks: Vec<Trunk> = table.all().cloned().collect();
    for trunk in trunks.iter().filter(|t| t.enabled) {
        if table.destination(trunk).is_none() {
            match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.trunk_targets(trunk)).await {
                Ok(Ok(addresses)) => table.set_destinations(trunk.id, addresses),
                Ok(Err(e)) => {
                    tracing::warn!(trunk = %trunk.name, host = %trunk.host, error = %e, "trunk host does not resolve")
                }
                Err(_) => {
                    tracing::warn!(trunk = %trunk.name, host = %trunk.host, "trunk host: DNS timed out")
                }
            }
        }
        if trunk.kind == TrunkKind::Register {
            let lookup = resolver.targets(&trunk.host, trunk.port, trunk.transport);
            if let Ok(Ok(addresses)) = tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                let mut ips: Vec<std::net::IpAddr> = addresses.iter().map(|a| a.ip()).collect();
                ips.dedup();
                table.set_resolved(trunk.id, ips);
            }
        }
    }
}

/// Everything the engine routes trunk calls with, from the store, with
/// each row left out logged once.
pub async fn load(store: &Store, resolver: &dns::Resolver) -> Result<Trunks, StoreError> {
    let trunks = store.all_trunks().await?;
    let inbound = store.all_inbound_rules().await?;
    let outbound = store.all_outbound_rules().await?;
    let (mut table, skipped) = build(&trunks, &inbound, &outbound);
    outbound_policies(store, &mut table).await?;
    resolve(&mut table, resolver).await;
    for s in &skipped {
        tracing::warn!(error = %s, "stored routing row not loaded");
    }
    tracing::info!(
        trunks = trunks.len(),
        inbound_rules = inbound.len(),
        outbound_rules = outbound.len(),
        skipped = skipped.len(),
        "trunks loaded"
    );
    Ok(table)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use cdr::UnixMillis;
    use pbx::routing::{InboundRoute, route_inbound, select_rule};

    use super::*;

    fn tenant(n: u64) -> TenantId {
        TenantId::from(Id::from_u64(n))
    }

    fn trunk(id: u64, tenant_n: u64) -> store::Trunk {
        store::Trunk {
            id: Id::from_u64(id),
            tenant_id: tenant(tenant_n),
            name: format!("t{id}"),
            kind: "ip".into(),
            host: "carrier.example".into(),
            port: 5060,
            transport: "udp".into(),
            username: String::new(),
            auth_username: String::new(),
            password: String::new(),
            realm: String::new(),
            from_domain: String::new(),
            caller_id: String::new(),
            country_code: "33".into(),
            max_calls: None,
            outbound_proxy: None,
            source_addresses: vec!["198.51.100.0/24".into()],
            source_port: None,
            register_expires: 3600,
            enabled: true,
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    fn did(id: u64, t: &store::Trunk, number: &str) -> store::InboundRule {
        store::InboundRule {
            id: Id::from_u64(id),
            tenant_id: t.tenant_id,
            trunk_id: t.id,
            did: number.into(),
            match_kind: "exact".into(),
            destination_kind: "extension".into(),
            destination: "101".into(),
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    fn rule(id: u64, t: &store::Trunk, pattern: &str) -> store::OutboundRule {
        store::OutboundRule {
            id: Id::from_u64(id),
            tenant_id: t.tenant_id,
            name: format!("r{id}"),
            priority: id as u32,
            pattern: pattern.into(),
            from_extensions: vec![],
            strip_digits: 1,
            prepend: String::new(),
            caller_id: String::new(),
            trunks: vec![t.id],
            created_at: UnixMillis(0),
            updated_at: UnixMillis(0),
        }
    }

    #[test]
    fn stored_rows_become_routes_and_broken_ones_are_left_out() {
        let good = trunk(1, 10);
        let mut broken = trunk(2, 10);
        broken.source_addresses = vec!["not-an-address".into()];
        // A DID written with the + and country code matches the national form.
        let dids = [did(11, &good, "+33123456789"), did(12, &broken, "5550100")];
        let rules = [rule(21, &good, "9X."), rule(22, &good, "9[12")];
        let (table, skipped) = build(&[good.clone(), broken.clone()], &dids, &rules);
        assert_eq!(skipped.len(), 3, "{skipped:?}");
        assert!(matches!(skipped[0], Skipped::Trunk(id, _) if id == broken.id));
        assert!(matches!(skipped[1], Skipped::Inbound(id, _) if id == dids[1].id));
        assert!(matches!(skipped[2], Skipped::Outbound(id, _) if id == rules[1].id));
        let src: SocketAddr = "198.51.100.4:5060".parse().unwrap();
        match route_inbound(&table, src, "33123456789", "") {
            InboundRoute::Routed { trunk, rule } => {
                assert_eq!(trunk.name, "t1");
                assert_eq!(rule.did, "123456789");
            }
            other => panic!("{other:?}"),
        }
        let plan = select_rule(&table, tenant(10), Some("101"), "9555").unwrap();
        assert_eq!(plan.number, "555");
        assert_eq!(plan.trunks[0].name, "t1");
        assert!(select_rule(&table, tenant(11), Some("101"), "9555").is_none());
    }
}
