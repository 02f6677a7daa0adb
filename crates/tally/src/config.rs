//! `tally serve`'s settings: defaults that run with no configuration, an
//! optional TOML file, and command-line flags over both.
//!
//! ```toml
//! data_dir = "./tally-data"          # SQLite database, admin account
//! database = "postgres://…"          # default: SQLite in data_dir
//! node = 0                           # Snowflake node number (< 1024)
//!
//! [sip]
//! bind = "0.0.0.0"                   # UDP and TCP
//! port = 5060
//! advertise = "pbx.example.com"      # host[:port] in Via/Contact
//! udp = true
//! tcp = true
//! tcp_idle_secs = 600                # close a TCP connection idle this long
//! tcp_max_connections = 10000        # open TCP connections, in and out
//! digest_algorithms = ["MD5"]        # challenges offered, in order ("MD5", "SHA-256")
//! allow_digest_without_qop = false   # true for legacy phones that ignore qop=auth
//!
//! [sip.tenant_digest_algorithms]     # per tenant, by SIP domain
//! "modern.example.com" = ["SHA-256", "MD5"]
//! tcp_max_connections_per_source = 256 # of those, to or from one IP address
//! tls_port = 5061                    # SIP over TLS (default: off); needs both files:
//! tls_cert = "/etc/tally/sip.crt"    # PEM chain, leaf first (re-read on SIGHUP)
//! tls_key = "/etc/tally/sip.key"     # PEM private key
//! tls_phone_ca = "/etc/tally/phones-ca.pem" # verify phones' certificates when
//!                                    # calling them over TLS (default: not verified)
//! max_transactions = 50000           # server transactions held; 503 beyond
//! max_transactions_per_source = 2000 # per IPv4 address / IPv6 /64; 503 beyond
//!
//! [http]
//! bind = "127.0.0.1"
//! port = 8887
//! max_connections = 1024             # open HTTP connections; more wait in the backlog
//! header_read_secs = 10              # a request's headers (and TLS handshake) within this
//! write_stall_secs = 30              # a client taking no byte this long is disconnected
//! export_total_secs = 900            # the longest a CDR export may run
//! exports_per_tenant = 2             # CDR exports of one tenant at once (429 beyond)
//! exports_total = 4                  # CDR exports at once on this node (below the pool's 8)
//! tls_cert_file = "/etc/tally/api.pem"  # HTTPS when both are set (PEM)
//! tls_key_file = "/etc/tally/api.key"
//!
//! [admin]
//! username = "admin"
//!
//! [events]
//! direction_vocabulary = "classic"   # or "v22.6"
//! misspelt_destination = true       # PortSIP's misspelt `destiantion` next to
//!                                    # `destination` in cdr_target_* events
//! retention_days = 7                 # outbox kept for resume/replay (at least 2)
//!
//! [wsi]
//! send_queue = 1024                  # events a WebSocket may have queued; more closes it with 4008
//! ping_secs = 25                     # keep-alive ping; silent for two periods closes
//! revalidate_secs = 10               # re-check each connection's credential (4001 when revoked)
//!
//! [metrics]
//! listen = "127.0.0.1:9464"          # GET /metrics here (default: off)
//! allow = ["127.0.0.1", "::1"]       # networks that may scrape without a token
//! token = "…"                        # or: Authorization: Bearer <token>
//!
//! [cluster]                          # nodes sharing PostgreSQL (issue 15); on SQLite
//!                                    # (one node) none of it runs
//! heartbeat_ms = 2000                # how often this node writes its liveness row
//! lease_secs = 15                    # silent this long: a survivor closes the node's calls
//! notify = true                      # wake other nodes' outbox relays (LISTEN/NOTIFY)
//!
//! [shutdown]
//! grace_secs = 5                     # how long calls in progress may finish;
//!                                    # then the PBX hangs them up (BYE)
//!
//! [transfer]
//! on_failure = "recall"              # a failed blind transfer goes back to the
//!                                    # referrer if still up; "hangup" ends the call
//!
//! [identity]
//! session_lifetime_secs = 2592000    # a sign-in lasts at most this, refreshes included (30 days)
//! allow_ip_sip_domains = false       # may a tenant's sip_domain be an IP address
//!
//! [webhooks]
//! allow = ["10.1.2.0/24"]            # CIDRs the SSRF guard lets through (default none)
//! extra_ca_file = "/etc/tally/ca.pem" # more TLS roots besides the Mozilla ones
//! retry_schedule_ms = [5000, 60000]  # replaces SPEC §5's schedule (tests only)
//! concurrency = 16                   # attempts in flight per endpoint
//! lease_secs = 60                    # a claimed delivery is this node's this long
//! auto_disable_secs = 432000         # disable after 5 days of failures only
//! retention_days = 30                # finished deliveries and their log are kept this long
//!
//! [media]
//! rtp_ports = "20000-30000"          # RTP on even ports, RTCP on RTP + 1
//! anchor = "auto"                    # auto | always | never (crates/tally/src/media)
//! rtp_timeout_secs = 60              # an answered call silent this long is ended
//! address = "192.0.2.10"             # relay IP in SDP; default: sip.bind, else the advertised IP
//!
//! [recordings]
//! dir = "./tally-data/recordings"    # default: data_dir/recordings
//! retention_days = 90                # recordings older than this are deleted (0: kept)
//!
//! [security]
//! secret_key_file = "/etc/tally/secret.key" # 32 bytes, hex or base64: seals stored
//!                                    # secrets (or env TALLY_SECRET_KEY; `crate::secret_key`)
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…`; `None` means `tally.db` in `data_dir`.
    pub database: Option<String>,
    pub node: u16,
    pub sip: SipConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub events: EventsConfig,
    pub wsi: WsiConfig,
    pub shutdown: ShutdownConfig,
    pub cluster: ClusterConfig,
    pub webhooks: WebhooksConfig,
    pub metrics: MetricsConfig,
    pub identity: IdentityConfig,
    pub media: MediaConfig,
    pub recordings: RecordingsConfig,
    pub transfer: TransferConfig,
    pub security: SecurityConfig,
    pub trunks: TrunksConfig,
}

/// `[trunks]`: how the trunks' carriers are found (`trunks::dns`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrunksConfig {
    /// The DNS server (`ip:port`) asked for trunk hosts' SRV and A/AAAA
    /// records; `None`: `/etc/resolv.conf`'s for SRV, the system
    /// resolver for addresses.
    pub dns_server: Option<SocketAddr>,
}

/// `[transfer]`: calls handed on by REFER (`pbx::call::transfer`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// What a failed blind transfer leaves: `"recall"` (the call goes
    /// back to the referrer if it is still up; the default) or `"hangup"`.
    pub on_failure: TransferOnFailure,
}

/// `transfer.on_failure`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferOnFailure {
    #[default]
    Recall,
    Hangup,
}

impl From<TransferOnFailure> for pbx::TransferOnFailure {
    fn from(f: TransferOnFailure) -> Self {
        match f {
            TransferOnFailure::Recall => pbx::TransferOnFailure::Recall,
            TransferOnFailure::Hangup => pbx::TransferOnFailure::Hangup,
        }
    }
}

/// `[security]`: the key that seals stored secrets (`crate::secret_key`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConfig {
    /// A file holding the 32-byte key, hex or base64;
    /// `TALLY_SECRET_KEY` is used when this is not set.
    pub secret_key_file: Option<PathBuf>,
}

/// `[metrics]`: Prometheus `/metrics` on a listener of its own
/// (`crate::metrics`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` listens; `None` (the default) serves none.
    pub listen: Option<SocketAddr>,
    /// CIDRs (or addresses) whose scrapes need no token.
    pub allow: Vec<String>,
    /// A bearer token that lets any other address scrape.
    pub token: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: None,
            allow: vec!["127.0.0.1".into(), "::1".into()],
            token: None,
        }
    }
}

