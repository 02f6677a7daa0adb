//! Relayed media end to end against the real binary, with SIPp sending
//! RTP (`rtp_stream` of generated G.711 tones): a recorded call's WAV
//! holds each party's tone on its channel, the CDR links the recording and
//! gives the target's `quality` (over REST, on SQLite and PostgreSQL); the
//! caller's SDP names a port it does not send from, so its audio reaching
//! the WAV shows the relay latched its real source; an answered call with
//! no RTP is ended at `media.rtp_timeout_secs` with a CDR.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};

use common::console;
use common::flows::Demo;
use common::pg::PgDatabase;
use common::{Sipp, TempDir, free_sip_port, sipp, sipp_available, wait_for_cdrs};
use media::g711::Law;
use media::tone::{Tone, dominant};
use serde_json::{Value, json};

const CALLER_HZ: f64 = 440.0;
const CALLEE_HZ: f64 = 1_000.0;

/// A config file with a relay port range of this test's own (40000–49999,
/// never the SIP test ports) and a 2 s RTP timeout.
fn media_config(dir: &Path) -> PathBuf {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = (std::process::id() % 40) as u16 * 8 + NEXT.fetch_add(1, Ordering::Relaxed) % 8;
    let first = 40_000 + slot * 30;
    let path = dir.join("media.toml");
    std::fs::write(
        &path,
        format!(
            "[media]\nrtp_ports = \"{first}-{}\"\nanchor = \"auto\"\nrtp_timeout_secs = 2\n",
            first + 29
        ),
    )
    .unwrap();
    path
}

/// 2 s of a sine as raw PCMU (what SIPp's `rtp_stream` plays).
fn tone_file(dir: &Path, hz: f64) -> PathBuf {
    let mut samples = vec![0i16; 16_000];
    Tone::sine(hz, 8_000.0, 8_000).fill(&mut samples);
    let mut codes = vec![0u8; samples.len()];
    Law::Pcmu.encode_into(&samples, &mut codes);
    let path = dir.join(format!("tone-{hz}.ulaw"));
    std::fs::write(&path, codes).unwrap();
    path
}

/// `tests/sipp/media/<name>` with TONE_FILE replaced, written to `dir`.
fn scenario(dir: &Path, name: &str, tone: Option<&Path>) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sipp/media")
        .join(name);
    let mut text = std::fs::read_to_string(src).unwrap();
    if let Some(tone) = tone {
        text = text.replace("TONE_FILE", &tone.display().to_string());
    }
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out.display().to_string()
}

/// Adds a user whose calls are recorded.
fn add_recorded_user(demo: &Demo, ext: &str, password: &str) {
    add_user(demo, ext, password, true);
}

fn add_user(demo: &Demo, ext: &str, password: &str, recording: bool) {
    let r = demo.server.admin().post_json(
        &format!("/api/tenants/{}/users", demo.tenant),
        &json!({ "extension": ext, "sip_password": password, "recording": recording }),
    );
    assert_eq!(r.status, 201, "create user: {}", r.body);
}

/// SIPp registers `ext` (with `password`) from 127.0.0.1:`port`.
fn register(demo: &Demo, ext: &str, password: &str, port: u16) {
    let (ok, log) = Sipp::spawn(
        demo.server.sip,
        "register.xml",
        "u1",
        port,
        &[
            "-s",
            ext,
            "-ap",
            password,
            "-key",
            "domain",
            common::flows::DEMO_DOMAIN,
            "-auth_uri",
            common::flows::DEMO_DOMAIN,
        ],
    )
    .finish();
    assert!(ok, "SIPp REGISTER {ext}:\n{log}");
}

/// 101 calls `to` with `uac`; `to` answers with `uas` from a fresh port.
/// Returns the caller's SIPp log (with the messages it sent).
fn call(demo: &Demo, uac: &str, uas: &str, to: &str, to_password: &str) -> String {
    call_via(demo, uac, uas, to, (to, to_password))
}

/// 101 dials `to` with `uac`; `answerer` (extension, password), registered
/// from a fresh port, answers with `uas` (the call reaches it by
/// forwarding when it is not `to`).
fn call_via(demo: &Demo, uac: &str, uas: &str, to: &str, answerer: (&str, &str)) -> String {
    let port = free_sip_port();
    register(demo, answerer.0, answerer.1, port);
    let answering = Sipp::spawn(demo.server.sip, uas, "u1", port, &[]);
    let (ok, log) = sipp(
        demo.server.sip,
        uac,
        "u1",
        &[
            "-s",
            to,
            "-set",
            "caller",
            "101",
            "-au",
            "101",
            "-ap",
            &demo.password("101"),
            "-auth_uri",
            &format!("{to}@{}", common::flows::DEMO_DOMAIN),
        ],
    );
    assert!(ok, "SIPp {uac}:\n{log}\n{}", demo.server.stderr());
    let (ok, callee_log) = answering.finish();
    assert!(ok, "SIPp {uas}:\n{callee_log}\n{}", demo.server.stderr());
    log
}

