//! `/api/recordings` on the real binary (SQLite): rows the media layer
//! would write are inserted into the server's database, with their WAV
//! files under the recordings directory; then the API lists, filters,
//! scopes (tenant, StandardUser's own calls), serves the file with and
//! without `Range`, and deletes row and file.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use cdr::{Id, SessionId, TenantId, UnixMillis};
use common::console;
use common::http::Http;
use common::{Server, TempDir};
use serde_json::json;
use store::{Recording, Store};

fn sign_in(server: &Server, username: &str, password: &str, domain: &str) -> Http {
    let mut http = server.http();
    let r = http.form(
        "/api/login/oauth/token",
        &[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("domain", domain),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    http.token = Some(r.json()["access_token"].as_str().unwrap().to_owned());
    http
}

/// A raw GET with extra headers: status line + headers, and the body.
fn get_raw(http: &Http, addr: std::net::SocketAddr, path: &str, extra: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let token = http.token.as_deref().unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_listed_scoped_downloaded_with_ranges_and_deleted() {
    let dir = TempDir::new("recordings-api");
    let server = Server::start(dir.path(), &[]);
    let admin = server.admin();
    let domain = "rec.example.com";
    let tenant = admin.create_tenant("Rec", domain);
    let other = admin.create_tenant("Other", "other.example.com");
    for (ext, role) in [("101", "Admin"), ("103", "StandardUser")] {
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &json!({"extension": ext, "sip_password": format!("sip-secret-{ext}"), "password": format!("web-pass-{ext}"), "role": role}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Rows and files as the relay writes them.
    let store = Store::open(&format!("sqlite:{}", dir.path().join("tally.db").display()))
        .await
        .unwrap();
    let tenant_id: TenantId = tenant.parse().unwrap();
    let rec_dir = dir.path().join("recordings");
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend((0..1000u32).map(|i| (i % 251) as u8));
    let mut ids = Vec::new();
    for (n, caller, callee, started) in [
        (1u64, "101", "102", 1_000u64),
        (2, "103", "104", 2_000),
        (3, "105", "101", 3_000),
    ] {
        let session = 960_000_000_000_000_000 + n;
        let path = format!("{tenant}/{session}.wav");
        std::fs::create_dir_all(rec_dir.join(&tenant)).unwrap();
        std::fs::write(rec_dir.join(&path), &wav).unwrap();
        let id = Id::from_u64(session + 7);
        store
            .insert_recording(&Recording {
                id,
                tenant_id,
                session_id: SessionId::from(Id::from_u64(session)),
                caller: caller.into(),
                callee: callee.into(),
                started_at: UnixMillis(1_795_874_587_000 + started),
                duration_ms: 61_500,
                size_bytes: wav.len() as u64,
                path,
                created_at: UnixMillis(1_795_874_600_000),
            })
            .await
            .unwrap();
        ids.push(id.to_string());
    }

    // Tenant admin: everything, newest first; filters; paging.
    let ta = sign_in(&server, "101", "web-pass-101", domain);
    let r = ta.get("/api/recordings");
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.json();
    assert_eq!(list["count"], 3);
    assert_eq!(list["items"][0]["id"], ids[2].as_str());
    assert_eq!(list["items"][0]["duration"], 61);
    assert_eq!(
        list["items"][0]["url"],
        format!("/api/recordings/{}/download", ids[2])
    );
    assert_eq!(ta.get("/api/recordings?number=101").json()["count"], 2);
    let page = ta
        .get(&format!("/api/recordings?top=1&after={}", ids[2]))
        .json();
    assert_eq!(page["items"][0]["id"], ids[1].as_str());
    let r = ta.get("/api/recordings?from=2026-11-28T14:03:09Z");
    assert_eq!(r.json()["count"], 2, "{}", r.body);
    for bad in ["top=0", "from=yesterday", "after=12", "number="] {
        let r = ta.get(&format!("/api/recordings?{bad}"));
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.error_code(), "VALIDATE_FAILED");
    }

    // StandardUser 103: its own call only; another's is 404.
    let carol = sign_in(&server, "103", "web-pass-103", domain);
    let mine = carol.get("/api/recordings").json();
    assert_eq!(mine["count"], 1);
    assert_eq!(mine["items"][0]["id"], ids[1].as_str());
    assert_eq!(
        carol.get(&format!("/api/recordings/{}", ids[0])).status,
        404
    );
    assert_eq!(
        carol.get(&format!("/api/recordings/{}", ids[1])).status,
        200
    );
    assert_eq!(
        carol
            .request("DELETE", &format!("/api/recordings/{}", ids[1]), "", "")
            .status,
        403
    );

    // The system admin in another tenant sees nothing of this one.
    let mut sys = server.admin();
    sys.tenant = Some(other);
    assert_eq!(sys.get(&format!("/api/recordings/{}", ids[0])).status, 404);
    assert_eq!(sys.get("/api/recordings").json()["count"], 0);

    // Download: whole, a range, a suffix, unsatisfiable.
    let path = format!("/api/recordings/{}/download", ids[0]);
    let (head, body) = get_raw(&ta, server.http, &path, "");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("accept-ranges: bytes"),
        "{head}"
    );
    assert_eq!(body, wav);
    let (head, body) = get_raw(&ta, server.http, &path, "Range: bytes=4-13\r\n");
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-range: bytes 4-13/{}", wav.len())),
        "{head}"
    );
    assert_eq!(body, &wav[4..14]);
    let (_, body) = get_raw(&ta, server.http, &path, "Range: bytes=-5\r\n");
    assert_eq!(body, &wav[wav.len() - 5..]);
    let (head, _) = get_raw(&ta, server.http, &path, "Range: bytes=99999-\r\n");
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");

    // The console: 103's page lists its own recording, whose player plays
    // it with the session cookie (a bearer token cannot be given to an
    // `<audio>`), `Range` included; another's recording is 404 there too.
    let jar = console::sign_in(&server, Some(domain), "103", "web-pass-103");
    let (status, _, page) = console::raw(&server, "GET", "/console/recordings", &jar, "");
    assert_eq!(status, 200, "{page}");
    let audio = |id: &str| format!("/console/recordings/{id}/audio");
    assert!(page.contains(&audio(&ids[1])), "{page}");
    assert!(
        !page.contains(&ids[0]) && !page.contains(&ids[2]),
        "another user's recording listed: {page}"
    );
    assert!(
        !page.contains("/delete\""),
        "a StandardUser cannot delete: {page}"
    );
    let (status, headers, body) = console::raw_bytes(
        &server,
        "GET",
        &audio(&ids[1]),
        &jar,
        "",
        "Range: bytes=4-13\r\n",
    );
    assert_eq!(status, 206, "{headers:?}");
    assert!(headers.contains(&("content-type".into(), "audio/wav".into())));
    assert_eq!(body, &wav[4..14]);
    let (status, _, _) = console::raw_bytes(&server, "GET", &audio(&ids[0]), &jar, "", "");
    assert_eq!(status, 404, "another user's recording");
    let (status, _, _) = console::raw_bytes(&server, "GET", &audio(&ids[1]), "", "", "");
    assert_eq!(status, 303, "no session: to the sign-in page");
    // The tenant admin's page: every recording, each with a delete form
    // that needs the CSRF token.
    let jar = console::sign_in(&server, Some(domain), "101", "web-pass-101");
    let (status, _, page) = console::raw(&server, "GET", "/console/recordings", &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(ids.iter().all(|id| page.contains(&audio(id))), "{page}");
    let delete = format!("/console/recordings/{}/delete", ids[2]);
    assert!(page.contains(&delete), "{page}");
    let (status, _, _) = console::raw(&server, "POST", &delete, &jar, "");
    assert_eq!(status, 403, "no CSRF token");
    let csrf = format!("csrf={}", console::csrf_of(&jar));
    let (status, _, body) = console::raw(&server, "POST", &delete, &jar, &csrf);
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        ta.get(&format!("/api/recordings/{}", ids[2])).status,
        404,
        "deleted from the console"
    );
    let third = rec_dir.join(format!("{tenant}/{}.wav", 960_000_000_000_000_003u64));
    assert!(!third.exists());

    // Delete: row and file go; a second delete is 404.
    let file = rec_dir.join(format!("{tenant}/{}.wav", 960_000_000_000_000_001u64));
    assert!(file.exists());
    assert_eq!(
        ta.request("DELETE", &format!("/api/recordings/{}", ids[0]), "", "")
            .status,
        204
    );
    assert!(!file.exists());
    assert_eq!(
        ta.request("DELETE", &format!("/api/recordings/{}", ids[0]), "", "")
            .status,
        404
    );
    assert_eq!(
        ta.get(&format!("/api/recordings/{}/download", ids[0]))
            .status,
        404
    );
    server.terminate();
}
