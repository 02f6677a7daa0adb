//! Trunks and routing rules on both databases: CRUD within a tenant,
//! references checked before anything is written, a trunk in use kept,
//! tenant deletion taking everything with it.

mod common;

use cdr::{Id, UnixMillis};
use common::*;
use store::{InboundRule, OutboundRule, RuleWrite, StoreError, Trunk, TrunkDeletion};

on_both!(
    trunks_round_trip_and_stay_in_their_tenant,
    rules_naming_missing_trunks_or_extensions_write_nothing,
    outbound_rules_keep_their_order_and_trunk_lists,
    a_trunk_in_use_is_kept_and_deleting_the_tenant_takes_everything,
    users_may_dial_out_by_default_and_tenants_have_no_limit,
);

fn trunk(id: u64, tenant: u64, name: &str) -> Trunk {
    Trunk {
        id: Id::from_u64(700_000 + id),
        tenant_id: tenant_id(tenant),
        name: name.into(),
        kind: "ip".into(),
        host: "sip.carrier.example".into(),
        port: 5060,
        transport: "udp".into(),
        username: "acct".into(),
        auth_username: String::new(),
        password: "carrier-secret".into(),
        realm: String::new(),
        from_domain: String::new(),
        caller_id: "+33100000000".into(),
        country_code: "33".into(),
        max_calls: Some(10),
        outbound_proxy: None,
        source_addresses: vec!["198.51.100.0/24".into(), "2001:db8::1".into()],
        source_port: Some(5060),
        register_expires: 3600,
        enabled: true,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn did(id: u64, tenant: u64, trunk: &Trunk, number: &str, extension: &str) -> InboundRule {
    InboundRule {
        id: Id::from_u64(800_000 + id),
        tenant_id: tenant_id(tenant),
        trunk_id: trunk.id,
        did: number.into(),
        match_kind: "exact".into(),
        destination_kind: "extension".into(),
        destination: extension.into(),
        created_at: at(0),
        updated_at: at(0),
    }
}

fn outbound(id: u64, tenant: u64, name: &str, priority: u32, trunks: &[&Trunk]) -> OutboundRule {
    OutboundRule {
        id: Id::from_u64(900_000 + id),
        tenant_id: tenant_id(tenant),
        name: name.into(),
        priority,
        pattern: "9X.".into(),
        from_extensions: vec![],
        strip_digits: 1,
        prepend: String::new(),
        caller_id: String::new(),
        trunks: trunks.iter().map(|t| t.id).collect(),
        created_at: at(0),
        updated_at: at(0),
    }
}

async fn seeded(db: &TestDb) -> store::Store {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    for (n, ext) in [(1, "101"), (2, "102")] {
        let mut u = user(1, ext);
        u.id = Id::from_u64(600_000 + n);
        store.create_user(&u).await.expect("user");
    }
    store
}

async fn trunks_round_trip_and_stay_in_their_tenant(db: &TestDb) {
    let store = seeded(db).await;
    let t = trunk(1, 1, "carrier-a");
    let version = store.directory_version().await.unwrap();
    store.create_trunk(&t).await.unwrap();
    assert!(store.directory_version().await.unwrap() > version);
    assert_eq!(
        store.trunk(t.tenant_id, t.id).await.unwrap(),
        Some(t.clone())
    );
    assert_eq!(store.trunk(tenant_id(2), t.id).await.unwrap(), None);
    // Names are unique per tenant, not across tenants.
    let mut same_name = trunk(2, 1, "carrier-a");
    assert!(matches!(
        store.create_trunk(&same_name).await,
        Err(StoreError::Conflict(_))
    ));
    same_name.tenant_id = tenant_id(2);
    store.create_trunk(&same_name).await.unwrap();
    // Updates replace every field; another tenant's id is not found.
    let mut changed = t.clone();
    changed.kind = "register".into();
    changed.max_calls = None;
    changed.outbound_proxy = Some("proxy.example:5070".into());
    changed.source_addresses = vec![];
    changed.source_port = None;
    changed.updated_at = UnixMillis(at(0).0 + 5);
    assert!(store.update_trunk(&changed).await.unwrap());
    assert_eq!(
        store.trunk(t.tenant_id, t.id).await.unwrap(),
        Some(changed.clone())
    );
    let mut foreign = changed.clone();
    foreign.tenant_id = tenant_id(2);
    assert!(!store.update_trunk(&foreign).await.unwrap());
    assert_eq!(store.count_trunks(tenant_id(1)).await.unwrap(), 1);
    assert_eq!(
        store.trunk_page(tenant_id(1), 10, 0).await.unwrap(),
        vec![changed]
    );
    assert_eq!(store.all_trunks().await.unwrap().len(), 2);
    assert_eq!(
        store.delete_trunk(tenant_id(2), t.id).await.unwrap(),
        TrunkDeletion::NotFound
    );
}

async fn rules_naming_missing_trunks_or_extensions_write_nothing(db: &TestDb) {
    let store = seeded(db).await;
    let t = trunk(1, 1, "carrier-a");
    let theirs = trunk(2, 2, "carrier-b");
    store.create_trunk(&t).await.unwrap();
    store.create_trunk(&theirs).await.unwrap();
    let version = store.directory_version().await.unwrap();
    // Another tenant's trunk is as unknown as a missing one.
    let rule = did(1, 1, &theirs, "5550100", "101");
    assert_eq!(
        store.create_inbound_rule(&rule).await.unwrap(),
        RuleWrite::UnknownTrunk(theirs.id)
    );
    let rule = did(1, 1, &t, "5550100", "999");
    assert_eq!(
        store.create_inbound_rule(&rule).await.unwrap(),
        RuleWrite::UnknownExtension("999".into())
    );
    let mut rule = outbound(1, 1, "out", 10, &[&t, &theirs]);
    assert_eq!(
        store.create_outbound_rule(&rule).await.unwrap(),
        RuleWrite::UnknownTrunk(theirs.id)
    );
    rule.trunks = vec![t.id];
    rule.from_extensions = vec!["101".into(), "555".into()];
    assert_eq!(
        store.create_outbound_rule(&rule).await.unwrap(),
        RuleWrite::UnknownExtension("555".into())
    );
    assert_eq!(
        store.directory_version().await.unwrap(),
        version,
        "nothing written"
    );
    assert!(store.all_outbound_rules().await.unwrap().is_empty());
    assert!(store.all_inbound_rules().await.unwrap().is_empty());
    // The same rules with good references are written.
    let good = did(1, 1, &t, "5550100", "101");
    assert_eq!(
        store.create_inbound_rule(&good).await.unwrap(),
        RuleWrite::Written
    );
    assert!(matches!(
        store
            .create_inbound_rule(&did(2, 1, &t, "5550100", "102"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut moved = good.clone();
    moved.destination = "102".into();
    moved.updated_at = at(9);
    assert_eq!(
        store.update_inbound_rule(&moved).await.unwrap(),
        RuleWrite::Written
    );
    assert_eq!(
        store.inbound_rule(tenant_id(1), good.id).await.unwrap(),
        Some(moved.clone())
    );
    assert_eq!(
        store.inbound_rule(tenant_id(2), good.id).await.unwrap(),
        None
    );
    let (count, page) = store
        .inbound_rule_page(tenant_id(1), Some(t.id), 10, 0)
        .await
        .unwrap();
    assert_eq!((count, page), (1, vec![moved.clone()]));
    let (count, _) = store
        .inbound_rule_page(tenant_id(1), Some(theirs.id), 10, 0)
        .await
        .unwrap();
    assert_eq!(count, 0);
    let mut foreign = moved.clone();
    foreign.tenant_id = tenant_id(2);
    foreign.trunk_id = theirs.id;
    foreign.destination_kind = "extension".into();
    foreign.destination = "101".into();
    // Tenant 2 has no extension 101: refused before the id is looked at.
    assert_eq!(
        store.update_inbound_rule(&foreign).await.unwrap(),
        RuleWrite::UnknownExtension("101".into())
    );
    assert!(
        !store
            .delete_inbound_rule(tenant_id(2), good.id)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_inbound_rule(tenant_id(1), good.id)
            .await
            .unwrap()
    );
    assert!(store.all_inbound_rules().await.unwrap().is_empty());
}

async fn outbound_rules_keep_their_order_and_trunk_lists(db: &TestDb) {
    let store = seeded(db).await;
    let a = trunk(1, 1, "a");
    let b = trunk(2, 1, "b");
    store.create_trunk(&a).await.unwrap();
    store.create_trunk(&b).await.unwrap();
    let late = outbound(1, 1, "late", 20, &[&a]);
    let mut early = outbound(2, 1, "early", 10, &[&b, &a]);
    early.from_extensions = vec!["101".into()];
    store.create_outbound_rule(&late).await.unwrap();
    store.create_outbound_rule(&early).await.unwrap();
    assert!(matches!(
        store
            .create_outbound_rule(&outbound(3, 1, "late", 5, &[&a]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let rules = store.outbound_rules_of_tenant(tenant_id(1)).await.unwrap();
    assert_eq!(rules, vec![early.clone(), late.clone()]);
    assert_eq!(store.all_outbound_rules().await.unwrap(), rules);
    assert!(
        store
            .outbound_rules_of_tenant(tenant_id(2))
            .await
            .unwrap()
            .is_empty()
    );
    // An update replaces the trunk list in order.
    let mut changed = early.clone();
    changed.trunks = vec![a.id, b.id];
    changed.priority = 30;
    changed.updated_at = at(7);
    assert_eq!(
        store.update_outbound_rule(&changed).await.unwrap(),
        RuleWrite::Written
    );
    let rules = store.outbound_rules_of_tenant(tenant_id(1)).await.unwrap();
    assert_eq!(rules, vec![late.clone(), changed.clone()]);
    let mut missing = changed.clone();
    missing.id = Id::from_u64(1);
    assert_eq!(
        store.update_outbound_rule(&missing).await.unwrap(),
        RuleWrite::NotFound
    );
    assert!(
        store
            .delete_outbound_rule(tenant_id(1), changed.id)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_outbound_rule(tenant_id(1), changed.id)
            .await
            .unwrap()
    );
    assert_eq!(
        store.outbound_rules_of_tenant(tenant_id(1)).await.unwrap(),
        vec![late]
    );
}

async fn a_trunk_in_use_is_kept_and_deleting_the_tenant_takes_everything(db: &TestDb) {
    let store = seeded(db).await;
    let a = trunk(1, 1, "a");
    let b = trunk(2, 1, "b");
    store.create_trunk(&a).await.unwrap();
    store.create_trunk(&b).await.unwrap();
    store
        .create_outbound_rule(&outbound(1, 1, "intl", 1, &[&a]))
        .await
        .unwrap();
    store
        .create_inbound_rule(&did(1, 1, &a, "5550100", "101"))
        .await
        .unwrap();
    store
        .create_inbound_rule(&did(2, 1, &b, "5550101", "101"))
        .await
        .unwrap();
    assert_eq!(
        store.delete_trunk(tenant_id(1), a.id).await.unwrap(),
        TrunkDeletion::InUse(vec!["intl".into()])
    );
    assert!(store.trunk(tenant_id(1), a.id).await.unwrap().is_some());
    // A trunk no rule uses goes, with its DIDs.
    assert_eq!(
        store.delete_trunk(tenant_id(1), b.id).await.unwrap(),
        TrunkDeletion::Deleted
    );
    let left = store.all_inbound_rules().await.unwrap();
    assert_eq!(
        left.iter().map(|r| r.did.as_str()).collect::<Vec<_>>(),
        ["5550100"]
    );
    assert!(store.delete_tenant(tenant_id(1)).await.unwrap());
    assert!(store.all_trunks().await.unwrap().is_empty());
    assert!(store.all_inbound_rules().await.unwrap().is_empty());
    assert!(store.all_outbound_rules().await.unwrap().is_empty());
}

async fn users_may_dial_out_by_default_and_tenants_have_no_limit(db: &TestDb) {
    let store = seeded(db).await;
    let u = store
        .user_by_extension(tenant_id(1), "101")
        .await
        .unwrap()
        .unwrap();
    let settings = store
        .user_outbound(tenant_id(1), u.id)
        .await
        .unwrap()
        .unwrap();
    assert!(settings.allowed, "new users may dial out");
    assert_eq!(settings.caller_id, "");
    assert_eq!(store.user_outbound(tenant_id(2), u.id).await.unwrap(), None);
    let changed = store::UserOutbound {
        allowed: false,
        caller_id: "+33155555555".into(),
        ..settings
    };
    assert!(store.set_user_outbound(&changed).await.unwrap());
    assert_eq!(
        store.user_outbound(tenant_id(1), u.id).await.unwrap(),
        Some(changed.clone())
    );
    // Other writes of the user leave them alone.
    let mut renamed = u.clone();
    renamed.display_name = "Renamed".into();
    assert!(store.update_user(&renamed).await.unwrap());
    assert_eq!(
        store.user_outbound(tenant_id(1), u.id).await.unwrap(),
        Some(changed.clone())
    );
    assert!(store.all_user_outbound().await.unwrap().contains(&changed));
    let foreign = store::UserOutbound {
        tenant_id: tenant_id(2),
        ..changed
    };
    assert!(!store.set_user_outbound(&foreign).await.unwrap());
    assert_eq!(
        store.tenant_outbound_limit(tenant_id(1)).await.unwrap(),
        Some(None)
    );
    assert!(
        store
            .set_tenant_outbound_limit(tenant_id(1), Some(4))
            .await
            .unwrap()
    );
    assert_eq!(
        store.tenant_outbound_limit(tenant_id(1)).await.unwrap(),
        Some(Some(4))
    );
    assert_eq!(
        store.tenant_outbound_limit(tenant_id(9)).await.unwrap(),
        None
    );
    assert!(
        !store
            .set_tenant_outbound_limit(tenant_id(9), None)
            .await
            .unwrap()
    );
}
