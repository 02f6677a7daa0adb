//! SIP over UDP and TCP against the real binary: SIPp for OPTIONS and a
//! malformed request; digest REGISTER from a phone (SHA-256 and MD5);
//! keep-alives on TCP; `--demo`; TCP connections the PBX opens to a phone
//! whose own closed, the idle timeout and the connection caps (in all and
//! per address).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::flows::Demo;
use common::phone::Digest;
use common::{Phone, Server, Sipp, TempDir, free_sip_port, sipp, sipp_available, wait_for_cdrs};
use sip::Message;

#[test]
fn sipp_options_gets_200_with_allow() {
    if !sipp_available("sipp_options_gets_200_with_allow") {
        return;
    }
    let dir = TempDir::new("sipp-options");
    let server = Server::start(dir.path(), &[]);
    for transport in ["u1", "t1"] {
        let (ok, log) = sipp(server.sip, "options.xml", transport, &[]);
        assert!(
            ok,
            "SIPp OPTIONS over {transport} failed:\n{log}\n{}",
            server.stderr()
        );
        assert!(log.contains("allow: Allow: INVITE"), "{log}");
    }
}

#[test]
fn sipp_malformed_request_gets_400_naming_the_defect() {
    if !sipp_available("sipp_malformed_request_gets_400_naming_the_defect") {
        return;
    }
    let dir = TempDir::new("sipp-malformed");
    let server = Server::start(dir.path(), &[]);
    let (ok, log) = sipp(server.sip, "malformed.xml", "u1", &[]);
    assert!(ok, "SIPp malformed failed:\n{log}\n{}", server.stderr());
    assert!(
        log.contains("SIP/2.0 400 Bad Request (invalid Max-Forwards header: not a number)"),
        "{log}"
    );
}

#[test]
fn sipp_registers_with_digest_and_a_wrong_password_gets_403() {
    if !sipp_available("sipp_registers_with_digest_and_a_wrong_password_gets_403") {
        return;
    }
    let dir = TempDir::new("sipp-register");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", "acme.example.com");
    admin.create_user(&tenant, "101", "s3cret-101");
    // SIPp answers only the first challenge, and only MD5: the PBX offers
    // MD5 first by default (pbx::DigestOffer).
    // -auth_uri: SIPp's digest `uri` defaults to the address it sends to;
    // the PBX wants the Request-URI (RFC 7616 §3.4.6).
    let user = [
        "-s",
        "101",
        "-key",
        "domain",
        "acme.example.com",
        "-auth_uri",
        "acme.example.com",
    ];

    let (ok, log) = sipp(
        server.sip,
        "register.xml",
        "u1",
        &[&user[..], &["-ap", "s3cret-101"]].concat(),
    );
    assert!(ok, "SIPp REGISTER failed:\n{log}\n{}", server.stderr());
    let (ok, log) = sipp(
        server.sip,
        "register_forbidden.xml",
        "u1",
        &[&user[..], &["-ap", "wrong-password"]].concat(),
    );
    assert!(
        ok,
        "SIPp REGISTER with a wrong password:\n{log}\n{}",
        server.stderr()
    );
}

#[test]
fn register_with_digest_then_wrong_password() {
    let dir = TempDir::new("register");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", "acme.example.com");
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");

    // RFC 8760 phone: SHA-256.
    let mut phone = Phone::new("101", "s3cret-101", "acme.example.com", server.sip);
    assert_eq!(phone.register(), 200);
    // Older phones (and SIPp): MD5.
    let mut md5 = Phone::new("102", "s3cret-102", "acme.example.com", server.sip);
    md5.digest = Digest::Md5;
    assert_eq!(md5.register(), 200);

    let mut wrong = Phone::new("101", "wrong-password", "acme.example.com", server.sip);
    assert_eq!(wrong.register(), 403);
    let mut unknown = Phone::new("199", "s3cret-199", "acme.example.com", server.sip);
    assert_eq!(unknown.register(), 404);
    // Unregister.
    assert_eq!(phone.register_for(0), 200);

    // The bindings are logged when the store has them, a moment after
    // the 200: wait for the lines rather than read the log at once.
    server.wait_stderr(|l| l.contains("tally::bindings: registered"));
    server.wait_stderr(|l| l.contains("REGISTER authentication failed"));
}

