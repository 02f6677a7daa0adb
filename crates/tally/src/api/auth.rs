//! Signing in, bearer tokens and API keys (SPEC §7, PortSIP's
//! `POST /api/login/oauth/token`), login throttling.
//!
//! # Who signs in
//!
//! - The system admin: `grant_type=password`, `username`, `password`, no
//!   `domain`. Its argon2id hash is in the store ([`crate::admin`]).
//! - A tenant user: the same with `domain` = the tenant's SIP domain and
//!   `username` = the user's extension number or its username. The web
//!   password is the user's own (`password` in the user resource), stored
//!   as an argon2id hash, **not** the SIP password. PortSIP signs
//!   extensions in with their SIP password; Tally does not, because the
//!   SIP password is kept in plaintext (digest needs it), is typed into
//!   every phone and provisioning file, and would turn any leaked phone
//!   configuration into access to the tenant's CDRs and settings. A user
//!   without a web password cannot sign in to the API.
//!
//! A wrong password, an unknown user, an unknown domain, a user without a
//! web password and a disabled user all answer the same
//! [`ApiError::login_failed`], after the same argon2id work.
//!
//! # Tokens
//!
//! Access and refresh tokens are 256-bit random values; the store keeps
//! their SHA-256 only (`auth_tokens`), so every node accepts them and a
//! database copy holds none. Access tokens live 30 minutes (`expires_in:
//! 1800`, as PortSIP), refresh tokens 24 hours. A refresh token works
//! once: it is exchanged for a new pair of the same *family*; presenting a
//! spent one again means it was copied, so the whole family (every token
//! descending from that sign-in) is revoked and the client must sign in
//! again (refresh-token rotation with reuse detection, OAuth 2.0 Security
//! BCP §4.14). `POST /api/login/oauth/revoke` (RFC 7009: form `token`)
//! revokes a token's family and answers 200 whether or not the token was
//! known. A user's tokens carry no role: it is read from the user at each
//! request, so a role change or a disabled user takes effect at once.
//!
//! # API keys
//!
//! A tenant admin creates named keys scoped to a role (`/api/api_keys`,
//! [`super::api_keys`]). A key is `tally_` followed by 64 hex digits,
//! shown once; the store keeps its SHA-256. It is presented as a bearer
//! token like an access token and stands for
//! `Principal::Tenant { user: None, role }`.
//!
//! # Throttling
//!
//! Failures are counted in the store (shared by the nodes) under three
//! keys: the account (domain + username, existing or not), the source
//! address (an IPv6 address by its /64, which one subscriber usually
//! holds whole), and the pair of both. From the [`ACCOUNT_FREE_FAILURES`]th
//! consecutive failure of an account or a pair (the
//! [`ADDRESS_FREE_FAILURES`]th of an address: NATs share addresses) each
//! further failure locks that key for twice as long as the last, from one
//! second up to [`MAX_LOCK`]; a count older than [`FAILURE_WINDOW`] starts
//! over, a success clears the account's and the pair's.
//!
//! What a lock does (security review, finding 6: nobody may keep someone
//! else's account locked):
//! - a locked **address** or **pair** is refused, right password or not:
//!   429 `TOO_MANY_ATTEMPTS` with `Retry-After`;
//! - a locked **account** only slows down the others: an attempt from an
//!   address that has not been failing on it waits a progressive delay
//!   (the account's lock, at most [`MAX_DELAY`]) and is then checked like
//!   any other, so its owner still gets in while someone elsewhere guesses,
//!   and guessing from many addresses stays slow.
//!
//! Password checks run [`LOGIN_SLOTS`](super::LOGIN_SLOTS) at a time; an
//! attempt waits at most [`LOGIN_QUEUE_WAIT`] for one, then answers 503
//! with `Retry-After` (finding 9). A restart with `--admin-password`
//! clears the system admin's lock ([`crate::admin`]). Sign-ins and failed
//! sign-ins go to the audit log.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Form;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use cdr::{TenantId, UnixMillis};
use serde_json::json;
use sha2::{Digest, Sha256};
use store::{AccessGrant, NewToken, Refresh, Rotation, TokenOwner};

use super::{ApiError, ApiState};
use crate::{admin, clock, random};