/// `[media]`: the RTP relay.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// `first-last`; pairs start on even ports.
    pub rtp_ports: String,
    pub anchor: crate::media::Anchor,
    pub rtp_timeout_secs: u64,
    /// The IP the relay binds and anchored SDP names; default: `sip.bind`
    /// when it is one address, else the advertised host when it is an IP,
    /// else media is not anchored (logged at start).
    pub address: Option<std::net::IpAddr>,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: "20000-30000".to_owned(),
            anchor: crate::media::Anchor::Auto,
            rtp_timeout_secs: 60,
            address: None,
        }
    }
}

/// `[identity]`: sign-in and tenant rules of the system admin.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Seconds a sign-in lasts at most, refreshes included (30 days).
    pub session_lifetime_secs: u64,
    /// Whether a tenant's `sip_domain` may be an IP address. Off: a tenant
    /// named by the PBX's own address would capture requests meant for
    /// others.
    pub allow_ip_sip_domains: bool,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            session_lifetime_secs: 30 * 24 * 3600,
            allow_ip_sip_domains: false,
        }
    }
}

/// `[recordings]`: where call recordings go and how long they stay.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Default: `recordings` under the data directory.
    pub dir: Option<PathBuf>,
    /// 0 keeps them forever.
    pub retention_days: u32,
}