#[test]
fn tcp_answers_options_and_keepalive_pings() {
    let dir = TempDir::new("tcp");
    let server = Server::start(dir.path(), &[]);
    let mut stream = TcpStream::connect(server.sip).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let local = stream.local_addr().expect("local");

    // RFC 5626 ping: CRLFCRLF, answered with CRLF.
    stream.write_all(b"\r\n\r\n").expect("ping");
    let mut pong = [0u8; 2];
    stream.read_exact(&mut pong).expect("pong");
    assert_eq!(&pong, b"\r\n");

    let options = format!(
        "OPTIONS sip:{pbx} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-tcp1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=t1\r\nTo: <sip:{pbx}>\r\n\
         Call-ID: tcp-1@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        pbx = server.sip
    );
    stream.write_all(options.as_bytes()).expect("send");
    let response = read_message(&mut stream);
    assert_eq!(response.status(), Some(200), "{}", response.summary());

    // A framing error (no Content-Length on a stream) closes the connection.
    stream
        .write_all(b"OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKz\r\n\r\n")
        .expect("send");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

fn read_message(stream: &mut TcpStream) -> Message {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Ok(m) = Message::parse(buf.clone()) {
            return m;
        }
    }
}

#[test]
fn demo_prints_credentials_that_register() {
    let dir = TempDir::new("demo");
    let mut server = Server::start(dir.path(), &["--demo"]);
    let header = server.wait_stdout("Demo tenant");
    assert!(header.contains("demo.tally.local"), "{header}");
    let tenant_id = header
        .split("(id ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .expect("tenant id")
        .to_owned();
    let mut credentials = Vec::new();
    for ext in ["101", "102", "103", "104", "105"] {
        let line = server.wait_stdout(&format!("  {ext} "));
        let password = line.split_whitespace().nth(1).expect("password").to_owned();
        credentials.push((ext, password));
    }

    // The tenant exists over REST, with no CDRs yet.
    let mut admin = server.admin();
    let r = admin.get(&format!("/api/tenants/{tenant_id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["sip_domain"], "demo.tally.local");
    admin.tenant = Some(tenant_id);
    assert_eq!(admin.get("/api/cdrs").json()["count"], 0);

    // The printed credentials work.
    let (ext, password) = &credentials[1];
    let mut phone = Phone::new(ext, password, "demo.tally.local", server.sip);
    assert_eq!(phone.register(), 200);

    // A second start with --demo keeps the same credentials; it cannot
    // print them again (only their digest hashes are stored).
    let (status, _) = server.terminate();
    assert!(status.success());
    let mut again = Server::start(dir.path(), &["--demo"]);
    let line = again.wait_stdout("  102 ");
    assert!(line.contains("(set before)"), "{line}");
    assert!(!line.contains(password.as_str()), "{line}");
    let mut phone = Phone::new(ext, password, "demo.tally.local", again.sip);
    assert_eq!(phone.register(), 200);
}

/// SIPp 101 calls SIPp 102 (`uas` answering), both demo extensions; with
/// `restart`, the callee registered before a restart of the PBX, so its
/// binding comes back from the store. Returns the one CDR.
fn sipp_call(uac: &str, uas: &str, restart: bool) -> serde_json::Value {
    let dir = TempDir::new("sipp-call");
    let mut demo = Demo::start(dir.path(), &[]);
    let callee_port = free_sip_port();
    demo.register("102", callee_port);
    if restart {
        demo = demo.restart(&[]);
    }
    let answering = Sipp::spawn(demo.server.sip, uas, "u1", callee_port, &[]);
    demo.call(uac, "101", "102");
    let (ok, log) = answering.finish();
    assert!(ok, "SIPp {uas}:\n{log}\n{}", demo.server.stderr());
    demo.only_cdr()
}

#[test]
fn sipp_call_between_two_demo_extensions_makes_one_answered_cdr() {
    if !sipp_available("sipp_call_between_two_demo_extensions_makes_one_answered_cdr") {
        return;
    }
    let cdr = sipp_call("uac.xml", "uas.xml", true);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["caller"], "101", "{cdr}");
    assert_eq!(cdr["callee"], "102", "{cdr}");
    let targets = cdr["call_targets"].as_array().expect("call_targets");
    assert_eq!(targets.len(), 1, "{cdr}");
    assert_eq!(targets[0]["status"], "answered", "{cdr}");
}

#[test]
fn sipp_call_to_a_busy_extension_makes_one_failed_cdr() {
    if !sipp_available("sipp_call_to_a_busy_extension_makes_one_failed_cdr") {
        return;
    }
    let cdr = sipp_call("uac_busy.xml", "uas_busy.xml", false);
    // SPEC §3: B rejects (486): call `fail`, "486", no end reason; the
    // target `noanswer` with 486.
    assert_eq!(cdr["call_status"], "fail", "{cdr}");
    assert_eq!(cdr["status_code"], 486, "{cdr}");
    let targets = cdr["call_targets"].as_array().expect("call_targets");
    assert_eq!(targets.len(), 1, "{cdr}");
    assert_eq!(targets[0]["status"], "noanswer", "{cdr}");
    assert_eq!(targets[0]["status_code"], 486, "{cdr}");
}

const ACME: &str = "acme.example.com";

/// A server with tenant Acme and users 101, 102; the admin looks at Acme.
fn acme(extra: &[&str]) -> (TempDir, Server, common::Http) {
    let dir = TempDir::new("tcp-acme");
    let server = Server::start(dir.path(), extra);
    let admin = server.admin();
    let tenant = admin.create_tenant("Acme", ACME);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    let mut admin = admin;
    admin.tenant = Some(tenant);
    (dir, server, admin)
}

/// A TCP connection to `to` from 127.0.0.1:`port` (a phone's fixed port).
fn connect_from(port: u16, to: std::net::SocketAddr) -> TcpStream {
    connect_from_addr(std::net::SocketAddr::from(([127, 0, 0, 1], port)), to)
}

/// A TCP connection to `to` from `from` (an address, and port or 0).
fn connect_from_addr(from: std::net::SocketAddr, to: std::net::SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(from)?;
            socket.connect(to).await?.into_std()
        })
        .expect("connect from a fixed port");
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

/// 102 registers over `stream` (answering the 401), Contact on TCP.
fn register_over_tcp(stream: &mut TcpStream, server: &Server) {
    let local = stream.local_addr().expect("local");
    let phone = Phone::new("102", "s3cret-102", ACME, server.sip);
    let register = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:{ACME} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-reg{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:102@{ACME}>;tag=r1\r\nTo: <sip:102@{ACME}>\r\n\
             Call-ID: tcp-reg@test\r\nCSeq: {cseq} REGISTER\r\n\
             Contact: <sip:102@{local};transport=tcp>\r\nExpires: 300\r\n{auth}\
             Content-Length: 0\r\n\r\n"
        )
    };
    stream.write_all(register(1, "").as_bytes()).expect("send");
    let challenge = read_message(stream);
    assert_eq!(challenge.status(), Some(401), "{}", challenge.summary());
    let auth = phone.credentials(&challenge, "REGISTER", &format!("sip:{ACME}"));
    stream
        .write_all(register(2, &auth).as_bytes())
        .expect("send");
    let ok = read_message(stream);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
}