pub const ACCESS_TTL: Duration = Duration::from_secs(30 * 60);
pub const REFRESH_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// What starts every API key.
pub const API_KEY_PREFIX: &str = "tally_";
/// How often a key's `last_used_at` is written at most.
const TOUCH_EVERY_MS: u64 = 60_000;

/// Failures of one account before lock-outs begin.
pub const ACCOUNT_FREE_FAILURES: u64 = 5;
/// Failures from one address before lock-outs begin.
pub const ADDRESS_FREE_FAILURES: u64 = 20;
/// The longest lock-out.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// The longest progressive delay a locked account puts on attempts from
/// addresses that have not been failing on it.
pub const MAX_DELAY: Duration = Duration::from_secs(3);
/// How long an attempt queues for a password-check slot.
pub const LOGIN_QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Longest username and password a sign-in considers (bytes): longer ones
/// are refused before any work.
const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 1024;
/// A failure this old no longer counts.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60 * 60);

/// A role of SPEC §7. The system admin's is implied by
/// [`Principal::SystemAdmin`]; the other three belong to tenant users and
/// API keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The tenant admin: everything in its tenant.
    Admin,
    /// Tenant CDRs and reports, read-only.
    QueueManager,
    /// Own profile, own CDRs, own recordings.
    StandardUser,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::QueueManager, Role::StandardUser];

    /// SPEC §7's spelling (`Admin`, `QueueManager`, `StandardUser`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "Admin",
            Role::QueueManager => "QueueManager",
            Role::StandardUser => "StandardUser",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Who a request (or a WebSocket connection) acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    SystemAdmin,
    /// A tenant user signed in with its password (`user` is its id), or a
    /// tenant API key (`user` is `None`).
    Tenant {
        tenant_id: TenantId,
        user: Option<cdr::Id>,
        role: Role,
    },
}

impl Principal {
    /// The tenant this principal belongs to (`None` for the system admin).
    pub fn tenant(self) -> Option<TenantId> {
        match self {
            Principal::SystemAdmin => None,
            Principal::Tenant { tenant_id, .. } => Some(tenant_id),
        }
    }

    /// How the audit log names it.
    pub fn actor(self) -> String {
        match self {
            Principal::SystemAdmin => "system-admin".to_owned(),
            Principal::Tenant { user: Some(id), .. } => format!("user:{id}"),
            Principal::Tenant { user: None, .. } => "api-key".to_owned(),
        }
    }
}

/// The hex SHA-256 of a token or key: how the store knows it.
pub fn token_hash(token: &str) -> String {
    random::hex(&Sha256::digest(token.as_bytes()))
}

fn later(now: UnixMillis, ttl: Duration) -> UnixMillis {
    UnixMillis(now.0 + u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2))
}

/// A fresh pair, as the login endpoint returns it.
pub struct Issued {
    access: String,
    refresh: String,
}

impl Issued {
    /// The access token (the console keeps it in its session cookie).
    pub fn access(&self) -> &str {
        &self.access
    }

    /// The refresh token.
    pub fn refresh(&self) -> &str {
        &self.refresh
    }

    fn new() -> anyhow::Result<Issued> {
        Ok(Issued {
            access: random::token()?,
            refresh: random::token()?,
        })
    }
}

impl IntoResponse for Issued {
    fn into_response(self) -> Response {
        // RFC 6749 §5.1: no cache may keep a token.
        (
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(json!({
                "access_token": self.access,
                "refresh_token": self.refresh,
                "expires_in": ACCESS_TTL.as_secs(),
                "token_type": "Bearer",
            })),
        )
            .into_response()
    }
}

