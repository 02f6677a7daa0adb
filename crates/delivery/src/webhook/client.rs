//! The HTTP(S) client that makes one attempt: resolve, vet (SSRF guard),
//! dial the vetted address, TLS, one HTTP/1.1 POST, read at most a little
//! of the answer.
//!
//! Built on hyper's client *connection* API over a `TcpStream` this module
//! dials itself, so no connector can resolve the name a second time and
//! no redirect is ever followed. HTTPS is rustls (ring provider, TLS 1.2 and
//! 1.3) verifying against the Mozilla roots of `webpki-roots` (plus any
//! extra roots the configuration names); there is no switch to turn
//! verification off.
//!
//! Connections are kept alive and reused per (scheme, host, port), only
//! while the address they were dialled to is still among the host's vetted
//! addresses. Resolutions are cached for [`ClientConfig::dns_ttl`]
//! (getaddrinfo gives no TTL); every attempt still vets what it dials.
//!
//! Timeouts: connect [`ClientConfig::connect_timeout`] (5 s) per address,
//! and the whole attempt — resolution, connect, TLS, request, answer —
//! [`ClientConfig::total_timeout`] (15 s).
//!
//! `DIGEST` auth (RFC 7616) answers the receiver's `401` challenge with
//! the `sip` crate's sans-IO [`sip::auth::DigestClient`] (MD5 and SHA-256,
//! `qop=auth`), then keeps answering that challenge pre-emptively with an
//! increasing `nc` until the receiver challenges again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use sip::auth::{Challenge, DigestClient, strongest_challenge};
use tokio::net::TcpStream;

use super::guard::{AllowList, Resolve, SystemResolver, vet};
use super::schedule::AttemptError;

/// How much of a response body is kept for the delivery log.
pub const RESPONSE_KEPT: usize = 4096;
/// How much of a response body is read before the connection is dropped
/// instead of drained.
const RESPONSE_DRAINED: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("Tally-Webhooks/", env!("CARGO_PKG_VERSION"));

/// How attempts connect.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub allow: AllowList,
    pub resolver: Arc<dyn Resolve>,
    pub tls: Arc<rustls::ClientConfig>,
    /// Idle connections kept per (scheme, host, port).
    pub max_idle_per_host: usize,
    pub dns_ttl: Duration,
}

impl ClientConfig {
    /// SPEC §5's timeouts, the system resolver and the webpki roots.
    pub fn new(allow: AllowList) -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(15),
            allow,
            resolver: Arc::new(SystemResolver),
            tls: tls_config(&[]),
            max_idle_per_host: 64,
            dns_ttl: Duration::from_secs(30),
        }
    }
}

/// A rustls client configuration trusting the Mozilla roots and `extra`.
pub fn tls_config(extra: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // `parse_pem_roots` already refused roots that do not parse.
    let (_added, _unusable) = roots.add_parsable_certificates(extra.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Why extra trust roots were refused.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    #[error("not PEM certificates: {0}")]
    NotPem(rustls::pki_types::pem::Error),
    #[error("no certificate found")]
    Empty,
    /// `index` counts from 1, as a reader of the file would.
    #[error("certificate {index} is not a usable root: {error}")]
    Unusable { index: usize, error: rustls::Error },
}

/// Certificates from PEM text (extra trust roots for receivers with a
/// private CA).
pub fn parse_pem_roots(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, RootsError> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(RootsError::NotPem)?;
    if certs.is_empty() {
        return Err(RootsError::Empty);
    }
    let mut check = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        check
            .add(cert.clone())
            .map_err(|error| RootsError::Unusable {
                index: i + 1,
                error,
            })?;
    }
    Ok(certs)
}

/// Credentials that cannot be sent as an HTTP header value (a control
/// character in a BASIC username or password, or in a BEARER token).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{scheme} credentials are not a valid HTTP header value")]
pub struct AuthError {
    pub scheme: &'static str,
}

