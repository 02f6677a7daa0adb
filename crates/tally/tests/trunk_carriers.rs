//! Carriers as they are found in the wild, against the real binary
//! (issue 10's leftovers): a carrier over TCP that answers the
//! registration, the keep-alive, an outbound call and sends its own call
//! down the one connection Tally opened; a UDP carrier whose calls come
//! from another address than its registrar's, to the Contact Tally
//! registered (and what is refused from there); a carrier found by SRV
//! through the test's own DNS server, failing over from a server answering
//! 503 to the next one, for registration and calls; a DID whose rule
//! names an outside number, sent out again by another carrier (`in2out`),
//! with its bad input refused by field. The carriers and the DNS server
//! are this file's own small loopback programs. The TCP and outside-DID
//! flows run on SQLite and, with `TALLY_TEST_POSTGRES_URL`, PostgreSQL.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::flows::{DEMO_DOMAIN, Demo};
use common::pg::PgDatabase;
use common::{Http, Phone, TempDir, wait_for_cdrs};
use serde_json::{Value, json};
use sip::{HeaderName, Message, ResponseBuilder};

const DID: &str = "+33123456789";

fn created(admin: &Http, path: &str, body: Value) -> String {
    let r = admin.post_json(path, &body);
    assert_eq!(r.status, 201, "POST {path}: {}", r.body);
    r.json()["id"].as_str().unwrap().to_owned()
}

/// Polls `GET /api/trunks/{id}` until `done` holds for its status.
fn wait_status(admin: &Http, trunk: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let status = admin.get(&format!("/api/trunks/{trunk}")).json()["status"].clone();
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "trunk status stuck at {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cdr_with(cdrs: &Value, direction: &str) -> Value {
    cdrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} CDR in {cdrs}"))
        .clone()
}

/// The user part and URI of the Contact in a REGISTER.
fn registered_contact(register: &Message) -> (String, String) {
    let contact = register.contacts().next().unwrap().unwrap();
    let uri = contact.addr().unwrap().uri.to_string();
    let user = uri
        .trim_start_matches("sip:")
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    (user, uri)
}