/// The client's address, when the server knows it (`tally serve` does;
/// a router built without connect info does not).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// `POST /api/login/oauth/token`, form-encoded: `grant_type=password`
/// with `username`, `password` and (tenant users) `domain`, or
/// `grant_type=refresh_token` with `refresh_token`. PortSIP's `scope` and
/// `client_id` are accepted and ignored.
pub async fn login(
    State(state): State<ApiState>,
    ClientAddr(source): ClientAddr,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<Issued, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::validate("body", e.body_text()))?;
    let field = |name: &str| {
        form.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::validate(name, "is required"))
    };
    match field("grant_type")?.as_str() {
        "password" => {
            let username = field("username")?;
            let password = field("password")?;
            let domain = form.get("domain").filter(|d| !d.is_empty());
            let principal = state
                .authenticate_password_from(source, username, password, domain.map(String::as_str))
                .await?;
            let owner = match principal {
                Principal::SystemAdmin => TokenOwner::SystemAdmin,
                Principal::Tenant {
                    tenant_id,
                    user: Some(user_id),
                    ..
                } => TokenOwner::User { tenant_id, user_id },
                Principal::Tenant { user: None, .. } => {
                    return Err(ApiError::internal("a password sign-in without a user"));
                }
            };
            let now = clock::unix_millis();
            // Housekeeping at sign-in, not at every request.
            if let Err(e) = state.store.remove_expired_tokens(now).await {
                tracing::warn!(error = %e, "could not remove expired tokens");
            }
            let window_start = UnixMillis(now.0.saturating_sub(millis(FAILURE_WINDOW)));
            if let Err(e) = state
                .store
                .remove_stale_login_failures(window_start, now)
                .await
            {
                tracing::warn!(error = %e, "could not remove stale sign-in failures");
            }
            state.issue(owner, now).await
        }
        "refresh_token" => {
            let refresh = field("refresh_token")?;
            let now = clock::unix_millis();
            let next = Issued::new().map_err(ApiError::internal)?;
            let (access_hash, refresh_hash) = (token_hash(&next.access), token_hash(&next.refresh));
            let rotation = Rotation {
                access_hash: &access_hash,
                refresh_hash: &refresh_hash,
                access_expires_at: later(now, ACCESS_TTL),
                refresh_expires_at: later(now, REFRESH_TTL),
                family_lifetime_ms: millis(state.policy.session_lifetime),
            };
            match state
                .store
                .redeem_refresh(&token_hash(refresh), now, &rotation)
                .await?
            {
                Refresh::Rotated { owner, .. } => {
                    // A disabled or deleted user does not get a new pair.
                    if let TokenOwner::User { tenant_id, user_id } = owner {
                        let live = state.store.user(tenant_id, user_id).await?;
                        if !live.is_some_and(|u| u.enabled) {
                            state.store.revoke_token(&access_hash, now).await?;
                            return Err(ApiError::login_failed());
                        }
                    }
                    Ok(next)
                }
                Refresh::Reused { owner } => {
                    tracing::warn!(
                        ?owner,
                        "a spent refresh token was presented again: its sign-in is revoked"
                    );
                    let tenant = match owner {
                        TokenOwner::SystemAdmin => None,
                        TokenOwner::User { tenant_id, .. } => Some(tenant_id),
                    };
                    let actor = match owner {
                        TokenOwner::SystemAdmin => "system-admin".to_owned(),
                        TokenOwner::User { user_id, .. } => format!("user:{user_id}"),
                    };
                    state
                        .audit(
                            tenant,
                            &actor,
                            "refresh_token_reused",
                            "",
                            source,
                            json!({}),
                        )
                        .await;
                    Err(ApiError::login_failed())
                }
                Refresh::Invalid => Err(ApiError::login_failed()),
            }
        }
        other => Err(ApiError::validate(
            "grant_type",
            format!("unsupported grant type {other:?} (password or refresh_token)"),
        )),
    }
}

/// `POST /api/login/oauth/revoke` (RFC 7009), form `token` (an access or a
/// refresh token; `token_type_hint` is accepted and ignored): revokes
/// every token of that sign-in. 200 whether the token was known or not,
/// so the answer tells nothing about a token.
pub async fn revoke(
    State(state): State<ApiState>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Result<StatusCode, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::validate("body", e.body_text()))?;
    let token = form
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::validate("token", "is required"))?;
    if state
        .store
        .revoke_token(&token_hash(token), clock::unix_millis())
        .await?
    {
        state.identity_changed();
    }
    Ok(StatusCode::OK)
}

/// Every authenticated handler takes a `Principal`: the bearer token's.
impl FromRequestParts<ApiState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ApiState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| ApiError::unauthorized("Authorization must be \"Bearer <token>\""))?;
        state
            .authenticate_token(token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid or expired token"))
    }
}

/// The throttle keys of one sign-in attempt.
struct Keys<'a> {
    account: &'a str,
    address: Option<&'a str>,
    pair: Option<&'a str>,
}

