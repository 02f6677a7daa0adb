//! Extension-to-extension calls through the real binary, with the exact
//! CDR read back over REST; a crash in the middle of a call is closed by
//! recovery at the next start; registrations survive a restart; shutdown
//! lets calls finish within the grace period and hangs up those still up
//! after it, with whole CDRs.

mod common;

use std::time::Duration;

use common::{Http, Phone, Server, TempDir, WAIT, answered_call, wait_for_cdrs};

const DOMAIN: &str = "acme.example.com";

fn provision(server: &Server) -> (Http, String) {
    let mut admin = server.admin();
    let tenant = admin.create_tenant("Acme", DOMAIN);
    admin.create_user(&tenant, "101", "s3cret-101");
    admin.create_user(&tenant, "102", "s3cret-102");
    admin.tenant = Some(tenant.clone());
    (admin, tenant)
}

#[test]
fn an_answered_call_gives_one_exact_cdr() {
    let dir = TempDir::new("call");
    let server = Server::start(dir.path(), &[]);
    let (mut admin, tenant) = provision(&server);

    let session_id = answered_call(&server, DOMAIN);

    let list = wait_for_cdrs(&admin, 1);
    let item = &list["items"][0];
    assert_eq!(item["session_id"], session_id.as_str());
    assert_eq!(item["caller"], "101");
    assert_eq!(item["callee"], "102");
    assert_eq!(item["callee_domain"], DOMAIN);
    assert_eq!(item["direction"], "EXTENSION_CALL");
    assert_eq!(item["call_status"], "answered");
    assert_eq!(item["status_code"], 0);
    assert_eq!(item["end_reason"], "CALLER_DISCONNECTED");
    assert!(item["duration"].as_u64().is_some_and(|d| d >= 1), "{item}");
    assert_ne!(item["answered_at"], "");
    assert!(
        item.get("call_targets").is_none(),
        "targets only in the detail"
    );

    let id = item["id"].as_str().expect("id");
    let detail = admin.get(&format!("/api/cdrs/{id}"));
    assert_eq!(detail.status, 200, "{}", detail.body);
    let detail = detail.json();
    let targets = detail["items"][0]["call_targets"]
        .as_array()
        .expect("call_targets")
        .clone();
    assert_eq!(targets.len(), 1, "{detail}");
    assert_eq!(targets[0]["callee"], "102");
    assert_eq!(targets[0]["status"], "answered");
    assert_eq!(targets[0]["end_reason"], "caller_disconnect");
    assert!(
        targets[0]["destination"]
            .as_str()
            .is_some_and(|d| d.starts_with("sip:102@")),
        "{}",
        targets[0]
    );

    // Another tenant sees nothing of it.
    admin.tenant = None;
    let other = admin.create_tenant("Other", "other.example.com");
    admin.tenant = Some(other);
    assert_eq!(admin.get(&format!("/api/cdrs/{id}")).status, 404);
    assert_eq!(admin.get("/api/cdrs").json()["count"], 0);
    admin.tenant = Some(tenant);
    assert_eq!(admin.get(&format!("/api/cdrs/{id}")).status, 200);

    let log = server.stderr();
    assert!(
        log.contains(&format!("session_id={session_id}")),
        "one span per session:\n{log}"
    );
}

#[test]
fn an_unregistered_callee_fails_with_480() {
    let dir = TempDir::new("call-480");
    let server = Server::start(dir.path(), &[]);
    let (admin, _) = provision(&server);
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 480);
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["call_status"], "fail");
    assert_eq!(list["items"][0]["status_code"], 480);
}

#[test]
fn a_crash_mid_call_is_closed_at_the_next_start_and_registrations_survive() {
    let dir = TempDir::new("recovery");
    let server = Server::start(dir.path(), &[]);
    let (_, tenant) = provision(&server);
    let mut callee = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);

    // Ring 102, then crash the PBX while it rings.
    let ringing = std::thread::spawn(move || {
        let invite = callee.recv_request("INVITE");
        callee.reply(&invite, 180, "b1");
        let call_id = invite.call_id().map(str::to_owned).unwrap_or_default();
        let session = invite
            .header_named("X-Session-Id")
            .map(str::to_owned)
            .unwrap_or_default();
        (callee, call_id, session)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let calling = std::thread::spawn(move || {
        // Ends when the PBX is gone and nothing more comes.
        caller.try_invite("102", Duration::from_millis(500), |m| {
            if m.status() == Some(180) {
                let _ = tx.send(());
            }
        })
    });
    rx.recv_timeout(WAIT).expect("the call rang");
    let (mut callee, crashed_call, session) = ringing.join().expect("callee");
    // Wait until the journal has the ringing, then crash.
    server.wait_stderr(|l| {
        l.contains(&format!("session_id={session}"))
            && l.contains("session events journaled")
            && l.contains("last=\"target_ringing\"")
    });
    let data = server.data_dir.clone();
    server.kill();
    assert!(
        calling.join().expect("caller").is_none(),
        "no final response"
    );

    let server = Server::start(&data, &[]);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    let list = wait_for_cdrs(&admin, 1);
    let item = &list["items"][0];
    assert_eq!(item["recovered"], true, "{item}");
    assert_eq!(item["call_status"], "fail");
    assert_ne!(item["rang_at"], "");

    // 102's registration was restored: a new call reaches it without it
    // registering again.
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    callee.pbx = server.sip;
    let answering = std::thread::spawn(move || {
        // Skip what the crashed PBX may have retransmitted.
        loop {
            let invite = callee.recv_request("INVITE");
            if invite.call_id().is_ok_and(|c| c != crashed_call) {
                callee.reply(&invite, 486, "busy");
                return;
            }
        }
    });
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 486);
    answering.join().expect("callee");
}

