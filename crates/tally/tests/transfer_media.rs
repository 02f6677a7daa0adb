//! Re-anchoring end to end (issue 11 leftover): a relayed, recorded call
//! blind-transferred by its callee keeps its relay, and audio flows A↔C
//! through it. SIPp phones: 101 (A) streams a 440 Hz tone once it is
//! joined with C, 102 (B) answers and REFERs the call to 103, 103 (C)
//! answers and echoes every RTP packet it gets back to where it came from
//! (`-rtp_echo`). B sends no audio, so A's tone on the recording's right
//! channel (side B) can only come from C echoing what the relay sent it:
//! A → relay → C → relay. Without re-anchoring A and C would be given each
//! other's addresses and talk past the relay (the recording's channels
//! silent after the transfer). The CDR (over REST) gives C's target the
//! `quality` and links the one recording; both on SQLite and PostgreSQL.

mod common;

use std::path::{Path, PathBuf};

use common::flows::Demo;
use common::pg::PgDatabase;
use common::{Sipp, TempDir, free_sip_port, sipp_available, wait_for_cdrs};
use media::g711::Law;
use media::tone::{Tone, dominant};
use serde_json::{Value, json};

const CALLER_HZ: f64 = 440.0;
const OTHER_HZ: f64 = 1_000.0;

/// A relay port range of this test's own (50000–59999: neither the SIP
/// test ports nor `media.rs`'s), a generous RTP timeout.
fn media_config(dir: &Path) -> PathBuf {
    let first = 50_000 + (std::process::id() % 300) as u16 * 30;
    let path = dir.join("media.toml");
    std::fs::write(
        &path,
        format!(
            "[media]\nrtp_ports = \"{first}-{}\"\nanchor = \"auto\"\nrtp_timeout_secs = 10\n",
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
fn scenario(dir: &Path, name: &str, tone: &Path) -> String {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sipp/media")
        .join(name);
    let text = std::fs::read_to_string(src)
        .unwrap()
        .replace("TONE_FILE", &tone.display().to_string());
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out.display().to_string()
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
        .any(|b| dominant(b, &[CALLER_HZ, OTHER_HZ], 8_000, 0.6) == Some(hz))
}

fn finished(demo: &Demo, sipp: Sipp, what: &str) {
    let (ok, log) = sipp.finish();
    assert!(ok, "SIPp {what}:\n{log}\n{}", demo.server.stderr());
}

fn blind_transfer_keeps_the_relay(extra: &[&str]) {
    let dir = TempDir::new("xfer-media");
    let config = media_config(dir.path()).display().to_string();
    let demo = Demo::start(
        dir.path(),
        &[&["--config", config.as_str()], extra].concat(),
    );
    // 101's calls are recorded (and so relayed).
    let admin = demo.admin();
    let users = admin.get("/api/users").json();
    let id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["extension"] == "101")
        .and_then(|u| u["id"].as_str())
        .unwrap()
        .to_owned();
    let r = admin.request(
        "PATCH",
        &format!("/api/users/{id}"),
        "application/json",
        &json!({"recording": true}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // C echoes what it gets.
    let port = free_sip_port();
    demo.register("103", port);
    let target = Sipp::spawn(demo.server.sip, "uas.xml", "u1", port, &["-rtp_echo"]);
    let port = free_sip_port();
    demo.register("102", port);
    let referrer = Sipp::spawn(
        demo.server.sip,
        "uas_refers.xml",
        "u1",
        port,
        &["-set", "target", "103"],
    );
    let uac = scenario(
        dir.path(),
        "uac_rejoined_tone.xml",
        &tone_file(dir.path(), CALLER_HZ),
    );
    demo.call(&uac, "101", "102");
    finished(&demo, referrer, "uas_refers.xml");
    finished(&demo, target, "uas.xml");

    let list = wait_for_cdrs(&admin, 1);
    let cdr_id = list["items"][0]["id"].as_str().expect("id").to_owned();
    let cdr: Value = admin.get(&format!("/api/cdrs/{cdr_id}")).json()["items"][0].clone();
    let got: Vec<Value> = cdr["call_targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| json!([t["callee"], t["status"], t["end_reason"]]))
        .collect();
    assert_eq!(
        got,
        [
            json!(["102", "answered", "blind_transfer_complete"]),
            json!(["103", "answered", "caller_disconnect"])
        ],
        "{cdr}"
    );
    // C's target has the relay's quality: what came back from C.
    let targets = cdr["call_targets"].as_array().unwrap();
    assert!(targets[0].get("quality").is_none(), "{cdr}");
    let q = &targets[1]["quality"];
    assert_eq!(q["codec"], "PCMU", "{cdr}");
    assert!(q["packets"].as_u64().unwrap_or(0) >= 50, "{cdr}");

    // One recording, A's tone on both channels: sent by A, echoed by C.
    let rec = &cdr["recording"];
    assert!(rec["id"].is_string(), "no recording: {cdr}");
    let path = demo.server.data_dir.join(format!(
        "recordings/{}/{}.wav",
        demo.tenant,
        cdr["session_id"].as_str().unwrap()
    ));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        holds_tone(&channel(&bytes, 0), CALLER_HZ),
        "A's tone (left)"
    );
    assert!(
        holds_tone(&channel(&bytes, 1), CALLER_HZ),
        "A's tone back from C (right): audio went A → relay → C → relay"
    );
}

#[test]
fn a_blind_transfer_of_a_relayed_call_keeps_audio_through_the_relay() {
    if !sipp_available("a_blind_transfer_of_a_relayed_call_keeps_audio_through_the_relay") {
        return;
    }
    blind_transfer_keeps_the_relay(&[]);
}

#[test]
fn on_postgres_a_blind_transfer_of_a_relayed_call_keeps_audio_through_the_relay() {
    let test = "on_postgres_a_blind_transfer_of_a_relayed_call_keeps_audio_through_the_relay";
    if !sipp_available(test) {
        return;
    }
    let Some(db) = PgDatabase::create(test) else {
        return;
    };
    blind_transfer_keeps_the_relay(&["--database", &db.url]);
}
