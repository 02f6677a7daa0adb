//! Provisioning tenants and users: the rules a tenant's SIP domain and a
//! user's extension, password and settings must follow, and creating,
//! changing and deleting them (store first, the source of truth; then the
//! engine's directory, through the shard, before the caller is told it is
//! done, so a phone may register the moment the API answered, and a
//! deleted or disabled user can no longer register or be called).
//!
//! Used by the REST API and by `--demo`.

use cdr::TenantId;
use store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::api::Role;
use crate::clock;
use crate::directory::{engine_feature_codes, engine_tenant, engine_user, load_directory};
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
    pub time_zone: String,
    pub retention_days: Option<u32>,
    pub pickup_code: String,
    pub directed_pickup_prefix: String,
    /// Every call of the tenant is recorded.
    pub recording: bool,
}

impl NewTenant {
    /// A tenant with the default settings.
    pub fn new(name: &str, sip_domain: &str) -> Self {
        NewTenant {
            name: name.to_owned(),
            sip_domain: sip_domain.to_owned(),
            time_zone: store::DEFAULT_TIME_ZONE.to_owned(),
            retention_days: None,
            pickup_code: store::DEFAULT_PICKUP_CODE.to_owned(),
            directed_pickup_prefix: store::DEFAULT_DIRECTED_PICKUP_PREFIX.to_owned(),
            recording: false,
        }
    }
}

/// Every field of a user that provisioning sets (all but the ids and
/// times). The web password arrives hashed: hashing is slow and belongs
/// off the async threads, in the caller.
#[derive(Clone)]
pub struct UserFields {
    pub extension: String,
    /// A new SIP password, hashed into the user's digest HA1s when
    /// applied; `None` keeps the stored ones (the password itself is
    /// never stored, so it cannot be read back).
    pub sip_password: Option<String>,
    pub display_name: String,
    pub ring_timeout_secs: u32,
    pub enabled: bool,
    pub role: Role,
    pub email: String,
    pub username: Option<String>,
    pub password_hash: Option<String>,
    /// A JSON array ([`forwarding`] checks and normalises it).
    pub forwarding: String,
    /// At most this many calls at once (`None`: no limit; [`max_calls`]
    /// checks it).
    pub max_concurrent_calls: Option<u32>,
    /// Call pickup group (`""`: none; [`pickup_group`] checks it).
    pub pickup_group: String,
    pub recording: bool,
}

impl UserFields {
    /// A `StandardUser` with the defaults and no web password.
    pub fn new(extension: String, sip_password: String) -> Self {
        UserFields {
            extension,
            sip_password: Some(sip_password),
            display_name: String::new(),
            ring_timeout_secs: store::DEFAULT_RING_TIMEOUT_SECS,
            enabled: true,
            role: Role::StandardUser,
            email: String::new(),
            username: None,
            password_hash: None,
            forwarding: "[]".to_owned(),
            max_concurrent_calls: None,
            pickup_group: String::new(),
            recording: false,
        }
    }

    /// The fields of a stored user.
    pub fn of(user: &store::User) -> Self {
        UserFields {
            extension: user.extension.clone(),
            sip_password: None,
            display_name: user.display_name.clone(),
            ring_timeout_secs: user.ring_timeout_secs,
            enabled: user.enabled,
            role: Role::parse(&user.role).unwrap_or(Role::StandardUser),
            email: user.email.clone(),
            username: user.username.clone(),
            password_hash: user.password_hash.clone(),
            forwarding: user.forwarding.clone(),
            max_concurrent_calls: user.max_concurrent_calls,
            pickup_group: user.pickup_group.clone(),
            recording: user.recording,
        }
    }

    /// Writes the fields into `user`, whose tenant's SIP domain (the
    /// digest realm) is `realm`. The HA1s cover the extension: a new
    /// number needs the password again.
    fn apply_to(self, user: &mut store::User, realm: &str) -> Result<(), ProvisionError> {
        match &self.sip_password {
            Some(password) => user.sip = sip_hashes(&self.extension, realm, password),
            None if user.extension != self.extension && !user.sip.md5.is_empty() => {
                return Err(ProvisionError::SipPasswordRequired);
            }
            None => {}
        }
        user.extension = self.extension;
        user.display_name = self.display_name;
        user.ring_timeout_secs = self.ring_timeout_secs;
        user.enabled = self.enabled;
        user.role = self.role.as_str().to_owned();
        user.email = self.email;
        user.username = self.username;
        user.password_hash = self.password_hash;
        user.forwarding = self.forwarding;
        user.max_concurrent_calls = self.max_concurrent_calls;
        user.pickup_group = self.pickup_group;
        user.recording = self.recording;
        Ok(())
    }
}