/// A carrier's INVITE to `ruri`, for `DID`, sent from `via` (`TCP
/// host:port` or `UDP host:port`).
fn carrier_invite(ruri: &str, via: &str, call_id: &str) -> String {
    let (_, sent_by) = via.split_once(' ').unwrap();
    let param = if via.starts_with("TCP") {
        ";transport=tcp"
    } else {
        ""
    };
    format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/{via};branch=z9hG4bK-{call_id}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:+33612345678@carrier.example>;tag=c-{call_id}\r\n\
         To: <sip:{DID}@carrier.example>\r\nCall-ID: {call_id}@carrier.example\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:+33612345678@{sent_by}{param}>\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// The ACK of a non-2xx final response to `invite_text`.
fn ack_for(invite_text: &str, response: &Message) -> String {
    let invite = Message::parse(invite_text.as_bytes().to_vec()).unwrap();
    let mut lines = Vec::new();
    lines.push(format!("ACK {} SIP/2.0", invite.request_uri_str().unwrap()));
    lines.push(format!("Via: {}", invite.header(HeaderName::Via).unwrap()));
    lines.push("Max-Forwards: 70".into());
    lines.push(format!(
        "From: {}",
        invite.header(HeaderName::From).unwrap()
    ));
    lines.push(format!("To: {}", response.header(HeaderName::To).unwrap()));
    lines.push(format!(
        "Call-ID: {}",
        invite.header(HeaderName::CallId).unwrap()
    ));
    lines.push(format!("CSeq: {} ACK", invite.cseq().unwrap().seq));
    format!("{}\r\nContent-Length: 0\r\n\r\n", lines.join("\r\n"))
}

/// A registered phone of the demo tenant that refuses its next call
/// with `486` and returns that INVITE.
fn busy_phone(demo: &Demo, ext: &str) -> std::thread::JoinHandle<Message> {
    let mut phone = Phone::new(ext, &demo.password(ext), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(phone.register(), 200);
    std::thread::spawn(move || {
        let invite = phone.recv_request("INVITE");
        let busy = ResponseBuilder::reply(&invite, 486)
            .to_tag("busy-phone")
            .build()
            .unwrap();
        phone.send_message(&busy);
        invite
    })
}

// ---------------------------------------------------------------------
// TCP

/// What the TCP carrier saw.
#[derive(Default)]
struct TcpLog {
    requests: Vec<Message>,
    responses: Vec<Message>,
}

/// A registering carrier on a TCP port: one connection served at a time
/// by a thread that answers REGISTER (a SHA-256 digest challenge, then
/// 200 for the right answer), OPTIONS (200) and INVITE (486, ACK
/// expected), records everything, and sends what the test queues down
/// the connection. `accepted` counts connections.
struct TcpCarrier {
    port: u16,
    log: Arc<Mutex<TcpLog>>,
    outgoing: mpsc::Sender<String>,
    accepted: Arc<AtomicUsize>,
}

impl TcpCarrier {
    fn start(secs: u64) -> TcpCarrier {
        // Not 127.0.0.1: a register trunk claims every source its host
        // resolves to, and the phones call from 127.0.0.1.
        let listener = TcpListener::bind("127.0.0.2:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<TcpLog>> = Arc::default();
        let accepted: Arc<AtomicUsize> = Arc::default();
        let (outgoing, queued) = mpsc::channel::<String>();
        let (log_, accepted_) = (Arc::clone(&log), Arc::clone(&accepted));
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(secs);
            let mut digest = sip::auth::DigestServer::new("carrier.example", [9; 32]);
            let mut conn: Option<(TcpStream, sip::framing::StreamFramer)> = None;
            let mut buf = vec![0u8; 65_535];
            while Instant::now() < end {
                if let Ok((stream, _)) = listener.accept() {
                    accepted_.fetch_add(1, Ordering::SeqCst);
                    stream
                        .set_read_timeout(Some(Duration::from_millis(20)))
                        .unwrap();
                    let framer = sip::framing::StreamFramer::new(sip::Limits::default());
                    conn = Some((stream, framer));
                }
                let Some((stream, framer)) = conn.as_mut() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                while let Ok(text) = queued.try_recv() {
                    stream.write_all(text.as_bytes()).unwrap();
                }
                match stream.read(&mut buf) {
                    Ok(0) => {
                        conn = None;
                        continue;
                    }
                    Ok(n) => framer.push(&buf[..n]),
                    Err(_) => continue,
                }
                while let Ok(Some(frame)) = framer.next_frame() {
                    let sip::framing::Frame::Message(raw) = frame else {
                        continue;
                    };
                    let m = Message::parse(raw).unwrap();
                    let Some(method) = m.method().map(|m| m.as_str().to_owned()) else {
                        log_.lock().unwrap().responses.push(m);
                        continue;
                    };
                    log_.lock().unwrap().requests.push(m.clone());
                    let now = 1_000;
                    let answer = match method.as_str() {
                        "REGISTER" => match m.header(HeaderName::Authorization) {
                            None => {
                                let c = digest.challenge(now, sip::auth::Algorithm::Sha256, false);
                                ResponseBuilder::reply(&m, 401)
                                    .header(HeaderName::WwwAuthenticate, c.to_string())
                            }
                            Some(auth) => {
                                let creds = sip::auth::Credentials::parse(auth).unwrap();
                                let ok = digest.verify(
                                    now,
                                    "REGISTER",
                                    &creds,
                                    sip::auth::UserSecret::Password("carrier-secret"),
                                ) == sip::auth::Verdict::Ok;
                                let contact = m.header(HeaderName::Contact).unwrap();
                                match ok {
                                    true => ResponseBuilder::reply(&m, 200).header(
                                        HeaderName::Contact,
                                        format!("{contact};expires=60"),
                                    ),
                                    false => ResponseBuilder::reply(&m, 403),
                                }
                            }
                        },
                        "OPTIONS" => ResponseBuilder::reply(&m, 200),
                        "INVITE" => ResponseBuilder::reply(&m, 486),
                        _ => continue,
                    };
                    let answer = answer.to_tag("carrier").build().unwrap();
                    stream.write_all(answer.as_bytes()).unwrap();
                }
            }
        });
        TcpCarrier {
            port,
            log,
            outgoing,
            accepted,
        }
    }

    fn requests(&self, method: &str) -> Vec<Message> {
        let log = self.log.lock().unwrap();
        log.requests
            .iter()
            .filter(|m| m.method().is_some_and(|x| x.as_str() == method))
            .cloned()
            .collect()
    }

    /// The first final response with `call_id` (bounded wait).
    fn final_response(&self, call_id: &str) -> Message {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .responses
                .iter()
                .find(|r| r.call_id().ok() == Some(call_id) && r.status().is_some_and(|s| s >= 200))
                .cloned();
            if let Some(r) = found {
                return r;
            }
            assert!(Instant::now() < deadline, "no final response to {call_id}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn tcp_carrier_both_ways(dir: &std::path::Path, extra: &[&str]) {
    let carrier = TcpCarrier::start(60);
    let demo = Demo::start(dir, extra);
    let admin = demo.admin();
    let trunk = created(
        &admin,
        "/api/trunks",
        json!({"name": "tcp-carrier", "kind": "register", "host": "127.0.0.2",
               "port": carrier.port, "transport": "tcp", "username": "15550100",
               "password": "carrier-secret", "register_expires": 60, "country_code": "33"}),
    );
    created(
        &admin,
        "/api/inbound_rules",
        json!({"trunk_id": trunk, "did": DID, "destination": "102"}),
    );
    created(
        &admin,
        "/api/outbound_rules",
        json!({"name": "national", "pattern": "0ZXXXXXXXX", "strip_digits": 1,
               "prepend": "+33", "trunks": [trunk]}),
    );

    // Registered through the challenge, and the keep-alive answered, over TCP.
    let status = wait_status(&admin, &trunk, 20, |s| {
        s["registration"]["registration"] == "registered" && s["options"]["state"] == "up"
    });
    assert_eq!(status["registration"]["failures"], 0, "{status}");
    let registers = carrier.requests("REGISTER");
    assert_eq!(registers.len(), 2, "401 then 200, nothing sent twice");
    let register = &registers[1];
    assert!(register.via().unwrap().is_transport("TCP"));
    let (token, contact) = registered_contact(register);
    assert!(contact.ends_with(";transport=tcp"), "{contact}");
    assert!(token.starts_with('t') && token != "15550100", "{token}");
    assert_eq!(
        contact,
        format!("sip:{token}@{};transport=tcp", demo.server.sip)
    );

    // In: the carrier calls the registered Contact down the same connection.
    let phone = busy_phone(&demo, "102");
    let invite = carrier_invite(
        &contact,
        &format!("TCP 127.0.0.2:{}", carrier.port),
        "tcp-in",
    );
    carrier.outgoing.send(invite.clone()).unwrap();
    let busy = carrier.final_response("tcp-in@carrier.example");
    assert_eq!(busy.status(), Some(486), "102 was rung and was busy");
    carrier.outgoing.send(ack_for(&invite, &busy)).unwrap();
    let rung = phone.join().unwrap();
    assert_eq!(
        rung.to().unwrap().uri.to_string(),
        format!("sip:102@{DEMO_DOMAIN}")
    );

    // Out: 101 dials a national number; the INVITE reuses the connection.
    let caller = Phone::new("101", &demo.password("101"), DEMO_DOMAIN, demo.server.sip);
    let call = caller.invite("0612345678", |_| {});
    assert_eq!(
        call.status,
        486,
        "the carrier's answer\n{}",
        demo.server.stderr()
    );
    let invites = carrier.requests("INVITE");
    assert_eq!(invites.len(), 1, "{}", demo.server.stderr());
    assert_eq!(
        invites[0].request_uri_str(),
        Some(format!("sip:+33612345678@127.0.0.2:{};transport=tcp", carrier.port).as_str())
    );
    assert!(invites[0].via().unwrap().is_transport("TCP"));
    assert_eq!(
        carrier.accepted.load(Ordering::SeqCst),
        1,
        "one connection for registration, keep-alive and calls both ways"
    );

    let cdrs = wait_for_cdrs(&admin, 2);
    let inbound = cdr_with(&cdrs, "INBOUND_CALL");
    assert_eq!(inbound["trunk"], "tcp-carrier", "{inbound}");
    assert_eq!(inbound["did_cid"], DID, "{inbound}");
    assert_eq!(inbound["callee"], "102", "{inbound}");
    assert_eq!(inbound["caller"], "+33612345678", "{inbound}");
    let out = cdr_with(&cdrs, "OUTBOUND_CALL");
    assert_eq!(out["trunk"], "tcp-carrier", "{out}");
    assert_eq!(out["callee"], "+33612345678", "{out}");
    let (status, _) = demo.server.terminate();
    assert!(status.success());
}

#[test]
fn a_tcp_carrier_registers_probes_and_carries_calls_both_ways_on_one_connection() {
    let dir = TempDir::new("trunk-tcp");
    tcp_carrier_both_ways(dir.path(), &[]);
}

#[test]
fn on_postgres_a_tcp_carrier_registers_probes_and_carries_calls_both_ways_on_one_connection() {
    let test =
        "on_postgres_a_tcp_carrier_registers_probes_and_carries_calls_both_ways_on_one_connection";
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    let dir = TempDir::new("trunk-tcp-pg");
    tcp_carrier_both_ways(dir.path(), &["--database", &db.url]);
}

#[test]
fn a_tcp_carrier_that_refuses_connections_fails_the_registration_at_once() {
    let dir = TempDir::new("trunk-tcp-refused");
    // A port nobody listens on: the connect is refused.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = common::Server::start(dir.path(), &[]);
    let mut admin = server.admin();
    admin.tenant = Some(admin.create_tenant("Refused", "refused.example"));
    let trunk = created(
        &admin,
        "/api/trunks",
        json!({"name": "closed", "kind": "register", "host": "127.0.0.1", "port": port,
               "transport": "tcp", "username": "u", "password": "p"}),
    );
    // Well before Timer F's 32 s: a refused connect is a transport error.
    let status = wait_status(&admin, &trunk, 10, |s| {
        s["registration"]["registration"] == "failed"
    });
    assert!(
        status["registration"]["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{status}"
    );
    let (exit, _) = server.terminate();
    assert!(exit.success());
}

// ---------------------------------------------------------------------
// UDP: calls from another address than the registrar's

/// REGISTERs as received, with their source.
type Registers = Arc<Mutex<Vec<(Message, SocketAddr)>>>;

/// A UDP registrar on `ip` that ignores the first REGISTER (Tally must
/// send it again) and accepts the next ones, answers OPTIONS, and keeps
/// every REGISTER with its source.
fn udp_registrar(ip: &str, secs: u64) -> (u16, Registers) {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen: Registers = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 65_535];
        while Instant::now() < end {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = Message::parse(buf[..n].to_vec()) else {
                continue;
            };
            let answer = match m.method().map(|m| m.as_str().to_owned()).as_deref() {
                Some("REGISTER") => {
                    let mut log = log.lock().unwrap();
                    log.push((m.clone(), from));
                    if log.len() == 1 {
                        continue;
                    }
                    let contact = m.header(HeaderName::Contact).unwrap();
                    ResponseBuilder::reply(&m, 200)
                        .header(HeaderName::Contact, format!("{contact};expires=60"))
                }
                Some("OPTIONS") => ResponseBuilder::reply(&m, 200),
                _ => continue,
            };
            let answer = answer.to_tag("registrar").build().unwrap();
            let _ = socket.send_to(answer.as_bytes(), from);
        }
    });
    (port, seen)
}

/// Sends `text` from `socket` to `to` and waits for its final response.
fn udp_final(socket: &UdpSocket, to: SocketAddr, text: &str) -> Message {
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket.send_to(text.as_bytes(), to).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 65_535];
    loop {
        assert!(Instant::now() < deadline, "no final response to:\n{text}");
        let Ok((n, _)) = socket.recv_from(&mut buf) else {
            continue;
        };
        let m = Message::parse(buf[..n].to_vec()).unwrap();
        if m.status().is_some_and(|s| s >= 200) {
            return m;
        }
    }
}