/// The audio port in the first INVITE SIPp sent (its SDP).
fn offered_port(log: &str) -> u16 {
    let invite = log.find("INVITE sip:").expect("the INVITE in the log");
    let m = log[invite..].find("m=audio ").expect("an audio line") + invite + 8;
    log[m..].split_whitespace().next().unwrap().parse().unwrap()
}

/// The port the relay latched for the caller, from the server's
/// "relay stopped" line.
fn latched_caller_port(stderr: &str) -> u16 {
    let line = stderr
        .lines()
        .find(|l| l.contains("relay stopped"))
        .unwrap_or_else(|| panic!("no relay stopped line:\n{stderr}"));
    let at = line.find("caller_latched=Some(").expect("caller latched") + 20;
    let addr: std::net::SocketAddr = line[at..].split(')').next().unwrap().parse().unwrap();
    addr.port()
}

/// The one CDR's detail, once it is there.
fn only_cdr(demo: &Demo) -> Value {
    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, 1);
    let id = list["items"][0]["id"].as_str().expect("id").to_owned();
    admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
}

/// The samples of one channel of a stereo PCM16 WAV.
fn channel(wav: &[u8], ch: usize) -> Vec<i16> {
    let data = wav
        .windows(4)
        .position(|w| w == b"data")
        .expect("a data chunk")
        + 8;
    wav[data..]
        .chunks_exact(4)
        .map(|f| i16::from_le_bytes([f[2 * ch], f[2 * ch + 1]]))
        .collect()
}

/// Whether some 100 ms block of `samples` is clearly `hz`.
fn holds_tone(samples: &[i16], hz: f64) -> bool {
    samples
        .chunks_exact(800)
        .any(|b| dominant(b, &[CALLER_HZ, CALLEE_HZ], 8_000, 0.6) == Some(hz))
}

fn recorded_call_with_tones(extra: &[&str]) {
    let dir = TempDir::new("media-tone");
    let config = media_config(dir.path());
    let config = config.display().to_string();
    let demo = Demo::start(
        dir.path(),
        &[&["--config", config.as_str()], extra].concat(),
    );
    add_recorded_user(&demo, "110", "s3cret-110");
    let uac = scenario(
        dir.path(),
        "uac_tone.xml",
        Some(&tone_file(dir.path(), CALLER_HZ)),
    );
    let uas = scenario(
        dir.path(),
        "uas_tone.xml",
        Some(&tone_file(dir.path(), CALLEE_HZ)),
    );
    let log = call(&demo, &uac, &uas, "110", "s3cret-110");

    let cdr = only_cdr(&demo);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    // The caller sent from another port than its SDP named: latched.
    let (offered, latched) = (
        offered_port(&log),
        latched_caller_port(&demo.server.stderr()),
    );
    assert_ne!(
        offered, latched,
        "the relay latched the caller's real source"
    );
    let rec = &cdr["recording"];
    let url = rec["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no recording: {cdr}"));
    assert!(rec["duration"].as_u64().unwrap() >= 1, "{cdr}");
    let q = &cdr["call_targets"][0]["quality"];
    assert_eq!(q["codec"], "PCMU", "{cdr}");
    assert!(q["packets"].as_u64().unwrap() >= 50, "{cdr}");
    assert_eq!(q["lost"], 0, "{cdr}");
    assert!(q["mos"].as_f64().unwrap() > 4.0, "{cdr}");

    // The recording's row and file, over REST.
    let admin = demo.admin();
    let id = rec["id"].as_str().expect("recording id").to_owned();
    let row = admin.get(&format!("/api/recordings/{id}"));
    assert_eq!(row.status, 200, "{}", row.body);
    assert_eq!(row.json()["session_id"], cdr["session_id"], "{}", row.body);
    assert_eq!(admin.get(url).status, 200, "download");
    // The file, named by session under the tenant's directory.
    let path = demo.server.data_dir.join(format!(
        "recordings/{}/{}.wav",
        demo.tenant,
        cdr["session_id"].as_str().unwrap()
    ));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        holds_tone(&channel(&bytes, 0), CALLER_HZ),
        "caller's tone on the left"
    );
    assert!(
        holds_tone(&channel(&bytes, 1), CALLEE_HZ),
        "callee's tone on the right"
    );
    assert!(!holds_tone(&channel(&bytes, 0), CALLEE_HZ));

    // Deleting the tenant deletes its recording files.
    let r = demo.server.admin().request(
        "DELETE",
        &format!("/api/tenants/{}", demo.tenant),
        "application/json",
        "",
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(!path.exists(), "{} is left", path.display());
    assert!(!path.parent().unwrap().exists());
}

