//! Provisioning tenants and users: the rules a tenant's SIP domain and a
//! user's extension, password and settings must follow, and creating them
//! (store first, the source of truth; then the engine's directory, through
//! the shard, before the caller is told it is done, so a phone may
//! register the moment the API answered).
//!
//! Used by the REST API and by `--demo`.

use std::time::Duration;

use cdr::TenantId;
use store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::ids::NodeIds;
use crate::shard::{Provision, ShardInput};

/// A field that breaks a rule, and the rule.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

pub struct NewTenant {
    pub name: String,
    pub sip_domain: String,
}

pub struct NewUser {
    pub extension: String,
    pub sip_password: String,
    pub display_name: String,
    pub ring_timeout_secs: u32,
    pub enabled: bool,
}

pub const MIN_RING_TIMEOUT_SECS: u32 = 5;
pub const MAX_RING_TIMEOUT_SECS: u32 = 600;
pub const MIN_SIP_PASSWORD: usize = 8;

pub fn tenant_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 128 {
        return Err(invalid("name", "must be 1 to 128 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A DNS host name (RFC 1123 labels), lowercased; one trailing dot is
/// dropped. It is how requests find their tenant and the digest realm.
pub fn sip_domain(domain: &str) -> Result<String, Invalid> {
    let domain = domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase();
    let rule = "must be a host name such as pbx.example.com (letters, digits, '-' and '.')";
    if domain.is_empty() || domain.len() > 253 {
        return Err(invalid("sip_domain", rule));
    }
    for label in domain.split('.') {
        let ok = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid("sip_domain", rule));
        }
    }
    Ok(domain)
}

/// Digits, 1 to 32: what phones dial.
pub fn extension(extension: &str) -> Result<String, Invalid> {
    if extension.is_empty()
        || extension.len() > 32
        || !extension.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(invalid("extension", "must be 1 to 32 digits"));
    }
    Ok(extension.to_owned())
}

pub fn sip_password(password: &str) -> Result<String, Invalid> {
    let len = password.chars().count();
    if !(MIN_SIP_PASSWORD..=128).contains(&len) {
        return Err(invalid(
            "sip_password",
            format!("must be {MIN_SIP_PASSWORD} to 128 characters"),
        ));
    }
    if password.chars().any(char::is_control) {
        return Err(invalid(
            "sip_password",
            "must not contain control characters",
        ));
    }
    Ok(password.to_owned())
}

