//! Call flows of SPEC §3's extension rows, played by SIPp phones (and the
//! test's own [`Phone`] where a call must stay up while the PBX is killed)
//! against a `--demo` server, each ending in assertions on the CDR read
//! back over REST. Shared by the SQLite suite (`call_flows.rs`) and the
//! PostgreSQL one (`postgres.rs`): `extra` is passed to `tally serve`.

use std::path::Path;

use serde_json::{Value, json};

use super::receiver::Receiver;
use super::{Http, Phone, Server, Sipp, free_sip_port, sipp, wait_for_cdrs};

mod transfer;
pub use transfer::{
    attended_transfer, attended_transfer_consulted_by_c, blf_pickup, blind_transfer,
    blind_transfer_to_a_group_and_out, invite_with_replaces, pickup,
};

pub const DEMO_DOMAIN: &str = "demo.tally.local";

/// A `tally serve --demo` with the credentials it printed.
pub struct Demo {
    pub server: Server,
    pub tenant: String,
    users: Vec<(String, String)>,
}

impl Demo {
    pub fn start(data_dir: &Path, extra: &[&str]) -> Demo {
        let mut server = Server::start(data_dir, &[&["--demo"], extra].concat());
        let header = server.wait_stdout("Demo tenant");
        let tenant = header
            .split("(id ")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .expect("tenant id")
            .to_owned();
        let users = ["101", "102", "103", "104", "105"]
            .iter()
            .map(|ext| {
                let line = server.wait_stdout(&format!("  {ext} "));
                let password = line.split_whitespace().nth(1).expect("password").to_owned();
                (ext.to_string(), password)
            })
            .collect();
        Demo {
            server,
            tenant,
            users,
        }
    }

    /// Stops the server (SIGTERM, clean exit asserted) and starts it again
    /// on the same data, without `--demo`: the tenant, users and
    /// registrations come back from the store.
    pub fn restart(self, extra: &[&str]) -> Demo {
        let data = self.server.data_dir.clone();
        let (status, _) = self.server.terminate();
        assert!(status.success(), "{status}");
        Demo {
            server: Server::start(&data, extra),
            tenant: self.tenant,
            users: self.users,
        }
    }

    /// Another node of the same cluster (its own data directory; `extra`
    /// names the shared database and its node id), with this demo's
    /// tenant and users.
    pub fn another_node(&self, data_dir: &Path, extra: &[&str]) -> Demo {
        Demo {
            server: Server::start(data_dir, extra),
            tenant: self.tenant.clone(),
            users: self.users.clone(),
        }
    }

    pub fn password(&self, ext: &str) -> String {
        self.users
            .iter()
            .find(|(e, _)| e == ext)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no demo user {ext}"))
    }

    /// The system admin, looking at the demo tenant.
    pub fn admin(&self) -> Http {
        let mut admin = self.server.admin();
        admin.tenant = Some(self.tenant.clone());
        admin
    }

    /// Adds a user to the demo tenant (e.g. with a short ring timeout).
    pub fn add_user(&mut self, ext: &str, password: &str, ring_timeout: u32) {
        let r = self.server.admin().post_json(
            &format!("/api/tenants/{}/users", self.tenant),
            &json!({
                "extension": ext,
                "sip_password": password,
                "display_name": format!("User {ext}"),
                "ring_timeout": ring_timeout,
            }),
        );
        assert_eq!(r.status, 201, "create user: {}", r.body);
        self.users.push((ext.to_owned(), password.to_owned()));
    }

    /// Adds a user who also signs in to the web (`role`: Admin,
    /// QueueManager, StandardUser) with `web_password`.
    pub fn add_web_user(&mut self, ext: &str, password: &str, web_password: &str, role: &str) {
        let r = self.server.admin().post_json(
            &format!("/api/tenants/{}/users", self.tenant),
            &json!({
                "extension": ext,
                "sip_password": password,
                "password": web_password,
                "role": role,
            }),
        );
        assert_eq!(r.status, 201, "create user: {}", r.body);
        self.users.push((ext.to_owned(), password.to_owned()));
    }