#[test]
fn a_recorded_call_keeps_both_tones_and_its_cdr_links_recording_and_quality() {
    if !sipp_available("a_recorded_call_keeps_both_tones_and_its_cdr_links_recording_and_quality") {
        return;
    }
    recorded_call_with_tones(&[]);
}

#[test]
fn on_postgres_a_recorded_call_keeps_its_row_and_cdr_link() {
    let test = "on_postgres_a_recorded_call_keeps_its_row_and_cdr_link";
    if !sipp_available(test) {
        return;
    }
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    recorded_call_with_tones(&["--database", &db.url]);
}

#[test]
fn a_relayed_call_without_rtp_is_ended_at_the_timeout_with_a_cdr() {
    if !sipp_available("a_relayed_call_without_rtp_is_ended_at_the_timeout_with_a_cdr") {
        return;
    }
    let dir = TempDir::new("media-timeout");
    let config = media_config(dir.path());
    let config = config.display().to_string();
    let demo = Demo::start(dir.path(), &["--config", config.as_str()]);
    add_recorded_user(&demo, "110", "s3cret-110");
    let uac = scenario(dir.path(), "uac_silent.xml", None);
    let uas = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sipp/uas.xml")
        .display()
        .to_string();
    call(&demo, &uac, &uas, "110", "s3cret-110");
    let cdr = only_cdr(&demo);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    // Nobody hung up: `None` (REST shows it as "").
    assert_eq!(cdr["end_reason"], "", "{cdr}");
    assert_eq!(cdr["call_targets"][0]["end_reason"], "None", "{cdr}");
    // About the timeout after the answer, not SIPp's 15 s.
    assert!(cdr["duration"].as_u64().unwrap() <= 4, "{cdr}");
    // Relayed, silent: nothing came, nothing to score.
    let q = &cdr["call_targets"][0]["quality"];
    assert_eq!(
        (&q["packets"], &q["codec"], &q["mos"]),
        (&json!(0), &json!(""), &json!(0.0)),
        "{cdr}"
    );
    // The recording was made: silence, as long as the call.
    assert!(cdr["recording"]["duration"].as_u64().unwrap() >= 1, "{cdr}");
}

/// The newest CDR's detail, once there are `n`.
fn newest_cdr(demo: &Demo, n: u64) -> Value {
    let admin = demo.admin();
    let list = wait_for_cdrs(&admin, n);
    let id = list["items"][0]["id"].as_str().expect("id").to_owned();
    admin.get(&format!("/api/cdrs/{id}")).json()["items"][0].clone()
}

/// The recordings directory is not writable (a file stands where it
/// should be): the call goes on, relayed and measured, and its CDR says
/// why it has no recording.
fn unwritable_recordings_dir(extra: &[&str]) {
    let dir = TempDir::new("media-unwritable");
    let config = media_config(dir.path());
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"a file where the recordings directory should be").unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[recordings]\ndir = \"{}\"\n",
        blocker.display()
    ));
    std::fs::write(&config, text).unwrap();
    let config = config.display().to_string();
    let mut demo = Demo::start(
        dir.path(),
        &[&["--config", config.as_str()], extra].concat(),
    );
    add_recorded_user(&demo, "110", "s3cret-110");
    demo.add_web_user("120", "s3cret-120", "web-pass-120", "Admin");
    let uac = scenario(
        dir.path(),
        "uac_tone.xml",
        Some(&tone_file(dir.path(), CALLER_HZ)),
    );
    let uas = scenario(
        dir.path(),
        "uas_tone.xml",
        Some(&tone_file(dir.path(), CALLEE_HZ)),
    );
    call(&demo, &uac, &uas, "110", "s3cret-110");
    let cdr = only_cdr(&demo);
    assert_eq!(cdr["call_status"], "answered", "{cdr}");
    assert!(cdr.get("recording").is_none(), "{cdr}");
    // The console's CDR detail says it too.
    let jar = console::sign_in(
        &demo.server,
        Some(common::flows::DEMO_DOMAIN),
        "120",
        "web-pass-120",
    );
    let (status, _, page) = console::raw(
        &demo.server,
        "GET",
        &format!("/console/cdrs/{}", cdr["id"].as_str().unwrap()),
        &jar,
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("no recording was made") && page.contains("unwritable"),
        "{page}"
    );
    let error = &cdr["recording_error"];
    assert_eq!(error["reason"], "unwritable", "{cdr}");
    let detail = error["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("not-a-dir") && detail.contains("os error"),
        "the path and the OS error: {cdr}"
    );
    // Relayed all the same: the target's quality is there.
    assert_eq!(cdr["call_targets"][0]["quality"]["codec"], "PCMU", "{cdr}");
    assert!(
        demo.admin().get("/api/recordings").json()["count"] == 0,
        "no recording row"
    );
}

