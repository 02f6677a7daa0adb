//! A real webhook receiver for the tests: an HTTP/1.1 server on loopback
//! that records every request and answers with a per-test rule.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id").unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

/// What to answer: status, extra headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn with_body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
}

type Rule = Arc<
    dyn Fn(&Received, &[Received]) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync,
>;

/// A running receiver. Requests are recorded before the rule answers.
pub struct Receiver {
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Receiver {
    /// Answers 200 to everything.
    pub async fn ok() -> Receiver {
        Receiver::start(|_, _| Reply::status(200)).await
    }

    /// `rule(request, earlier requests)`.
    pub async fn start(
        rule: impl Fn(&Received, &[Received]) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let rule = Arc::new(rule);
        Receiver::start_async(Arc::new(move |r: &Received, earlier: &[Received]| {
            let reply = rule(r, earlier);
            Box::pin(async move { reply }) as Pin<Box<dyn Future<Output = Reply> + Send>>
        }))
        .await
    }

    pub async fn start_async(rule: Rule) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap(), rule).await
    }

    /// On a given address (to come back up where a test said it was).
    pub async fn start_on(addr: SocketAddr, rule: Rule) -> Receiver {
        Receiver::start_full(addr, rule, None).await
    }

    /// HTTPS with the test certificate (tests/tls: `localhost` and
    /// 127.0.0.1, signed by tests/tls/ca.pem).
    pub async fn start_tls(
        rule: impl Fn(&Received, &[Received]) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(include_bytes!("../tls/server.pem"))
                .collect::<Result<_, _>>()
                .unwrap();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("../tls/server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let rule = Arc::new(rule);
        let rule: Rule = Arc::new(move |r: &Received, earlier: &[Received]| {
            let reply = rule(r, earlier);
            Box::pin(async move { reply }) as Pin<Box<dyn Future<Output = Reply> + Send>>
        });
        Receiver::start_full("127.0.0.1:0".parse().unwrap(), rule, Some(Arc::new(config))).await
    }

    async fn start_full(
        addr: SocketAddr,
        rule: Rule,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Receiver {
        // A receiver just dropped may still hold the port for a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("bind receiver on {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let log: Arc<Mutex<Vec<Received>>> = Arc::default();
        let connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let task = {
            let log = Arc::clone(&log);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let log = Arc::clone(&log);
                    let rule = Arc::clone(&rule);
                    let tls = tls.clone();
                    let connection = tokio::spawn(async move {
                        let service =
                            service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                                let log = Arc::clone(&log);
                                let rule = Arc::clone(&rule);
                                async move {
                                    let path = req
                                        .uri()
                                        .path_and_query()
                                        .map(|p| p.to_string())
                                        .unwrap_or_default();
                                    let headers = req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (
                                                k.as_str().to_owned(),
                                                v.to_str().unwrap_or("").to_owned(),
                                            )
                                        })
                                        .collect();
                                    let body = req
                                        .into_body()
                                        .collect()
                                        .await
                                        .map(|b| b.to_bytes())
                                        .unwrap_or_default();
                                    let received = Received {
                                        path,
                                        headers,
                                        body: String::from_utf8_lossy(&body).into_owned(),
                                        at: Instant::now(),
                                    };
                                    let reply = {
                                        let mut log = log.lock().unwrap();
                                        let fut = rule(&received, &log);
                                        log.push(received);
                                        fut
                                    };
                                    let reply = reply.await;
                                    if let Some(d) = reply.delay {
                                        tokio::time::sleep(d).await;
                                    }
                                    let mut response =
                                        hyper::Response::builder().status(reply.status);
                                    for (k, v) in &reply.headers {
                                        response = response.header(k, v);
                                    }
                                    Ok::<_, Infallible>(
                                        response.body(Full::new(Bytes::from(reply.body))).unwrap(),
                                    )
                                }
                            });
                        let http = hyper::server::conn::http1::Builder::new();
                        match tls {
                            None => {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                            Some(config) => {
                                let Ok(stream) =
                                    tokio_rustls::TlsAcceptor::from(config).accept(stream).await
                                else {
                                    return;
                                };
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        }
                    });
                    connections.lock().unwrap().push(connection.abort_handle());
                }
            })
        };
        Receiver {
            addr,
            log,
            task,
            connections,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn distinct_ids(&self) -> HashSet<String> {
        self.requests()
            .iter()
            .map(|r| r.webhook_id().to_owned())
            .collect()
    }

    /// Goes down (see `Drop`); returns the address to come back on.
    pub fn shut_down(self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Receiver {
    /// Stops accepting and closes every open connection: the address
    /// refuses connections from now on.
    fn drop(&mut self) {
        self.task.abort();
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes (then
/// panics with `what`).
pub async fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