    /// SIPp registers `ext` from 127.0.0.1:`port`.
    pub fn register(&self, ext: &str, port: u16) {
        let (ok, log) = Sipp::spawn(
            self.server.sip,
            "register.xml",
            "u1",
            port,
            &[
                "-s",
                ext,
                "-ap",
                &self.password(ext),
                "-key",
                "domain",
                DEMO_DOMAIN,
                "-auth_uri",
                DEMO_DOMAIN,
            ],
        )
        .finish();
        assert!(ok, "SIPp REGISTER {ext}:\n{log}\n{}", self.server.stderr());
    }

    /// `ext` registers from a fresh port, where `scenario` then waits for
    /// its call.
    pub fn phone(&self, ext: &str, scenario: &str) -> Sipp {
        let port = free_sip_port();
        self.register(ext, port);
        Sipp::spawn(self.server.sip, scenario, "u1", port, &[])
    }

    /// SIPp `scenario` places one call from `from` to `to`; asserts it
    /// went as the scenario says.
    pub fn call(&self, scenario: &str, from: &str, to: &str) {
        let (ok, log) = sipp(
            self.server.sip,
            scenario,
            "u1",
            &[
                "-s",
                to,
                "-set",
                "caller",
                from,
                "-au",
                from,
                "-ap",
                &self.password(from),
                "-auth_uri",
                &format!("{to}@{DEMO_DOMAIN}"),
            ],
        );
        assert!(ok, "SIPp {scenario}:\n{log}\n{}", self.server.stderr());
    }

    /// Waits for the one CDR of the tenant; returns its detail (with
    /// `call_targets`) as `GET /api/cdrs/{id}` gives it.
    pub fn only_cdr(&self) -> Value {
        let admin = self.admin();
        let list = wait_for_cdrs(&admin, 1);
        let id = list["items"][0]["id"].as_str().expect("id").to_owned();
        let detail = admin.get(&format!("/api/cdrs/{id}"));
        assert_eq!(detail.status, 200, "{}", detail.body);
        detail.json()["items"][0].clone()
    }
}

/// A tenant webhook on a receiver of the test's own: the demo tenant's
/// events, as a real HTTP endpoint gets them.
pub struct Hooks {
    receiver: Receiver,
}

/// `extra` plus a config file that lets webhooks reach loopback (the SSRF
/// guard refuses private addresses otherwise).
pub fn with_hooks_allowed(dir: &Path, extra: &[&str]) -> Vec<String> {
    let config = dir.join("hooks.toml");
    std::fs::write(&config, "[webhooks]\nallow = [\"127.0.0.1/32\"]\n").expect("config");
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(["--config".to_owned(), config.display().to_string()]);
    args
}

impl Hooks {
    /// Points the demo tenant's event URL at a new receiver.
    pub fn subscribe(demo: &Demo) -> Hooks {
        let receiver = Receiver::start("127.0.0.1:0".parse().expect("addr"), 200);
        let r = demo.admin().request(
            "PUT",
            "/api/tenant/cdr_event",
            "application/json",
            &json!({"enabled": true, "url": receiver.url()}).to_string(),
        );
        assert_eq!(r.status, 200, "event URL: {}", r.body);
        Hooks { receiver }
    }

    /// Every event received so far.
    pub fn all(&self) -> Vec<Value> {
        self.receiver.hits().iter().map(|h| h.json()).collect()
    }