#[test]
fn shutdown_refuses_new_calls_and_lets_a_call_in_progress_finish() {
    let dir = TempDir::new("shutdown");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[shutdown]\ngrace_secs = 8\n").expect("config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let (_, tenant) = provision(&server);
    let mut callee = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);

    let (rang_tx, rang) = std::sync::mpsc::channel();
    let (answer, answer_rx) = std::sync::mpsc::channel::<()>();
    let answering = std::thread::spawn(move || {
        let invite = callee.recv_request("INVITE");
        callee.reply(&invite, 180, "b1");
        let _ = rang_tx.send(());
        answer_rx.recv_timeout(WAIT).expect("told to answer");
        callee.reply(&invite, 200, "b1");
        let _ack = callee.recv_request("ACK");
        let bye = callee.recv_request("BYE");
        callee.reply(&bye, 200, "b1");
    });
    let calling = std::thread::spawn(move || {
        let mut call = caller.invite("102", |_| {});
        assert_eq!(call.status, 200);
        caller.ack(&call, "102");
        std::thread::sleep(Duration::from_millis(200));
        caller.bye(&mut call, "102")
    });
    rang.recv_timeout(WAIT).expect("the call rang");

    // Stop: a new call is refused, the one in progress goes on.
    server.send_term();
    std::thread::sleep(Duration::from_millis(300));
    let late = Phone::new("101", "s3cret-101", DOMAIN, server.sip);
    assert_eq!(late.invite_status("102"), 503);
    let _ = answer.send(());
    assert_eq!(calling.join().expect("caller"), 200);
    answering.join().expect("callee");

    // It exits once the call ended, well before the grace period.
    let data = server.data_dir.clone();
    let (status, took) = server.wait_exit();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // The CDR was committed before exit: a whole one, not a recovered one.
    let server = Server::start(&data, &[]);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    let list = wait_for_cdrs(&admin, 1);
    assert_eq!(list["items"][0]["call_status"], "answered");
    assert!(list["items"][0].get("recovered").is_none(), "{list}");
}

#[test]
fn shutdown_hangs_up_a_call_still_up_after_the_grace_period() {
    let dir = TempDir::new("shutdown-hangup");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[shutdown]\ngrace_secs = 1\n").expect("config");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let server = Server::start(dir.path(), &["--config", &config]);
    let (_, tenant) = provision(&server);
    let mut callee = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", "s3cret-101", DOMAIN, server.sip);

    let answering = std::thread::spawn(move || {
        let invite = callee.recv_request("INVITE");
        callee.reply(&invite, 200, "b1");
        let _ack = callee.recv_request("ACK");
        // The PBX hangs up at the end of the grace period.
        let bye = callee.recv_request("BYE");
        callee.reply(&bye, 200, "b1");
    });
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 200);
    caller.ack(&call, "102");

    server.send_term();
    let bye = caller.recv_request("BYE");
    assert_eq!(bye.call_id().ok(), Some(call.call_id.as_str()));
    caller.reply(&bye, 200, "a1");
    answering.join().expect("callee got its BYE");
    let data = server.data_dir.clone();
    let (status, _) = server.wait_exit();
    assert!(status.success(), "{status}");

    // A whole CDR, committed before exit: answered, ended by nobody.
    let server = Server::start(&data, &[]);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    let list = wait_for_cdrs(&admin, 1);
    let item = &list["items"][0];
    assert_eq!(item["call_status"], "answered", "{item}");
    assert_eq!(item["end_reason"], "", "{item}");
    assert!(item.get("recovered").is_none(), "{item}");
    let id = item["id"].as_str().expect("id");
    let detail = admin.get(&format!("/api/cdrs/{id}")).json();
    let target = &detail["items"][0]["call_targets"][0];
    assert_eq!(target["status"], "answered", "{detail}");
    assert_eq!(target["end_reason"], "None", "{detail}");
}

/// The Contact line of `response` naming `addr`.
fn contact_line(response: &sip::Message, addr: std::net::SocketAddr) -> Option<String> {
    String::from_utf8_lossy(response.as_bytes())
        .lines()
        .find(|l| l.starts_with("Contact:") && l.contains(&addr.to_string()))
        .map(str::to_owned)
}

#[test]
fn a_restart_keeps_the_q_of_each_binding() {
    let dir = TempDir::new("binding-q");
    let server = Server::start(dir.path(), &[]);
    provision(&server);
    let mut desk = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    desk.contact_params = ";q=0.7".into();
    let ok = desk.register_response(300);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    let line = contact_line(&ok, desk.addr()).expect("the desk phone's binding");
    assert!(line.contains(";q=0.7"), "{line}");
    let data = server.data_dir.clone();
    let (status, _) = server.terminate();
    assert!(status.success());

    // After the restart another device registers: the 200 lists both
    // bindings, the restored one with its q.
    let server = Server::start(&data, &[]);
    let mut app = Phone::new("102", "s3cret-102", DOMAIN, server.sip);
    let ok = app.register_response(300);
    assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    let restored = contact_line(&ok, desk.addr()).expect("the restored binding");
    assert!(restored.contains(";q=0.7"), "{restored}");
    let fresh = contact_line(&ok, app.addr()).expect("the new binding");
    assert!(!fresh.contains(";q="), "{fresh}");
}
