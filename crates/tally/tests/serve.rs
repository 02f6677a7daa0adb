//! End to end: the real `tally` binary, SIPp phones, the REST CDR list.
//!
//! Every wait is bounded; a test that cannot finish fails within ~30 s.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tally-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A running `tally serve --demo`, killed on drop.
struct Server {
    child: Child,
    sip: SocketAddr,
    http: SocketAddr,
    token: String,
    tenant: String,
    passwords: Vec<(String, String)>,
    dir: PathBuf,
}

impl Server {
    fn start(name: &str) -> Server {
        Server::start_in(temp_dir(name), None, None)
    }

    /// Starts on `dir` (possibly a previous run's); `token` is the admin
    /// token when this is not the first start (it is printed only once).
    fn start_in(dir: PathBuf, token: Option<String>, sip: Option<SocketAddr>) -> Server {
        let sip = sip.unwrap_or_else(|| format!("127.0.0.1:{}", free_udp_port()).parse().unwrap());
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()).parse().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .args(["serve", "--demo", "--sip-addr", &sip.to_string()])
            .args(["--http-addr", &http.to_string()])
            .arg("--data-dir")
            .arg(&dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tally");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("tally| {line}");
                if tx.send(line).is_err() {
                    // Keep draining so the server never blocks on stdout.
                    continue;
                }
            }
        });
        let (mut token, mut tenant, mut passwords) = (token, None, Vec::new());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    panic!("tally did not print `ready` in time");
                }
            };
            if let Some(rest) = line.strip_prefix("Admin API token: ") {
                if !rest.starts_with('(') {
                    token = Some(rest.trim().to_owned());
                }
            } else if let Some(rest) = line.split("(tenant id ").nth(1) {
                tenant = Some(rest.trim_end_matches(')').to_owned());
            } else if line == "ready" {
                break;
            } else {
                let words: Vec<&str> = line.split_whitespace().collect();
                if let [ext, password] = words[..]
                    && ext.len() == 3
                    && ext.starts_with("10")
                {
                    passwords.push((ext.to_owned(), password.to_owned()));
                }
            }
        }
        Server {
            child,
            sip,
            http,
            token: token.expect("admin token printed"),
            tenant: tenant.expect("tenant id printed"),
            passwords,
            dir,
        }
    }

    fn password(&self, ext: &str) -> &str {
        &self
            .passwords
            .iter()
            .find(|(e, _)| e == ext)
            .expect("password printed")
            .1
    }

    /// `GET path` with the admin token and the demo tenant: (status, body).
    fn get(&self, path: &str, auth: bool) -> (u16, Value) {
        let mut stream = TcpStream::connect_timeout(&self.http, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.http
        );
        if auth {
            request.push_str(&format!(
                "Authorization: Bearer {}\r\nX-Tenant-Id: {}\r\n",
                self.token, self.tenant
            ));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).expect("JSON body"))
    }

    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        wait_bounded(&mut self.child, Duration::from_secs(5)).expect("tally exits after SIGTERM")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // TALLY_TEST_KEEP=1 keeps the data directory and SIPp's traces.
        if std::env::var_os("TALLY_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn sigterm_exits_zero_and_rest_checks_identity() {
    let mut server = Server::start("sigterm");
    assert_eq!(server.passwords.len(), 5, "demo extensions 101-105");

    let (status, body) = server.get("/api/cdrs", true);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["count"], 0);
    assert_eq!(body["items"], Value::Array(vec![]));

    let (status, body) = server.get("/api/cdrs", false);
    assert_eq!(status, 401);
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");

    let (status, body) = server.get("/api/cdrs?top=0", true);
    assert_eq!(status, 400);
    assert_eq!(body["errors"][0]["code"], "VALIDATION_ERROR");

    let (status, body) = server.get("/api/cdrs/12345", true);
    assert_eq!(status, 404);
    assert_eq!(body["errors"][0]["code"], "CDR_NOT_FOUND");

    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
}

#[test]
fn restart_keeps_demo_credentials_and_token() {
    let mut first = Server::start("restart");
    assert!(first.terminate().success());
    let (dir, token, tenant, passwords) = (
        first.dir.clone(),
        first.token.clone(),
        first.tenant.clone(),
        first.passwords.clone(),
    );
    // Keep the directory for the second run: forget the first server.
    first.dir = PathBuf::new();
    drop(first);

    let mut second = Server::start_in(dir, Some(token), None);
    assert_eq!(second.tenant, tenant, "same demo tenant");
    assert_eq!(second.passwords, passwords, "same demo passwords");
    let (status, body) = second.get("/api/cdrs", true);
    assert_eq!(status, 200, "the first start's token still works: {body}");
    assert!(second.terminate().success());
}