/// How one endpoint authenticates, with digest state kept across attempts.
#[derive(Clone)]
pub enum AuthState {
    None,
    /// A ready `Authorization` value (BASIC, BEARER).
    Header(HeaderValue),
    /// Shared, so an endpoint reloaded with the same credentials keeps
    /// answering the receiver's challenge ([`AuthState::Digest`] is
    /// carried over by the dispatcher) instead of drawing a new `401`.
    Digest(Arc<Mutex<DigestState>>),
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthState::None => "None",
            AuthState::Header(_) => "Header(…)",
            AuthState::Digest(_) => "Digest(…)",
        })
    }
}

pub struct DigestState {
    client: DigestClient,
    challenge: Option<Challenge>,
}

impl AuthState {
    pub fn from_auth(auth: &super::config::Auth) -> Result<AuthState, AuthError> {
        use super::config::Auth;
        use base64::Engine as _;
        Ok(match auth {
            Auth::Disable => AuthState::None,
            Auth::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                let value = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                );
                AuthState::Header(
                    HeaderValue::try_from(value).map_err(|_| AuthError { scheme: "BASIC" })?,
                )
            }
            Auth::Bearer { token } => AuthState::Header(
                HeaderValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| AuthError { scheme: "BEARER" })?,
            ),
            Auth::Digest { username, password } => {
                AuthState::Digest(Arc::new(Mutex::new(DigestState {
                    client: DigestClient::new(username.clone(), password.clone()),
                    challenge: None,
                })))
            }
        })
    }

    /// The `Authorization` for a request to `uri`, answering `challenge` if
    /// given (and remembering it), else the remembered one.
    fn authorization(
        &self,
        uri: &str,
        challenge: Option<Challenge>,
    ) -> Result<Option<HeaderValue>, AttemptError> {
        match self {
            AuthState::None => Ok(None),
            AuthState::Header(v) => Ok(Some(v.clone())),
            AuthState::Digest(state) => {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                if challenge.is_some() {
                    state.challenge = challenge;
                }
                let DigestState { client, challenge } = &mut *state;
                let Some(challenge) = challenge.as_ref() else {
                    return Ok(None);
                };
                let credentials = client
                    .respond(challenge, "POST", uri, &cnonce())
                    .map_err(|e| AttemptError::Protocol(format!("digest: {e}")))?;
                HeaderValue::try_from(credentials.to_string())
                    .map(Some)
                    .map_err(|e| AttemptError::Protocol(format!("digest: {e}")))
            }
        }
    }

    fn forget_challenge(&self) {
        if let AuthState::Digest(state) = self {
            state.lock().unwrap_or_else(|p| p.into_inner()).challenge = None;
        }
    }
}

fn cnonce() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes.copy_from_slice(&nanos.to_le_bytes()[..12]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One attempt's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub status: u16,
    pub retry_after: Option<String>,
    /// The first 4 KiB of the body (lossy UTF-8).
    pub body: String,
}

/// Where a URL points, split for dialling.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Target {
    https: bool,
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    /// origin-form request target.
    path: String,
}

impl Target {
    fn parse(url: &url::Url) -> Result<Target, AttemptError> {
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => {
                return Err(AttemptError::Protocol(format!(
                    "scheme {other} is not http(s)"
                )));
            }
        };
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(v4)) => v4.to_string(),
            Some(url::Host::Ipv6(v6)) => v6.to_string(),
            None => return Err(AttemptError::Protocol("the URL has no host".into())),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| AttemptError::Protocol("the URL has no port".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or(&host)),
            None => url.host_str().unwrap_or(&host).to_owned(),
        };
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Target {
            https,
            host,
            port,
            authority,
            path,
        })
    }
}

type Sender = SendRequest<Full<Bytes>>;
/// Idle connections per (https, host, port), with the address dialled.
type IdlePool = HashMap<(bool, String, u16), Vec<(SocketAddr, Sender)>>;
/// Resolutions per (host, port), with when they were made.
type DnsCache = HashMap<(String, u16), (Instant, Vec<SocketAddr>)>;

