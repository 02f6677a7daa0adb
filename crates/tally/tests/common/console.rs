//! The console over plain HTTP/1.1 with cookies: raw exchanges, the
//! cookie jar of `Set-Cookie` answers, and a form sign-in.

use std::io::{Read, Write};

use super::{Server, WAIT};

/// One raw HTTP/1.1 exchange with cookies and a form body: (status,
/// headers with lower-case names, body as text).
pub fn raw(
    server: &Server,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
) -> (u16, Vec<(String, String)>, String) {
    let (status, headers, body) = raw_bytes(server, method, path, cookies, form, "");
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// [`raw`] with `extra` request headers (each ending in CRLF) and the
/// body as bytes.
pub fn raw_bytes(
    server: &Server,
    method: &str,
    path: &str,
    cookies: &str,
    form: &str,
    extra: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(server.http).expect("connect");
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {cookies}\r\n{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        server.http,
        form.len()
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

/// The `name=value` of each `Set-Cookie`, joined for a `Cookie` header.
pub fn cookies_of(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next())
        .filter(|c| !c.ends_with('='))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn csrf_of(cookies: &str) -> String {
    cookies
        .split("; ")
        .find_map(|c| c.strip_prefix("tally_csrf="))
        .expect("a CSRF cookie")
        .to_owned()
}

/// Signs in through the console's form (a tenant user when `domain` is
/// given, else the system admin); the session's cookies.
pub fn sign_in(server: &Server, domain: Option<&str>, username: &str, password: &str) -> String {
    let (_, headers, _) = raw(server, "GET", "/console/sign-in", "", "");
    let jar = cookies_of(&headers);
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("csrf", &csrf_of(&jar));
    if let Some(domain) = domain {
        form.append_pair("domain", domain);
    }
    form.append_pair("username", username);
    form.append_pair("password", password);
    let (status, headers, body) = raw(server, "POST", "/console/sign-in", &jar, &form.finish());
    assert_eq!(status, 303, "console sign-in of {username}: {body}");
    cookies_of(&headers)
}