/// Closes our side first and waits until the PBX closed its own (it
/// forgets the connection before it closes it).
fn close_and_wait(mut stream: TcpStream) {
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
}

#[test]
fn a_tcp_phone_whose_connection_closed_gets_a_new_one_from_the_pbx() {
    let (_dir, server, _) = acme(&[]);
    let port = free_sip_port();
    let mut stream = connect_from(port, server.sip);
    register_over_tcp(&mut stream, &server);
    close_and_wait(stream);

    // The phone listens where its REGISTER came from.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("listen");
    let answering = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("the PBX connects");
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let invite = read_message(&mut conn);
        assert_eq!(invite.method().map(|m| m.as_str()), Some("INVITE"));
        let busy = sip::ResponseBuilder::reply(&invite, 486)
            .to_tag("tcp-busy")
            .build()
            .expect("486");
        conn.write_all(busy.as_bytes()).expect("send 486");
        // The ACK for the 486 comes on the same connection.
        let ack = read_message(&mut conn);
        assert_eq!(ack.method().map(|m| m.as_str()), Some("ACK"));
        invite
    });
    let caller = Phone::new("101", "s3cret-101", ACME, server.sip);
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 486);
    let invite = answering.join().expect("the phone got the INVITE");
    let via = invite.via().expect("Via");
    assert_eq!(via.transport, "TCP");
}