/// The webhook HTTP client. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    idle: Mutex<IdlePool>,
    dns: Mutex<DnsCache>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        Client {
            config,
            idle: Mutex::new(HashMap::new()),
            dns: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// POSTs `body` to `url` with `headers` (plus `Host`, `Content-Type`,
    /// `User-Agent` and the endpoint's `Authorization`).
    pub async fn post(
        &self,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        auth: &AuthState,
    ) -> Result<Answered, AttemptError> {
        self.post_allowing(url, headers, body, auth, &self.config.allow)
            .await
    }

    /// [`Client::post`] with the SSRF guard's allow-list `allow` instead of
    /// the configured one: the dispatcher passes the node's list plus the
    /// endpoint's tenant's (issue 17 finding 14).
    pub async fn post_allowing(
        &self,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        auth: &AuthState,
        allow: &AllowList,
    ) -> Result<Answered, AttemptError> {
        match tokio::time::timeout(
            self.config.total_timeout,
            self.post_inner(url, headers, body, auth, allow),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout("request")),
        }
    }

    async fn post_inner(
        &self,
        url: &url::Url,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        auth: &AuthState,
        allow: &AllowList,
    ) -> Result<Answered, AttemptError> {
        let target = Target::parse(url)?;
        let addrs = self.vetted(&target, allow).await?;
        let authorization = auth.authorization(&target.path, None)?;
        let (answer, challenges) = self
            .exchange(&target, &addrs, headers, body.clone(), authorization)
            .await?;
        if answer.status != 401 || !matches!(auth, AuthState::Digest(_)) {
            return Ok(answer);
        }
        // Digest: answer the strongest challenge once.
        let parsed: Vec<Challenge> = challenges
            .iter()
            .filter_map(|v| Challenge::parse(v).ok())
            .collect();
        let Some(challenge) = strongest_challenge(&parsed).cloned() else {
            auth.forget_challenge();
            return Ok(answer);
        };
        let authorization = auth.authorization(&target.path, Some(challenge))?;
        let (answer, _) = self
            .exchange(&target, &addrs, headers, body, authorization)
            .await?;
        if answer.status == 401 {
            auth.forget_challenge();
        }
        Ok(answer)
    }

    /// The host's dialable addresses (cached resolution, vetted each time).
    async fn vetted(
        &self,
        target: &Target,
        allow: &AllowList,
    ) -> Result<Vec<SocketAddr>, AttemptError> {
        let resolved = if let Ok(ip) = target.host.parse::<std::net::IpAddr>() {
            vec![SocketAddr::new(ip, target.port)]
        } else {
            let key = (target.host.clone(), target.port);
            let cached = {
                let dns = self.dns.lock().unwrap_or_else(|p| p.into_inner());
                dns.get(&key)
                    .filter(|(at, _)| at.elapsed() < self.config.dns_ttl)
                    .map(|(_, addrs)| addrs.clone())
            };
            match cached {
                Some(addrs) => addrs,
                None => {
                    let addrs = self
                        .config
                        .resolver
                        .resolve(&target.host, target.port)
                        .await
                        .map_err(|e| {
                            AttemptError::Connect(format!("cannot resolve {}: {e}", target.host))
                        })?;
                    let mut dns = self.dns.lock().unwrap_or_else(|p| p.into_inner());
                    if dns.len() > 10_000 {
                        dns.clear();
                    }
                    dns.insert(key, (Instant::now(), addrs.clone()));
                    addrs
                }
            }
        };
        vet(resolved, allow).map_err(AttemptError::Blocked)
    }

    /// One request/response on a pooled or new connection; also returns the
    /// `WWW-Authenticate` values.
    async fn exchange(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
        authorization: Option<HeaderValue>,
    ) -> Result<(Answered, Vec<String>), AttemptError> {
        let (addr, mut sender) = match self.take_idle(target, addrs) {
            Some(found) => found,
            None => self.connect(target, addrs).await?,
        };
        let mut request = http::Request::builder()
            .method(Method::POST)
            .uri(target.path.as_str())
            .header(HOST, target.authority.as_str())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if let Some(a) = authorization {
            request = request.header(AUTHORIZATION, a);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| AttemptError::Protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| AttemptError::Protocol(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let challenges: Vec<String> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("digest "))
            .map(str::to_owned)
            .collect();
        let mut incoming = response.into_body();
        let mut kept = Vec::new();
        let mut read = 0usize;
        let mut complete = false;
        while read <= RESPONSE_DRAINED {
            match incoming.frame().await {
                None => {
                    complete = true;
                    break;
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        read += data.len();
                        let room = RESPONSE_KEPT.saturating_sub(kept.len());
                        kept.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => {
                    return Err(AttemptError::Protocol(format!("reading the answer: {e}")));
                }
            }
        }
        if complete {
            self.put_idle(target, addr, sender);
        }
        Ok((
            Answered {
                status,
                retry_after,
                body: String::from_utf8_lossy(&kept).into_owned(),
            },
            challenges,
        ))
    }

    fn take_idle(&self, target: &Target, addrs: &[SocketAddr]) -> Option<(SocketAddr, Sender)> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&(target.https, target.host.clone(), target.port))?;
        while let Some((addr, sender)) = list.pop() {
            if addrs.contains(&addr) && sender.is_ready() {
                return Some((addr, sender));
            }
        }
        None
    }

    fn put_idle(&self, target: &Target, addr: SocketAddr, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle
            .entry((target.https, target.host.clone(), target.port))
            .or_default();
        if list.len() < self.config.max_idle_per_host {
            list.push((addr, sender));
        }
    }

    async fn connect(
        &self,
        target: &Target,
        addrs: &[SocketAddr],
    ) -> Result<(SocketAddr, Sender), AttemptError> {
        let mut last = AttemptError::Connect("no address".into());
        for &addr in addrs {
            let stream =
                match tokio::time::timeout(self.config.connect_timeout, TcpStream::connect(addr))
                    .await
                {
                    Err(_) => {
                        last = AttemptError::Timeout("connect");
                        continue;
                    }
                    Ok(Err(e)) => {
                        last = AttemptError::Connect(format!("{addr}: {e}"));
                        continue;
                    }
                    Ok(Ok(stream)) => stream,
                };
            let _ = stream.set_nodelay(true);
            let sender = if target.https {
                let name = match target.host.parse::<std::net::IpAddr>() {
                    Ok(ip) => ServerName::IpAddress(ip.into()),
                    Err(_) => ServerName::try_from(target.host.clone())
                        .map_err(|e| AttemptError::Tls(format!("server name: {e}")))?,
                };
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config.tls))
                    .connect(name, stream)
                    .await
                    .map_err(|e| AttemptError::Tls(e.to_string()))?;
                handshake(tls).await?
            } else {
                handshake(stream).await?
            };
            return Ok((addr, sender));
        }
        Err(last)
    }
}