fn sipp() -> Option<PathBuf> {
    ["/usr/bin/sipp", "/usr/local/bin/sipp"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sipp")
        .join(name)
}

/// A SIPp run of `scenario` from 127.0.0.1:`port` to `remote`, one call.
fn sipp_command(
    sipp: &Path,
    dir: &Path,
    remote: SocketAddr,
    name: &str,
    port: u16,
    extra: &[&str],
) -> Command {
    let mut command = Command::new(sipp);
    command
        .current_dir(dir)
        .arg(remote.to_string())
        .arg("-sf")
        .arg(scenario(name))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "15",
            "-timeout_error",
            "-trace_msg",
            "-trace_err",
        ])
        .args(["-mp", &free_udp_port().to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

fn run_bounded(mut command: Command, what: &str) {
    let mut child = command.spawn().expect("start sipp");
    let status = wait_bounded(&mut child, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "{what}: sipp failed ({status:?})"
    );
}

#[test]
fn sipp_call_between_two_demo_extensions_makes_one_cdr() {
    let Some(sipp) = sipp() else {
        println!("SKIPPED: sipp not installed");
        return;
    };
    let mut server = Server::start("call");
    let (p101, p102) = (free_udp_port(), free_udp_port());

    // SIPp talks to Tally directly: it answers the first challenge, which
    // is MD5 in Tally's default offer.
    for (ext, port) in [("101", p101), ("102", p102)] {
        let password = server.password(ext);
        run_bounded(
            sipp_command(
                &sipp,
                &server.dir,
                server.sip,
                "register.xml",
                port,
                &[
                    "-s",
                    ext,
                    "-au",
                    ext,
                    "-ap",
                    password,
                    "-auth_uri",
                    "demo.tally.local",
                ],
            ),
            &format!("REGISTER {ext}"),
        );
    }

    // Restart on the same data directory and SIP address: the bindings
    // come back from the store, so 102 is reachable without registering
    // again.
    assert!(server.terminate().success());
    let (dir, token, sip) = (server.dir.clone(), server.token.clone(), server.sip);
    server.dir = PathBuf::new();
    drop(server);
    let server = Server::start_in(dir, Some(token), Some(sip));

    // 102 answers; 101 calls it.
    let mut uas = sipp_command(&sipp, &server.dir, server.sip, "uas.xml", p102, &[])
        .spawn()
        .expect("start sipp uas");
    thread::sleep(Duration::from_millis(500));
    run_bounded(
        sipp_command(
            &sipp,
            &server.dir,
            server.sip,
            "uac.xml",
            p101,
            &[
                "-s",
                "102",
                "-set",
                "caller",
                "101",
                "-au",
                "101",
                "-ap",
                server.password("101"),
                "-auth_uri",
                "102@demo.tally.local",
            ],
        ),
        "call 101 -> 102",
    );
    let uas_status = wait_bounded(&mut uas, Duration::from_secs(10));
    assert!(
        uas_status.is_some_and(|s| s.success()),
        "uas: {uas_status:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = server.get("/api/cdrs", true);
        assert_eq!(status, 200, "{body}");
        if body["count"] == 1 || Instant::now() > deadline {
            break body;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body["count"], 1, "{body}");
    let item = &body["items"][0];
    assert_eq!(item["call_status"], "answered", "{item}");
    assert_eq!(item["caller"], "101", "{item}");
    assert_eq!(item["callee"], "102", "{item}");

    let id = item["id"].as_str().expect("id is a string").to_owned();
    let (status, detail) = server.get(&format!("/api/cdrs/{id}"), true);
    assert_eq!(status, 200, "{detail}");
    let targets = detail["items"][0]["call_targets"]
        .as_array()
        .expect("call_targets");
    assert_eq!(targets.len(), 1, "{detail}");
}

#[test]
fn sipp_call_to_a_busy_extension_makes_a_failed_cdr() {
    let Some(sipp) = sipp() else {
        println!("SKIPPED: sipp not installed");
        return;
    };
    let server = Server::start("busy");
    let (p101, p102) = (free_udp_port(), free_udp_port());
    // Only the callee registers: an authenticated extension may call
    // without a binding of its own.
    run_bounded(
        sipp_command(
            &sipp,
            &server.dir,
            server.sip,
            "register.xml",
            p102,
            &[
                "-s",
                "102",
                "-au",
                "102",
                "-ap",
                server.password("102"),
                "-auth_uri",
                "demo.tally.local",
            ],
        ),
        "REGISTER 102",
    );

    let mut uas = sipp_command(&sipp, &server.dir, server.sip, "uas_busy.xml", p102, &[])
        .spawn()
        .expect("start sipp uas");
    thread::sleep(Duration::from_millis(500));
    run_bounded(
        sipp_command(
            &sipp,
            &server.dir,
            server.sip,
            "uac_busy.xml",
            p101,
            &[
                "-s",
                "102",
                "-set",
                "caller",
                "101",
                "-au",
                "101",
                "-ap",
                server.password("101"),
                "-auth_uri",
                "102@demo.tally.local",
            ],
        ),
        "call 101 -> busy 102",
    );
    let uas_status = wait_bounded(&mut uas, Duration::from_secs(10));
    assert!(
        uas_status.is_some_and(|s| s.success()),
        "uas: {uas_status:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, body) = server.get("/api/cdrs", true);
        assert_eq!(status, 200, "{body}");
        if body["count"] == 1 || Instant::now() > deadline {
            break body;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body["count"], 1, "{body}");
    let item = &body["items"][0];
    // SPEC §3: B rejects (486) -> call `fail`, status_code 486, no end reason.
    assert_eq!(item["call_status"], "fail", "{item}");
    assert_eq!(item["status_code"], 486, "{item}");
    let id = item["id"].as_str().expect("id is a string").to_owned();
    let (status, detail) = server.get(&format!("/api/cdrs/{id}"), true);
    assert_eq!(status, 200, "{detail}");
    let targets = detail["items"][0]["call_targets"]
        .as_array()
        .expect("call_targets");
    assert_eq!(targets.len(), 1, "{detail}");
    assert_eq!(targets[0]["status"], "noanswer", "{detail}");
    assert_eq!(targets[0]["status_code"], 486, "{detail}");
}