impl Default for RecordingsConfig {
    fn default() -> Self {
        RecordingsConfig {
            dir: None,
            retention_days: 90,
        }
    }
}

/// `[webhooks]`: the system admin's settings of the webhook dispatcher.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// CIDRs (or addresses) the SSRF guard lets through.
    pub allow: Vec<String>,
    /// PEM file of extra trust roots for receivers behind a private CA.
    pub extra_ca_file: Option<PathBuf>,
    /// Delays before the 2nd, 3rd, … attempt in milliseconds; `None` is
    /// SPEC §5's schedule (5 s … 24 h). Shortened in tests only.
    pub retry_schedule_ms: Option<Vec<u64>>,
    pub concurrency: usize,
    pub lease_secs: u64,
    pub auto_disable_secs: u64,
    pub retention_days: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow: Vec::new(),
            extra_ca_file: None,
            retry_schedule_ms: None,
            concurrency: 16,
            lease_secs: 60,
            auto_disable_secs: 5 * 24 * 3600,
            retention_days: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    pub bind: IpAddr,
    pub port: u16,
    /// `host` or `host:port` written in Via and Contact: the address phones
    /// reach the PBX at. Default: the bind address, or the host's primary
    /// address when bound to all interfaces.
    pub advertise: Option<String>,
    pub udp: bool,
    pub tcp: bool,
    /// A TCP connection with no byte read or written this long is closed
    /// (keep-alive pings count). A phone reachable only through it (NAT)
    /// must keep it alive or register again; one that is reachable gets a
    /// new connection from the PBX.
    pub tcp_idle_secs: u64,
    /// TCP connections open at once, accepted and opened together; beyond
    /// it new ones are refused (a flood must not exhaust descriptors).
    pub tcp_max_connections: usize,
    /// The digest challenges offered in 401/407, in order. MD5 alone by
    /// default: Debian's baresip (libre 1.0) fails on any other challenge
    /// in the response, and phones reading only the first one need MD5
    /// first (DESIGN.md, "Digest algorithms").
    pub digest_algorithms: Vec<String>,
    /// Per-tenant offers, keyed by the tenant's SIP domain.
    pub tenant_digest_algorithms: std::collections::BTreeMap<String, Vec<String>>,
    /// Accept digest answers without `qop` (each nonce then answers once).
    /// Off: such answers have no nonce count and could be replayed.
    pub allow_digest_without_qop: bool,
    /// Of those, connections to or from one IP address: one host must not
    /// take them all. A NATed office has one connection per phone.
    pub tcp_max_connections_per_source: usize,
    /// SIP over TLS on this port (RFC 3261 §26; 5061 is usual), on the
    /// same address; `None` serves no TLS.
    pub tls_port: Option<u16>,
    /// PEM certificate chain (leaf first) and private key for TLS;
    /// re-read on `SIGHUP`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// PEM CA(s) phones' certificates must chain to when the PBX opens a
    /// TLS connection to one; `None` does not verify them
    /// (`transport::tls`).
    pub tls_phone_ca: Option<PathBuf>,
    /// Server transactions held at once; a new request beyond it is
    /// answered `503` with `Retry-After` (`sip::transaction`, "Caps").
    pub max_transactions: usize,
    /// Of those, from one source (IPv4 address, IPv6 /64).
    pub max_transactions_per_source: usize,
}

