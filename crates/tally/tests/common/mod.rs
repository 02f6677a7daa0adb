//! Test harness: the real `tally` binary on loopback ports with a temporary
//! data directory, a small HTTP/1.1 client, SIP phones over UDP, and SIPp.
//! Every wait is bounded.

#![allow(dead_code, unused_imports)] // each test file uses part of the harness

pub mod console;
pub mod flows;
pub mod http;
pub mod pcap;
pub mod pg;
pub mod phone;
pub mod receiver;
pub mod rtp_caller;
pub mod webdriver;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use http::Http;
pub use phone::Phone;

pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// Longest wait for anything the server should do at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// A port free on 127.0.0.1 for both UDP and TCP (SIP listens on both).
///
/// Taken below the ephemeral range (Linux: 32768 and up), so no socket
/// bound to port 0 or connecting out, in this test or another, can take it
/// between this check and the server binding it; a per-process counter
/// keeps concurrent tests of one binary apart, the process id binaries.
pub fn free_sip_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 400) * 30;
    for _ in 0..2_000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(20_000 + (offset + n) % 10_000) else {
            continue;
        };
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free UDP+TCP port");
}

pub fn free_tcp_port() -> u16 {
    free_sip_port()
}

/// A base port for SIPp's RTP sockets (it binds it and the next three),
/// from a range of its own: 30000–32767, below the ephemeral range.
pub fn free_media_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 60) * 40;
    for _ in 0..600 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let Ok(port) = u16::try_from(30_000 + ((offset + n * 4) % 2_700)) else {
            continue;
        };
        if (port..port + 4).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
            return port;
        }
    }
    panic!("no free media ports");
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tally-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `tally serve`.
pub struct Server {
    child: Option<Child>,
    pub sip: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    /// Lines the server printed on stdout (credentials).
    stdout: mpsc::Receiver<String>,
    pub stdout_lines: Vec<String>,
    stderr_path: PathBuf,
}