    /// Every event of `session` once its `call_cdr` arrived, in
    /// `sequence` order.
    pub fn of_session(&self, session: &str) -> Vec<Value> {
        let mine = |hits: &[super::receiver::Hit]| -> Vec<Value> {
            hits.iter()
                .map(|h| h.json())
                .filter(|e| e["session_id"] == session)
                .collect()
        };
        // Every event of the session, not just its call_cdr: deliveries run
        // concurrently, so the call_cdr can arrive before an earlier event.
        // It is the session's last event, and an event id's low 32 bits are
        // its ordinal in the session (`cdr::EventId`): all are in once
        // there are ordinal + 1 distinct ids.
        let ordinal = |e: &Value| {
            let id = e["event_id"].as_str().unwrap_or_default();
            u32::from_str_radix(&id[id.len().saturating_sub(8)..], 16).ok()
        };
        self.receiver
            .wait("the session's events up to its call_cdr", |hits| {
                let events = mine(hits);
                let Some(last) = events
                    .iter()
                    .find(|e| e["event_type"] == "call_cdr")
                    .and_then(ordinal)
                else {
                    return false;
                };
                let ids: std::collections::HashSet<_> =
                    events.iter().map(|e| e["event_id"].clone()).collect();
                ids.len() > last as usize
            });
        let mut events = mine(&self.receiver.hits());
        events.sort_by_key(|e| e["sequence"].as_u64().unwrap_or(0));
        events.dedup_by_key(|e| e["event_id"].clone());
        events
    }
}

/// The event types of `events`, in order.
pub(crate) fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// What every call's events share: `call_start` first, `call_cdr` last
/// and equal to the CDR read over REST in its targets, one
/// `cdr_target_add` per target, a gap-free `sequence`.
pub(crate) fn assert_events(events: &[Value], cdr: &Value) {
    let k = kinds(events);
    assert_eq!(k.first().map(String::as_str), Some("call_start"), "{k:?}");
    assert_eq!(k.last().map(String::as_str), Some("call_cdr"), "{k:?}");
    let adds = k.iter().filter(|t| *t == "cdr_target_add").count();
    assert_eq!(adds, targets(cdr).len(), "{k:?}");
    let last = events.last().expect("events");
    let ids = |v: &Value| {
        v["call_targets"]
            .as_array()
            .map(|t| t.iter().map(|x| x["id"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(ids(last), ids(cdr), "the webhook's call_cdr and REST's CDR");
    let seq: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().expect("sequence"))
        .collect();
    assert!(
        seq.windows(2).all(|w| w[1] > w[0]),
        "sequence increases: {seq:?}"
    );
}

/// Lets the SIPp callee finish; asserts it went as its scenario says.
fn finished(demo: &Demo, callee: Sipp, what: &str) {
    let (ok, log) = callee.finish();
    assert!(ok, "SIPp {what}:\n{log}\n{}", demo.server.stderr());
}

fn targets(cdr: &Value) -> Vec<Value> {
    cdr["call_targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no call_targets: {cdr}"))
        .clone()
}

fn assert_common(cdr: &Value) {
    assert_eq!(cdr["caller"], "101", "{cdr}");
    assert_eq!(cdr["callee"], "102", "{cdr}");
    assert_eq!(cdr["callee_domain"], DEMO_DOMAIN, "{cdr}");
    assert_eq!(cdr["direction"], "EXTENSION_CALL", "{cdr}");
    assert!(cdr.get("recovered").is_none(), "{cdr}");
}

/// SPEC §3 "A cancels while B rings": B `noanswer`, `cancelled`, 487;
/// the call `noanswer`, `cancelled`, "487".
pub fn caller_cancels_while_ringing(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let callee = demo.phone("102", "uas_cancelled.xml");
    demo.call("uac_cancel.xml", "101", "102");
    finished(&demo, callee, "uas_cancelled.xml");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["call_status"], "noanswer", "{cdr}");
    assert_eq!(cdr["status_code"], 487, "{cdr}");
    assert_eq!(cdr["end_reason"], "CANCELLED", "{cdr}");
    assert_ne!(cdr["rang_at"], "", "{cdr}");
    assert_eq!(cdr["answered_at"], "", "{cdr}");
    assert_eq!(cdr["duration"], 0, "{cdr}");
    let targets = targets(&cdr);
    assert_eq!(targets.len(), 1, "{cdr}");
    assert_eq!(targets[0]["callee"], "102", "{cdr}");
    assert_eq!(targets[0]["status"], "noanswer", "{cdr}");
    assert_eq!(targets[0]["status_code"], 487, "{cdr}");
    assert_eq!(targets[0]["end_reason"], "cancelled", "{cdr}");
}

/// SPEC §3 "same, B hangs up": B `callee_disconnect`; the call
/// `answered`, `callee_disconnect`, "0".
pub fn callee_hangs_up(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let callee = demo.phone("102", "uas_hangs_up.xml");
    demo.call("uac_hung_up.xml", "101", "102");
    finished(&demo, callee, "uas_hangs_up.xml");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["status_code"], 0, "{cdr}");
    assert_eq!(cdr["end_reason"], "CALLEE_DISCONNECTED", "{cdr}");
    assert!(cdr["duration"].as_u64().is_some_and(|d| d >= 1), "{cdr}");
    let targets = targets(&cdr);
    assert_eq!(targets.len(), 1, "{cdr}");
    assert_eq!(targets[0]["status"], "answered", "{cdr}");
    assert_eq!(targets[0]["status_code"], 0, "{cdr}");
    assert_eq!(targets[0]["end_reason"], "callee_disconnect", "{cdr}");
}