/// Shown in SIP `From` headers: no quotes, backslashes or control
/// characters, which would need escaping in every phone's parser.
pub fn display_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.chars().count() > 64 {
        return Err(invalid("display_name", "must be at most 64 characters"));
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(invalid(
            "display_name",
            "must not contain quotes, backslashes or control characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn ring_timeout(secs: u64) -> Result<u32, Invalid> {
    u32::try_from(secs)
        .ok()
        .filter(|s| (MIN_RING_TIMEOUT_SECS..=MAX_RING_TIMEOUT_SECS).contains(s))
        .ok_or_else(|| {
            invalid(
                "ring_timeout",
                format!("must be {MIN_RING_TIMEOUT_SECS} to {MAX_RING_TIMEOUT_SECS} seconds"),
            )
        })
}

/// Why a creation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("SIP domain {0} belongs to another tenant")]
    DomainTaken(String),
    #[error("extension {0} exists in this tenant")]
    ExtensionTaken(String),
    #[error("no such tenant")]
    UnknownTenant,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Committed to the store, but the running engine did not take it
    /// (it is stopping, or its directory disagrees with the store).
    #[error("saved, but not applied to the call engine: {0}")]
    Engine(String),
}

/// Creates tenants and users. Cheap to share.
pub struct Provisioner {
    store: Store,
    shard: mpsc::Sender<ShardInput>,
    ids: NodeIds,
}

impl Provisioner {
    pub fn new(store: Store, shard: mpsc::Sender<ShardInput>, ids: NodeIds) -> Self {
        Provisioner { store, shard, ids }
    }

    fn next_id(&self) -> cdr::Id {
        self.ids.next(clock::unix_millis())
    }

    pub async fn create_tenant(&self, new: NewTenant) -> Result<store::Tenant, ProvisionError> {
        let tenant = store::Tenant {
            id: TenantId::from(self.next_id()),
            name: new.name,
            sip_domain: new.sip_domain,
            created_at: clock::unix_millis(),
        };
        match self.store.create_tenant(&tenant).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ProvisionError::DomainTaken(tenant.sip_domain));
            }
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::Tenant(pbx::Tenant {
            id: tenant.id,
            name: tenant.name.clone(),
            domain: tenant.sip_domain.clone(),
        }))
        .await?;
        tracing::info!(tenant_id = %tenant.id, sip_domain = %tenant.sip_domain, "tenant created");
        Ok(tenant)
    }

    pub async fn create_user(
        &self,
        tenant_id: TenantId,
        new: NewUser,
    ) -> Result<store::User, ProvisionError> {
        let user = store::User {
            id: self.next_id(),
            tenant_id,
            extension: new.extension,
            display_name: new.display_name,
            sip_password: new.sip_password,
            ring_timeout_secs: new.ring_timeout_secs,
            enabled: new.enabled,
            created_at: clock::unix_millis(),
        };
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ProvisionError::ExtensionTaken(user.extension));
            }
            Err(StoreError::MissingReference(_)) => return Err(ProvisionError::UnknownTenant),
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::User(engine_user(&user))).await?;
        tracing::info!(tenant_id = %tenant_id, extension = %user.extension, "user created");
        Ok(user)
    }

    async fn apply(&self, change: Provision) -> Result<(), ProvisionError> {
        let (done, applied) = oneshot::channel();
        self.shard
            .send(ShardInput::Provision { change, done })
            .await
            .map_err(|_| ProvisionError::Engine("the call engine has stopped".into()))?;
        applied
            .await
            .map_err(|_| ProvisionError::Engine("the call engine has stopped".into()))?
            .map_err(|e| ProvisionError::Engine(e.to_string()))
    }
}

/// A stored user as the engine's directory holds it.
pub fn engine_user(user: &store::User) -> pbx::User {
    pbx::User {
        tenant_id: user.tenant_id,
        extension: pbx::Extension::new(user.extension.clone()),
        display_name: user.display_name.clone(),
        password: user.sip_password.clone(),
        ring_timeout: Duration::from_secs(u64::from(user.ring_timeout_secs)),
        enabled: user.enabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_domains_are_host_names() {
        assert_eq!(sip_domain("Demo.Tally.Local.").unwrap(), "demo.tally.local");
        assert_eq!(
            sip_domain("pbx-1.example.com").unwrap(),
            "pbx-1.example.com"
        );
        for bad in [
            "",
            ".",
            "a..b",
            "-a.b",
            "a-.b",
            "a b",
            "a_b.c",
            "tally.local;x",
            &"a".repeat(64),
        ] {
            assert_eq!(sip_domain(bad).unwrap_err().field, "sip_domain", "{bad:?}");
        }
    }

    #[test]
    fn users_follow_the_rules() {
        assert!(extension("101").is_ok());
        assert!(extension("").is_err());
        assert!(extension("10a").is_err());
        assert!(sip_password("short").is_err());
        assert!(sip_password("long enough").is_ok());
        assert!(display_name("Alice \"Al\"").is_err());
        assert_eq!(display_name("  Alice  ").unwrap(), "Alice");
        assert_eq!(ring_timeout(30).unwrap(), 30);
        assert!(ring_timeout(0).is_err());
        assert!(ring_timeout(601).is_err());
        assert!(tenant_name("  ").is_err());
        assert_eq!(tenant_name(" Acme ").unwrap(), "Acme");
    }
}