#[test]
fn a_carrier_calling_the_registered_contact_from_another_address_is_its_trunk() {
    let dir = TempDir::new("trunk-udp-contact");
    let (registrar_port, registers) = udp_registrar("127.0.0.2", 40);
    let demo = Demo::start(dir.path(), &[]);
    let admin = demo.admin();
    let trunk = created(
        &admin,
        "/api/trunks",
        json!({"name": "udp-carrier", "kind": "register", "host": "127.0.0.2",
               "port": registrar_port, "username": "15550100", "password": "carrier-secret",
               "register_expires": 60, "country_code": "33"}),
    );
    created(
        &admin,
        "/api/inbound_rules",
        json!({"trunk_id": trunk, "did": DID, "destination": "102"}),
    );
    let status = wait_status(&admin, &trunk, 20, |s| {
        s["registration"]["registration"] == "registered"
    });
    assert_eq!(status["registration"]["failures"], 0, "{status}");
    let (first, second, contact) = {
        let seen = registers.lock().unwrap();
        assert!(seen.len() >= 2, "the first REGISTER was sent again");
        (
            seen[0].clone(),
            seen[1].clone(),
            registered_contact(&seen[1].0).1,
        )
    };
    // Retransmitted (Timer E): the same request, the same branch.
    assert_eq!(first.0.as_bytes(), second.0.as_bytes());
    // From the SIP port: where the carrier's calls are sent back.
    assert_eq!(first.1, demo.server.sip, "registered from the SIP socket");

    // The carrier's gateway on 127.0.0.3 is no address of the trunk.
    let gateway = UdpSocket::bind("127.0.0.3:0").unwrap();
    let via = format!("UDP {}", gateway.local_addr().unwrap());
    // To the registered Contact: the trunk's call, the DID from To.
    let phone = busy_phone(&demo, "102");
    let invite = carrier_invite(&contact, &via, "contact-1");
    let busy = udp_final(&gateway, demo.server.sip, &invite);
    assert_eq!(busy.status(), Some(486), "102 was rung");
    gateway
        .send_to(ack_for(&invite, &busy).as_bytes(), demo.server.sip)
        .unwrap();
    phone.join().unwrap();
    // To the DID, or a Contact Tally did not register: refused.
    let sip = demo.server.sip;
    for (n, ruri) in [
        format!("sip:{DID}@{sip}"),
        format!("sip:15550100@{sip}"),
        format!("sip:t0000000000000000@{sip}"),
    ]
    .iter()
    .enumerate()
    {
        let call_id = format!("stranger-{n}");
        let invite = carrier_invite(ruri, &via, &call_id);
        let refused = udp_final(&gateway, sip, &invite);
        assert_eq!(refused.status(), Some(403), "{ruri}");
        gateway
            .send_to(ack_for(&invite, &refused).as_bytes(), sip)
            .unwrap();
    }
    let cdrs = wait_for_cdrs(&admin, 1);
    let inbound = cdr_with(&cdrs, "INBOUND_CALL");
    assert_eq!(inbound["trunk"], "udp-carrier", "{inbound}");
    assert_eq!(inbound["did_cid"], DID, "{inbound}");
    assert_eq!(inbound["callee"], "102", "{inbound}");
    let (status, _) = demo.server.terminate();
    assert!(status.success());
}