/// SPEC §3 "B registered from two devices": both rung; the one that
/// answers is the answered target, the other is CANCELled and ends
/// `noanswer` with `end_reason: None` and `status_code: 0`.
pub fn two_devices_one_answers(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let answering_port = free_sip_port();
    demo.register("102", answering_port);
    let answering = Sipp::spawn(demo.server.sip, "uas.xml", "u1", answering_port, &[]);
    let losing_port = free_sip_port();
    demo.register("102", losing_port);
    let losing = Sipp::spawn(demo.server.sip, "uas_cancelled.xml", "u1", losing_port, &[]);
    demo.call("uac.xml", "101", "102");
    finished(&demo, answering, "uas.xml");
    finished(&demo, losing, "uas_cancelled.xml");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["end_reason"], "CALLER_DISCONNECTED", "{cdr}");
    let targets = targets(&cdr);
    assert_eq!(targets.len(), 2, "{cdr}");
    let at = |port: u16| {
        targets
            .iter()
            .find(|t| {
                t["destination"].as_str().is_some_and(|d| {
                    d.ends_with(&format!(":{port}")) || d.contains(&format!(":{port};"))
                })
            })
            .unwrap_or_else(|| panic!("no target for port {port}: {cdr}"))
    };
    let winner = at(answering_port);
    assert_eq!(winner["status"], "answered", "{cdr}");
    assert_eq!(winner["end_reason"], "caller_disconnect", "{cdr}");
    assert_eq!(winner["status_code"], 0, "{cdr}");
    let loser = at(losing_port);
    assert_eq!(loser["callee"], "102", "{cdr}");
    assert_eq!(loser["status"], "noanswer", "{cdr}");
    assert_eq!(loser["end_reason"], "None", "{cdr}");
    assert_eq!(loser["status_code"], 0, "{cdr}");
    assert_ne!(targets[0]["id"], targets[1]["id"], "{cdr}");
}