/// The digest HA1s the store keeps of a SIP password (the one place it
/// is hashed: [`pbx::SipCredentials::from_password`]).
pub fn sip_hashes(extension: &str, realm: &str, password: &str) -> store::SipHashes {
    let c = pbx::SipCredentials::from_password(extension, realm, password);
    store::SipHashes {
        realm: c.realm,
        md5: c.md5_ha1,
        sha256: c.sha256_ha1,
    }
}

/// Migration 0007's second half: replaces the SIP passwords rows from
/// before it still hold in plaintext with their HA1s. Run at start-up,
/// before the directory is loaded; idempotent, and safe with several
/// nodes starting at once (each row is replaced once). Returns how many
/// rows it replaced.
pub async fn hash_plaintext_sip_passwords(store: &Store) -> Result<usize, StoreError> {
    let mut replaced = 0;
    for row in store.plaintext_sip_passwords().await? {
        let hashes = sip_hashes(&row.extension, &row.realm, &row.password);
        if store.replace_plaintext_sip_password(&row, &hashes).await? {
            replaced += 1;
        }
    }
    Ok(replaced)
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
/// An IP address (or a name whose last label is all digits, which
/// resolvers read as one) is refused: a tenant named by the PBX's own
/// address would capture the requests phones of other tenants send to it
/// (security review, finding 3). [`sip_domain_or_ip`] lets it through
/// when the system admin's configuration allows IP domains.
pub fn sip_domain(domain: &str) -> Result<String, Invalid> {
    let domain = sip_domain_or_ip(domain)?;
    let last = domain.rsplit('.').next().unwrap_or_default();
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "sip_domain",
            "must be a host name, not an IP address (the system configuration \
             [identity] allow_ip_sip_domains allows them)",
        ));
    }
    Ok(domain)
}

/// [`sip_domain`] that also accepts an IPv4 address.
pub fn sip_domain_or_ip(domain: &str) -> Result<String, Invalid> {
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

/// The most calls one user may be in at once, when limited.
pub const MAX_CONCURRENT_CALLS: u32 = 1000;

/// A user's concurrent-call limit: 1 to [`MAX_CONCURRENT_CALLS`] (the
/// absence of a limit is `null` in REST, `None` here).
pub fn max_calls(n: u64) -> Result<u32, Invalid> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_CONCURRENT_CALLS).contains(n))
        .ok_or_else(|| {
            invalid(
                "max_concurrent_calls",
                format!("must be 1 to {MAX_CONCURRENT_CALLS}, or null for no limit"),
            )
        })
}

/// A call pickup group name: empty (none), or 1 to 32 letters, digits,
/// `.`, `_` or `-`.
pub fn pickup_group(name: &str) -> Result<String, Invalid> {
    let ok = name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(invalid(
            "pickup_group",
            "must be up to 32 letters, digits, '.', '_' or '-' (empty: no group)",
        ));
    }
    Ok(name.to_owned())
}

/// A call pickup feature code (`pickup_code`, `directed_pickup_prefix`):
/// 1 to 8 characters of `*` and digits, starting with `*` so it is never
/// an extension number.
pub fn feature_code(field: &'static str, code: &str) -> Result<String, Invalid> {
    let ok = (1..=8).contains(&code.len())
        && code.starts_with('*')
        && code.chars().all(|c| c == '*' || c.is_ascii_digit());
    if !ok {
        return Err(invalid(
            field,
            "must be 1 to 8 characters of '*' and digits, starting with '*'",
        ));
    }
    Ok(code.to_owned())
}

/// A sign-in name besides the extension number: starts with a letter (so
/// it is never another user's extension), then letters, digits, `.`, `_`,
/// `-` or `@`; 2 to 64 characters. Compared as given.
pub fn username(name: &str) -> Result<String, Invalid> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !ok {
        return Err(invalid(
            "username",
            "must be 2 to 64 characters: a letter, then letters, digits, '.', '_', '-' or '@'",
        ));
    }
    Ok(name.to_owned())
}

