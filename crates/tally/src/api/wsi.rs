//! `GET /wsi`: the WSI-compatible WebSocket subscription (SPEC §6), on the
//! API port.
//!
//! One JSON object per text frame, each with a `command`:
//!
//! - `{"command":"auth","username","password","domain"}` (the system admin
//!   leaves out `domain`) or `{"command":"auth","access_token"}` →
//!   `{"command":"auth","id":"<n>","status":0}` or `status: -1` with
//!   `error`. Credentials go through [`ApiState::authenticate_password_from`]
//!   / [`ApiState::authenticate_token`], the REST login's door (the same
//!   throttling, lock-out and audit; an API key is an `access_token`). The client
//!   has [`AUTH_TIMEOUT`] and [`AUTH_ATTEMPTS`] tries from the upgrade;
//!   then the socket closes with 1008.
//! - `{"command":"subscribe","topics":[…],"tenants":[…],"from_sequence":N}`
//!   → `{"command":"subscribe","status":0,"topics":[…]}` (with
//!   `"recovered"` when `from_sequence` was given), or `status: -1` with
//!   `error`. `cdr_events` is the tenant admin's own tenant;
//!   `global_cdr_events` is the system admin's, for the `tenants` listed
//!   (decimal id strings). Every other combination is refused, without
//!   telling whether a named tenant exists. `from_sequence` is a number
//!   (every listed tenant) or, for several tenants, an object
//!   `{"<tenant_id>": N}`. A new subscribe replaces the previous one;
//!   `{"command":"unsubscribe"}` ends it.
//! - Events: each §4 event as a bare text frame, the outbox payload byte
//!   for byte.
//!
//! Authentication is not checked once only (security review, finding 4):
//! every [`WsiSettings::revalidate_every`] (10 s by default,
//! `wsi.revalidate_secs`) and at once after any identity change made on
//! this node (everything the API audits, and token revocations), the
//! connection checks its credential again. An access token must still be
//! valid (not revoked, not expired; an API key not deleted) and stand for
//! the same principal; a password sign-in's user must still exist, be
//! enabled, have the same role and the same password (the system admin:
//! the same password). Otherwise the socket closes with
//! **4001 `credentials revoked`** and the client must sign in again.
//! A store that cannot answer the check keeps the connection (the next
//! check decides).
//!
//! When the server stops, every connection closes with 1001 (going away).
//! The server pings every 25 s (SPEC §6; `wsi.ping_secs`) and closes a connection that sent
//! nothing (not even a pong) for two intervals. A subscription that
//! overflows its queue or lags behind the relay closes with 4008
//! ([`delivery::hub`]); so does a frame the client does not take within
//! [`WRITE_TIMEOUT`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use cdr::TenantId;
use delivery::{End, Request, Subscription};
use futures_util::SinkExt;
use serde_json::{Value, json};
use store::OutboxEvent;
use tokio::time::{Instant, MissedTickBehavior};

use super::auth::ClientAddr;
use super::{ApiState, Principal, Role};

/// From the upgrade to a successful `auth`.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Failed `auth` commands before the socket closes.
pub const AUTH_ATTEMPTS: u32 = 3;
/// Longest a single frame may take to leave.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the close frame may wait behind unread events.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most tenants one subscription may follow.
pub const MAX_TENANTS: usize = 1000;
/// Read buffer per connection.
const READ_BUFFER: usize = 4 * 1024;
/// Most events written with one flush.
const BURST: usize = 64;
/// Largest command accepted (commands are small; events only go out).
const MAX_COMMAND: usize = 64 * 1024;

const SLOW_CONSUMER: u16 = 4008;
/// The credential the connection authenticated with is no longer valid.
pub const REVOKED: u16 = 4001;
const POLICY: u16 = 1008;
const GOING_AWAY: u16 = 1001;

/// What `/wsi` connections share.
#[derive(Clone, Debug)]
pub struct WsiSettings {
    /// Subscriptions, fed by this process's outbox relay.
    pub hub: delivery::Hub,
    /// Keep-alive: a ping this often; a connection that sent nothing for
    /// two periods is closed.
    pub ping_every: Duration,
    /// How often an authenticated connection checks its credential again.
    pub revalidate_every: Duration,
}