/// SPEC §3 "B rings out": after the user's ring timeout the PBX CANCELs
/// the target and answers the caller 408; B `noanswer`, 408, `None`; the
/// call `noanswer`, "408", `None`.
pub fn ring_timeout(dir: &Path, extra: &[&str]) {
    let mut demo = Demo::start(dir, extra);
    // The shortest ring timeout provisioning takes.
    demo.add_user("106", "s3cret-106", 5);
    let callee = demo.phone("106", "uas_cancelled.xml");
    demo.call("uac_timeout.xml", "101", "106");
    finished(&demo, callee, "uas_cancelled.xml");

    let cdr = demo.only_cdr();
    assert_eq!(cdr["callee"], "106", "{cdr}");
    assert_eq!(cdr["call_status"], "noanswer", "{cdr}");
    assert_eq!(cdr["status_code"], 408, "{cdr}");
    assert_eq!(cdr["end_reason"], "", "{cdr}");
    let targets = targets(&cdr);
    assert_eq!(targets.len(), 1, "{cdr}");
    assert_eq!(targets[0]["status"], "noanswer", "{cdr}");
    assert_eq!(targets[0]["status_code"], 408, "{cdr}");
    assert_eq!(targets[0]["end_reason"], "None", "{cdr}");
    // It ended when the ring timeout (5 s from the INVITE) passed, not
    // before, and not much later.
    let lasted = millis_of_day(&cdr["ended_at"]) - millis_of_day(&cdr["started_at"]);
    let lasted = lasted.rem_euclid(86_400_000);
    assert!(
        (5_000..8_000).contains(&lasted),
        "lasted {lasted} ms: {cdr}"
    );
}

/// Milliseconds since midnight of a REST time (`2026-11-29T06:45:42.285Z`).
fn millis_of_day(time: &Value) -> i64 {
    let text = time.as_str().unwrap_or_default();
    let clock = text
        .split_once('T')
        .map(|(_, c)| c.trim_end_matches('Z'))
        .unwrap_or_else(|| panic!("not a REST time: {text:?}"));
    let (hms, ms) = clock.split_once('.').unwrap_or((clock, "0"));
    let parts: Vec<i64> = hms.split(':').filter_map(|p| p.parse().ok()).collect();
    assert_eq!(parts.len(), 3, "not a REST time: {text:?}");
    ((parts[0] * 60 + parts[1]) * 60 + parts[2]) * 1000 + ms.parse::<i64>().unwrap_or(0)
}

/// A `kill -9` while an answered call is up: the next start closes it
/// with a `recovered` CDR (answered, no end reason), and the phones can
/// call again.
pub fn crash_during_an_answered_call(dir: &Path, extra: &[&str]) {
    let demo = Demo::start(dir, extra);
    let mut callee = Phone::new("102", &demo.password("102"), DEMO_DOMAIN, demo.server.sip);
    assert_eq!(callee.register(), 200);
    let caller = Phone::new("101", &demo.password("101"), DEMO_DOMAIN, demo.server.sip);
    let answering = std::thread::spawn(move || {
        let invite = callee.recv_request("INVITE");
        callee.reply(&invite, 180, "b1");
        callee.reply(&invite, 200, "b1");
        let _ack = callee.recv_request("ACK");
        invite
            .header_named("X-Session-Id")
            .expect("X-Session-Id")
            .to_owned()
    });
    let call = caller.invite("102", |_| {});
    assert_eq!(call.status, 200);
    caller.ack(&call, "102");
    let session_id = answering.join().expect("callee");
    // The call is up; wait until its journal (started, rang, answered)
    // is committed: nothing else happens to it before it ends.
    demo.server.wait_stderr(|l| {
        l.contains(&format!("session_id={session_id}"))
            && l.contains("session events journaled")
            && l.contains("last=\"target_answered\"")
    });
    let tenant = demo.tenant.clone();
    let data = demo.server.data_dir.clone();
    demo.server.kill();

    let server = Server::start(&data, extra);
    let mut admin = server.admin();
    admin.tenant = Some(tenant);
    let list = wait_for_cdrs(&admin, 1);
    let item = &list["items"][0];
    assert_eq!(item["session_id"], session_id.as_str(), "{item}");
    assert_eq!(item["recovered"], true, "{item}");
    assert_eq!(item["call_status"], "answered", "{item}");
    assert_eq!(item["end_reason"], "", "{item}");
    assert_ne!(item["answered_at"], "", "{item}");
    let id = item["id"].as_str().expect("id");
    let detail = admin.get(&format!("/api/cdrs/{id}")).json();
    let targets = targets(&detail["items"][0]);
    assert_eq!(targets.len(), 1, "{detail}");
    assert_eq!(targets[0]["status"], "answered", "{detail}");
    assert_eq!(targets[0]["end_reason"], "None", "{detail}");
}