// ---------------------------------------------------------------------
// DNS: SRV then A, and failover between the carrier's servers

/// A DNS server on loopback answering from `records` ((name, type) →
/// record data); names it does not know get NXDOMAIN. Counts queries.
fn dns_server(records: Vec<((String, u16), Vec<u8>)>, secs: u64) -> (SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    let queries: Arc<AtomicUsize> = Arc::default();
    let counted = Arc::clone(&queries);
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut buf = [0u8; 512];
        while Instant::now() < end {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let q = &buf[..n];
            // The question: labels from byte 12, then type and class.
            let (mut at, mut labels) = (12, Vec::new());
            while q[at] != 0 {
                let len = usize::from(q[at]);
                labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).to_lowercase());
                at += 1 + len;
            }
            let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
            let question_end = at + 5;
            let name = labels.join(".");
            let known = records.iter().any(|((n, _), _)| *n == name);
            let answers: Vec<&Vec<u8>> = records
                .iter()
                .filter(|((n, t), _)| *n == name && *t == qtype)
                .map(|(_, d)| d)
                .collect();
            let mut r = q[..question_end].to_vec();
            let flags: u16 = if known { 0x8180 } else { 0x8183 };
            r[2..4].copy_from_slice(&flags.to_be_bytes());
            r[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
            r[8..12].copy_from_slice(&[0, 0, 0, 0]);
            for data in answers {
                r.extend_from_slice(&[0xC0, 12]);
                r.extend_from_slice(&qtype.to_be_bytes());
                r.extend_from_slice(&[0, 1, 0, 0, 0, 30]);
                r.extend_from_slice(&(data.len() as u16).to_be_bytes());
                r.extend_from_slice(data);
            }
            let _ = socket.send_to(&r, from);
        }
    });
    (addr, queries)
}