pub async fn upgrade(
    State(state): State<ApiState>,
    ClientAddr(source): ClientAddr,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_COMMAND)
        .max_frame_size(MAX_COMMAND)
        // Commands are small: tungstenite's 128 KiB default read buffer
        // would be most of a connection's memory.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| Connection::new(state, source, socket).run())
}

struct Connection {
    state: ApiState,
    /// The client's address, for the login throttling per address.
    source: Option<IpAddr>,
    socket: WebSocket,
    principal: Option<Principal>,
    /// How `principal` was established, to check it again.
    credential: Option<Credential>,
    subscription: Option<Subscription>,
}

/// What a connection authenticated with.
#[derive(Clone)]
enum Credential {
    /// An access token or API key, presented again at each check.
    Token(String),
    /// A password: the hash it matched, which must not change.
    Password(Option<String>),
}

/// How a connection ends.
enum Close {
    /// Send a close frame with this code and reason.
    With(u16, &'static str),
    /// The peer is gone or the socket failed: nothing to send.
    Gone,
}

impl Connection {
    fn new(state: ApiState, source: Option<IpAddr>, socket: WebSocket) -> Self {
        Self {
            state,
            source,
            socket,
            principal: None,
            credential: None,
            subscription: None,
        }
    }

    /// Whether the credential still stands for the same principal.
    fn still_valid(&self) -> impl Future<Output = bool> + Send + 'static {
        // Owned fields, not `&self`: the socket is not `Sync`.
        let (state, principal) = (self.state.clone(), self.principal);
        let credential = self.credential.clone();
        async move { still_valid(&state, principal, credential.as_ref()).await }
    }