#[test]
fn an_unwritable_recordings_dir_is_named_in_the_cdr() {
    if !sipp_available("an_unwritable_recordings_dir_is_named_in_the_cdr") {
        return;
    }
    unwritable_recordings_dir(&[]);
}

#[test]
fn on_postgres_an_unwritable_recordings_dir_is_named_in_the_cdr() {
    let test = "on_postgres_an_unwritable_recordings_dir_is_named_in_the_cdr";
    if !sipp_available(test) {
        return;
    }
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    unwritable_recordings_dir(&["--database", &db.url]);
}

/// Recording beyond the first destination, and the tenant's flag, on one
/// server: (1) a recording tenant's call is recorded though nobody in it
/// records; (2) 110 forwards every call to 111, who records: recorded;
/// (3) 112 would forward unanswered calls to 111 but answers itself: the
/// recording made in case is deleted, no row, no link, no error.
#[test]
fn the_tenant_flag_and_a_forward_to_a_recording_user_record_the_call() {
    if !sipp_available("the_tenant_flag_and_a_forward_to_a_recording_user_record_the_call") {
        return;
    }
    let dir = TempDir::new("media-who-records");
    let config = media_config(dir.path());
    let config = config.display().to_string();
    let demo = Demo::start(dir.path(), &["--config", config.as_str()]);
    add_user(&demo, "110", "s3cret-110", false);
    add_recorded_user(&demo, "111", "s3cret-111");
    add_user(&demo, "112", "s3cret-112", false);
    let uac = scenario(
        dir.path(),
        "uac_tone.xml",
        Some(&tone_file(dir.path(), CALLER_HZ)),
    );
    let uas = scenario(
        dir.path(),
        "uas_tone.xml",
        Some(&tone_file(dir.path(), CALLEE_HZ)),
    );
    let admin = demo.admin();
    let wav = |cdr: &Value| {
        demo.server.data_dir.join(format!(
            "recordings/{}/{}.wav",
            demo.tenant,
            cdr["session_id"].as_str().unwrap()
        ))
    };

    // (1) The tenant records.
    let r = admin.request(
        "PUT",
        "/api/tenant",
        "application/json",
        &json!({"recording": true}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["recording"], true, "{}", r.body);
    assert_eq!(admin.get("/api/tenant").json()["recording"], true);
    call(&demo, &uac, &uas, "110", "s3cret-110");
    let cdr = newest_cdr(&demo, 1);
    assert!(
        cdr["recording"]["duration"].as_u64().unwrap_or(0) >= 1,
        "{cdr}"
    );
    assert!(wav(&cdr).exists());
    let r = admin.request(
        "PUT",
        "/api/tenant",
        "application/json",
        &json!({"recording": false}).to_string(),
    );
    assert_eq!(r.json()["recording"], false, "{}", r.body);

    // (2) Forwarded to a user who records.
    demo.forward("110", &[("always", "111")]);
    call_via(&demo, &uac, &uas, "110", ("111", "s3cret-111"));
    let cdr = newest_cdr(&demo, 2);
    assert_eq!(cdr["callee"], "110", "{cdr}");
    assert_eq!(cdr["call_targets"][0]["callee"], "111", "{cdr}");
    let id = cdr["recording"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("recorded: {cdr}"));
    let bytes = std::fs::read(wav(&cdr)).unwrap();
    assert!(holds_tone(&channel(&bytes, 0), CALLER_HZ));
    assert!(holds_tone(&channel(&bytes, 1), CALLEE_HZ));
    assert_eq!(admin.get(&format!("/api/recordings/{id}")).status, 200);

    // (3) Recorded in case, but the one who answered does not record.
    demo.forward("112", &[("no_answer", "111")]);
    call(&demo, &uac, &uas, "112", "s3cret-112");
    let cdr = newest_cdr(&demo, 3);
    assert_eq!(cdr["call_targets"][0]["callee"], "112", "{cdr}");
    assert!(cdr.get("recording").is_none(), "{cdr}");
    assert!(cdr.get("recording_error").is_none(), "{cdr}");
    // Relayed (it was anchored in case), and the file is gone.
    assert_eq!(cdr["call_targets"][0]["quality"]["codec"], "PCMU", "{cdr}");
    assert!(!wav(&cdr).exists(), "{} is left", wav(&cdr).display());
    assert_eq!(admin.get("/api/recordings").json()["count"], 2);
}