#[test]
fn a_tcp_phone_that_cannot_be_reached_fails_the_call_at_once() {
    let (_dir, server, admin) = acme(&[]);
    let port = free_sip_port();
    let mut stream = connect_from(port, server.sip);
    register_over_tcp(&mut stream, &server);
    close_and_wait(stream);

    // Nobody listens at the binding's address: the connect is refused, the
    // target fails, the caller hears it without waiting for Timer B.
    let caller = Phone::new("101", "s3cret-101", ACME, server.sip);
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 480);
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["call_status"], "fail", "{list}");
    assert!(server.stderr().contains("outbound TCP connection failed"));
}

fn options_over(stream: &mut TcpStream, n: u32, pbx: std::net::SocketAddr) -> u16 {
    let local = stream.local_addr().expect("local");
    let options = format!(
        "OPTIONS sip:{pbx} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-o{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=t{n}\r\nTo: <sip:{pbx}>\r\n\
         Call-ID: tcp-o{n}@test\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    stream.write_all(options.as_bytes()).expect("send");
    read_message(stream).status().unwrap_or(0)
}

/// Whether the PBX closed `stream` (EOF or reset) within the read timeout.
fn closed_by_pbx(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn idle_tcp_connections_are_closed_and_pings_keep_them_open() {
    let dir = TempDir::new("tcp-idle");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[sip]\ntcp_idle_secs = 1\n").expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let mut stream = TcpStream::connect(server.sip).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    // Pings every 400 ms for 2 s: traffic, so the connection stays.
    for _ in 0..5 {
        stream.write_all(b"\r\n\r\n").expect("ping");
        let mut pong = [0u8; 2];
        stream.read_exact(&mut pong).expect("pong");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert_eq!(options_over(&mut stream, 1, server.sip), 200);
    // Then silence: closed after about a second.
    assert!(
        closed_by_pbx(&mut stream),
        "the idle connection stayed open"
    );
}

#[test]
fn tcp_connections_beyond_the_cap_are_refused() {
    let dir = TempDir::new("tcp-cap");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[sip]\ntcp_max_connections = 2\n").expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let connect = || {
        let s = TcpStream::connect(server.sip).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s
    };
    let mut first = connect();
    let mut second = connect();
    assert_eq!(options_over(&mut first, 1, server.sip), 200);
    assert_eq!(options_over(&mut second, 2, server.sip), 200);
    let mut third = connect();
    assert!(closed_by_pbx(&mut third), "a third connection was kept");
    // A slot frees when a connection closes.
    close_and_wait(first);
    let mut again = connect();
    assert_eq!(options_over(&mut again, 3, server.sip), 200);
    assert!(server.stderr().contains("too many TCP connections"));
}

#[test]
fn one_address_cannot_hold_more_tcp_connections_than_its_cap() {
    let dir = TempDir::new("tcp-per-source");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[sip]\ntcp_max_connections_per_source = 2\n").expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let connect = |ip: [u8; 4]| {
        let s = connect_from_addr(std::net::SocketAddr::from((ip, 0)), server.sip);
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    };
    let mut first = connect([127, 0, 0, 1]);
    let mut second = connect([127, 0, 0, 1]);
    assert_eq!(options_over(&mut first, 1, server.sip), 200);
    assert_eq!(options_over(&mut second, 2, server.sip), 200);
    let mut third = connect([127, 0, 0, 1]);
    assert!(
        closed_by_pbx(&mut third),
        "a third connection from one address was kept"
    );
    // Another address still gets in.
    let mut other = connect([127, 0, 0, 3]);
    assert_eq!(options_over(&mut other, 3, server.sip), 200);
    // A slot frees when a connection closes.
    close_and_wait(first);
    let mut again = connect([127, 0, 0, 1]);
    assert_eq!(options_over(&mut again, 4, server.sip), 200);
}