fn dns_name(name: &str) -> Vec<u8> {
    let mut d = Vec::new();
    for label in name.split('.') {
        d.push(label.len() as u8);
        d.extend_from_slice(label.as_bytes());
    }
    d.push(0);
    d
}

fn srv(priority: u16, port: u16, target: &str) -> Vec<u8> {
    let mut d = Vec::new();
    for v in [priority, 0, port] {
        d.extend_from_slice(&v.to_be_bytes());
    }
    d.extend_from_slice(&dns_name(target));
    d
}

/// A UDP carrier on `ip` answering REGISTER and INVITE with the given
/// codes (OPTIONS 200); the methods it saw, in order.
fn udp_carrier(ip: &str, register: u16, invite: u16, secs: u64) -> (u16, Arc<Mutex<Vec<String>>>) {
    let socket = UdpSocket::bind((ip, 0)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut buf = vec![0u8; 65_535];
        // Retransmissions are answered again but logged once.
        let mut branches = std::collections::HashSet::new();
        while Instant::now() < end {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            let Ok(m) = Message::parse(buf[..n].to_vec()) else {
                continue;
            };
            let Some(method) = m.method().map(|m| m.as_str().to_owned()) else {
                continue;
            };
            let branch = m.via().unwrap().branch().unwrap_or_default().to_owned();
            if branches.insert((branch, method.clone())) {
                log.lock().unwrap().push(method.clone());
            }
            let code = match method.as_str() {
                "REGISTER" => register,
                "INVITE" => invite,
                "ACK" => continue,
                _ => 200,
            };
            let mut b = ResponseBuilder::reply(&m, code).to_tag("carrier");
            if method == "REGISTER" && code == 200 {
                let contact = m.header(HeaderName::Contact).unwrap();
                b = b.header(HeaderName::Contact, format!("{contact};expires=60"));
            }
            let _ = socket.send_to(b.build().unwrap().as_bytes(), from);
        }
    });
    (port, seen)
}