/// An e-mail address, loosely (something@host.tld), or empty.
pub fn email(email: &str) -> Result<String, Invalid> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !host.ends_with('.')
                && !host.contains('@')
        });
    if !ok {
        return Err(invalid(
            "email",
            "must be an e-mail address such as alice@example.com",
        ));
    }
    Ok(email.to_owned())
}

/// The web password: 8 to 128 characters, no control characters.
pub fn web_password(password: &str) -> Result<String, Invalid> {
    let len = password.chars().count();
    if !(8..=128).contains(&len) || password.chars().any(char::is_control) {
        return Err(invalid(
            "password",
            "must be 8 to 128 characters without control characters",
        ));
    }
    Ok(password.to_owned())
}

pub fn role(role: &str) -> Result<Role, Invalid> {
    Role::parse(role).ok_or_else(|| invalid("role", "must be Admin, QueueManager or StandardUser"))
}

/// An IANA time zone name known to the bundled tz database
/// (`Europe/Paris`, `America/New_York`, `UTC`).
pub fn time_zone(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || jiff::tz::TimeZone::get(name).is_err() {
        return Err(invalid(
            "time_zone",
            "must be an IANA time zone name such as Europe/Paris or UTC",
        ));
    }
    Ok(name.to_owned())
}

pub const MAX_RETENTION_DAYS: u64 = 36_500;

pub fn retention_days(days: u64) -> Result<u32, Invalid> {
    u32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_RETENTION_DAYS).contains(&u64::from(*d)))
        .ok_or_else(|| {
            invalid(
                "retention_days",
                format!("must be 1 to {MAX_RETENTION_DAYS} days, or null to keep CDRs"),
            )
        })
}

/// When a forwarding rule applies.
const FORWARD_CONDITIONS: [&str; 4] = ["always", "busy", "no_answer", "unavailable"];
pub const MAX_FORWARDING_RULES: usize = 8;

/// Forwarding rules: an array of at most [`MAX_FORWARDING_RULES`] objects
/// `{"condition": "always"|"busy"|"no_answer"|"unavailable",
/// "destination": "<number or sip: URI>", "enabled": bool}` (`enabled`
/// defaults to true), one per condition. Returned as normalised JSON.
pub fn forwarding(rules: &serde_json::Value) -> Result<String, Invalid> {
    use serde_json::{Value, json};
    let rule_error = |i: usize, m: &str| invalid("forwarding", format!("rule {i}: {m}"));
    let Value::Array(list) = rules else {
        return Err(invalid("forwarding", "must be an array of rules"));
    };
    if list.len() > MAX_FORWARDING_RULES {
        return Err(invalid(
            "forwarding",
            format!("at most {MAX_FORWARDING_RULES} rules"),
        ));
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for (i, rule) in list.iter().enumerate() {
        let Value::Object(rule) = rule else {
            return Err(rule_error(i, "must be an object"));
        };
        if let Some(k) = rule
            .keys()
            .find(|k| !["condition", "destination", "enabled"].contains(&k.as_str()))
        {
            return Err(rule_error(i, &format!("unknown field {k:?}")));
        }
        let condition = rule
            .get("condition")
            .and_then(Value::as_str)
            .filter(|c| FORWARD_CONDITIONS.contains(c))
            .ok_or_else(|| {
                rule_error(
                    i,
                    "condition must be always, busy, no_answer or unavailable",
                )
            })?;
        if seen.contains(&condition) {
            return Err(rule_error(i, "one rule per condition"));
        }
        seen.push(condition);
        let destination = rule
            .get("destination")
            .and_then(Value::as_str)
            .filter(|d| valid_destination(d))
            .ok_or_else(|| {
                rule_error(
                    i,
                    "destination must be a number (digits, +, *, #) or a sip: URI",
                )
            })?;
        let enabled = match rule.get("enabled") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(rule_error(i, "enabled must be true or false")),
        };
        out.push(json!({"condition": condition, "destination": destination, "enabled": enabled}));
    }
    Ok(Value::Array(out).to_string())
}

fn valid_destination(d: &str) -> bool {
    if d.is_empty() || d.len() > 128 {
        return false;
    }
    if let Some(rest) = d.strip_prefix("sip:") {
        return !rest.is_empty()
            && rest.contains('@')
            && !rest
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '<' || c == '>');
    }
    d.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'*' | b'#'))
}

