//! SIP over TLS against the real binary (RFC 3261 §26): a phone registers
//! over TLS with digest, is called from UDP on its TLS connection, answers,
//! and the call makes an answered CDR; a `SIGHUP` makes new connections see
//! a renewed certificate; a phone whose TLS connection closed is called on
//! a TLS connection the PBX opens to its Contact; a `sips:` Contact with no
//! TLS path is never sent to. Certificates are made by the `openssl` CLI;
//! the tests are SKIPPED without it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Phone, Server, TempDir, free_tcp_port, wait_for_cdrs};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use sip::Message;
use sip::framing::{Frame, StreamFramer};

const DOMAIN: &str = "tls.example.com";

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A self-signed certificate for 127.0.0.1 named `cn`; false if openssl
/// is missing.
fn make_cert(dir: &Path, cn: &str) -> bool {
    Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // An end-entity certificate (openssl's default is a CA, which
        // webpki refuses to see serving).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(dir.join("sip.key"))
        .arg("-out")
        .arg(dir.join("sip.crt"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn connect(addr: SocketAddr, cert: &Path) -> Tls {
    connect_trusting(addr, &[cert])
}

/// [`connect`] trusting each of `certs`.
fn connect_trusting(addr: SocketAddr, certs: &[&Path]) -> Tls {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        for c in CertificateDer::pem_file_iter(cert).expect("cert file") {
            roots.add(c.expect("cert")).expect("root");
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut tls = StreamOwned::new(conn, tcp);
    // Finish the handshake now, so a bad certificate fails here.
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS handshake with the PBX");
    }
    tls
}

/// Reads one SIP message (answering nothing, skipping pongs).
fn read_message(tls: &mut Tls, framer: &mut StreamFramer) -> Message {
    let mut buf = [0u8; 8192];
    loop {
        match framer.next_frame() {
            Ok(Some(Frame::Message(raw))) => return Message::parse(raw).expect("a SIP message"),
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => panic!("framing: {e}"),
        }
        let n = tls.read(&mut buf).expect("read over TLS");
        assert!(n > 0, "the PBX closed the TLS connection");
        framer.push(&buf[..n]);
    }
}

#[test]
fn a_phone_registers_over_tls_and_takes_a_call_with_a_cdr() {
    let dir = TempDir::new("sip-tls");
    if !make_cert(dir.path(), "tally-one") {
        println!("SKIPPED a_phone_registers_over_tls_and_takes_a_call_with_a_cdr: no openssl");
        return;
    }
    let tls_port = free_tcp_port();
    let cert = dir.path().join("sip.crt");
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\ntls_port = {tls_port}\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert,
            dir.path().join("sip.key")
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Tls", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    admin.tenant = Some(tenant);
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], tls_port));

    // 102 registers over TLS, answering the digest challenge.
    let mut phone = connect(tls_addr, &cert);
    let first_cert = phone.conn.peer_certificates().expect("certs")[0].to_vec();
    let local = phone.sock.local_addr().expect("local");
    let mut framer = StreamFramer::new(sip::Limits::default());
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bK-tls{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:102@{DOMAIN}>;tag=r1\r\nTo: <sip:102@{DOMAIN}>\r\n\
             Call-ID: tls-reg@test\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:102@{local};transport=tls>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        )
    };
    phone.write_all(register(1, "").as_bytes()).expect("send");
    let challenge = read_message(&mut phone, &mut framer);
    assert_eq!(challenge.status(), Some(401), "{}", challenge.summary());
    let digest = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    let auth = digest.credentials(&challenge, "REGISTER", &format!("sip:{DOMAIN}"));
    phone
        .write_all(register(2, &auth).as_bytes())
        .expect("send");
    let ok = read_message(&mut phone, &mut framer);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());

    // 101 calls from UDP; the INVITE reaches 102 on its TLS connection.
    let answering = std::thread::spawn(move || {
        let invite = read_message(&mut phone, &mut framer);
        assert_eq!(invite.method().map(|m| m.as_str()), Some("INVITE"));
        let via = invite.via().expect("Via");
        assert_eq!(via.transport, "TLS", "the PBX's Via names TLS");
        for code in [180, 200] {
            let r = sip::ResponseBuilder::reply(&invite, code)
                .to_tag("tls-b1")
                .header(
                    sip::HeaderName::Contact,
                    format!("<sip:102@{local};transport=tls>"),
                )
                .build()
                .expect("response");
            phone.write_all(r.as_bytes()).expect("send");
        }
        let ack = read_message(&mut phone, &mut framer);
        assert_eq!(ack.method().map(|m| m.as_str()), Some("ACK"));
        let bye = read_message(&mut phone, &mut framer);
        assert_eq!(bye.method().map(|m| m.as_str()), Some("BYE"));
        let ok = sip::ResponseBuilder::reply(&bye, 200).build().expect("200");
        phone.write_all(ok.as_bytes()).expect("send");
    });
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    let mut call = caller.invite("102", |_| {});
    assert_eq!(call.status, 200);
    caller.ack(&call, "102");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(caller.bye(&mut call, "102"), 200);
    answering.join().expect("the TLS phone answered");
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["call_status"], "answered", "{list}");

    // A renewed certificate: SIGHUP, and new connections get it. Until
    // the reload lands the old one is served: trust both meanwhile.
    let old_cert = dir.path().join("old.crt");
    std::fs::copy(&cert, &old_cert).expect("copy");
    assert!(make_cert(dir.path(), "tally-two"));
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = connect_trusting(tls_addr, &[&cert, &old_cert]);
        let now = fresh.conn.peer_certificates().expect("certs")[0].to_vec();
        if now != first_cert {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the certificate was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A broken file on the next SIGHUP keeps the one in use.
    let second = dir.path().join("second.crt");
    std::fs::copy(&cert, &second).expect("copy");
    std::fs::write(&cert, "not a certificate").expect("write");
    server.signal("HUP");
    server.wait_stderr(|l| l.contains("TLS certificate reload failed"));
    let kept = connect(tls_addr, &second);
    assert!(kept.conn.peer_certificates().is_some());
}

