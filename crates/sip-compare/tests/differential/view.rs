//! What the differential test compares: the values a proxy or UAS reads
//! first, in one neutral shape that each parser's output is mapped into.
//!
//! Text is compared as the RFC defines its meaning, not as each library
//! prints it: URI users %-decoded, IPv6 references in their canonical form,
//! transports upper-cased (a case-insensitive token, RFC 3261 §25.1 and
//! RFC 5234 §2.3), display names unquoted and unescaped.

use std::fmt;

/// A parser's verdict on one message: the values, or why it refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept(Box<Fields>),
    Reject(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Start {
    Request { method: String, uri: UriView },
    Response { code: u16 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriView {
    Sip {
        secure: bool,
        /// The user part, %-decoded.
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
    /// Any other scheme (tel, urn, …), as written.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViaView {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddrView {
    pub display: Option<String>,
    pub uri: UriView,
    pub tag: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    pub start: Start,
    pub via: ViaView,
    pub from: AddrView,
    pub to: AddrView,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: String,
}

impl Fields {
    /// The fields by name, for a field-by-field comparison whose
    /// disagreements name what differs.
    pub fn named(&self) -> Vec<(&'static str, String)> {
        let start = match &self.start {
            Start::Request { method, uri } => {
                [("method", method.clone()), ("request_uri", uri.to_string())]
            }
            Start::Response { code } => [("status", code.to_string()), ("request_uri", "-".into())],
        };
        let mut out: Vec<(&'static str, String)> = start.into_iter().collect();
        out.extend([
            ("via.transport", self.via.transport.clone()),
            ("via.host", self.via.host.clone()),
            ("via.port", opt(&self.via.port)),
            ("via.branch", opt(&self.via.branch)),
            ("from.display", opt(&self.from.display)),
            ("from.uri", self.from.uri.to_string()),
            ("from.tag", opt(&self.from.tag)),
            ("to.display", opt(&self.to.display)),
            ("to.uri", self.to.uri.to_string()),
            ("to.tag", opt(&self.to.tag)),
            ("call_id", self.call_id.clone()),
            ("cseq", self.cseq.to_string()),
            ("cseq.method", self.cseq_method.clone()),
        ]);
        out
    }
}

fn opt<T: fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "none".into(),
    }
}

impl fmt::Display for UriView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriView::Sip {
                secure,
                user,
                host,
                port,
            } => {
                write!(f, "{}:", if *secure { "sips" } else { "sip" })?;
                if let Some(u) = user {
                    write!(f, "{u:?}@")?;
                }
                f.write_str(host)?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
            UriView::Other(s) => f.write_str(s),
        }
    }
}

/// Canonical text of an IP address as a host (`[v6]` bracketed).
pub fn ip_host(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => format!("[{a}]"),
    }
}

pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