impl Demo {
    /// Sets `ext`'s forwarding rules over REST (`[(condition, destination)]`).
    pub fn forward(&self, ext: &str, rules: &[(&str, &str)]) {
        let admin = self.admin();
        let users = admin.get("/api/users?top=100").json();
        let id = users["items"]
            .as_array()
            .expect("items")
            .iter()
            .find(|u| u["extension"] == ext)
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no user {ext}: {users}"))
            .to_owned();
        let rules: Vec<Value> = rules
            .iter()
            .map(|(c, d)| json!({"condition": c, "destination": d}))
            .collect();
        let r = admin.request(
            "PATCH",
            &format!("/api/users/{id}"),
            "application/json",
            &json!({ "forwarding": rules }).to_string(),
        );
        assert_eq!(r.status, 200, "forwarding of {ext}: {}", r.body);
    }
}

/// `[callee, status, status_code]` of each target. (REST shows
/// `reroute_reason` at the call level, SPEC §7.)
fn reroutes(cdr: &Value) -> Vec<Value> {
    targets(cdr)
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["status_code"]]))
        .collect()
}

/// SPEC §3 "forward on busy": 102 answers 486, its busy rule sends the
/// call to 103, who answers; two targets, the second `FORWARDING_BUSY`.
pub fn forward_on_busy(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    demo.forward("102", &[("busy", "103")]);
    let busy = demo.phone("102", "uas_busy.xml");
    let answers = demo.phone("103", "uas.xml");
    demo.call("uac.xml", "101", "102");
    finished(&demo, busy, "uas_busy.xml");
    finished(&demo, answers, "uas.xml");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(
        reroutes(&cdr),
        [
            json!(["102", "noanswer", 486]),
            json!(["103", "answered", 0])
        ],
        "{cdr}"
    );
    assert_eq!(cdr["reroute_reason"], "FORWARDING_BUSY", "{cdr}");
    // The webhook saw it happen: 102 added and failed, the callee shown
    // changed to 103 (call_update_info), 103 added, answered, ended.
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    let k = kinds(&events);
    let at = |kind: &str| k.iter().position(|t| t == kind).unwrap_or(usize::MAX);
    assert!(at("cdr_target_fail") < at("call_update_info"), "{k:?}");
    assert!(at("call_update_info") < at("cdr_target_answer"), "{k:?}");
    let update = &events[at("call_update_info")];
    // SPEC §4: the parties of call_start / call_update_info are SIP URIs.
    assert_eq!(
        update["callee"],
        format!("sip:103@{DEMO_DOMAIN}"),
        "{update}"
    );
}

/// SPEC §3 "forward on no answer": 106 (ring timeout 5 s) rings out, its
/// rule sends the call to 103, who answers.
pub fn forward_on_no_answer(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let mut demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    demo.add_user("106", "s3cret-106", 5);
    demo.forward("106", &[("no_answer", "103")]);
    let rings = demo.phone("106", "uas_cancelled.xml");
    let answers = demo.phone("103", "uas.xml");
    demo.call("uac.xml", "101", "106");
    finished(&demo, rings, "uas_cancelled.xml");
    finished(&demo, answers, "uas.xml");

    let cdr = demo.only_cdr();
    assert_eq!(cdr["callee"], "106", "{cdr}");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(
        reroutes(&cdr),
        [
            json!(["106", "noanswer", 408]),
            json!(["103", "answered", 0])
        ],
        "{cdr}"
    );
    assert_eq!(cdr["reroute_reason"], "FORWARDING_NO_ANSWER", "{cdr}");
    // The webhook: 106 rang out (cdr_target_noanswer) before the call
    // moved on to 103.
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    let k = kinds(&events);
    let at = |kind: &str| k.iter().position(|t| t == kind).unwrap_or(usize::MAX);
    assert!(at("cdr_target_noanswer") < at("call_update_info"), "{k:?}");
}