impl Server {
    /// Starts the binary on fresh ports with `data_dir` and `extra` flags,
    /// and waits until the HTTP port answers.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_as(data_dir, ADMIN_PASSWORD, extra)
    }

    /// [`Server::start`] with another system admin password.
    pub fn start_as(data_dir: &Path, admin_password: &str, extra: &[&str]) -> Server {
        let sip_port = free_sip_port();
        let http_port = free_tcp_port();
        let stderr_path = data_dir.join(format!("stderr-{sip_port}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--sip-bind", "127.0.0.1", "--sip-port"])
            .arg(sip_port.to_string())
            .args(["--http-bind", "127.0.0.1", "--http-port"])
            .arg(http_port.to_string())
            .args(["--admin-password", admin_password])
            .args(extra)
            .env("RUST_LOG", "info,tally=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start tally");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child: Some(child),
            sip: SocketAddr::from(([127, 0, 0, 1], sip_port)),
            http: SocketAddr::from(([127, 0, 0, 1], http_port)),
            data_dir: data_dir.to_owned(),
            stdout: rx,
            stdout_lines: Vec::new(),
            stderr_path,
        };
        server.wait_until_ready();
        server
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.try_exit_status() {
                panic!("tally exited early ({status}):\n{}", self.stderr());
            }
            if TcpStream::connect_timeout(&self.http, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tally did not open its HTTP port:\n{}", self.stderr());
    }

    pub fn http(&self) -> Http {
        Http::new(self.http)
    }

    /// Logs in as the system admin.
    pub fn admin(&self) -> Http {
        let mut http = self.http();
        http.login(ADMIN_PASSWORD);
        http
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_stdout(&mut self, needle: &str) -> String {
        if let Some(l) = self.stdout_lines.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no stdout line with {needle:?}; got {:?}\n{}",
            self.stdout_lines,
            self.stderr()
        );
    }

    /// Waits (bounded) for a line of the server's log matching `line`.
    pub fn wait_stderr(&self, line: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !self.stderr().lines().any(&line) {
            assert!(
                Instant::now() < deadline,
                "the expected log line never came:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends signal `name` (`HUP`, `TERM`…) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(self) -> (ExitStatus, Duration) {
        self.signal("TERM");
        self.wait_exit()
    }

    /// Sends SIGTERM without waiting.
    pub fn send_term(&self) {
        self.signal("TERM");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        let deadline = started + WAIT;
        loop {
            if let Some(status) = self.try_exit_status() {
                self.child = None;
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                panic!("tally did not exit after SIGTERM:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash, for recovery tests.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- tally's log ({}) ---\n{}", self.sip, self.stderr());
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// 102 registers, 101 calls it, 102 answers, 101 hangs up after about a
/// second. Returns the session id the PBX gave the call (`X-Session-Id`).
pub fn answered_call(server: &Server, domain: &str) -> String {
    let mut callee = Phone::new("102", "s3cret-102", domain, server.sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", domain, server.sip);
    // The callee answers in its own thread, and waits for the BYE.
    let answering = std::thread::spawn(move || {
        let invite = callee.recv_request("INVITE");
        callee.reply(&invite, 180, "b1");
        callee.reply(&invite, 200, "b1");
        let _ack = callee.recv_request("ACK");
        let bye = callee.recv_request("BYE");
        callee.reply(&bye, 200, "b1");
        invite
    });
    let mut rang = false;
    let mut call = caller.invite("102", |m| rang |= m.status() == Some(180));
    assert_eq!(call.status, 200);
    assert!(rang, "the 180 was relayed");
    caller.ack(&call, "102");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(caller.bye(&mut call, "102"), 200);
    let invite = answering.join().expect("callee thread");
    invite
        .header_named("X-Session-Id")
        .expect("X-Session-Id on the INVITE to the callee")
        .to_owned()
}

/// Polls `GET /api/cdrs` until it lists `n` CDRs.
pub fn wait_for_cdrs(admin: &Http, n: u64) -> serde_json::Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = admin.get("/api/cdrs");
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        if v["count"] == n {
            return v;
        }
        assert!(Instant::now() < deadline, "CDRs: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether SIPp can run here; prints why a test is skipped otherwise.
pub fn sipp_available(test: &str) -> bool {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        println!(
            "SKIPPED {test}: sipp is not installed (CI installs it: apt-get install sip-tester)"
        );
    }
    ok
}

/// One SIPp run: `scenario` (a file under `tests/sipp/` at the repository
/// root), one call, from 127.0.0.1:`port` to `target`, its logs kept in a
/// directory of its own.
pub struct Sipp {
    child: Child,
    logs: TempDir,
}

impl Sipp {
    pub fn spawn(
        target: SocketAddr,
        scenario: &str,
        transport: &str,
        port: u16,
        extra: &[&str],
    ) -> Sipp {
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/sipp")
            .join(scenario);
        let logs = TempDir::new("sipp");
        let child = Command::new("sipp")
            .current_dir(logs.path())
            .arg("-sf")
            .arg(&file)
            .arg(target.to_string())
            .args(["-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            // RTP sockets of their own: SIPps running side by side.
            .arg("-mp")
            .arg(free_media_port().to_string())
            .args([
                "-t",
                transport,
                "-m",
                "1",
                "-timeout",
                "15",
                "-timeout_error",
                "-nostdin",
            ])
            .args(["-trace_logs", "-log_file", "log.txt"])
            .args(["-trace_err", "-error_file", "errors.txt"])
            .args(["-trace_msg", "-message_file", "messages.txt"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp");
        Sipp { child, logs }
    }

    /// Stops SIPp (a phone left answering calls until the test ends).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for SIPp to finish: whether its call succeeded, and
    /// what it logged.
    pub fn finish(mut self) -> (bool, String) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut text = String::new();
        for f in ["log.txt", "errors.txt", "messages.txt"] {
            if let Ok(s) = std::fs::read_to_string(self.logs.path().join(f)) {
                text.push_str(&s);
            }
        }
        (status.is_some_and(|s| s.success()), text)
    }
}

/// Runs one SIPp call of `scenario` against `target` from a free port.
pub fn sipp(target: SocketAddr, scenario: &str, transport: &str, extra: &[&str]) -> (bool, String) {
    Sipp::spawn(target, scenario, transport, free_sip_port(), extra).finish()
}