    async fn run(mut self) {
        let _subscriber = crate::metrics::ws_subscriber();
        let close = self.serve().await;
        if let Close::With(code, reason) = close {
            tracing::info!(code, reason, "wsi connection closed");
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            }));
            // Behind what a slow client has not read yet: give it a moment.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.send(frame)).await;
        }
    }

    async fn serve(&mut self) -> Close {
        let auth_deadline = Instant::now() + AUTH_TIMEOUT;
        let mut failures = 0;
        let every = self.state.wsi.ping_every.max(Duration::from_millis(100));
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let check_every = self
            .state
            .wsi
            .revalidate_every
            .max(Duration::from_millis(100));
        let mut check = tokio::time::interval_at(Instant::now() + check_every, check_every);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut identity = self.state.identity_changes();
        loop {
            let authenticated = self.principal.is_some();
            tokio::select! {
                _ = check.tick(), if authenticated => {
                    if !self.still_valid().await {
                        return Close::With(REVOKED, "credentials revoked");
                    }
                }
                changed = identity.changed(), if authenticated => {
                    if changed.is_err() {
                        // The state is going away with the server.
                        identity = self.state.identity_changes();
                    } else if !self.still_valid().await {
                        return Close::With(REVOKED, "credentials revoked");
                    }
                }
                () = self.state.wsi.hub.closing() => {
                    return Close::With(GOING_AWAY, "server stopping");
                }
                () = tokio::time::sleep_until(auth_deadline), if !authenticated => {
                    return Close::With(POLICY, "auth timeout");
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > 2 * every {
                        return Close::With(GOING_AWAY, "no pong");
                    }
                    if let Err(close) = self.send(Message::Ping(Default::default())).await {
                        return close;
                    }
                }
                received = self.socket.recv() => {
                    last_heard = Instant::now();
                    let text = match received {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Close::Gone,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            if let Err(close) = self.reply(json!({"status": -1, "error": "commands are JSON text frames"})).await {
                                return close;
                            }
                            continue;
                        }
                        Some(Ok(_)) => continue, // ping (answered by the library) or pong
                    };
                    match self.command(text.as_str()).await {
                        Ok(()) => {}
                        Err(Failed::Auth) => {
                            failures += 1;
                            if failures >= AUTH_ATTEMPTS {
                                return Close::With(POLICY, "authentication failed");
                            }
                        }
                        Err(Failed::Close(close)) => return close,
                    }
                }
                next = next_event(&mut self.subscription) => {
                    match next {
                        Ok(event) => {
                            if let Err(close) = self.send_events(event).await {
                                return close;
                            }
                        }
                        Err(end) => {
                            self.subscription = None;
                            return Close::With(end.close_code(), match end {
                                End::Overflow => "send queue overflow: resume from your last sequence",
                                End::Lagged => "fell behind: resume from your last sequence",
                                End::RelayStopped => "server stopping",
                                End::StoreFailed => "event store unavailable",
                            });
                        }
                    }
                }
            }
        }
    }

    /// Sends one frame within [`WRITE_TIMEOUT`].
    async fn send(&mut self, message: Message) -> Result<(), Close> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close::Gone),
            Err(_) => Err(Close::With(SLOW_CONSUMER, "write timeout")),
        }
    }

    /// Sends `first` and whatever else is queued already (up to
    /// [`BURST`]) with one flush, giving up as soon as the subscription
    /// overflows while the socket is blocked on a client that does not read.
    async fn send_events(&mut self, first: Arc<OutboxEvent>) -> Result<(), Close> {
        let Some(subscription) = self.subscription.as_mut() else {
            return Ok(());
        };
        let mut burst = vec![first];
        while burst.len() < BURST {
            match subscription.try_next() {
                Some(event) => burst.push(event),
                None => break,
            }
        }
        let socket = &mut self.socket;
        let write = async move {
            for event in burst {
                socket
                    .feed(Message::Text(Utf8Bytes::from(event.payload.as_str())))
                    .await?;
            }
            socket.flush().await
        };
        tokio::select! {
            written = tokio::time::timeout(WRITE_TIMEOUT, write) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::Gone),
                Err(_) => Err(Close::With(SLOW_CONSUMER, "write timeout")),
            },
            end = subscription.overflowed() => {
                Err(Close::With(end.close_code(), "send queue overflow: resume from your last sequence"))
            }
        }
    }

    async fn reply(&mut self, body: Value) -> Result<(), Close> {
        self.send(Message::Text(Utf8Bytes::from(body.to_string())))
            .await
    }

    async fn command(&mut self, text: &str) -> Result<(), Failed> {
        let parsed: Result<Value, _> = serde_json::from_str(text);
        let Ok(Value::Object(fields)) = parsed else {
            self.reply(json!({"status": -1, "error": "a command is a JSON object"}))
                .await?;
            return Ok(());
        };
        let command = fields.get("command").and_then(Value::as_str).unwrap_or("");
        match command {
            "auth" => self.auth(&fields).await,
            "subscribe" => {
                let answer = self.subscribe(&fields).await;
                self.reply(answer).await?;
                Ok(())
            }
            "unsubscribe" => {
                let answer = match self.principal {
                    None => error("unsubscribe", "not authenticated"),
                    Some(_) => {
                        self.subscription = None;
                        json!({"command": "unsubscribe", "status": 0})
                    }
                };
                self.reply(answer).await?;
                Ok(())
            }
            "" => {
                self.reply(json!({"status": -1, "error": "command is required"}))
                    .await?;
                Ok(())
            }
            other => {
                self.reply(error(other, "unknown command")).await?;
                Ok(())
            }
        }
    }

    async fn auth(&mut self, fields: &serde_json::Map<String, Value>) -> Result<(), Failed> {
        if self.principal.is_some() {
            self.reply(error("auth", "already authenticated")).await?;
            return Ok(());
        }
        let text = |name: &str| {
            fields
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let principal = if let Some(token) = text("access_token") {
            let principal = self.state.authenticate_token(token).await.ok().flatten();
            principal.map(|p| (p, Credential::Token(token.to_owned())))
        } else if let (Some(username), Some(password)) = (text("username"), text("password")) {
            match self
                .state
                .authenticate_password_from(self.source, username, password, text("domain"))
                .await
            {
                Ok(principal) => match self.state.password_principal(principal).await {
                    Ok(Some((_, hash))) => Some((principal, Credential::Password(hash))),
                    _ => None,
                },
                Err(_) => None,
            }
        } else {
            self.reply(error(
                "auth",
                "username and password, or access_token, are required",
            ))
            .await?;
            return Err(Failed::Auth);
        };
        match principal {
            Some((principal, credential)) => {
                self.principal = Some(principal);
                self.credential = Some(credential);
                self.reply(json!({"command": "auth", "id": connection_id(), "status": 0}))
                    .await?;
                Ok(())
            }
            None => {
                tracing::info!("wsi auth failed");
                self.reply(error("auth", "Login failed, authentication error"))
                    .await?;
                Err(Failed::Auth)
            }
        }
    }

    async fn subscribe(&mut self, fields: &serde_json::Map<String, Value>) -> Value {
        let Some(principal) = self.principal else {
            return error("subscribe", "not authenticated");
        };
        let request = match subscription_request(principal, fields) {
            Ok(request) => request,
            Err(message) => return error("subscribe", &message),
        };
        // The system admin may name only tenants that exist.
        if matches!(principal, Principal::SystemAdmin) {
            for &tenant in request.tenants.keys() {
                match self.state.store.tenant(tenant).await {
                    Ok(Some(_)) => {}
                    Ok(None) => return error("subscribe", &format!("unknown tenant {tenant}")),
                    Err(e) => {
                        tracing::warn!(error = %e, "wsi subscribe: store read failed");
                        return error("subscribe", "event store unavailable");
                    }
                }
            }
        }
        let resumed = request.tenants.values().any(Option::is_some);
        self.subscription = None;
        let topics = fields.get("topics").cloned().unwrap_or(Value::Null);
        match self.state.wsi.hub.subscribe(request).await {
            Ok(subscription) => {
                let mut answer = json!({"command": "subscribe", "status": 0, "topics": topics});
                if resumed {
                    answer["recovered"] = Value::Bool(subscription.recovered);
                }
                self.subscription = Some(subscription);
                answer
            }
            Err(e) => {
                tracing::warn!(error = %e, "wsi subscribe: store read failed");
                error("subscribe", "event store unavailable")
            }
        }
    }
}

