//! A tenant's `cdr_event` configuration (SPEC §5): parsing the REST body
//! with errors that name their field, the view the API returns, and the
//! conversion to and from the store's row.
//!
//! ```json
//! {"enabled": true, "url": "https://hooks.example.com/tally",
//!  "auth": "DIGEST", "username": "tally", "password": "…",
//!  "secret": "whsec_…", "event_types": ["call_cdr"]}
//! ```
//!
//! - `url`: `http` or `https`, with a host, no user-info (credentials go
//!   in `auth`), no fragment, at most 2,048 characters. A literal address
//!   the SSRF guard refuses is refused here too unless allow-listed
//!   (names are checked at every attempt).
//! - `auth`: `DISABLE` (default), `BASIC` and `DIGEST` with `username` and
//!   `password`, `BEARER` with `token`.
//! - `secret`: optional `whsec_…`; replacing it keeps the old one signing
//!   for 24 hours ([`ROTATION_OVERLAP`]); `null` removes signing.
//! - `event_types`: optional non-empty list of SPEC §4 event types.
//!
//! Secrets never come back: the view shows `"********"` for a password,
//! token or secret that is set, and a PUT carrying `"********"` keeps the
//! stored value, so a GET → edit → PUT round trip works.

use std::net::IpAddr;
use std::time::Duration;

use cdr::{EventType, TenantId, UnixMillis};
use serde_json::{Map, Value, json};
use store::WebhookEndpoint;

use super::guard::{AllowList, forbidden};
use super::sign::Secret;

/// What a GET shows instead of a stored password, token or secret.
pub const MASK: &str = "********";
/// How long a replaced secret keeps signing.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const MAX_URL: usize = 2048;
const MAX_CREDENTIAL: usize = 1024;

/// How Tally authenticates to the receiver.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Disable,
    Basic { username: String, password: String },
    Digest { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Auth {
    pub fn name(&self) -> &'static str {
        match self {
            Auth::Disable => "DISABLE",
            Auth::Basic { .. } => "BASIC",
            Auth::Digest { .. } => "DIGEST",
            Auth::Bearer { .. } => "BEARER",
        }
    }
}

/// A validation failure: `field` is the JSON key at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// The validated configuration of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointConfig {
    pub enabled: bool,
    pub url: String,
    pub auth: Auth,
    pub secret: Option<Secret>,
    pub event_types: Option<Vec<EventType>>,
}

const FIELDS: &[&str] = &[
    "enabled",
    "url",
    "auth",
    "username",
    "password",
    "token",
    "secret",
    "event_types",
];

fn string<'a>(
    body: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, ConfigError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(err(field, "must be a string")),
    }
}

