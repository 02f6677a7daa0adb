//! The engine's directory from the store: loaded at start-up
//! ([`load_directory`]), kept in step with other nodes' changes
//! ([`sync_directory`]), and the conversions from store rows to the
//! engine's types. Provisioning (`provision.rs`) changes the store and
//! tells the engine; this module is how the engine learns the rest.

use std::time::Duration;

use store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::shard::{Provision, ShardInput};

/// How often a node checks whether another node changed the directory.
pub const DIRECTORY_SYNC: Duration = Duration::from_secs(2);

/// The store's directory as the engine holds it, with how many tenants
/// and users it has. Rows the engine refuses are logged and skipped.
pub async fn load_directory(store: &Store) -> Result<(pbx::Directory, usize, usize), StoreError> {
    let mut directory = pbx::Directory::new();
    let (mut tenants, mut users) = (0, 0);
    for tenant in store.tenants().await? {
        match directory.upsert_tenant(engine_tenant(&tenant)) {
            Ok(()) => {
                directory.set_feature_codes(tenant.id, engine_feature_codes(&tenant));
                directory.set_tenant_recording(tenant.id, tenant.recording);
                tenants += 1
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant.id, error = %e, "stored tenant not loaded")
            }
        }
    }
    for user in store.all_users().await? {
        if directory.tenant(user.tenant_id).is_none() {
            continue;
        }
        match directory.upsert_user(engine_user(&user)) {
            Ok(()) => users += 1,
            Err(e) => {
                tracing::warn!(tenant_id = %user.tenant_id, extension = %user.extension, error = %e, "stored user not loaded")
            }
        }
    }
    for group in store.all_ring_groups().await? {
        let Some(engine) = engine_group(&group) else {
            tracing::warn!(tenant_id = %group.tenant_id, number = %group.number, strategy = %group.strategy, "stored ring group not loaded: unknown strategy");
            continue;
        };
        if let Err(e) = directory.upsert_group(engine) {
            tracing::warn!(tenant_id = %group.tenant_id, number = %group.number, error = %e, "stored ring group not loaded");
        }
    }
    crate::apps::load(store, &mut directory).await?;
    Ok((directory, tenants, users))
}

/// A stored ring group as the engine's directory holds it (`None` for a
/// strategy this version does not know).
pub fn engine_group(group: &store::RingGroup) -> Option<pbx::RingGroup> {
    Some(pbx::RingGroup {
        tenant_id: group.tenant_id,
        number: pbx::Extension::new(group.number.clone()),
        name: group.name.clone(),
        strategy: pbx::RingStrategy::parse(&group.strategy)?,
        members: group
            .members
            .iter()
            .map(|m| pbx::Extension::new(m.clone()))
            .collect(),
        member_timeout: Duration::from_secs(u64::from(group.member_timeout_secs)),
        timeout: Duration::from_secs(u64::from(group.timeout_secs)),
        no_answer: group.no_answer.clone(),
    })
}

/// Keeps this node's engine in step with directory changes other nodes
/// sharing the database make: every [`DIRECTORY_SYNC`] it reads the
/// store's directory version (one row) and, when it moved since
/// `version`, reloads the directory and hands it to the shard whole (users
/// gone from it lose their registrations there). This node's own changes
/// reach the engine directly ([`Provisioner`]); the reload that follows
/// them finds the same directory. Ends when `stop` turns true or the
/// shard is gone.
pub async fn sync_directory(
    store: Store,
    shard: mpsc::Sender<ShardInput>,
    mut version: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(DIRECTORY_SYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now = match store.directory_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the directory version");
                continue;
            }
        };
        if now == version {
            continue;
        }
        let (directory, tenants, users) = match load_directory(&store).await {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(error = %e, "cannot reload the directory");
                continue;
            }
        };
        let (done, applied) = oneshot::channel();
        let change = Provision::Replace(Box::new(directory));
        if shard
            .send(ShardInput::Provision { change, done })
            .await
            .is_err()
        {
            return;
        }
        if applied.await.is_err() {
            return;
        }
        tracing::debug!(version = now, tenants, users, "directory reloaded");
        version = now;
    }
}

/// A stored tenant as the engine's directory holds it.
pub fn engine_tenant(tenant: &store::Tenant) -> pbx::Tenant {
    pbx::Tenant {
        id: tenant.id,
        name: tenant.name.clone(),
        domain: tenant.sip_domain.clone(),
    }
}

/// A stored tenant's feature codes (call pickup, queue agents).
pub fn engine_feature_codes(tenant: &store::Tenant) -> pbx::FeatureCodes {
    pbx::FeatureCodes {
        group_pickup: tenant.pickup_code.clone(),
        directed_pickup: tenant.directed_pickup_prefix.clone(),
        agent_login: tenant.agent_login_code.clone(),
        agent_logout: tenant.agent_logout_code.clone(),
    }
}

/// A stored user as the engine's directory holds it.
pub fn engine_user(user: &store::User) -> pbx::User {
    pbx::User {
        tenant_id: user.tenant_id,
        id: user.id,
        extension: pbx::Extension::new(user.extension.clone()),
        display_name: user.display_name.clone(),
        credentials: pbx::SipCredentials {
            realm: user.sip.realm.clone(),
            md5_ha1: user.sip.md5.clone(),
            sha256_ha1: user.sip.sha256.clone(),
        },
        ring_timeout: Duration::from_secs(u64::from(user.ring_timeout_secs)),
        enabled: user.enabled,
        forwarding: engine_forwarding(&user.forwarding),
        max_concurrent_calls: user.max_concurrent_calls,
        recording: user.recording,
        pickup_group: user.pickup_group.clone(),
    }
}

/// The stored forwarding rules (JSON written by [`forwarding`]) as the
/// engine reads them: enabled rules only. Rows that do not parse (written
/// by hand, or by a future version) forward nothing.
fn engine_forwarding(json: &str) -> pbx::Forwarding {
    let mut out = pbx::Forwarding::default();
    let Ok(serde_json::Value::Array(rules)) = serde_json::from_str::<serde_json::Value>(json)
    else {
        return out;
    };
    for rule in &rules {
        let enabled = rule
            .get("enabled")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let condition = rule
            .get("condition")
            .and_then(serde_json::Value::as_str)
            .and_then(pbx::ForwardCondition::parse);
        let destination = rule.get("destination").and_then(serde_json::Value::as_str);
        if let (true, Some(c), Some(d)) = (enabled, condition, destination) {
            out.set(c, Some(d.to_owned()));
        }
    }
    out
}