/// The lock-out after `failures` consecutive failures, `free` of which
/// cost nothing: 1 s at the `free`th, doubling, at most [`MAX_LOCK`].
pub fn lock_after(failures: u64, free: u64) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = u32::try_from(failures - free).unwrap_or(u32::MAX).min(20);
    Duration::from_secs(1u64 << doublings).min(MAX_LOCK)
}

/// Clears every sign-in lock of the system account `username`: the
/// account's and those of each address that tried it.
pub async fn clear_system_account_locks(
    store: &store::Store,
    username: &str,
) -> Result<(), store::StoreError> {
    let account = account_key(None, username);
    let pairs = pair_key(&account, "");
    store
        .clear_login_failures_with_prefix(&account, &pairs)
        .await
}

fn account_key(domain: Option<&str>, username: &str) -> String {
    match domain {
        None => format!("account:system:{username}"),
        Some(d) => format!(
            "account:{}:{username}",
            d.trim_end_matches('.').to_ascii_lowercase()
        ),
    }
}

/// An address's throttle key: IPv4 (an IPv4-mapped IPv6 address too) as
/// it is, IPv6 by its /64 (finding 9: one subscriber holds a whole /64
/// and could otherwise try from 2^64 addresses).
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("address:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("address:{v4}"),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                format!("address:{}/64", std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// The throttle key of an account tried from an address.
fn pair_key(account: &str, address: &str) -> String {
    format!("pair:{account}|{address}")
}

impl ApiState {
    /// Checks a password: the system admin's when `domain` is `None`, a
    /// tenant user's (by extension number or username, in the tenant whose
    /// SIP domain is `domain`) otherwise. Throttled per account and audited
    /// here, so REST login and the WebSocket `auth` command (SPEC §6) share
    /// one door; `source` (the client's address, when known) is throttled too. A
    /// wrong password, an unknown user, an unknown domain and a disabled
    /// user all answer the same [`ApiError::login_failed`].
    pub async fn authenticate_password_from(
        &self,
        source: Option<IpAddr>,
        username: &str,
        password: &str,
        domain: Option<&str>,
    ) -> Result<Principal, ApiError> {
        if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
            return Err(ApiError::validate(
                if username.len() > MAX_USERNAME {
                    "username"
                } else {
                    "password"
                },
                "is too long",
            ));
        }
        let account = account_key(domain, username);
        let address = source.map(address_key);
        let pair = address.as_deref().map(|a| pair_key(&account, a));
        let keys = Keys {
            account: &account,
            address: address.as_deref(),
            pair: pair.as_deref(),
        };
        // Checked before queueing for a slot (a locked client waits for
        // nothing) and again once it has one (the attempts queued behind a
        // burst of failures see the lock those failures set).
        let delay = self.check_lock(&keys).await?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let _slot = tokio::time::timeout(LOGIN_QUEUE_WAIT, self.login_slots.acquire())
            .await
            .map_err(|_| ApiError::unavailable("every sign-in slot stayed busy"))?
            .map_err(ApiError::internal)?;
        self.check_lock(&keys).await?;
        let (tenant, outcome) = match domain {
            None => {
                let ok = self
                    .admin
                    .verify(username, password)
                    .await
                    .map_err(ApiError::internal)?;
                (None, ok.then_some(Principal::SystemAdmin))
            }
            Some(domain) => self.verify_tenant_user(domain, username, password).await?,
        };
        let now = clock::unix_millis();
        match outcome {
            Some(principal) => {
                self.store.clear_login_failures(&account).await?;
                if let Some(pair) = &pair {
                    self.store.clear_login_failures(pair).await?;
                }
                self.audit(
                    tenant,
                    &principal.actor(),
                    "login",
                    "",
                    source,
                    json!({ "username": username }),
                )
                .await;
                Ok(principal)
            }
            None => {
                let account_lock = |n| millis(lock_after(n, ACCOUNT_FREE_FAILURES));
                let failures = self
                    .store
                    .record_login_failure(&account, now, millis(FAILURE_WINDOW), &account_lock)
                    .await?;
                if let Some(address) = &address {
                    let address_lock = |n| millis(lock_after(n, ADDRESS_FREE_FAILURES));
                    self.store
                        .record_login_failure(address, now, millis(FAILURE_WINDOW), &address_lock)
                        .await?;
                }
                if let Some(pair) = &pair {
                    self.store
                        .record_login_failure(pair, now, millis(FAILURE_WINDOW), &account_lock)
                        .await?;
                }
                tracing::info!(failures, "REST login failed");
                self.audit(
                    tenant,
                    username,
                    "login_failed",
                    "",
                    source,
                    json!({ "username": username, "domain": domain, "failures": failures }),
                )
                .await;
                Err(ApiError::login_failed())
            }
        }
    }

    /// 429 while the address or the pair is locked out (or the account,
    /// when the address is unknown); otherwise the delay a locked account
    /// puts on this attempt.
    async fn check_lock(&self, keys: &Keys<'_>) -> Result<Duration, ApiError> {
        let now = clock::unix_millis();
        let account = self.store.login_lock(keys.account, now).await?;
        let mut refused = 0;
        for key in [keys.address, keys.pair].into_iter().flatten() {
            refused = refused.max(self.store.login_lock(key, now).await?);
        }
        if keys.address.is_none() {
            refused = refused.max(account);
        }
        if refused > 0 {
            return Err(ApiError::too_many_attempts(Duration::from_millis(refused)));
        }
        Ok(Duration::from_millis(account).min(MAX_DELAY))
    }

    /// The tenant (when the domain is known) and the principal (when the
    /// password is right and the user may sign in).
    async fn verify_tenant_user(
        &self,
        domain: &str,
        login: &str,
        password: &str,
    ) -> Result<(Option<TenantId>, Option<Principal>), ApiError> {
        let tenant = self
            .store
            .tenant_by_sip_domain(domain.trim_end_matches('.'))
            .await?;
        let user = match &tenant {
            Some(t) => self.store.user_by_login(t.id, login).await?,
            None => None,
        };
        let candidate = user.filter(|u| u.enabled).and_then(|u| {
            let role = Role::parse(&u.role)?;
            Some((u.password_hash.clone()?, u, role))
        });
        let password = password.to_owned();
        let tenant_id = tenant.map(|t| t.id);
        Ok(match candidate {
            Some((hash, user, role)) => {
                let ok =
                    tokio::task::spawn_blocking(move || admin::verify_password(&hash, &password))
                        .await
                        .map_err(ApiError::internal)?;
                (
                    tenant_id,
                    ok.then_some(Principal::Tenant {
                        tenant_id: user.tenant_id,
                        user: Some(user.id),
                        role,
                    }),
                )
            }
            None => {
                tokio::task::spawn_blocking(move || admin::burn_verification(&password))
                    .await
                    .map_err(ApiError::internal)?;
                (tenant_id, None)
            }
        })
    }

    /// Stores and returns a new access + refresh pair for `owner`, in a new
    /// family (a sign-in).
    async fn issue(&self, owner: TokenOwner, now: UnixMillis) -> Result<Issued, ApiError> {
        let Issued { access, refresh } = Issued::new().map_err(ApiError::internal)?;
        let family = random::token().map_err(ApiError::internal)?;
        let (access_hash, refresh_hash) = (token_hash(&access), token_hash(&refresh));
        self.store
            .insert_tokens(&[
                NewToken {
                    hash: &access_hash,
                    refresh: false,
                    family: &family,
                    owner,
                    created_at: now,
                    expires_at: later(now, ACCESS_TTL)
                        .min(later(now, self.policy.session_lifetime)),
                    family_started_at: now,
                },
                NewToken {
                    hash: &refresh_hash,
                    refresh: true,
                    family: &family,
                    owner,
                    created_at: now,
                    expires_at: later(now, REFRESH_TTL)
                        .min(later(now, self.policy.session_lifetime)),
                    family_started_at: now,
                },
            ])
            .await?;
        Ok(Issued { access, refresh })
    }

    /// The principal a bearer access token or API key stands for, if it is
    /// valid now. A store that cannot answer is an error (503 when it is
    /// unavailable), never a refused token: a client whose token is fine
    /// must not be told to sign in again (security review, finding 1).
    pub async fn authenticate_token(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        let now = clock::unix_millis();
        let hash = token_hash(token);
        let result = if token.starts_with(API_KEY_PREFIX) {
            self.api_key_principal(&hash, now).await
        } else {
            self.access_principal(&hash, now).await
        };
        Ok(result?)
    }

    async fn access_principal(
        &self,
        hash: &str,
        now: UnixMillis,
    ) -> Result<Option<Principal>, store::StoreError> {
        Ok(match self.store.access_grant(hash, now).await? {
            None => None,
            Some(AccessGrant::SystemAdmin) => Some(Principal::SystemAdmin),
            Some(AccessGrant::User {
                tenant_id,
                user_id,
                role,
                enabled,
            }) => Role::parse(&role)
                .filter(|_| enabled)
                .map(|role| Principal::Tenant {
                    tenant_id,
                    user: Some(user_id),
                    role,
                }),
        })
    }

    async fn api_key_principal(
        &self,
        hash: &str,
        now: UnixMillis,
    ) -> Result<Option<Principal>, store::StoreError> {
        let Some(key) = self.store.api_key_by_hash(hash).await? else {
            return Ok(None);
        };
        let stale = key
            .last_used_at
            .is_none_or(|at| now.0.saturating_sub(at.0) >= TOUCH_EVERY_MS);
        if stale {
            self.store.touch_api_key(key.id, now).await?;
        }
        Ok(Role::parse(&key.role).map(|role| Principal::Tenant {
            tenant_id: key.tenant_id,
            user: None,
            role,
        }))
    }

    /// The principal a password sign-in of `principal` stands for now,
    /// with the password hash it has now: `None` when the user is gone or
    /// disabled. The WebSocket re-checks compare both (finding 4).
    pub async fn password_principal(
        &self,
        principal: Principal,
    ) -> Result<Option<(Principal, Option<String>)>, ApiError> {
        Ok(match principal {
            Principal::SystemAdmin => Some((
                Principal::SystemAdmin,
                self.store
                    .system_password_hash(&self.admin.username)
                    .await?,
            )),
            Principal::Tenant {
                tenant_id,
                user: Some(user_id),
                ..
            } => self
                .store
                .user(tenant_id, user_id)
                .await?
                .filter(|u| u.enabled)
                .and_then(|u| {
                    let role = Role::parse(&u.role)?;
                    Some((
                        Principal::Tenant {
                            tenant_id,
                            user: Some(user_id),
                            role,
                        },
                        u.password_hash,
                    ))
                }),
            Principal::Tenant { user: None, .. } => None,
        })
    }

    /// Appends to the audit log; a failure is logged, never the request's.
    pub async fn audit(
        &self,
        tenant: Option<TenantId>,
        actor: &str,
        action: &str,
        target: &str,
        source: Option<IpAddr>,
        detail: serde_json::Value,
    ) {
        // Every audited change may touch someone's rights: open WebSocket
        // sessions check theirs again (finding 4). Sign-ins change nothing.
        if !matches!(action, "login" | "login_failed") {
            self.identity_changed();
        }
        let entry = store::AuditEntry {
            id: self.provisioner.next_id(),
            tenant_id: tenant,
            at: clock::unix_millis(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            source: source.map(|s| s.to_string()).unwrap_or_default(),
            detail: detail.to_string(),
        };
        if let Err(e) = self.store.append_audit(&entry).await {
            tracing::error!(error = %e, action, "cannot write the audit log");
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_outs_double_up_to_the_cap() {
        assert_eq!(lock_after(0, 5), Duration::ZERO);
        assert_eq!(lock_after(4, 5), Duration::ZERO);
        assert_eq!(lock_after(5, 5), Duration::from_secs(1));
        assert_eq!(lock_after(6, 5), Duration::from_secs(2));
        assert_eq!(lock_after(9, 5), Duration::from_secs(16));
        assert_eq!(lock_after(15, 5), MAX_LOCK);
        assert_eq!(lock_after(u64::MAX, 5), MAX_LOCK);
    }

    #[test]
    fn ipv6_sources_are_throttled_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_eq!(address_key(a), "address:2001:db8:1:2::/64");
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "address:192.0.2.7");
        assert_eq!(
            address_key("192.0.2.7".parse().unwrap()),
            "address:192.0.2.7"
        );
    }

    #[test]
    fn roles_spell_as_the_spec() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
        assert_eq!(Role::parse("SystemAdmin"), None);
    }

    #[test]
    fn tokens_are_known_by_their_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
