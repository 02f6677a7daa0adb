//! A prompt uploaded on one node plays on another (issue 14): two nodes
//! share a PostgreSQL database (SQLite is one node's file: there is no
//! second node to reach), each with its own data directory. Node 1 takes
//! the upload (the WAV goes to its file and to the prompt's row) and the
//! IVR using it; node 2 loads the IVR with the directory and the audio
//! from the row, and its caller hears the greeting's tone.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::flows::Demo;
use common::pg::PgDatabase;
use common::rtp_caller::Caller;
use common::{TempDir, sipp_available};
use media::tone::{Tone, dominant};
use serde_json::json;

const GREETING_HZ: f64 = 700.0;

fn media_config(dir: &Path, offset: u16) -> String {
    let slot = (std::process::id() % 300) as u16;
    let first = 50_000 + slot * 30 + offset;
    let path = dir.join("media.toml");
    std::fs::write(
        &path,
        format!(
            "[media]\nrtp_ports = \"{first}-{}\"\nanchor = \"auto\"\nrtp_timeout_secs = 60\n",
            first + 9
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_prompt_uploaded_on_one_node_plays_on_another() {
    if !sipp_available("a_prompt_uploaded_on_one_node_plays_on_another") {
        return;
    }
    let Some(db) = PgDatabase::create("prompts_shared") else {
        return;
    };
    let (dir_a, dir_b) = (
        TempDir::new("prompts-node-1"),
        TempDir::new("prompts-node-2"),
    );
    let (config_a, config_b) = (
        media_config(dir_a.path(), 0),
        media_config(dir_b.path(), 10),
    );
    let a = Demo::start(
        dir_a.path(),
        &["--config", &config_a, "--database", &db.url, "--node", "1"],
    );
    let b = a.another_node(
        dir_b.path(),
        &["--config", &config_b, "--database", &db.url, "--node", "2"],
    );
    let mut pcm = vec![0i16; 8000];
    Tone::sine(GREETING_HZ, 0.3, 8000).fill(&mut pcm);
    let mut w = media::wav::WavWriter::new(std::io::Cursor::new(Vec::new()), 1, 8000).unwrap();
    w.write_samples(&pcm).unwrap();
    let r = a.admin().request_bytes(
        "POST",
        "/api/prompts?name=welcome",
        "audio/wav",
        &w.finish().unwrap().into_inner(),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let prompt = r.json()["id"].as_str().unwrap().to_owned();
    let r = a.admin().post_json(
        "/api/ivrs",
        &json!({"number": "502", "name": "Welcome", "greeting_prompt_id": prompt}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    // Node 2 learns the IVR and the prompt within a sync or two: first the
    // IVR (404 until then), then its greeting.
    let until = Instant::now() + Duration::from_secs(15);
    let phone = common::phone::Phone::new(
        "101",
        &b.password("101"),
        common::flows::DEMO_DOMAIN,
        b.server.sip,
    );
    loop {
        let mut call = phone.invite("502", |_| {});
        if call.status == 200 {
            phone.ack(&call, "502");
            assert_eq!(phone.bye(&mut call, "502"), 200);
            break;
        }
        assert_eq!(call.status, 404, "before the IVR is known");
        assert!(Instant::now() < until, "node 2 never knew IVR 502");
        std::thread::sleep(Duration::from_millis(300));
    }
    loop {
        let mut caller = Caller::new(&b);
        let mut call = caller.call("502");
        let heard = caller.listen(0.8);
        assert_eq!(caller.phone.bye(&mut call, "502"), 200);
        let greeting = heard.chunks_exact(800).any(|blk| {
            dominant(blk, &[GREETING_HZ, 600.0, 1100.0], 8_000, 0.6) == Some(GREETING_HZ)
        });
        if greeting {
            break;
        }
        assert!(
            Instant::now() < until,
            "node 2 never played the greeting\n{}",
            b.server.stderr()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        b.server.stderr().contains("prompt loaded from the store"),
        "from the row, not a file: {}",
        b.server.stderr()
    );
    assert!(
        !dir_b.path().join("prompts").join(&a.tenant).exists(),
        "node 2 has no file of it"
    );
}