/// `sip.digest_algorithms` and `sip.tenant_digest_algorithms`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestOffers {
    pub default: pbx::DigestOffer,
    /// (SIP domain, offer).
    pub tenants: Vec<(String, pbx::DigestOffer)>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub bind: IpAddr,
    pub port: u16,
    /// HTTP connections open at once (security review, finding 10).
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and to finish the
    /// TLS handshake); an idle keep-alive connection closes after it.
    pub header_read_secs: u64,
    /// Seconds a response (an export, a WebSocket) may wait on a client
    /// that takes no byte before the connection is closed.
    pub write_stall_secs: u64,
    /// Seconds a CDR export may run in all.
    pub export_total_secs: u64,
    pub exports_per_tenant: usize,
    pub exports_total: usize,
    /// PEM certificate chain and private key: HTTPS when both are set.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    pub username: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    pub direction_vocabulary: String,
    /// Target events also carry PortSIP's misspelt `destiantion` key
    /// (SPEC §4: on by default, so PortSIP integrations work unchanged).
    pub misspelt_destination: bool,
    /// Days committed events stay in the outbox (WebSocket resume, webhook
    /// replay); at least 2, the webhook retry span.
    pub retention_days: u32,
    /// Milliseconds the CDR facts of different calls may gather before
    /// they are committed together (0 to 1,000; default 20): every
    /// commit wakes the store writer, the outbox relay and the webhook
    /// fan-out, so at low load this bounds those wake-ups to 50 a second
    /// for at most this much added event latency (DESIGN.md, "CDR
    /// commits"; issue 18).
    pub commit_linger_ms: u64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WsiConfig {
    /// Events a WebSocket connection may have queued (SPEC §6).
    pub send_queue: usize,
    /// Seconds between keep-alive pings (SPEC §6: 25).
    pub ping_secs: u64,
    /// Seconds between two checks of a connection's credential.
    pub revalidate_secs: u64,
}

/// `[cluster]`: liveness, take-over and cross-node wake-ups (`crate::cluster`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    pub heartbeat_ms: u64,
    pub lease_secs: u64,
    pub notify: bool,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            heartbeat_ms: 2000,
            lease_secs: 15,
            notify: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownConfig {
    pub grace_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./tally-data"),
            database: None,
            node: 0,
            sip: SipConfig::default(),
            http: HttpConfig::default(),
            admin: AdminConfig::default(),
            events: EventsConfig::default(),
            wsi: WsiConfig::default(),
            shutdown: ShutdownConfig::default(),
            cluster: ClusterConfig::default(),
            webhooks: WebhooksConfig::default(),
            metrics: MetricsConfig::default(),
            identity: IdentityConfig::default(),
            media: MediaConfig::default(),
            recordings: RecordingsConfig::default(),
            transfer: TransferConfig::default(),
            security: SecurityConfig::default(),
            trunks: TrunksConfig::default(),
        }
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 5060,
            advertise: None,
            udp: true,
            tcp: true,
            tcp_idle_secs: 600,
            tcp_max_connections: 10_000,
            digest_algorithms: vec!["MD5".to_owned()],
            tenant_digest_algorithms: std::collections::BTreeMap::new(),
            allow_digest_without_qop: false,
            tcp_max_connections_per_source: 256,
            tls_port: None,
            tls_cert: None,
            tls_key: None,
            tls_phone_ca: None,
            max_transactions: sip::transaction::TransactionLimits::default().max_server,
            max_transactions_per_source: sip::transaction::TransactionLimits::default()
                .max_server_per_source,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8887,
            max_connections: 1024,
            header_read_secs: 10,
            write_stall_secs: 30,
            export_total_secs: 15 * 60,
            exports_per_tenant: 2,
            exports_total: 4,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            username: "admin".to_owned(),
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            direction_vocabulary: "classic".to_owned(),
            misspelt_destination: true,
            retention_days: 7,
            commit_linger_ms: 20,
        }
    }
}