/// SPEC §3 "target answers with 3xx and the PBX follows it": 102 answers
/// 302 to 103, who answers; 102 ends `redirected`.
pub fn redirect_followed(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let port = free_sip_port();
    demo.register("102", port);
    let redirects = Sipp::spawn(
        demo.server.sip,
        "uas_redirect.xml",
        "u1",
        port,
        &["-key", "redirect", "103", "-key", "domain", DEMO_DOMAIN],
    );
    let answers = demo.phone("103", "uas.xml");
    demo.call("uac.xml", "101", "102");
    finished(&demo, redirects, "uas_redirect.xml");
    finished(&demo, answers, "uas.xml");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    let t = targets(&cdr);
    assert_eq!(t.len(), 2, "{cdr}");
    assert_eq!(t[0]["end_reason"], "redirected", "{cdr}");
    assert_eq!(reroutes(&cdr)[1], json!(["103", "answered", 0]), "{cdr}");
    assert_eq!(cdr["reroute_reason"], "REDIRECT", "{cdr}");
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    let update = events
        .iter()
        .find(|e| e["event_type"] == "call_update_info")
        .unwrap_or_else(|| panic!("no call_update_info: {:?}", kinds(&events)));
    assert_eq!(
        update["callee"],
        format!("sip:103@{DEMO_DOMAIN}"),
        "{update}"
    );
}

/// SPEC §3 "REST-originated call": `POST /api/sessions` rings 101's phone
/// first (late offer), then 102's, and bridges them; 102 hangs up. The
/// CDR, read over REST, echoes `user_data` and has 101's device then
/// 102's as its targets.
pub fn originated_call(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    let caller = demo.phone("101", "uas.xml");
    let callee = demo.phone("102", "uas_hangs_up.xml");
    let r = demo.admin().post_json(
        "/api/sessions",
        &json!({"caller": "101", "callee": "102", "user_data": "crm:4711"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    finished(&demo, callee, "uas_hangs_up.xml (callee)");
    finished(&demo, caller, "uas.xml (caller)");

    let cdr = demo.only_cdr();
    assert_common(&cdr);
    assert_eq!(cdr["session_id"], id.as_str(), "{cdr}");
    assert_eq!(cdr["user_data"], "crm:4711", "{cdr}");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["status_code"], 0, "{cdr}");
    assert_eq!(cdr["end_reason"], "CALLEE_DISCONNECTED", "{cdr}");
    let targets = targets(&cdr);
    assert_eq!(targets.len(), 2, "{cdr}");
    assert_eq!(targets[0]["callee"], "101", "{cdr}");
    assert_eq!(targets[0]["status"], "answered", "{cdr}");
    assert_eq!(targets[0]["end_reason"], "callee_disconnect", "{cdr}");
    assert_eq!(targets[1]["callee"], "102", "{cdr}");
    assert_eq!(targets[1]["status"], "answered", "{cdr}");
    assert_eq!(targets[1]["end_reason"], "callee_disconnect", "{cdr}");
    let r = demo.admin().get("/api/sessions");
    assert_eq!(r.json()["count"], 0, "{}", r.body);
    // The webhook: call_start carries the user_data, as call_cdr does.
    let events = hooks.of_session(&id);
    assert_events(&events, &cdr);
    assert_eq!(events[0]["user_data"], "crm:4711", "{}", events[0]);
    assert_eq!(events.last().expect("cdr")["user_data"], "crm:4711");
}

/// Creates ring group `number` in the demo tenant over REST.
fn ring_group(demo: &Demo, body: Value) {
    let r = demo.admin().post_json("/api/ring_groups", &body);
    assert_eq!(r.status, 201, "ring group {body}: {}", r.body);
}

/// The CDR detail of the tenant's call to `callee`, once `n` CDRs exist.
fn cdr_to(demo: &Demo, n: u64, callee: &str) -> Value {
    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, n);
    let id = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["callee"] == callee)
        .and_then(|c| c["id"].as_str())
        .unwrap_or_else(|| panic!("no CDR to {callee}: {list}"))
        .to_owned();
    let detail = admin.get(&format!("/api/cdrs/{id}"));
    assert_eq!(detail.status, 200, "{}", detail.body);
    detail.json()["items"][0].clone()
}