async fn handshake<S>(stream: S) -> Result<Sender, AttemptError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::Protocol(e.to_string()))?;
    tokio::spawn(async move {
        // Ends when the peer closes or the sender is dropped.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_keep_path_query_and_port() {
        let t = Target::parse(
            &"https://Hooks.Example.com:8443/a/b?x=1&y=2"
                .parse()
                .unwrap(),
        )
        .unwrap();
        assert!(t.https);
        assert_eq!(t.host, "hooks.example.com");
        assert_eq!(t.port, 8443);
        assert_eq!(t.authority, "hooks.example.com:8443");
        assert_eq!(t.path, "/a/b?x=1&y=2");
        let t = Target::parse(&"http://[::1]/".parse().unwrap()).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 80, "[::1]")
        );
    }

    #[tokio::test]
    async fn a_refused_address_is_never_dialled() {
        let client = Client::new(ClientConfig::new(AllowList::default()));
        let url: url::Url = "http://10.0.0.1:9/hook".parse().unwrap();
        let err = client
            .post(&url, &[], Bytes::from_static(b"{}"), &AuthState::None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, AttemptError::Blocked(ref m) if m.to_string().contains("10.0.0.1")),
            "{err:?}"
        );
    }

    #[test]
    fn extra_roots_must_be_pem() {
        assert!(parse_pem_roots(b"nothing here").is_err());
        let ca = parse_pem_roots(include_bytes!("../../tests/tls/ca.pem")).unwrap();
        assert_eq!(ca.len(), 1);
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_pem_roots(broken).is_err());
    }
}