#[test]
fn srv_records_lead_to_the_carriers_servers_in_order_with_failover() {
    let dir = TempDir::new("trunk-srv");
    // The first server refuses everything with 503; the second registers
    // and answers calls 486 (busy: the far end's answer, no failover).
    let (bad_port, bad) = udp_carrier("127.0.0.2", 503, 503, 60);
    let (good_port, good) = udp_carrier("127.0.0.3", 200, 486, 60);
    let mut records = Vec::new();
    for service in ["_sip._udp.carrier.test", "_sip._udp.reg.test"] {
        records.push((
            (service.to_owned(), 33),
            srv(20, good_port, "good.carrier.test"),
        ));
        records.push((
            (service.to_owned(), 33),
            srv(10, bad_port, "bad.carrier.test"),
        ));
    }
    records.push((("bad.carrier.test".into(), 1), vec![127, 0, 0, 2]));
    records.push((("good.carrier.test".into(), 1), vec![127, 0, 0, 3]));
    let (dns, queries) = dns_server(records, 60);
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, format!("[trunks]\ndns_server = \"{dns}\"\n")).unwrap();
    let demo = Demo::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let admin = demo.admin();

    // Registration: the 503 of the first server moves to the second at once.
    let reg = created(
        &admin,
        "/api/trunks",
        json!({"name": "by-srv", "kind": "register", "host": "reg.test",
               "username": "15550100", "password": "carrier-secret", "register_expires": 60}),
    );
    let status = wait_status(&admin, &reg, 15, |s| {
        s["registration"]["registration"] == "registered"
    });
    assert_eq!(
        status["registration"]["last_error"],
        Value::Null,
        "{status}"
    );
    assert!(bad.lock().unwrap().contains(&"REGISTER".to_owned()));
    assert!(good.lock().unwrap().contains(&"REGISTER".to_owned()));

    // A call: the first server (priority 10) answers 503, the second 486.
    let ip = created(
        &admin,
        "/api/trunks",
        json!({"name": "srv-ip", "kind": "ip", "host": "carrier.test",
               "source_addresses": ["127.0.0.2", "127.0.0.3"]}),
    );
    created(
        &admin,
        "/api/outbound_rules",
        json!({"name": "all", "pattern": "0.", "trunks": [ip]}),
    );
    let caller = Phone::new("101", &demo.password("101"), DEMO_DOMAIN, demo.server.sip);
    let call = caller.invite("0612345678", |_| {});
    assert_eq!(call.status, 486, "{}", demo.server.stderr());
    let invites = |seen: &Arc<Mutex<Vec<String>>>| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|m| *m == "INVITE")
            .count()
    };
    assert_eq!((invites(&bad), invites(&good)), (1, 1));
    let cdr = demo.only_cdr();
    let targets = cdr["call_targets"].as_array().unwrap();
    let codes: Vec<(Value, Value)> = targets
        .iter()
        .map(|t| (t["status_code"].clone(), t["destination"].clone()))
        .collect();
    assert_eq!(codes.len(), 2, "{cdr}");
    assert_eq!(codes[0].0, 503, "{cdr}");
    assert_eq!(codes[1].0, 486, "{cdr}");
    assert!(targets.iter().all(|t| t["trunk_name"] == "srv-ip"), "{cdr}");
    assert_eq!(cdr["trunk"], "srv-ip", "{cdr}");

    // A name the server does not know: the trunk says so.
    let nowhere = created(
        &admin,
        "/api/trunks",
        json!({"name": "nowhere", "kind": "register", "host": "nowhere.test",
               "username": "u", "password": "p"}),
    );
    let status = wait_status(&admin, &nowhere, 15, |s| {
        s["registration"]["registration"] == "failed"
    });
    assert!(
        status["registration"]["last_error"]
            .as_str()
            .unwrap()
            .contains("does not resolve"),
        "{status}"
    );
    assert!(queries.load(Ordering::SeqCst) >= 4);
    let (exit, _) = demo.server.terminate();
    assert!(exit.success());
}

