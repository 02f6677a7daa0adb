//! A webhook receiver on loopback for the tests: a blocking HTTP/1.1
//! server that records every request (headers, body) and answers a status
//! the test sets (or holds requests while told to).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest wait for a delivery (retries included).
const LIMIT: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Hit {
    pub fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// A blocking HTTP/1.1 receiver on loopback: keep-alive, Content-Length
/// bodies, answers `status` (or holds the request while `hold` is set).
pub struct Receiver {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// The status answered from now on.
    pub status: Arc<AtomicU32>,
    /// While set, requests are held unanswered.
    pub hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(addr: SocketAddr, status: u16) -> Receiver {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "bind {addr}: {e}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        listener.set_nonblocking(true).unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            status: Arc::new(AtomicU32::new(u32::from(status))),
            hold: Arc::default(),
            stop: Arc::default(),
        };
        let (hits, status, hold, stop) = (
            r.hits.clone(),
            r.status.clone(),
            r.hold.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (hits, status, hold, stop) =
                            (hits.clone(), status.clone(), hold.clone(), stop.clone());
                        std::thread::spawn(move || serve(stream, hits, status, hold, stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/tally", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    pub fn ids(&self) -> HashSet<String> {
        self.hits().iter().map(|h| h.id().to_owned()).collect()
    }

    pub fn wait(&self, what: &str, check: impl Fn(&[Hit]) -> bool) {
        let deadline = Instant::now() + LIMIT;
        while !check(&self.hits()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.hits()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    hits: Arc<Mutex<Vec<Hit>>>,
    status: Arc<AtomicU32>,
    hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while !stop.load(Ordering::Relaxed) {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return,
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        hits.lock().unwrap().push(Hit {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        while hold.load(Ordering::Relaxed) {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let code = status.load(Ordering::Relaxed);
        let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok");
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