enum Failed {
    /// An `auth` command failed (counted).
    Auth,
    /// The socket must close.
    Close(Close),
}

impl From<Close> for Failed {
    fn from(close: Close) -> Self {
        Failed::Close(close)
    }
}

/// Whether `credential` still stands for `principal`. A store failure
/// answers yes: the next check decides.
async fn still_valid(
    state: &ApiState,
    principal: Option<Principal>,
    credential: Option<&Credential>,
) -> bool {
    let (Some(principal), Some(credential)) = (principal, credential) else {
        return true;
    };
    let valid = match credential {
        Credential::Token(token) => state
            .authenticate_token(token)
            .await
            .map(|now| now == Some(principal)),
        Credential::Password(hash) => state
            .password_principal(principal)
            .await
            .map(|now| now.as_ref() == Some(&(principal, hash.clone()))),
    };
    valid.unwrap_or(true)
}

/// The next event of the subscription, or never without one.
async fn next_event(subscription: &mut Option<Subscription>) -> Result<Arc<OutboxEvent>, End> {
    match subscription {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

fn error(command: &str, message: &str) -> Value {
    json!({"command": command, "status": -1, "error": message})
}

fn connection_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Checks a subscribe command against who is asking (SPEC §6): the tenants
/// to follow, each with its resume point.
fn subscription_request(
    principal: Principal,
    fields: &serde_json::Map<String, Value>,
) -> Result<Request, String> {
    let topics: Vec<&str> = match fields.get("topics") {
        Some(Value::Array(topics)) if !topics.is_empty() => topics
            .iter()
            .map(|t| t.as_str().ok_or("topics must be strings"))
            .collect::<Result<_, _>>()?,
        _ => return Err("topics must be a non-empty array".into()),
    };
    let mut tenants = Vec::new();
    for topic in topics {
        match (topic, principal) {
            (
                "cdr_events",
                Principal::Tenant {
                    tenant_id,
                    role: Role::Admin,
                    ..
                },
            ) => {
                // A tenant admin may name its own tenant, nothing else.
                for named in named_tenants(fields)? {
                    if named != tenant_id {
                        return Err(format!("topic {topic} is not allowed"));
                    }
                }
                tenants.push(tenant_id);
            }
            ("global_cdr_events", Principal::SystemAdmin) => {
                let named = named_tenants(fields)?;
                if named.is_empty() {
                    return Err("global_cdr_events needs a non-empty tenants list".into());
                }
                tenants.extend(named);
            }
            ("cdr_events" | "global_cdr_events", _) => {
                return Err(format!("topic {topic} is not allowed"));
            }
            (other, _) => return Err(format!("unknown topic {other:?}")),
        }
    }
    tenants.sort();
    tenants.dedup();
    if tenants.len() > MAX_TENANTS {
        return Err(format!("at most {MAX_TENANTS} tenants per subscription"));
    }
    let mut request = Request::new(tenants, None);
    match fields.get("from_sequence") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (tenant, n) in map {
                let tenant: TenantId = tenant
                    .parse()
                    .map_err(|_| format!("from_sequence: {tenant:?} is not a tenant id"))?;
                let slot = request
                    .tenants
                    .get_mut(&tenant)
                    .ok_or_else(|| format!("from_sequence: tenant {tenant} is not subscribed"))?;
                *slot = Some(sequence(n)?);
            }
        }
        Some(n) => {
            let n = sequence(n)?;
            for slot in request.tenants.values_mut() {
                *slot = Some(n);
            }
        }
    }
    Ok(request)
}

