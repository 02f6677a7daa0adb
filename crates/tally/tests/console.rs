//! The web console in a real browser: headless Chromium driven over
//! WebDriver against a `tally serve --demo`, with SIPp placing the calls.
//! Without `chromium` + `chromium-driver` (or SIPp) the test prints
//! SKIPPED. Screenshots of the CDR list and detail are saved under
//! `target/tmp/console/`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::console::{cookies_of, csrf_of, raw};
use common::flows::{DEMO_DOMAIN, Demo};
use common::webdriver::{Browser, chromium};
use common::{ADMIN_PASSWORD, TempDir, WAIT, sipp_available, wait_for_cdrs};

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A webhook receiver on loopback: answers 200 to every request and
/// hands each body to the test.
fn receiver() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { break };
            let _ = stream.set_read_timeout(Some(WAIT));
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (url, rx)
}

fn sign_in(b: &Browser, base: &str, domain: &str, user: &str, password: &str) {
    b.goto(&format!("{base}/console/sign-in"));
    b.type_into("#domain", domain);
    b.type_into("#username", user);
    b.type_into("#password", password);
    b.submit("form button[type=submit]");
}

/// 101 calls 102 (SIPp on both ends), 102 answers and hangs up.
fn answered_call(demo: &Demo) {
    let callee = demo.phone("102", "uas_hangs_up.xml");
    demo.call("uac_hung_up.xml", "101", "102");
    let (ok, log) = callee.finish();
    assert!(ok, "SIPp callee:\n{log}");
}