fn credential(
    body: &Map<String, Value>,
    field: &'static str,
    current: Option<&str>,
) -> Result<String, ConfigError> {
    let value = string(body, field)?.unwrap_or("");
    let value = if value == MASK {
        current
            .filter(|c| !c.is_empty())
            .ok_or_else(|| err(field, "is masked but nothing is stored: send the value"))?
    } else {
        value
    };
    if value.is_empty() {
        return Err(err(field, "is required for this auth method"));
    }
    if value.len() > MAX_CREDENTIAL {
        return Err(err(field, format!("is longer than {MAX_CREDENTIAL} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(err(field, "contains a control character"));
    }
    Ok(value.to_owned())
}

/// Checks a URL; literal addresses go through the SSRF guard.
pub fn check_url(url: &str, allow: &AllowList) -> Result<url::Url, ConfigError> {
    if url.len() > MAX_URL {
        return Err(err("url", format!("is longer than {MAX_URL} characters")));
    }
    let parsed = url::Url::parse(url).map_err(|e| err("url", format!("is not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(err("url", "must be http or https"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(err("url", "must not carry credentials: use auth"));
    }
    if parsed.fragment().is_some() {
        return Err(err("url", "must not have a fragment"));
    }
    let ip = match parsed.host() {
        None => return Err(err("url", "must name a host")),
        Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
        Some(url::Host::Domain(_)) => None,
    };
    if let Some(ip) = ip
        && let Some(why) = forbidden(ip)
        && !allow.allows(ip)
    {
        return Err(err(
            "url",
            format!("{ip} is {why}; only the system admin's allow-list permits it"),
        ));
    }
    Ok(parsed)
}

impl EndpointConfig {
    /// Parses a PUT body. `current` is what is stored (masked values keep
    /// it).
    pub fn from_json(
        body: &Value,
        current: Option<&EndpointConfig>,
        allow: &AllowList,
    ) -> Result<EndpointConfig, ConfigError> {
        let Value::Object(body) = body else {
            return Err(err("cdr_event", "must be a JSON object"));
        };
        if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(ConfigError {
                field: "cdr_event",
                message: format!("unknown field {unknown:?}"),
            });
        }
        let enabled = match body.get("enabled") {
            Some(Value::Bool(b)) => *b,
            None => return Err(err("enabled", "is required")),
            Some(_) => return Err(err("enabled", "must be true or false")),
        };
        let url = string(body, "url")?.unwrap_or("").trim().to_owned();
        if url.is_empty() {
            if enabled {
                return Err(err("url", "is required when enabled"));
            }
        } else {
            check_url(&url, allow)?;
        }
        let (cur_user, cur_pass, cur_token) = match current.map(|c| &c.auth) {
            Some(Auth::Basic { username, password } | Auth::Digest { username, password }) => {
                (Some(username.as_str()), Some(password.as_str()), None)
            }
            Some(Auth::Bearer { token }) => (None, None, Some(token.as_str())),
            _ => (None, None, None),
        };
        let _ = cur_user;
        let method = string(body, "auth")?.unwrap_or("DISABLE");
        let auth = match method.to_ascii_uppercase().as_str() {
            "DISABLE" => Auth::Disable,
            "BASIC" | "DIGEST" => {
                let username = credential(body, "username", None)?;
                if username.contains(':') && method.eq_ignore_ascii_case("BASIC") {
                    return Err(err("username", "must not contain ':' for BASIC"));
                }
                let password = credential(body, "password", cur_pass)?;
                if method.eq_ignore_ascii_case("BASIC") {
                    Auth::Basic { username, password }
                } else {
                    Auth::Digest { username, password }
                }
            }
            "BEARER" => {
                let token = credential(body, "token", cur_token)?;
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(err("token", "must be visible ASCII without spaces"));
                }
                Auth::Bearer { token }
            }
            _ => return Err(err("auth", "must be DISABLE, BASIC, DIGEST or BEARER")),
        };
        let secret = match string(body, "secret")? {
            None | Some("") => None,
            Some(MASK) => Some(
                current
                    .and_then(|c| c.secret.clone())
                    .ok_or_else(|| err("secret", "is masked but nothing is stored"))?,
            ),
            Some(text) => Some(Secret::parse(text).map_err(|m| err("secret", m.to_string()))?),
        };
        let event_types = match body.get("event_types") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                if items.is_empty() {
                    return Err(err(
                        "event_types",
                        "must not be empty (omit it for every type)",
                    ));
                }
                let mut types = Vec::new();
                for item in items {
                    let name = item
                        .as_str()
                        .ok_or_else(|| err("event_types", "must be a list of strings"))?;
                    let t = EventType::parse(name)
                        .map_err(|_| err("event_types", format!("unknown event type {name:?}")))?;
                    if types.contains(&t) {
                        return Err(err("event_types", format!("{name:?} is listed twice")));
                    }
                    types.push(t);
                }
                Some(types)
            }
            Some(_) => return Err(err("event_types", "must be a list of event types")),
        };
        Ok(EndpointConfig {
            enabled,
            url,
            auth,
            secret,
            event_types,
        })
    }

    /// What GET shows: secrets masked.
    pub fn view(&self) -> Value {
        let (username, password, token) = match &self.auth {
            Auth::Basic { username, .. } | Auth::Digest { username, .. } => {
                (username.as_str(), MASK, "")
            }
            Auth::Bearer { .. } => ("", "", MASK),
            Auth::Disable => ("", "", ""),
        };
        json!({
            "enabled": self.enabled,
            "url": self.url,
            "auth": self.auth.name(),
            "username": username,
            "password": password,
            "token": token,
            "secret": self.secret.as_ref().map(|_| MASK),
            "event_types": self.event_types.as_ref().map(|t| t.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
        })
    }

    /// Reads a stored row back.
    pub fn from_stored(row: &WebhookEndpoint) -> Result<EndpointConfig, ConfigError> {
        let auth = match row.auth.as_str() {
            "DISABLE" => Auth::Disable,
            "BASIC" => Auth::Basic {
                username: row.username.clone(),
                password: row.password.clone(),
            },
            "DIGEST" => Auth::Digest {
                username: row.username.clone(),
                password: row.password.clone(),
            },
            "BEARER" => Auth::Bearer {
                token: row.token.clone(),
            },
            other => return Err(err("auth", format!("stored value {other:?} is unknown"))),
        };
        let secret = row
            .secret
            .as_deref()
            .map(Secret::parse)
            .transpose()
            .map_err(|m| err("secret", m.to_string()))?;
        let event_types = row
            .event_types
            .as_ref()
            .map(|types| {
                types
                    .iter()
                    .map(|t| EventType::parse(t).map_err(|_| err("event_types", t.clone())))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(EndpointConfig {
            enabled: row.enabled,
            url: row.url.clone(),
            auth,
            secret,
            event_types,
        })
    }

    /// The row to store when this configuration replaces `previous` at
    /// `now`: a changed secret keeps the old one signing for 24 h; turning
    /// the endpoint on clears the dispatcher's verdicts.
    pub fn to_stored(
        &self,
        tenant_id: TenantId,
        previous: Option<&WebhookEndpoint>,
        now: UnixMillis,
    ) -> WebhookEndpoint {
        let (username, password, token) = match &self.auth {
            Auth::Basic { username, password } | Auth::Digest { username, password } => {
                (username.clone(), password.clone(), String::new())
            }
            Auth::Bearer { token } => (String::new(), String::new(), token.clone()),
            Auth::Disable => (String::new(), String::new(), String::new()),
        };
        let new_secret = self.secret.as_ref().map(|s| s.as_str().to_owned());
        let old_secret = previous.and_then(|p| p.secret.clone());
        let (previous_secret, previous_secret_until) = match (&new_secret, old_secret) {
            (Some(new), Some(old)) if *new != old => (
                Some(old),
                Some(UnixMillis(now.0 + ROTATION_OVERLAP.as_millis() as u64)),
            ),
            (Some(_), _) => (
                previous.and_then(|p| p.previous_secret.clone()),
                previous.and_then(|p| p.previous_secret_until),
            ),
            (None, _) => (None, None),
        };
        let was_enabled = previous.is_some_and(|p| p.enabled);
        let keep_verdicts = self.enabled == was_enabled;
        WebhookEndpoint {
            tenant_id,
            enabled: self.enabled,
            url: self.url.clone(),
            auth: self.auth.name().to_owned(),
            username,
            password,
            token,
            secret: new_secret,
            previous_secret,
            previous_secret_until,
            event_types: self
                .event_types
                .as_ref()
                .map(|t| t.iter().map(|t| t.as_str().to_owned()).collect()),
            disabled_reason: previous
                .filter(|_| keep_verdicts)
                .and_then(|p| p.disabled_reason.clone()),
            disabled_at: previous
                .filter(|_| keep_verdicts)
                .and_then(|p| p.disabled_at),
            failing_since: previous
                .filter(|_| keep_verdicts && self.enabled)
                .and_then(|p| p.failing_since),
            updated_at: now,
        }
    }
}

/// The secrets that sign at `now`: the current one, then the previous one
/// while its overlap lasts.
pub fn signing_secrets(row: &WebhookEndpoint, now: UnixMillis) -> Vec<Secret> {
    let mut secrets = Vec::new();
    if let Some(s) = row.secret.as_deref().and_then(|s| Secret::parse(s).ok()) {
        secrets.push(s);
    }
    if let (Some(old), Some(until)) = (row.previous_secret.as_deref(), row.previous_secret_until)
        && now < until
        && let Ok(s) = Secret::parse(old)
    {
        secrets.push(s);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn parse(body: Value) -> Result<EndpointConfig, ConfigError> {
        EndpointConfig::from_json(&body, None, &AllowList::default())
    }

    fn field(body: Value) -> &'static str {
        parse(body).unwrap_err().field
    }

    #[test]
    fn a_full_configuration_parses() {
        let c = parse(json!({
            "enabled": true, "url": "https://hooks.example.com/cdr?x=1", "auth": "DIGEST",
            "username": "tally", "password": "pw", "secret": SECRET,
            "event_types": ["call_cdr", "call_start"]
        }))
        .unwrap();
        assert_eq!(c.auth.name(), "DIGEST");
        assert_eq!(c.event_types.as_ref().unwrap().len(), 2);
        let view = c.view();
        assert_eq!(view["password"], MASK);
        assert_eq!(view["secret"], MASK);
        assert_eq!(view["username"], "tally");
        assert!(!view.to_string().contains("pw\""));
    }

    #[test]
    fn every_mistake_names_its_field() {
        assert_eq!(field(json!({"url": "https://a.example"})), "enabled");
        assert_eq!(field(json!({"enabled": "yes"})), "enabled");
        assert_eq!(field(json!({"enabled": true})), "url");
        assert_eq!(
            field(json!({"enabled": true, "url": "ftp://a.example/"})),
            "url"
        );
        assert_eq!(field(json!({"enabled": true, "url": "not a url"})), "url");
        assert_eq!(
            field(json!({"enabled": true, "url": "https://u:p@a.example/"})),
            "url"
        );
        assert_eq!(
            field(json!({"enabled": true, "url": "https://a.example", "auth": "NTLM"})),
            "auth"
        );
        assert_eq!(
            field(
                json!({"enabled": true, "url": "https://a.example", "auth": "BASIC", "password": "x"})
            ),
            "username"
        );
        assert_eq!(
            field(
                json!({"enabled": true, "url": "https://a.example", "auth": "DIGEST", "username": "x"})
            ),
            "password"
        );
        assert_eq!(
            field(json!({"enabled": true, "url": "https://a.example", "auth": "BEARER"})),
            "token"
        );
        assert_eq!(
            field(
                json!({"enabled": true, "url": "https://a.example", "auth": "BEARER", "token": "a b"})
            ),
            "token"
        );
        assert_eq!(
            field(json!({"enabled": true, "url": "https://a.example", "secret": "nope"})),
            "secret"
        );
        assert_eq!(
            field(json!({"enabled": true, "url": "https://a.example", "event_types": []})),
            "event_types"
        );
        assert_eq!(
            field(
                json!({"enabled": true, "url": "https://a.example", "event_types": ["call_end"]})
            ),
            "event_types"
        );
        assert_eq!(
            field(
                json!({"enabled": true, "url": "https://a.example", "event_types": ["call_cdr", "call_cdr"]})
            ),
            "event_types"
        );
        assert_eq!(
            field(json!({"enabled": true, "url": "https://a.example", "colour": "red"})),
            "cdr_event"
        );
        assert_eq!(field(json!(["enabled"])), "cdr_event");
    }

    #[test]
    fn literal_private_addresses_need_the_allow_list() {
        let body = json!({"enabled": true, "url": "http://10.0.0.1:8080/hook"});
        let e = parse(body.clone()).unwrap_err();
        assert_eq!(e.field, "url");
        assert!(e.message.contains("10.0.0.1"), "{e}");
        // Disguised forms are the same address.
        for url in [
            "http://0x7f.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
            "http://[::1]:9/",
        ] {
            assert_eq!(field(json!({"enabled": true, "url": url})), "url", "{url}");
        }
        let allow = AllowList::parse(&["10.0.0.0/8"]).unwrap();
        assert!(EndpointConfig::from_json(&body, None, &allow).is_ok());
    }

    #[test]
    fn masked_values_keep_what_is_stored_and_secrets_rotate() {
        let allow = AllowList::default();
        let first = parse(
            json!({"enabled": true, "url": "https://a.example", "auth": "BASIC",
            "username": "u", "password": "secret-pw", "secret": SECRET}),
        )
        .unwrap();
        let t0 = UnixMillis(1_000_000);
        let stored = first.to_stored(TenantId::from(cdr::Id::from_u64(7)), None, t0);
        assert_eq!(stored.previous_secret, None);
        let again = EndpointConfig::from_json(&first.view(), Some(&first), &allow).unwrap();
        assert_eq!(again, first, "GET then PUT changes nothing");
        assert!(
            EndpointConfig::from_json(&first.view(), None, &allow).is_err(),
            "a mask with nothing stored is refused"
        );

        let new = Secret::generate().unwrap();
        let mut body = first.view();
        body["secret"] = json!(new.as_str());
        let rotated = EndpointConfig::from_json(&body, Some(&first), &allow).unwrap();
        let t1 = UnixMillis(2_000_000);
        let row = rotated.to_stored(stored.tenant_id, Some(&stored), t1);
        assert_eq!(row.previous_secret.as_deref(), Some(SECRET));
        assert_eq!(
            row.previous_secret_until,
            Some(UnixMillis(t1.0 + 86_400_000))
        );
        assert_eq!(signing_secrets(&row, t1).len(), 2);
        assert_eq!(
            signing_secrets(&row, UnixMillis(t1.0 + 86_400_000)).len(),
            1
        );
        assert_eq!(signing_secrets(&row, t1)[0], new);
    }
}