fn named_tenants(fields: &serde_json::Map<String, Value>) -> Result<Vec<TenantId>, String> {
    match fields.get("tenants") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|t| match t {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_u64().map(|n| TenantId::from(cdr::Id::from_u64(n))),
                _ => None,
            })
            .map(|t| t.ok_or_else(|| "tenants must be tenant ids (decimal strings)".to_owned()))
            .collect(),
        Some(_) => Err("tenants must be an array".into()),
    }
}

/// A `sequence`: a non-negative integer, or one as a decimal string (at
/// most `i64::MAX`, what the store holds).
fn sequence(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|n| i64::try_from(*n).is_ok())
    .ok_or_else(|| "from_sequence must be a non-negative integer".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    fn tenant(n: u64) -> TenantId {
        TenantId::from(cdr::Id::from_u64(n))
    }

    fn admin_of(n: u64, role: Role) -> Principal {
        Principal::Tenant {
            tenant_id: tenant(n),
            user: None,
            role,
        }
    }

    #[test]
    fn topics_follow_roles() {
        let own = fields(json!({"topics": ["cdr_events"], "from_sequence": 7}));
        let r = subscription_request(admin_of(5, Role::Admin), &own).unwrap();
        assert_eq!(
            r.tenants.into_iter().collect::<Vec<_>>(),
            [(tenant(5), Some(7))]
        );
        for role in [Role::QueueManager, Role::StandardUser] {
            assert!(subscription_request(admin_of(5, role), &own).is_err());
        }
        assert!(subscription_request(Principal::SystemAdmin, &own).is_err());
        let foreign = fields(json!({"topics": ["cdr_events"], "tenants": ["6"]}));
        assert_eq!(
            subscription_request(admin_of(5, Role::Admin), &foreign).unwrap_err(),
            "topic cdr_events is not allowed"
        );
        let global = fields(json!({"topics": ["global_cdr_events"], "tenants": ["6", "5"]}));
        assert!(subscription_request(admin_of(5, Role::Admin), &global).is_err());
        let r = subscription_request(Principal::SystemAdmin, &global).unwrap();
        assert_eq!(
            r.tenants.into_iter().collect::<Vec<_>>(),
            [(tenant(5), None), (tenant(6), None)]
        );
    }

    #[test]
    fn bad_subscribe_commands_are_refused() {
        let admin = Principal::SystemAdmin;
        for bad in [
            json!({}),
            json!({"topics": []}),
            json!({"topics": "global_cdr_events"}),
            json!({"topics": ["nope"], "tenants": ["5"]}),
            json!({"topics": ["global_cdr_events"]}),
            json!({"topics": ["global_cdr_events"], "tenants": ["x"]}),
            json!({"topics": ["global_cdr_events"], "tenants": ["5"], "from_sequence": -1}),
            json!({"topics": ["global_cdr_events"], "tenants": ["5"], "from_sequence": u64::MAX}),
            json!({"topics": ["global_cdr_events"], "tenants": ["5"], "from_sequence": {"6": 1}}),
            json!({"topics": ["global_cdr_events"], "tenants": (1..=MAX_TENANTS as u64 + 1).map(|n| n.to_string()).collect::<Vec<_>>()}),
        ] {
            assert!(
                subscription_request(admin, &fields(bad.clone())).is_err(),
                "{bad}"
            );
        }
        let per_tenant = fields(json!({
            "topics": ["global_cdr_events"], "tenants": ["5", "6"], "from_sequence": {"6": "9"}
        }));
        let r = subscription_request(admin, &per_tenant).unwrap();
        assert_eq!(
            r.tenants.into_iter().collect::<Vec<_>>(),
            [(tenant(5), None), (tenant(6), Some(9))]
        );
    }
}
