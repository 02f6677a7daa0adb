//! A minimal blocking HTTP/1.1 client (one request per connection), enough
//! for the REST tests without an HTTP client dependency.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use super::WAIT;

/// Longest wait for one HTTP response.
const RESPONSE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// The SPEC §7 error code, asserting the error shape on the way.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let e = &v["errors"][0];
        assert!(e["message"].is_string(), "error without message: {v}");
        assert!(e["detail"].is_object(), "error without detail: {v}");
        e["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code: {v}"))
            .to_owned()
    }

    pub fn error_field(&self) -> String {
        self.json()["errors"][0]["detail"]["field"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// A client for one server, optionally with a bearer token and a tenant.
pub struct Http {
    addr: SocketAddr,
    pub token: Option<String>,
    pub tenant: Option<String>,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            token: None,
            tenant: None,
        }
    }

    pub fn login(&mut self, password: &str) {
        let r = self.form(
            "/api/login/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", "admin"),
                ("password", password),
            ],
        );
        assert_eq!(r.status, 200, "login: {}", r.body);
        let v = r.json();
        self.token = Some(v["access_token"].as_str().expect("access_token").to_owned());
    }

    pub fn request(&self, method: &str, path: &str, content_type: &str, body: &str) -> Response {
        self.request_bytes(method, path, content_type, body.as_bytes())
    }

    /// [`Http::request`] with a body of any bytes (an upload).
    pub fn request_bytes(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Response {
        let mut stream = TcpStream::connect_timeout(&self.addr, WAIT).expect("connect");
        // A response's bound, not a performance check: a sign-in hashes
        // with argon2id, and on a loaded 2-core machine with many servers
        // starting at once it can queue for longer than WAIT.
        stream
            .set_read_timeout(Some(RESPONSE_WAIT))
            .expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if let Some(t) = &self.tenant {
            head.push_str(&format!("X-Tenant-Id: {t}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(body).expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        parse(&raw)
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, "", "")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, "application/json", &body.to_string())
    }

    pub fn form(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        self.request(
            "POST",
            path,
            "application/x-www-form-urlencoded",
            &body.join("&"),
        )
    }

    /// Creates a tenant, asserting 201; returns its id.
    pub fn create_tenant(&self, name: &str, domain: &str) -> String {
        let r = self.post_json(
            "/api/tenants",
            &serde_json::json!({ "name": name, "sip_domain": domain }),
        );
        assert_eq!(r.status, 201, "create tenant: {}", r.body);
        r.json()["id"].as_str().expect("id").to_owned()
    }

    /// Creates a user, asserting 201.
    pub fn create_user(&self, tenant: &str, extension: &str, password: &str) -> Value {
        let r = self.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &serde_json::json!({
                "extension": extension,
                "sip_password": password,
                "display_name": format!("User {extension}"),
            }),
        );
        assert_eq!(r.status, 201, "create user: {}", r.body);
        r.json()
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