/// `[callee, call_type, status, status_code]` of each target.
fn members(cdr: &Value) -> Vec<Value> {
    targets(cdr)
        .iter()
        .map(|t| json!([t["callee"], t["call_type"], t["status"], t["status_code"]]))
        .collect()
}

/// SPEC §3 "ring group", on one server: group 600 (`ring_all`: 102 and
/// 103) rings both, 103 answers, 102 is CANCELled; then group 601
/// (`hunt`: 104 then 105, 5 s each) rings 104 until its member timeout,
/// then 105, who answers. No target for a group, one `ring_group_call`
/// target per member rung, `callee` the group's number.
pub fn ring_groups(dir: &Path, extra: &[&str]) {
    let args = with_hooks_allowed(dir, extra);
    let demo = Demo::start(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    let hooks = Hooks::subscribe(&demo);
    ring_group(
        &demo,
        json!({"number": "600", "name": "Sales", "strategy": "ring_all",
               "members": ["102", "103"]}),
    );
    ring_group(
        &demo,
        json!({"number": "601", "name": "Support", "strategy": "hunt",
               "members": ["104", "105"], "member_timeout": 5, "timeout": 30}),
    );

    let loses = demo.phone("102", "uas_cancelled.xml");
    let answers = demo.phone("103", "uas.xml");
    demo.call("uac.xml", "101", "600");
    finished(&demo, loses, "uas_cancelled.xml");
    finished(&demo, answers, "uas.xml");
    let cdr = cdr_to(&demo, 1, "600");
    assert_eq!(cdr["caller"], "101", "{cdr}");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(cdr["reroute_reason"], "", "{cdr}");
    let mut rung = members(&cdr);
    rung.sort_by_key(|t| t[0].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        rung,
        [
            json!(["102", "ring_group_call", "noanswer", 0]),
            json!(["103", "ring_group_call", "answered", 0])
        ],
        "{cdr}"
    );
    // The webhook: both members added at once, the loser's leg ended
    // when 103 answered; no target event names the group itself.
    let events = hooks.of_session(cdr["session_id"].as_str().expect("session"));
    assert_events(&events, &cdr);
    assert!(
        events
            .iter()
            .filter(|e| e["event_type"] == "cdr_target_add")
            .all(|e| e["callee"] != "600"),
        "{events:?}"
    );

    let rings_out = demo.phone("104", "uas_cancelled.xml");
    let answers = demo.phone("105", "uas.xml");
    demo.call("uac.xml", "101", "601");
    finished(&demo, rings_out, "uas_cancelled.xml");
    finished(&demo, answers, "uas.xml");
    let cdr = cdr_to(&demo, 2, "601");
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert_eq!(
        members(&cdr),
        [
            json!(["104", "ring_group_call", "noanswer", 408]),
            json!(["105", "ring_group_call", "answered", 0])
        ],
        "{cdr}"
    );
    let t = targets(&cdr);
    // 105 was rung when 104's 5 s were over, not before (the targets'
    // times are Unix seconds).
    let second = |v: &Value| v.as_str().and_then(|s| s.parse::<i64>().ok()).unwrap();
    let waited = second(&t[1]["start_time"]) - second(&t[0]["start_time"]);
    assert!(
        (5..=7).contains(&waited),
        "105 rung {waited} s after 104: {cdr}"
    );
}