impl Default for WsiConfig {
    fn default() -> Self {
        WsiConfig {
            send_queue: 1024,
            ping_secs: 25,
            revalidate_secs: 10,
        }
    }
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig { grace_secs: 5 }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors (a typo must not be
    /// silently ignored).
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid configuration file {}", path.display()))
    }

    /// Refuses settings that cannot work, before anything is opened.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.node >= cdr::NODE_COUNT {
            bail!("node must be below {}, got {}", cdr::NODE_COUNT, self.node);
        }
        if !self.sip.udp && !self.sip.tcp {
            bail!("sip.udp and sip.tcp are both off: nothing would listen for SIP");
        }
        if self.sip.tcp_idle_secs == 0 {
            bail!("sip.tcp_idle_secs must be at least 1");
        }
        if self.sip.tcp_max_connections == 0 {
            bail!("sip.tcp_max_connections must be at least 1");
        }
        self.metrics_access()?;
        if self.sip.tls_port.is_some()
            && (self.sip.tls_cert.is_none() || self.sip.tls_key.is_none())
        {
            bail!("sip.tls_port needs sip.tls_cert and sip.tls_key");
        }
        if self.sip.tcp_max_connections_per_source == 0 {
            bail!("sip.tcp_max_connections_per_source must be at least 1");
        }
        if self.sip.max_transactions == 0 || self.sip.max_transactions_per_source == 0 {
            bail!("sip.max_transactions and sip.max_transactions_per_source must be at least 1");
        }
        if self.cluster.heartbeat_ms == 0
            || self.cluster.heartbeat_ms.saturating_mul(2) > self.cluster.lease_secs * 1000
        {
            bail!(
                "cluster.heartbeat_ms must be at least 1 and at most half of cluster.lease_secs \
                 (a live node must beat at least twice per lease)"
            );
        }
        if self.admin.username.trim().is_empty() {
            bail!("admin.username is empty");
        }
        self.wire_profile()?;
        self.retention()?;
        self.digest_offers()?;
        self.rtp_ports()?;
        if self.media.rtp_timeout_secs == 0 {
            bail!("media.rtp_timeout_secs must be at least 1");
        }
        if self.wsi.send_queue == 0 {
            bail!("wsi.send_queue must be at least 1");
        }
        if self.events.commit_linger_ms > 1_000 {
            bail!("events.commit_linger_ms must be 0 to 1000");
        }
        if !(1..=3600).contains(&self.wsi.ping_secs) {
            bail!("wsi.ping_secs must be 1 to 3600");
        }
        ::delivery::webhook::AllowList::parse(&self.webhooks.allow)
            .map_err(|e| anyhow::anyhow!("webhooks.allow: {e}"))?;
        if self.webhooks.concurrency == 0 {
            bail!("webhooks.concurrency must be at least 1");
        }
        if self.webhooks.lease_secs < 20 {
            bail!("webhooks.lease_secs must be at least 20 (an attempt may take 15 s)");
        }
        if self
            .webhooks
            .retry_schedule_ms
            .as_ref()
            .is_some_and(|s| s.len() > 32)
        {
            bail!("webhooks.retry_schedule_ms: at most 32 retries");
        }
        Ok(())
    }

    /// `media.rtp_ports` as (first, last): at least one even/odd pair.
    pub fn rtp_ports(&self) -> anyhow::Result<(u16, u16)> {
        let parsed = self.media.rtp_ports.split_once('-').and_then(|(a, b)| {
            Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?))
        });
        match parsed {
            Some((first, last)) if first >= 1024 && last > first + first % 2 => Ok((first, last)),
            _ => bail!(
                "media.rtp_ports must be `first-last` with 1024 <= first and room for one even/odd pair, got {:?}",
                self.media.rtp_ports
            ),
        }
    }

    /// Where recordings are written: `recordings.dir`, or `recordings`
    /// under the data directory.
    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    pub fn database_url(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!("sqlite:{}", self.data_dir.join("tally.db").display()),
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.sip.bind, self.sip.port)
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.http.bind, self.http.port)
    }

    pub fn wire_profile(&self) -> anyhow::Result<cdr::WireProfile> {
        let vocabulary = cdr::DirectionVocabulary::parse_config(&self.events.direction_vocabulary)
            .context("events.direction_vocabulary")?;
        Ok(cdr::WireProfile {
            direction_vocabulary: vocabulary,
            misspelt_destination: self.events.misspelt_destination,
        })
    }

    pub fn retention(&self) -> anyhow::Result<delivery::Retention> {
        delivery::Retention::days(self.events.retention_days)
            .map_err(anyhow::Error::msg)
            .context("events.retention_days")
    }

    pub fn wsi_ping(&self) -> Duration {
        Duration::from_secs(self.wsi.ping_secs)
    }

    pub fn wsi_revalidate(&self) -> Duration {
        Duration::from_secs(self.wsi.revalidate_secs.max(1))
    }

    pub fn tcp_limits(&self) -> crate::transport::tcp::TcpLimits {
        crate::transport::tcp::TcpLimits {
            idle: Duration::from_secs(self.sip.tcp_idle_secs),
            max_connections: self.sip.tcp_max_connections,
            max_per_source: self.sip.tcp_max_connections_per_source,
        }
    }

    /// The default digest offer and the per-domain ones.
    pub fn digest_offers(&self) -> anyhow::Result<DigestOffers> {
        let default = pbx::DigestOffer::from_names(&self.sip.digest_algorithms)
            .context("sip.digest_algorithms")?;
        let tenants = self
            .sip
            .tenant_digest_algorithms
            .iter()
            .map(|(domain, names)| {
                pbx::DigestOffer::from_names(names)
                    .map(|offer| (domain.clone(), offer))
                    .with_context(|| format!("sip.tenant_digest_algorithms.{domain:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(DigestOffers { default, tenants })
    }

    pub fn transaction_limits(&self) -> sip::transaction::TransactionLimits {
        sip::transaction::TransactionLimits {
            max_server: self.sip.max_transactions,
            max_server_per_source: self.sip.max_transactions_per_source,
            ..Default::default()
        }
    }

    /// Who may scrape `/metrics`; refuses an invalid CIDR or an empty token.
    pub fn metrics_access(&self) -> anyhow::Result<crate::metrics::Access> {
        let allow = self
            .metrics
            .allow
            .iter()
            .map(|c| {
                c.parse().map_err(|e: delivery::webhook::CidrError| {
                    anyhow::anyhow!("metrics.allow: {e}")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let token = self.metrics.token.as_deref();
        if token.is_some_and(|t| t.trim().len() < 16) {
            bail!("metrics.token must be at least 16 characters");
        }
        Ok(crate::metrics::Access::new(allow, token))
    }

    pub fn http_limits(&self) -> crate::api::HttpLimits {
        crate::api::HttpLimits {
            max_connections: self.http.max_connections.max(1),
            header_read: Duration::from_secs(self.http.header_read_secs.max(1)),
            write_stall: Duration::from_secs(self.http.write_stall_secs.max(1)),
        }
    }

    pub fn api_policy(&self) -> crate::api::Policy {
        crate::api::Policy {
            exports: self.exports(),
            session_lifetime: Duration::from_secs(self.identity.session_lifetime_secs.max(1)),
            allow_ip_sip_domains: self.identity.allow_ip_sip_domains,
        }
    }

    /// How CDR exports are bounded; the stall deadline is the HTTP write
    /// deadline, so a client that stops reading loses both together.
    pub fn exports(&self) -> std::sync::Arc<store::ExportSlots> {
        store::ExportSlots::new(
            self.http.exports_per_tenant,
            self.http.exports_total,
            store::ExportLimits {
                stall: Duration::from_secs(self.http.write_stall_secs.max(1)),
                total: Duration::from_secs(self.http.export_total_secs.max(1)),
            },
        )
    }

    /// The HTTPS configuration, when a certificate is configured.
    pub fn http_tls(&self) -> anyhow::Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        match (&self.http.tls_cert_file, &self.http.tls_key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(
                crate::api::server::tls_config(cert, key).context("[http] TLS")?,
            )),
            _ => bail!("[http] tls_cert_file and tls_key_file go together"),
        }
    }

    pub fn cluster_heartbeat(&self) -> Duration {
        Duration::from_millis(self.cluster.heartbeat_ms)
    }

    pub fn cluster_lease(&self) -> Duration {
        Duration::from_secs(self.cluster.lease_secs)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown.grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_is_the_issue_defaults() {
        let c = Config::default();
        assert_eq!(c.sip_addr().to_string(), "0.0.0.0:5060");
        assert_eq!(c.http_addr().to_string(), "127.0.0.1:8887");
        assert_eq!(c.database_url(), "sqlite:./tally-data/tally.db");
        c.check().unwrap();
    }

    #[test]
    fn transfer_on_failure_defaults_to_recall_and_takes_hangup() {
        assert_eq!(
            Config::default().transfer.on_failure,
            TransferOnFailure::Recall
        );
        let c: Config = toml::from_str("[transfer]\non_failure = \"hangup\"\n").unwrap();
        assert_eq!(
            pbx::TransferOnFailure::from(c.transfer.on_failure),
            pbx::TransferOnFailure::Hangup
        );
        assert!(toml::from_str::<Config>("[transfer]\non_failure = \"drop\"\n").is_err());
    }

    #[test]
    fn the_media_and_recordings_sections_default_and_check() {
        let c = Config::default();
        assert_eq!(c.rtp_ports().unwrap(), (20000, 30000));
        assert_eq!(c.media.anchor, crate::media::Anchor::Auto);
        assert_eq!(c.media.rtp_timeout_secs, 60);
        assert_eq!(c.recordings_dir(), PathBuf::from("./tally-data/recordings"));
        let c: Config = toml::from_str(
            "[media]\nrtp_ports = \"40000-40999\"\nanchor = \"always\"\n[recordings]\ndir = \"/r\"\nretention_days = 7\n",
        )
        .unwrap();
        c.check().unwrap();
        assert_eq!(c.rtp_ports().unwrap(), (40000, 40999));
        assert_eq!(c.media.anchor, crate::media::Anchor::Always);
        assert_eq!(c.recordings_dir(), PathBuf::from("/r"));
        for bad in [
            "30000",
            "30000-30000",
            "30001-30002",
            "80-90",
            "a-b",
            "40000-30000",
        ] {
            let c: Config = toml::from_str(&format!("[media]\nrtp_ports = \"{bad}\"\n")).unwrap();
            assert!(c.check().is_err(), "{bad}");
        }
        assert!(toml::from_str::<Config>("[media]\nanchor = \"sometimes\"\n").is_err());
        let zero: Config = toml::from_str("[media]\nrtp_timeout_secs = 0\n").unwrap();
        assert!(zero.check().is_err());
    }

    #[test]
    fn a_file_overrides_what_it_names() {
        let c: Config = toml::from_str(
            "database = \"postgres://db/tally\"\n[sip]\nport = 5080\n[http]\nport = 9000\n",
        )
        .unwrap();
        assert_eq!(c.sip.port, 5080);
        assert!(c.sip.udp && c.sip.tcp);
        assert_eq!(c.http_addr().to_string(), "127.0.0.1:9000");
        assert_eq!(c.database_url(), "postgres://db/tally");
    }

    #[test]
    fn the_webhooks_section_defaults_to_spec_and_checks_its_values() {
        let c = Config::default();
        assert!(c.webhooks.allow.is_empty());
        assert_eq!(c.webhooks.retry_schedule_ms, None);
        let c: Config = toml::from_str(
            "[webhooks]\nallow = [\"127.0.0.1/32\"]\nretry_schedule_ms = [100, 200]\n",
        )
        .unwrap();
        c.check().unwrap();
        assert_eq!(c.webhooks.retry_schedule_ms, Some(vec![100, 200]));
        let bad: Config = toml::from_str("[webhooks]\nallow = [\"localhost\"]\n").unwrap();
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .contains("webhooks.allow")
        );
        assert!(toml::from_str::<Config>("[webhooks]\nallowed = []\n").is_err());
    }

    #[test]
    fn digest_algorithms_default_to_md5_and_are_checked() {
        let c = Config::default();
        let offers = c.digest_offers().unwrap();
        assert_eq!(offers.default, pbx::DigestOffer::Md5Only);
        assert!(offers.tenants.is_empty());
        assert!(!c.sip.allow_digest_without_qop);
        let c: Config = toml::from_str(
            "[sip]\ndigest_algorithms = [\"sha-256\", \"MD5\"]\nallow_digest_without_qop = true\n\
             [sip.tenant_digest_algorithms]\n\"a.example\" = [\"SHA-256\"]\n",
        )
        .unwrap();
        c.check().unwrap();
        let offers = c.digest_offers().unwrap();
        assert_eq!(offers.default, pbx::DigestOffer::Sha256ThenMd5);
        assert_eq!(
            offers.tenants,
            [("a.example".to_owned(), pbx::DigestOffer::Sha256Only)]
        );
        for (bad, field) in [
            ("[sip]\ndigest_algorithms = []\n", "sip.digest_algorithms"),
            (
                "[sip]\ndigest_algorithms = [\"SHA-1\"]\n",
                "sip.digest_algorithms",
            ),
            (
                "[sip]\ndigest_algorithms = [\"MD5-sess\"]\n",
                "sip.digest_algorithms",
            ),
            (
                "[sip]\ndigest_algorithms = [\"MD5\", \"md5\"]\n",
                "sip.digest_algorithms",
            ),
            (
                "[sip.tenant_digest_algorithms]\n\"b.example\" = [\"SHA-512\"]\n",
                "b.example",
            ),
        ] {
            let c: Config = toml::from_str(bad).unwrap();
            let e = format!("{:#}", c.check().unwrap_err());
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn the_misspelt_destination_is_sent_unless_switched_off() {
        let c = Config::default();
        assert_eq!(c.wire_profile().unwrap(), cdr::WireProfile::default());
        assert!(c.wire_profile().unwrap().misspelt_destination);
        let c: Config = toml::from_str("[events]\nmisspelt_destination = false\n").unwrap();
        assert!(!c.wire_profile().unwrap().misspelt_destination);
        // The old name is gone rather than silently ignored.
        assert!(toml::from_str::<Config>("[events]\nportsip_compat = true\n").is_err());
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("[sip]\nprot = 5080\n").is_err());
        let mut c = Config::default();
        c.events.direction_vocabulary = "modern".into();
        assert!(c.check().is_err());
        let c = Config {
            node: 1024,
            ..Config::default()
        };
        assert!(c.check().is_err());
        let mut c = Config::default();
        c.events.retention_days = 1;
        assert!(c.check().is_err(), "retention below the webhook retry span");
        c.events.retention_days = 2;
        c.check().unwrap();
        c.wsi.send_queue = 0;
        assert!(c.check().is_err());
        c.wsi.send_queue = 1;
        c.wsi.ping_secs = 0;
        assert!(c.check().is_err());
        let mut c = Config::default();
        c.sip.tcp_max_connections = 0;
        assert!(c.check().is_err());
        let mut c = Config::default();
        c.sip.tcp_idle_secs = 0;
        assert!(c.check().is_err());
        let mut c: Config =
            toml::from_str("[cluster]\nlease_secs = 3\nheartbeat_ms = 1500\n").unwrap();
        c.check().unwrap();
        c.cluster.heartbeat_ms = 1501;
        assert!(c.check().is_err(), "fewer than two beats per lease");
        c.cluster.heartbeat_ms = 0;
        assert!(c.check().is_err());
    }

    #[test]
    fn the_commit_linger_defaults_to_20_ms_and_is_bounded() {
        let c = Config::default();
        assert_eq!(c.events.commit_linger_ms, 20);
        let mut c: Config = toml::from_str("[events]\ncommit_linger_ms = 0\n").unwrap();
        c.check().unwrap();
        c.events.commit_linger_ms = 1_000;
        c.check().unwrap();
        c.events.commit_linger_ms = 1_001;
        assert!(c.check().is_err());
    }
}