#[test]
fn the_console_in_a_browser() {
    let Some((browser, driver)) = chromium() else {
        println!("SKIPPED the_console_in_a_browser: chromium and chromedriver are not installed");
        return;
    };
    if !sipp_available("the_console_in_a_browser") {
        return;
    }
    let dir = TempDir::new("console");
    let config = dir.path().join("tally.toml");
    std::fs::write(&config, "[webhooks]\nallow = [\"127.0.0.1/32\"]\n").expect("config");
    let demo = Demo::start(dir.path(), &["--config", &config.display().to_string()]);
    let base = format!("http://{}", demo.server.http);
    let b = Browser::start(&browser, &driver);

    // A wrong password: the form again, with the REST sign-in's answer.
    sign_in(&b, &base, "", "admin", "not-the-password");
    assert!(
        b.text("p.error").contains("Sign-in failed"),
        "{}",
        b.text("body")
    );

    // Sign in as the system admin: the dashboard, the demo tenant chosen.
    sign_in(&b, &base, "", "admin", ADMIN_PASSWORD);
    b.wait_for("h1", |h| !h.is_empty());
    assert_eq!(b.text("h1"), "Dashboard", "{}", b.text("body"));

    // CDRs after SIPp calls.
    answered_call(&demo);
    wait_for_cdrs(&demo.admin(), 1);
    b.goto(&format!("{base}/console/cdrs"));
    let rows = b.wait_for("#cdrs tbody tr[id^=cdr-]", |r| r.len() == 1);
    let row = b.element_text(&rows[0]);
    assert!(row.contains("101") && row.contains("102"), "{row}");
    assert!(row.contains("Extension"), "{row}");
    let headings = b.text("#cdrs thead");
    for h in [
        "Caller",
        "Callee",
        "Start",
        "Ring",
        "Answer",
        "End",
        "Talking time",
        "Status code",
        "Direction",
    ] {
        assert!(headings.contains(h), "{h} in {headings}");
    }
    b.screenshot(&screenshots().join("cdr-list.png"));

    // Filter by number: another number lists nothing, the caller's lists it.
    b.type_into("#f-number", "109");
    b.submit("form.filters button[type=submit]");
    b.wait_for("#cdrs tbody tr.empty", |r| r.len() == 1);
    b.type_into("#f-number", "101");
    b.submit("form.filters button[type=submit]");
    b.wait_for("#cdrs tbody tr[id^=cdr-]", |r| r.len() == 1);
    let export = b.script("return document.querySelector('a[download]').getAttribute('href')");
    assert!(
        export.as_str().is_some_and(|h| h.contains("number=101")),
        "{export}"
    );

    // The detail: every target, with its destination.
    b.click("#cdrs tbody tr a");
    b.wait_for("h1", |h| !h.is_empty());
    assert_eq!(b.text("h1"), "Call 101 → 102", "{}", b.text("body"));
    let targets = b.text("table[aria-labelledby=targets] tbody");
    assert!(targets.contains("sip:102@"), "{targets}");
    assert!(targets.contains("callee_disconnect"), "{targets}");
    let events = b.text("table[aria-labelledby=events] tbody");
    assert!(
        events.contains("call_start") && events.contains("call_cdr"),
        "{events}"
    );
    let cdr_url = b
        .script("return location.pathname")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    b.screenshot(&screenshots().join("cdr-detail.png"));
    b.script("document.getElementById('targets').scrollIntoView()");
    b.screenshot(&screenshots().join("cdr-detail-targets.png"));

    // A live row: the list is open when the next call ends.
    b.goto(&format!("{base}/console/cdrs"));
    b.wait_for("#cdrs tbody tr[id^=cdr-]", |r| r.len() == 1);
    let started = Instant::now();
    while !b.text("#live-status").contains("Live") {
        assert!(started.elapsed() < WAIT, "the live stream did not open");
        std::thread::sleep(Duration::from_millis(50));
    }
    answered_call(&demo);
    let rows = b.wait_for("#cdrs tbody tr.fresh", |r| r.len() == 1);
    assert!(b.element_text(&rows[0]).contains("101"));
    assert_eq!(b.find_all("#cdrs tbody tr[id^=cdr-]").len(), 2);

    // The Event URL: save a URL, send a test event the receiver gets.
    let (url, hits) = receiver();
    b.goto(&format!("{base}/console/webhook"));
    b.type_into("#w-url", &url);
    b.script("document.querySelector('input[name=enabled]').checked = true");
    b.submit("form[aria-labelledby=config] button[type=submit]");
    b.wait_for("p.notice", |n| !n.is_empty());
    assert_eq!(b.text("p.notice"), "Saved.");
    b.submit("form[action='/console/webhook/test'] button");
    b.wait_for("p.notice, p.error", |n| !n.is_empty());
    assert!(
        b.text("p.notice").contains("delivered"),
        "{}",
        b.text("body")
    );
    let deadline = Instant::now() + WAIT;
    let test_event = loop {
        let body = hits.recv_timeout(WAIT).expect("the receiver got a request");
        if body.contains("\"test\"") {
            break body;
        }
        assert!(Instant::now() < deadline, "no test event");
    };
    assert!(test_event.contains("event_type"), "{test_event}");

    // CSRF: the same form without its token is refused.
    b.script("document.querySelector('form[aria-labelledby=config] input[name=csrf]').remove()");
    b.submit("form[aria-labelledby=config] button[type=submit]");
    b.wait_for("h1", |h| !h.is_empty());
    assert!(
        b.text("body").contains("The form was refused"),
        "{}",
        b.text("body")
    );

    // Another tenant's admin cannot open this tenant's CDR by its URL.
    let admin = demo.server.admin();
    let other = admin.create_tenant("Other", "other.example");
    let r = admin.post_json(
        &format!("/api/tenants/{other}/users"),
        &serde_json::json!({"extension": "200", "sip_password": "sip-secret-200",
            "password": "web-password-200", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    b.goto(&format!("{base}/console"));
    b.submit("form[action='/console/sign-out'] button");
    b.wait_for("#username", |e| !e.is_empty());
    sign_in(&b, &base, "other.example", "200", "web-password-200");
    b.wait_for("h1", |h| h.len() == 1);
    assert_eq!(b.text("h1"), "Dashboard", "{}", b.text("body"));
    b.goto(&format!("{base}{cdr_url}"));
    assert_eq!(b.text("h1"), "Not found", "{}", b.text("body"));
    // Its own list is empty, and the demo tenant's calls are not in it.
    b.goto(&format!("{base}/console/cdrs"));
    b.wait_for("#cdrs tbody tr.empty", |r| r.len() == 1);
    assert!(!b.text("body").contains(DEMO_DOMAIN));
}

/// The session and CSRF rules without a browser (they run wherever the
/// suite runs): cookie flags, CSRF refusals, the REST sign-in's lock-out,
/// sign-out revoking the session, and a tenant admin's 404 for another
/// tenant's CDR.
#[test]
fn sessions_csrf_and_lockout_over_plain_http() {
    let dir = TempDir::new("console-http");
    let server = common::Server::start(dir.path(), &[]);
    let (status, headers, _) = raw(&server, "GET", "/", "", "");
    assert_eq!(status, 303);
    assert!(headers.contains(&("location".into(), "/console".into())));
    let (status, headers, _) = raw(&server, "GET", "/console", "", "");
    assert_eq!(status, 303, "not signed in: to the sign-in page");
    assert!(headers.contains(&("location".into(), "/console/sign-in".into())));

    let (status, headers, page) = raw(&server, "GET", "/console/sign-in", "", "");
    assert_eq!(status, 200);
    let jar = cookies_of(&headers);
    let csrf = csrf_of(&jar);
    assert!(
        page.contains(&format!("name=\"csrf\" value=\"{csrf}\"")),
        "{page}"
    );
    let csp = headers.iter().find(|(k, _)| k == "content-security-policy");
    assert!(
        csp.is_some_and(|(_, v)| v.contains("script-src 'self'")),
        "{headers:?}"
    );

    // No token, a wrong token, a token without its cookie: refused.
    let good = format!("username=admin&password={ADMIN_PASSWORD}");
    for (cookie, form) in [
        (jar.as_str(), good.clone()),
        (jar.as_str(), format!("csrf=00{}&{good}", &csrf[2..])),
        ("", format!("csrf={csrf}&{good}")),
    ] {
        let (status, _, body) = raw(&server, "POST", "/console/sign-in", cookie, &form);
        assert_eq!(status, 403, "{form}: {body}");
        assert!(body.contains("The form was refused"), "{body}");
    }

    // Signed in: the session cookies are HttpOnly and SameSite=Lax
    // (not Secure: this is plain HTTP).
    let (status, headers, _) = raw(
        &server,
        "POST",
        "/console/sign-in",
        &jar,
        &format!("csrf={csrf}&{good}"),
    );
    assert_eq!(status, 303);
    let session = headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("tally_session="))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    assert!(!session.contains("Secure"), "{session}");
    let jar = cookies_of(&headers);
    let csrf = csrf_of(&jar);
    let (status, _, page) = raw(&server, "GET", "/console/tenants", &jar, "");
    assert_eq!(status, 200, "{page}");
    // A tenant that records every call, then switched off from its row.
    let (status, _, page) = raw(
        &server,
        "POST",
        "/console/tenants",
        &jar,
        &format!("csrf={csrf}&name=Rec&sip_domain=rec.example&time_zone=UTC&recording=true"),
    );
    assert_eq!(status, 303, "{page}");
    let listed = server.admin().get("/api/tenants").json();
    let rec = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "Rec")
        .cloned()
        .expect("created");
    assert_eq!(rec["recording"], true, "{rec}");
    let rec_id = rec["id"].as_str().unwrap();
    let (_, _, page) = raw(&server, "GET", "/console/tenants", &jar, "");
    assert!(page.contains("Stop recording"), "{page}");
    let (status, _, _) = raw(
        &server,
        "POST",
        &format!("/console/tenants/{rec_id}/recording"),
        &jar,
        &format!("csrf={csrf}&recording=false"),
    );
    assert_eq!(status, 303);
    let rec = server.admin().get(&format!("/api/tenants/{rec_id}")).json();
    assert_eq!(rec["recording"], false, "{rec}");

    // A tenant admin of another tenant: a CDR id it does not have is 404.
    let admin = server.admin();
    let tenant = admin.create_tenant("T", "t.example");
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &serde_json::json!({"extension": "100", "sip_password": "sip-pw-100",
            "password": "web-pw-100", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let (_, headers, _) = raw(&server, "GET", "/console/sign-in", "", "");
    let user_jar = cookies_of(&headers);
    let form = format!(
        "csrf={}&domain=t.example&username=100&password=web-pw-100",
        csrf_of(&user_jar)
    );
    let (status, headers, _) = raw(&server, "POST", "/console/sign-in", &user_jar, &form);
    assert_eq!(status, 303);
    let user_jar = cookies_of(&headers);
    let (status, _, page) = raw(
        &server,
        "GET",
        "/console/cdrs/1182166716382183425",
        &user_jar,
        "",
    );
    assert_eq!(status, 404, "{page}");
    // Tenants are the system admin's: 403 for a tenant admin.
    let (status, _, _) = raw(&server, "GET", "/console/tenants", &user_jar, "");
    assert_eq!(status, 403);

    // The REST sign-in's lock-out: from the 5th failure of an account,
    // 429 with Retry-After, even for the right password.
    let (_, headers, _) = raw(&server, "GET", "/console/sign-in", "", "");
    let anon = cookies_of(&headers);
    let token = csrf_of(&anon);
    // Fail until the lock is long enough (it doubles per failure) that the
    // next attempt surely falls inside it, however slow this machine is.
    let mut locked_for = 0;
    for _ in 0..20 {
        let form = format!("csrf={token}&domain=t.example&username=100&password=wrong");
        let (status, headers, body) = raw(&server, "POST", "/console/sign-in", &anon, &form);
        match status {
            400 => assert!(body.contains("Sign-in failed"), "{body}"),
            429 => {
                locked_for = headers
                    .iter()
                    .find(|(k, _)| k == "retry-after")
                    .and_then(|(_, v)| v.parse::<u64>().ok())
                    .expect("Retry-After");
                if locked_for >= 4 {
                    break;
                }
                std::thread::sleep(Duration::from_secs(locked_for));
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(locked_for >= 4, "never locked out");
    let form = format!("csrf={token}&domain=t.example&username=100&password=web-pw-100");
    let (status, _, body) = raw(&server, "POST", "/console/sign-in", &anon, &form);
    assert_eq!(status, 429, "locked even with the right password: {body}");

    // Sign-out revokes the session: the old cookies no longer work.
    let (status, _, _) = raw(
        &server,
        "POST",
        "/console/sign-out",
        &jar,
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 303);
    let (status, headers, _) = raw(&server, "GET", "/console/tenants", &jar, "");
    assert_eq!(status, 303, "signed out");
    assert!(headers.contains(&("location".into(), "/console/sign-in".into())));
}

/// A standard user's console: its own calls only ("My calls"), no export,
/// another user's call "not found", and its own call without the targets
/// (they name other users' phones), as `/api/user/cdrs` shows them.
#[test]
fn a_standard_user_sees_only_its_own_calls() {
    if !sipp_available("a_standard_user_sees_only_its_own_calls") {
        return;
    }
    let dir = TempDir::new("console-own");
    let mut demo = Demo::start(dir.path(), &[]);
    demo.add_web_user("106", "sip-pw-106", "web-pw-106", "StandardUser");
    for caller in ["106", "101"] {
        let callee = demo.phone("102", "uas_hangs_up.xml");
        demo.call("uac_hung_up.xml", caller, "102");
        let (ok, log) = callee.finish();
        assert!(ok, "SIPp callee:\n{log}");
    }
    let list = wait_for_cdrs(&demo.admin(), 2);
    let id_of = |caller: &str| {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["caller"] == caller)
            .and_then(|c| c["id"].as_str())
            .unwrap_or_else(|| panic!("no CDR from {caller}: {list}"))
            .to_owned()
    };
    let (own, other) = (id_of("106"), id_of("101"));

    let jar = common::console::sign_in(&demo.server, Some(DEMO_DOMAIN), "106", "web-pw-106");
    let (status, headers, _) = raw(&demo.server, "GET", "/console", &jar, "");
    assert_eq!(status, 303, "a standard user starts at its calls");
    assert!(headers.contains(&("location".into(), "/console/cdrs".into())));
    let (status, _, page) = raw(&demo.server, "GET", "/console/cdrs", &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h1>My calls</h1>"), "{page}");
    assert!(page.contains(&format!("/console/cdrs/{own}")), "{page}");
    assert!(!page.contains(&format!("/console/cdrs/{other}")), "{page}");
    assert!(!page.contains("export.csv"), "{page}");
    let (status, _, _) = raw(&demo.server, "GET", "/console/cdrs/export.csv", &jar, "");
    assert_eq!(status, 403, "no tenant-wide export");
    let (status, _, page) = raw(
        &demo.server,
        "GET",
        &format!("/console/cdrs/{own}"),
        &jar,
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Call 106 → 102"), "{page}");
    assert!(!page.contains("id=\"targets\""), "targets hidden: {page}");
    let (status, _, _) = raw(
        &demo.server,
        "GET",
        &format!("/console/cdrs/{other}"),
        &jar,
        "",
    );
    assert_eq!(status, 404, "another user's call");
    // The admin still sees both, with targets.
    let jar = common::console::sign_in(&demo.server, None, "admin", ADMIN_PASSWORD);
    let (status, _, page) = raw(
        &demo.server,
        "GET",
        &format!("/console/cdrs/{other}"),
        &jar,
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"targets\""), "{page}");
}

/// Trunks and their rules in the console: forms become the REST bodies
/// (REST's validation message on the form, naming the field), the list
/// shows each trunk's live state, an outbound rule takes its trunks in
/// the order chosen, and a trunk a rule still uses is refused with
/// REST's 409 message; every form needs the CSRF token.
#[test]
fn trunks_and_rules_are_managed_in_the_console() {
    let dir = TempDir::new("console-trunks");
    let server = common::Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Carrier", "carrier.example");
    let r = admin.post_json(
        &format!("/api/tenants/{tenant}/users"),
        &serde_json::json!({"extension": "100", "sip_password": "sip-pw-100",
            "password": "web-pw-100", "role": "Admin"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let jar = common::console::sign_in(&server, Some("carrier.example"), "100", "web-pw-100");
    let csrf = csrf_of(&jar);
    let post =
        |path: &str, form: &str| raw(&server, "POST", path, &jar, &format!("csrf={csrf}&{form}"));

    let (status, _, _) = raw(&server, "POST", "/console/trunks", &jar, "name=x&host=h");
    assert_eq!(status, 403, "no CSRF token");
    let (status, _, page) = post(
        "/console/trunks",
        "name=NoHost&kind=ip&source_addresses=192.0.2.1",
    );
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("host"),
        "REST's message names the field: {page}"
    );
    for (name, host) in [("Alpha", "192.0.2.10"), ("Beta", "192.0.2.20")] {
        let (status, headers, page) = post(
            "/console/trunks",
            &format!(
                "name={name}&kind=ip&host={host}&port=5060&transport=udp&source_addresses={host}&enabled=true"
            ),
        );
        assert_eq!(status, 303, "{page}");
        assert!(headers.contains(&("location".into(), "/console/trunks".into())));
    }
    let (status, _, page) = raw(&server, "GET", "/console/trunks", &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("2 trunks.") && page.contains("192.0.2.20"),
        "{page}"
    );
    assert!(
        page.contains("keep-alive") || page.contains("not running"),
        "live state: {page}"
    );

    // The REST view of what the forms created.
    let mut rest = server.admin();
    rest.tenant = Some(tenant);
    let trunks = rest.get("/api/trunks").json();
    let id_of = |name: &str| {
        trunks["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["id"].as_str())
            .unwrap()
            .to_owned()
    };
    let (alpha, beta) = (id_of("Alpha"), id_of("Beta"));
    assert_eq!(
        trunks["items"][0]["source_addresses"],
        serde_json::json!(["192.0.2.10"])
    );

    let (status, _, page) = post(
        "/console/inbound-rules",
        &format!("trunk_id={alpha}&did=%2B4930123&match=exact&destination=100"),
    );
    assert_eq!(status, 303, "{page}");
    let (status, _, page) = post(
        "/console/inbound-rules",
        &format!("trunk_id={alpha}&did=555&match=exact&destination=999"),
    );
    assert_eq!(status, 400, "an unknown extension: {page}");
    assert!(page.contains("destination"), "{page}");
    let (status, _, page) = post(
        "/console/outbound-rules",
        &format!("name=Out&pattern=0.&strip_digits=1&trunks={beta}&trunks={alpha}"),
    );
    assert_eq!(status, 303, "{page}");
    let rules = rest.get("/api/outbound_rules").json();
    assert_eq!(
        rules["items"][0]["trunks"],
        serde_json::json!([beta, alpha]),
        "{rules}"
    );
    let (_, _, page) = raw(&server, "GET", "/console/outbound-rules", &jar, "");
    assert!(page.contains("Beta → Alpha"), "{page}");
    let (_, _, page) = raw(&server, "GET", "/console/inbound-rules", &jar, "");
    assert!(page.contains("4930123") && page.contains("Alpha"), "{page}");

    // Editing a trunk: filled from REST, saved as a PATCH; an empty
    // password keeps the stored one.
    let edit = format!("/console/trunks/{beta}");
    let (status, _, page) = raw(&server, "GET", &edit, &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"192.0.2.20\""), "{page}");
    let (status, _, page) = post(
        &edit,
        "name=Beta2&kind=ip&host=192.0.2.21&port=5070&transport=tcp&source_addresses=192.0.2.21,+192.0.2.22&max_calls=&password=&enabled=true",
    );
    assert_eq!(status, 303, "{page}");
    let beta_now = rest.get(&format!("/api/trunks/{beta}")).json();
    assert_eq!(
        (&beta_now["name"], &beta_now["port"], &beta_now["transport"]),
        (
            &serde_json::json!("Beta2"),
            &serde_json::json!(5070),
            &serde_json::json!("tcp")
        ),
        "{beta_now}"
    );
    assert_eq!(
        beta_now["source_addresses"],
        serde_json::json!(["192.0.2.21", "192.0.2.22"])
    );
    let (status, _, page) = post(&edit, "name=Beta2&kind=ip&host=&enabled=true");
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("host"), "{page}");

    // A trunk in use: REST's 409, shown on the page; nothing deleted.
    let (status, _, page) = post(&format!("/console/trunks/{alpha}/delete"), "");
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("Out"), "names the rule: {page}");
    assert_eq!(rest.get("/api/trunks").json()["count"], 2);
    let rule = rules["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = post(&format!("/console/outbound-rules/{rule}/delete"), "");
    assert_eq!(status, 303);
    let (status, _, _) = post(&format!("/console/trunks/{alpha}/delete"), "");
    assert_eq!(status, 303);
    let left = rest.get("/api/trunks").json();
    assert_eq!(left["count"], 1, "{left}");
    assert_eq!(
        rest.get("/api/inbound_rules").json()["count"],
        0,
        "its DID rules went with it"
    );
}

/// A user's edit form: filled from REST, saved as a PATCH (an empty
/// number clears it, an empty password keeps it), REST's message on a
/// bad value, and the forwarding rules as their own form.
#[test]
fn a_user_is_edited_in_the_console() {
    let dir = TempDir::new("console-user-edit");
    let server = common::Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Edit", "edit.example");
    for (ext, body) in [
        (
            "100",
            serde_json::json!({"extension": "100", "sip_password": "sip-pw-100", "password": "web-pw-100", "role": "Admin"}),
        ),
        (
            "101",
            serde_json::json!({"extension": "101", "sip_password": "sip-pw-101", "password": "web-pw-101",
            "display_name": "Old Name", "max_concurrent_calls": 2}),
        ),
    ] {
        let r = admin.post_json(&format!("/api/tenants/{tenant}/users"), &body);
        assert_eq!(r.status, 201, "{ext}: {}", r.body);
    }
    let mut rest = server.admin();
    rest.tenant = Some(tenant);
    let users = rest.get("/api/users").json();
    let id = users["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["extension"] == "101")
        .and_then(|u| u["id"].as_str())
        .unwrap()
        .to_owned();
    let jar = common::console::sign_in(&server, Some("edit.example"), "100", "web-pw-100");
    let csrf = csrf_of(&jar);
    let path = format!("/console/users/{id}");
    let (status, _, page) = raw(&server, "GET", "/console/users", &jar, "");
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!("href=\"{path}\"")),
        "an Edit link: {page}"
    );
    let (status, _, page) = raw(&server, "GET", &path, &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"Old Name\""), "filled in: {page}");

    let save = |form: &str| raw(&server, "POST", &path, &jar, &format!("csrf={csrf}&{form}"));
    let (status, _, page) =
        save("display_name=New+Name&role=StandardUser&ring_timeout=2&enabled=true");
    assert_eq!(status, 400, "{page}");
    assert!(
        page.contains("ring_timeout"),
        "REST names the field: {page}"
    );
    let (status, _, page) = save(
        "display_name=New+Name&email=&username=&role=QueueManager&ring_timeout=45&max_concurrent_calls=&pickup_group=sales&sip_password=&password=",
    );
    assert_eq!(status, 303, "{page}");
    let user = rest.get(&format!("/api/users/{id}")).json();
    assert_eq!(user["display_name"], "New Name", "{user}");
    assert_eq!(user["role"], "QueueManager", "{user}");
    assert_eq!(user["ring_timeout"], 45, "{user}");
    assert_eq!(
        user["max_concurrent_calls"],
        serde_json::Value::Null,
        "cleared: {user}"
    );
    assert_eq!(user["enabled"], false, "unchecked: {user}");
    assert_eq!(
        user["has_password"], true,
        "an empty password keeps it: {user}"
    );
    assert_eq!(user["pickup_group"], "sales", "{user}");

    let (status, _, page) = save("section=forwarding&fwd_busy=abc");
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("forwarding"), "{page}");
    let (status, _, _) = save("section=forwarding&fwd_busy=100&fwd_no_answer=&fwd_always=");
    assert_eq!(status, 303);
    let user = rest.get(&format!("/api/users/{id}")).json();
    assert_eq!(
        user["forwarding"],
        serde_json::json!([{"condition": "busy", "destination": "100", "enabled": true}]),
        "{user}"
    );
    // Another tenant's user id: 404, as over REST.
    let (status, _, _) = raw(
        &server,
        "GET",
        "/console/users/1182166716382183425",
        &jar,
        "",
    );
    assert_eq!(status, 404);
}

/// Ring groups in the console: created from the form (members as a
/// comma list, REST's message on a bad one), edited (a PATCH: an empty
/// no-answer destination clears it), deleted.
#[test]
fn ring_groups_are_managed_in_the_console() {
    let dir = TempDir::new("console-ring-groups");
    let server = common::Server::start(dir.path(), &[]);
    let admin = server.admin();
    let tenant = admin.create_tenant("Groups", "groups.example");
    for (ext, role) in [
        ("100", "Admin"),
        ("101", "StandardUser"),
        ("102", "StandardUser"),
    ] {
        let r = admin.post_json(
            &format!("/api/tenants/{tenant}/users"),
            &serde_json::json!({"extension": ext, "sip_password": format!("sip-pw-{ext}"),
                "password": format!("web-pw-{ext}"), "role": role}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let jar = common::console::sign_in(&server, Some("groups.example"), "100", "web-pw-100");
    let csrf = csrf_of(&jar);
    let post =
        |path: &str, form: &str| raw(&server, "POST", path, &jar, &format!("csrf={csrf}&{form}"));
    let (status, _, page) = post(
        "/console/ring-groups",
        "number=600&name=Sales&strategy=hunt&members=101,+999&timeout=30",
    );
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("members"), "REST names the field: {page}");
    let (status, _, page) = post(
        "/console/ring-groups",
        "number=600&name=Sales&strategy=hunt&members=102,+101&member_timeout=10&timeout=30&no_answer=100",
    );
    assert_eq!(status, 303, "{page}");
    let mut rest = server.admin();
    rest.tenant = Some(tenant);
    let group = rest.get("/api/ring_groups").json()["items"][0].clone();
    assert_eq!(
        group["members"],
        serde_json::json!(["102", "101"]),
        "{group}"
    );
    assert_eq!(group["strategy"], "hunt");
    let id = group["id"].as_str().unwrap().to_owned();
    let (status, _, page) = raw(&server, "GET", "/console/ring-groups", &jar, "");
    assert_eq!(status, 200);
    assert!(
        page.contains("102, 101") && page.contains("Sales"),
        "{page}"
    );

    let edit = format!("/console/ring-groups/{id}");
    let (status, _, page) = raw(&server, "GET", &edit, &jar, "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"102, 101\""), "filled: {page}");
    let (status, _, page) = post(
        &edit,
        "number=600&name=Sales+team&strategy=ring_all&members=101&member_timeout=10&timeout=30&no_answer=",
    );
    assert_eq!(status, 303, "{page}");
    let group = rest.get(&format!("/api/ring_groups/{id}")).json();
    assert_eq!(
        (&group["name"], &group["strategy"], &group["no_answer"]),
        (
            &serde_json::json!("Sales team"),
            &serde_json::json!("ring_all"),
            &serde_json::Value::Null
        ),
        "{group}"
    );
    let (status, _, _) = post(&format!("{edit}/delete"), "");
    assert_eq!(status, 303);
    assert_eq!(rest.get("/api/ring_groups").json()["count"], 0);
}