// ---------------------------------------------------------------------
// DIDs to outside numbers

fn did_to_an_outside_number(dir: &std::path::Path, extra: &[&str]) {
    // Carrier "in" sends from 127.0.0.2; carrier "out" on 127.0.0.3
    // answers INVITEs 486 (busy: the far end's answer).
    let (in_port, _) = udp_carrier("127.0.0.2", 200, 486, 60);
    let (out_port, out_seen) = udp_carrier("127.0.0.3", 200, 486, 60);
    let demo = Demo::start(dir, extra);
    let admin = demo.admin();
    let trunk_in = created(
        &admin,
        "/api/trunks",
        json!({"name": "in-carrier", "kind": "ip", "host": "127.0.0.2", "port": in_port,
               "source_addresses": ["127.0.0.2"], "country_code": "33"}),
    );
    let trunk_out = created(
        &admin,
        "/api/trunks",
        json!({"name": "out-carrier", "kind": "ip", "host": "127.0.0.3", "port": out_port,
               "source_addresses": ["127.0.0.3"], "caller_id": "+33100000000"}),
    );
    created(
        &admin,
        "/api/outbound_rules",
        json!({"name": "national", "pattern": "0ZXXXXXXXX", "strip_digits": 1,
               "prepend": "+33", "trunks": [trunk_out]}),
    );
    // Bad input names its field and writes nothing.
    let refused = |body: Value| {
        let r = admin.post_json("/api/inbound_rules", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        r.error_field()
    };
    let rule = |kind: &str, destination: &str| {
        json!({"trunk_id": trunk_in, "did": DID, "destination_type": kind,
               "destination": destination})
    };
    assert_eq!(refused(rule("external", "06-98")), "destination");
    assert_eq!(refused(rule("external", "")), "destination");
    assert_eq!(refused(rule("elsewhere", "0698765432")), "destination_type");
    assert_eq!(admin.get("/api/inbound_rules").json()["count"], 0);
    let id = created(&admin, "/api/inbound_rules", rule("external", "0698765432"));
    let r = admin.get(&format!("/api/inbound_rules/{id}")).json();
    assert_eq!(
        (r["destination_type"].clone(), r["destination"].clone()),
        (json!("external"), json!("0698765432"))
    );
    // Switching the type back checks the destination against it.
    let r = admin.request(
        "PATCH",
        &format!("/api/inbound_rules/{id}"),
        "application/json",
        &json!({"destination_type": "extension"}).to_string(),
    );
    assert_eq!(
        (r.status, r.error_field()),
        (400, "destination".to_owned()),
        "{}",
        r.body
    );

    // The carrier calls the DID: out again by carrier "out".
    let gateway = UdpSocket::bind("127.0.0.2:0").unwrap();
    let via = format!("UDP {}", gateway.local_addr().unwrap());
    let invite = carrier_invite(&format!("sip:{DID}@{}", demo.server.sip), &via, "in2out-1");
    let busy = udp_final(&gateway, demo.server.sip, &invite);
    assert_eq!(busy.status(), Some(486), "{}", demo.server.stderr());
    gateway
        .send_to(ack_for(&invite, &busy).as_bytes(), demo.server.sip)
        .unwrap();
    assert_eq!(
        out_seen
            .lock()
            .unwrap()
            .iter()
            .filter(|m| *m == "INVITE")
            .count(),
        1
    );
    let list = wait_for_cdrs(&admin, 1);
    let cdr = &list["items"][0];
    assert_eq!(cdr["direction"], "INBOUND_OUTBOUND_CALL", "{cdr}");
    assert_eq!(cdr["did_cid"], DID, "{cdr}");
    assert_eq!(cdr["trunk"], "in-carrier", "{cdr}");
    assert_eq!(cdr["callee"], "+33698765432", "{cdr}");
    let id = cdr["id"].as_str().unwrap();
    let detail = admin.get(&format!("/api/cdrs/{id}")).json();
    let target = &detail["items"][0]["call_targets"][0];
    assert_eq!(target["trunk_name"], "out-carrier", "{detail}");
    assert_eq!(target["outbound_caller_id"], "+33100000000", "{detail}");
    assert_eq!(target["status_code"], 486, "{detail}");
    let (status, _) = demo.server.terminate();
    assert!(status.success());
}

#[test]
fn a_did_to_an_outside_number_goes_out_again_in2out() {
    let dir = TempDir::new("trunk-did-out");
    did_to_an_outside_number(dir.path(), &[]);
}

#[test]
fn on_postgres_a_did_to_an_outside_number_goes_out_again_in2out() {
    let test = "on_postgres_a_did_to_an_outside_number_goes_out_again_in2out";
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    let dir = TempDir::new("trunk-did-out-pg");
    did_to_an_outside_number(dir.path(), &["--database", &db.url]);
}
