//! Registrations survive a restart: the registrar's binding changes are
//! written to the store in order, and the live ones are restored into the
//! registrar at start-up (DESIGN.md, "Storage": `registrations`).

use std::net::SocketAddr;

use cdr::UnixMillis;
use pbx::{BindingChange, BindingRecord, ChangeKind, Engine};
use sip::transport::Transport;
use store::{Registration, Store};
use tokio::sync::mpsc;

use crate::clock;

/// Writes binding changes until the queue closes.
///
/// `shared`: nodes share the database (`cluster::location`), so a removal
/// is a tombstone (the row expires now, for the other nodes to read) and
/// an expiry writes nothing (the row says it already; deleting it could
/// delete another node's refresh of it).
pub async fn persist(
    mut changes: mpsc::UnboundedReceiver<Vec<BindingChange>>,
    store: Store,
    shared: bool,
) {
    while let Some(batch) = changes.recv().await {
        for change in batch {
            log_change(&change);
            let r = &change.record;
            let now = clock::unix_millis();
            let result = match (change.kind, shared) {
                (kind, _) if kind.is_live() => store.upsert_registration(&to_store(r, now)).await,
                (ChangeKind::Expired, true) => Ok(()),
                (_, true) => store
                    .tombstone_registration(r.tenant_id, &r.extension, &r.key, now)
                    .await
                    .map(|_| ()),
                (_, false) => store
                    .remove_registration(r.tenant_id, &r.extension, &r.key)
                    .await
                    .map(|_| ()),
            };
            // The binding works in memory either way; only a restart would
            // miss it.
            if let Err(e) = result {
                tracing::warn!(
                    tenant_id = %r.tenant_id,
                    extension = %r.extension,
                    error = %e,
                    "could not persist a registration change"
                );
            }
        }
    }
}

fn log_change(change: &BindingChange) {
    let r = &change.record;
    let what = match change.kind {
        ChangeKind::Added => "registered",
        ChangeKind::Refreshed => return,
        ChangeKind::Removed => "unregistered",
        ChangeKind::Evicted => "binding evicted (per-user limit)",
        ChangeKind::Expired => "registration expired",
    };
    tracing::info!(
        tenant_id = %r.tenant_id,
        extension = %r.extension,
        contact = %r.contact_uri,
        source = %format_args!("{}:{}", r.transport, r.source),
        "{what}"
    );
}

fn to_store(r: &BindingRecord, now: UnixMillis) -> Registration {
    Registration {
        tenant_id: r.tenant_id,
        extension: r.extension.clone(),
        binding_key: r.key.clone(),
        contact_uri: r.contact_uri.clone(),
        instance_id: r.instance.clone(),
        reg_id: r.reg_id,
        q: r.q,
        received: r.source.to_string(),
        transport: r.transport.as_str().to_owned(),
        path: r.path.clone(),
        call_id: r.call_id.clone(),
        cseq: r.cseq,
        user_agent: String::new(),
        expires_at: UnixMillis(r.expires_unix.saturating_mul(1000)),
        updated_at: now,
    }
}

/// A stored binding as the registrar imports it; `None` for a row this
/// version cannot use (logged by the caller).
pub(crate) fn from_store(r: Registration) -> Result<BindingRecord, String> {
    let transport: Transport = r.transport.parse().map_err(|e| format!("transport: {e}"))?;
    let source: SocketAddr = r
        .received
        .parse()
        .map_err(|e| format!("received {:?}: {e}", r.received))?;
    Ok(BindingRecord {
        tenant_id: r.tenant_id,
        extension: r.extension,
        key: r.binding_key,
        contact_uri: r.contact_uri,
        instance: r.instance_id,
        reg_id: r.reg_id,
        q: r.q,
        expires_unix: r.expires_at.0 / 1000,
        transport,
        source,
        path: r.path,
        call_id: r.call_id,
        cseq: r.cseq,
    })
}

/// Deletes expired rows and loads the live ones into the registrar.
pub async fn restore(store: &Store, engine: &mut Engine) -> anyhow::Result<()> {
    let now = clock::unix_millis();
    let expired = store.remove_expired_registrations(now).await?;
    let mut records = Vec::new();
    for r in store.all_live_registrations(now).await? {
        let (tenant, extension) = (r.tenant_id, r.extension.clone());
        match from_store(r) {
            Ok(record) => records.push(record),
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, %extension, error = %e, "stored registration skipped")
            }
        }
    }
    let (instant, unix_ms) = clock::now();
    let report = engine
        .registrar_mut()
        .restore(instant, unix_ms / 1000, records);
    for rejected in &report.rejected {
        tracing::warn!(
            tenant_id = %rejected.record.tenant_id,
            extension = %rejected.record.extension,
            reason = %rejected.reason,
            "stored registration not restored"
        );
    }
    tracing::info!(
        restored = report.restored,
        expired = expired as usize + report.expired,
        "registrations restored"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdr::{Id, TenantId};

    #[test]
    fn a_binding_round_trips_through_the_store_row() {
        let record = BindingRecord {
            tenant_id: TenantId::from(Id::from_u64(42)),
            extension: "101".into(),
            key: "sip:101@192.0.2.7:5062".into(),
            contact_uri: "sip:101@192.0.2.7:5062;transport=tcp".into(),
            instance: Some("<urn:uuid:00000000-0000-0000-0000-000000000001>".into()),
            reg_id: Some(1),
            q: Some(500),
            expires_unix: 1_800_000_000,
            transport: Transport::Tcp,
            source: "192.0.2.7:40000".parse().unwrap(),
            path: vec!["<sip:127.0.0.1:5070;lr;received=sip:192.0.2.7:40000>".into()],
            call_id: "reg-1".into(),
            cseq: 7,
        };
        let row = to_store(&record, UnixMillis(1));
        assert_eq!(row.expires_at, UnixMillis(1_800_000_000_000));
        assert_eq!(from_store(row).unwrap(), record);
    }
}
