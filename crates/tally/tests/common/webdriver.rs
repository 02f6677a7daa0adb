//! A minimal W3C WebDriver client for the console's browser tests:
//! headless Chromium driven by `chromedriver` on a loopback port, over
//! the harness's own HTTP client. WebDriver is JSON over HTTP, and the
//! few commands the tests need fit here; the WebDriver crates would bring
//! a second `http`, `cookie` and `thiserror` and an ICU stack into the
//! build (`cargo tree -d`), for nothing the tests use.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{TempDir, WAIT, free_tcp_port};

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Chromium binary and its driver, if both are installed.
pub fn chromium() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            let out = Command::new("which").arg(n).output().ok()?;
            let path = String::from_utf8(out.stdout).ok()?;
            let path = path.trim();
            (!path.is_empty()).then(|| PathBuf::from(path))
        })
    };
    let browser = find(&["chromium", "chromium-browser"])?;
    let driver = find(&["chromedriver"])?;
    Some((browser, driver))
}

/// A headless Chromium session, closed (and its driver killed) on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

pub struct Element(String);

impl Browser {
    pub fn start(browser: &Path, driver: &Path) -> Browser {
        let port = free_tcp_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = TempDir::new("chromium-profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,1000",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut b = Browser {
            driver: child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let created = b.call(
            "POST",
            "/session",
            &json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": browser, "args": args},
            }}}),
        );
        b.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        b
    }

    /// One command; returns its `value`, panicking on a WebDriver error.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let (status, text) = exchange(self.addr, method, path, &body);
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}: {text}"));
        assert_eq!(status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    pub fn title(&self) -> String {
        self.session_call("GET", "/title", &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The CSS selector's elements now.
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.session_call(
            "POST",
            "/elements",
            &json!({"using": "css selector", "value": css}),
        )
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
        .collect()
    }

    /// Waits (bounded) for the selector to match, and returns the first.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(css, |found| !found.is_empty())
            .into_iter()
            .next()
            .expect("found")
    }

    /// Waits (bounded) until `check` holds for the selector's elements.
    pub fn wait_for(&self, css: &str, check: impl Fn(&[Element]) -> bool) -> Vec<Element> {
        let deadline = Instant::now() + WAIT * 2;
        loop {
            let found = self.find_all(css);
            if check(&found) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {css:?} on {}:\n{}",
                self.title(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.session_call("POST", &format!("/element/{}/clear", e.0), &json!({}));
        self.session_call(
            "POST",
            &format!("/element/{}/value", e.0),
            &json!({ "text": text }),
        );
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.click_element(&e);
    }

    /// Clicks a button that submits a form and waits until the next page
    /// has loaded (a marker set on the old document is gone), so what is
    /// read next is the answer's page, not the form's.
    pub fn submit(&self, css: &str) {
        self.script("window.__tally_before_submit = true; return null;");
        self.click(css);
        let deadline = Instant::now() + WAIT;
        loop {
            let loaded = self.script(
                "return window.__tally_before_submit === undefined \
                 && document.readyState === 'complete';",
            );
            if loaded == Value::Bool(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no page after submitting {css:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn click_element(&self, e: &Element) {
        self.session_call("POST", &format!("/element/{}/click", e.0), &json!({}));
    }

    pub fn element_text(&self, e: &Element) -> String {
        self.session_call("GET", &format!("/element/{}/text", e.0), &Value::Null)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The visible text of the first match of `css`, waiting (up to
    /// `WAIT`) for it to appear: a click that submits a form returns while
    /// the next page may still be loading. `""` if it never appears.
    pub fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_all(css).first() {
                return self.element_text(e);
            }
            if Instant::now() >= deadline {
                return String::new();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a script in the page (its `return` value comes back).
    pub fn script(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            &json!({ "script": script, "args": [] }),
        )
    }

    /// Saves the viewport as a PNG.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine as _;
        let data = self.session_call("GET", "/screenshot", &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 screenshot"))
            .expect("valid base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| {
                exchange(
                    self.addr,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    "",
                )
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One HTTP/1.1 request to the driver; the answer is read up to its
/// `Content-Length` (chromedriver keeps the connection open after it).
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect to chromedriver");
    // Starting Chromium on a busy 2-core machine takes a while.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("write to chromedriver");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).expect("read status");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("read header") == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut data = vec![0; length];
    reader.read_exact(&mut data).expect("read body");
    (status, String::from_utf8_lossy(&data).into_owned())
}