/// A tally serving TLS on a port of its own with a tenant (101, 102,
/// 103); `None` (SKIPPED) without openssl.
fn tls_server(dir: &TempDir, test: &str) -> Option<(Server, SocketAddr, std::path::PathBuf)> {
    if !make_cert(dir.path(), "tally-one") {
        println!("SKIPPED {test}: no openssl");
        return None;
    }
    let tls_port = free_tcp_port();
    let cert = dir.path().join("sip.crt");
    let config = dir.path().join("tally.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\ntls_port = {tls_port}\ntls_cert = {:?}\ntls_key = {:?}\n",
            cert,
            dir.path().join("sip.key")
        ),
    )
    .expect("config");
    let server = Server::start(dir.path(), &["--config", config.to_str().expect("utf-8")]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Tls", DOMAIN);
    for ext in ["101", "102", "103"] {
        admin.create_user(&tenant, ext, &format!("s3cret-{ext}"));
    }
    Some((server, SocketAddr::from(([127, 0, 0, 1], tls_port)), cert))
}

/// A REGISTER from `ext` with `contact`, over `transport` from `local`.
fn register_text(
    ext: &str,
    transport: &str,
    local: SocketAddr,
    contact: &str,
    cseq: u32,
    auth: &str,
) -> String {
    format!(
        "REGISTER sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/{transport} {local};branch=z9hG4bK-r{ext}{cseq};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:{ext}@{DOMAIN}>;tag=r{ext}\r\nTo: <sip:{ext}@{DOMAIN}>\r\n\
         Call-ID: reg-{ext}@test\r\nCSeq: {cseq} REGISTER\r\nContact: <{contact}>\r\nExpires: 300\r\n{auth}\
         Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_tls_phone_whose_connection_closed_is_called_on_a_new_tls_connection() {
    let test = "a_tls_phone_whose_connection_closed_is_called_on_a_new_tls_connection";
    let dir = TempDir::new("sip-tls-out");
    let Some((server, tls_addr, cert)) = tls_server(&dir, test) else {
        return;
    };
    // The phone's own listener, with its own self-signed certificate
    // (the PBX does not verify phones by default).
    let phone_dir = dir.path().join("phone");
    std::fs::create_dir_all(&phone_dir).expect("dir");
    assert!(make_cert(&phone_dir, "phone-102"));
    let chain: Vec<_> = CertificateDer::pem_file_iter(phone_dir.join("sip.crt"))
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_file(phone_dir.join("sip.key")).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let phone_tls = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("phone certificate"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let contact_addr = listener.local_addr().expect("addr");
    let contact = format!("sip:102@{contact_addr};transport=tls");

    // 102 registers over TLS, then its connection goes away.
    let mut phone = connect(tls_addr, &cert);
    let local = phone.sock.local_addr().expect("local");
    let mut framer = StreamFramer::new(sip::Limits::default());
    phone
        .write_all(register_text("102", "TLS", local, &contact, 1, "").as_bytes())
        .expect("send");
    let challenge = read_message(&mut phone, &mut framer);
    assert_eq!(challenge.status(), Some(401), "{}", challenge.summary());
    let digest = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    let auth = digest.credentials(&challenge, "REGISTER", &format!("sip:{DOMAIN}"));
    phone
        .write_all(register_text("102", "TLS", local, &contact, 2, &auth).as_bytes())
        .expect("send");
    assert_eq!(read_message(&mut phone, &mut framer).status(), Some(200));
    phone.conn.send_close_notify();
    let _ = phone.conn.complete_io(&mut phone.sock);
    drop(phone);
    server.wait_stderr(|l| l.contains("connection closed") && l.contains(&local.to_string()));

    // 101 calls: the PBX opens a TLS connection to the Contact.
    let answering = std::thread::spawn(move || {
        listener.set_nonblocking(false).expect("blocking");
        let (tcp, _) = listener.accept().expect("the PBX connects to the Contact");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let conn = rustls::ServerConnection::new(phone_tls).expect("server side");
        let mut tls = StreamOwned::new(conn, tcp);
        let mut framer = StreamFramer::new(sip::Limits::default());
        let mut buf = [0u8; 8192];
        let mut read = |tls: &mut StreamOwned<rustls::ServerConnection, TcpStream>| loop {
            match framer.next_frame() {
                Ok(Some(Frame::Message(raw))) => return Message::parse(raw).expect("SIP"),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => panic!("framing: {e}"),
            }
            let n = tls.read(&mut buf).expect("read over TLS");
            assert!(n > 0, "the PBX closed the connection");
            framer.push(&buf[..n]);
        };
        let invite = read(&mut tls);
        assert_eq!(invite.method().map(|m| m.as_str()), Some("INVITE"));
        assert_eq!(invite.request_uri_str(), Some(contact.as_str()));
        assert_eq!(invite.via().expect("Via").transport, "TLS");
        for code in [180, 200] {
            let r = sip::ResponseBuilder::reply(&invite, code)
                .to_tag("tls-out")
                .header(sip::HeaderName::Contact, format!("<{contact}>"))
                .build()
                .expect("response");
            tls.write_all(r.as_bytes()).expect("send");
        }
        let ack = read(&mut tls);
        assert_eq!(ack.method().map(|m| m.as_str()), Some("ACK"));
        let bye = read(&mut tls);
        assert_eq!(bye.method().map(|m| m.as_str()), Some("BYE"));
        let ok = sip::ResponseBuilder::reply(&bye, 200).build().expect("200");
        tls.write_all(ok.as_bytes()).expect("send");
        tls.flush().expect("flush");
    });
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    let mut call = caller.invite("102", |_| {});
    assert_eq!(call.status, 200);
    caller.ack(&call, "102");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(caller.bye(&mut call, "102"), 200);
    answering
        .join()
        .expect("the phone answered on the PBX's connection");
    let mut admin = server.admin();
    admin.tenant = Some(
        admin.get("/api/tenants").json()["items"][0]["id"]
            .as_str()
            .expect("id")
            .to_owned(),
    );
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["call_status"], "answered", "{list}");

    // 103 registers a sips: Contact over UDP: there is no TLS path to it,
    // so it is never sent the call, and the caller hears a failure.
    let p103 = Phone::new("103", "s3cret-103", DOMAIN, server.sip);
    let sips = format!("sips:103@{}", p103.addr());
    p103.send(&register_text("103", "UDP", p103.addr(), &sips, 1, ""));
    let challenge = p103.recv_final();
    assert_eq!(challenge.status(), Some(401));
    let auth = p103.credentials(&challenge, "REGISTER", &format!("sip:{DOMAIN}"));
    p103.send(&register_text("103", "UDP", p103.addr(), &sips, 2, &auth));
    assert_eq!(p103.recv_final().status(), Some(200));
    let failed = caller.invite("103", |_| {});
    assert!(
        matches!(failed.status, 480 | 503),
        "a sips: target with no TLS path: {}",
        failed.status
    );
    assert!(
        p103.try_recv(Duration::from_millis(300)).is_none(),
        "nothing reached the sips: Contact over UDP"
    );
    server.wait_stderr(|l| l.contains("a sips: request cannot go over UDP"));
}