/// Why a change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("SIP domain {0} belongs to another tenant")]
    DomainTaken(String),
    /// The extension number or the username is another user's.
    #[error("extension {0} or username exists in this tenant")]
    ExtensionTaken(String),
    #[error("no such user")]
    UnknownUser,
    /// The tenant still has rows of features that keep it (the message
    /// says which constraint).
    #[error("the tenant still has data that keeps it: {0}")]
    TenantInUse(String),
    #[error("no such tenant")]
    UnknownTenant,
    /// The extension changes but no new SIP password came with it: the
    /// stored digest HA1s cover the extension, so they would no longer
    /// answer.
    #[error("a new extension needs the SIP password again (the digest hash includes it)")]
    SipPasswordRequired,
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

    /// A fresh Snowflake id of this node.
    pub fn next_id(&self) -> cdr::Id {
        self.ids.next(clock::unix_millis())
    }

    /// The digest realm of `tenant`'s users: its SIP domain.
    async fn realm(&self, tenant: TenantId) -> Result<String, ProvisionError> {
        Ok(self
            .store
            .tenant(tenant)
            .await?
            .ok_or(ProvisionError::UnknownTenant)?
            .sip_domain)
    }

    pub async fn create_tenant(&self, new: NewTenant) -> Result<store::Tenant, ProvisionError> {
        let tenant = store::Tenant {
            time_zone: new.time_zone,
            retention_days: new.retention_days,
            pickup_code: new.pickup_code,
            directed_pickup_prefix: new.directed_pickup_prefix,
            recording: new.recording,
            ..store::Tenant::new(
                TenantId::from(self.next_id()),
                &new.name,
                &new.sip_domain,
                clock::unix_millis(),
            )
        };
        match self.store.create_tenant(&tenant).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(ProvisionError::DomainTaken(tenant.sip_domain));
            }
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::Tenant(
            engine_tenant(&tenant),
            engine_feature_codes(&tenant),
            tenant.recording,
        ))
        .await?;
        tracing::info!(tenant_id = %tenant.id, sip_domain = %tenant.sip_domain, "tenant created");
        Ok(tenant)
    }

    /// Stores a tenant's new name, domain and settings, then gives the
    /// engine the new domain (phones must then use it).
    pub async fn update_tenant(&self, tenant: &store::Tenant) -> Result<(), ProvisionError> {
        match self.store.update_tenant(tenant).await {
            Ok(true) => {}
            Ok(false) => return Err(ProvisionError::UnknownTenant),
            Err(StoreError::Conflict(_)) => {
                return Err(ProvisionError::DomainTaken(tenant.sip_domain.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::Tenant(
            engine_tenant(tenant),
            engine_feature_codes(tenant),
            tenant.recording,
        ))
        .await?;
        tracing::info!(tenant_id = %tenant.id, sip_domain = %tenant.sip_domain, "tenant updated");
        // The store forgot the HA1s of another realm (they cannot answer
        // this domain's challenges); say whose passwords are needed.
        let users = self.store.users_of_tenant(tenant.id).await?;
        let stale: Vec<&str> = users
            .iter()
            .filter(|u| u.sip.md5.is_empty())
            .map(|u| u.extension.as_str())
            .collect();
        if !stale.is_empty() {
            tracing::warn!(
                tenant_id = %tenant.id,
                sip_domain = %tenant.sip_domain,
                users = stale.len(),
                extensions = %stale.join(","),
                "these users have no SIP password for this domain (the digest realm); \
                 their phones cannot register until it is set again"
            );
            // The engine still holds the old HA1s (wrong realm, so they
            // answer nothing); give it the users as stored.
            for u in &users {
                self.apply(Provision::User(engine_user(u))).await?;
            }
        }
        Ok(())
    }

    /// Deletes a tenant with everything it owns; its users can no longer
    /// register or be called once this returns.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<(), ProvisionError> {
        match self.store.delete_tenant(id).await {
            Ok(true) => {}
            Ok(false) => return Err(ProvisionError::UnknownTenant),
            Err(StoreError::MissingReference(e)) => {
                return Err(ProvisionError::TenantInUse(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::RemoveTenant(id)).await?;
        tracing::info!(tenant_id = %id, "tenant deleted");
        Ok(())
    }

    pub async fn create_user(
        &self,
        tenant_id: TenantId,
        fields: UserFields,
    ) -> Result<store::User, ProvisionError> {
        let now = clock::unix_millis();
        let realm = self.realm(tenant_id).await?;
        let mut user = store::User::new(
            self.next_id(),
            tenant_id,
            &fields.extension,
            store::SipHashes::default(),
            now,
        );
        fields.apply_to(&mut user, &realm)?;
        match self.store.create_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_) | StoreError::NumberTaken(_)) => {
                return Err(ProvisionError::ExtensionTaken(user.extension));
            }
            Err(StoreError::MissingReference(_)) => return Err(ProvisionError::UnknownTenant),
            Err(e) => return Err(e.into()),
        }
        self.apply(Provision::User(engine_user(&user))).await?;
        tracing::info!(tenant_id = %tenant_id, extension = %user.extension, "user created");
        Ok(user)
    }

    /// Replaces a user's fields (store, then engine: a new number moves
    /// the user, a disabled one can no longer register or be called).
    pub async fn update_user(
        &self,
        old: &store::User,
        fields: UserFields,
    ) -> Result<store::User, ProvisionError> {
        let mut user = old.clone();
        let realm = self.realm(old.tenant_id).await?;
        fields.apply_to(&mut user, &realm)?;
        user.updated_at = clock::unix_millis();
        match self.store.update_user(&user).await {
            Ok(true) => {}
            Ok(false) => return Err(ProvisionError::UnknownUser),
            Err(StoreError::Conflict(_) | StoreError::NumberTaken(_)) => {
                return Err(ProvisionError::ExtensionTaken(user.extension));
            }
            Err(e) => return Err(e.into()),
        }
        if user.extension != old.extension {
            self.apply(Provision::RemoveUser {
                tenant: old.tenant_id,
                extension: old.extension.clone(),
            })
            .await?;
        }
        self.apply(Provision::User(engine_user(&user))).await?;
        tracing::info!(tenant_id = %user.tenant_id, extension = %user.extension, enabled = user.enabled, "user updated");
        Ok(user)
    }

    /// Deletes a user; it can no longer register or be called once this
    /// returns.
    pub async fn delete_user(&self, user: &store::User) -> Result<(), ProvisionError> {
        if !self.store.delete_user(user.tenant_id, user.id).await? {
            return Err(ProvisionError::UnknownUser);
        }
        self.apply(Provision::RemoveUser {
            tenant: user.tenant_id,
            extension: user.extension.clone(),
        })
        .await?;
        tracing::info!(tenant_id = %user.tenant_id, extension = %user.extension, "user deleted");
        Ok(())
    }

    /// Runs a call-control command in the engine (`api/sessions.rs`) and
    /// waits for its answer.
    pub async fn control(
        &self,
        command: pbx::Control,
    ) -> Result<pbx::ControlReply, ProvisionError> {
        let (reply, answer) = oneshot::channel();
        self.shard
            .send(ShardInput::Control { command, reply })
            .await
            .map_err(|_| ProvisionError::Engine("the call engine has stopped".into()))?;
        answer
            .await
            .map_err(|_| ProvisionError::Engine("the call engine has stopped".into()))
    }

    /// Hands the running engine the store's directory whole (after a ring
    /// group changed: groups reach the engine with the directory, as other
    /// nodes reload it, rather than by an input of their own).
    pub async fn reload_directory(&self) -> Result<(), ProvisionError> {
        let (directory, _, _) = load_directory(&self.store).await?;
        self.apply(Provision::Replace(Box::new(directory))).await
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
            "127.0.0.1",
            "10.1.2.3.",
            "127.1",
            "pbx.123",
        ] {
            assert_eq!(sip_domain(bad).unwrap_err().field, "sip_domain", "{bad:?}");
        }
        assert_eq!(sip_domain_or_ip("127.0.0.1").unwrap(), "127.0.0.1");
        assert_eq!(sip_domain("1pbx.example.com").unwrap(), "1pbx.example.com");
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
        assert_eq!(max_calls(1).unwrap(), 1);
        assert_eq!(max_calls(1000).unwrap(), 1000);
        assert!(max_calls(0).is_err());
        assert!(max_calls(1001).is_err());
        assert!(max_calls(u64::MAX).is_err());
        assert!(tenant_name("  ").is_err());
        assert_eq!(tenant_name(" Acme ").unwrap(), "Acme");
    }
}
