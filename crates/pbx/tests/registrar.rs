//! The registrar driven with REGISTER requests as phones write them
//! (Linphone with `+sip.instance`, SIPp registering to an IP address),
//! answered by a real digest client, on a virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdr::{Id, TenantId};
use pbx::location::ChangeKind;
use pbx::registrar::{AuthFailure, RegisterError, SourceKey, ThrottleConfig};
use pbx::{
    Directory, Extension, RegisterOutcome, Registrar, RegistrarConfig, RegistrarEvent, Tenant, User,
};
use sip::auth::{Algorithm, Challenge, DigestClient};
use sip::headers::Contact;
use sip::transport::{Peer, Transport};
use sip::{HeaderName, Message};

const DOMAIN: &str = "demo.tally.local";
const KEY: [u8; 32] = [0x42; 32];
const T0_UNIX: u64 = 1_780_000_000;

fn tenant_id(n: u64) -> TenantId {
    TenantId::from(Id::from_u64(n))
}

fn directory() -> Directory {
    let mut d = Directory::new();
    for (id, domain) in [(1, DOMAIN), (2, "other.tally.local")] {
        d.upsert_tenant(Tenant {
            id: tenant_id(id),
            name: format!("Tenant {id}"),
            domain: domain.into(),
        })
        .unwrap();
        for (ext, password, enabled) in [
            ("101", "s3cret-101", true),
            ("102", "s3cret-102", true),
            ("199", "s3cret-199", false),
        ] {
            d.upsert_user(User {
                tenant_id: tenant_id(id),
                id: Id::from_u64(id * 1_000 + ext.parse::<u64>().unwrap_or(0)),
                extension: Extension::new(ext),
                display_name: format!("Ext {ext}"),
                credentials: pbx::SipCredentials::from_password(
                    ext,
                    domain,
                    &format!("{password}-{id}"),
                ),
                ring_timeout: Duration::from_secs(30),
                enabled,
                forwarding: Default::default(),
                max_concurrent_calls: None,
                recording: false,
                pickup_group: String::new(),
            })
            .unwrap();
        }
    }
    d
}

fn password(ext: &str, tenant: u64) -> String {
    format!("s3cret-{ext}-{tenant}")
}

fn udp(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse::<SocketAddr>().unwrap())
}

/// The PBX under test with its clocks.
struct Pbx {
    registrar: Registrar,
    directory: Directory,
    t0: Instant,
    elapsed: Duration,
}

impl Pbx {
    fn new() -> Pbx {
        Self::with_config(RegistrarConfig::default())
    }

    fn with_config(config: RegistrarConfig) -> Pbx {
        Pbx {
            registrar: Registrar::new(config, KEY, 7),
            directory: directory(),
            t0: Instant::now(),
            elapsed: Duration::ZERO,
        }
    }

    fn now(&self) -> Instant {
        self.t0 + self.elapsed
    }

    fn now_unix(&self) -> u64 {
        T0_UNIX + self.elapsed.as_secs()
    }

    fn advance(&mut self, secs: u64) {
        self.elapsed += Duration::from_secs(secs);
    }

    fn send(&mut self, source: Peer, text: &str) -> RegisterOutcome {
        let msg = Message::parse(text.as_bytes().to_vec()).expect("test message parses");
        let (now, now_unix) = (self.now(), self.now_unix());
        match self
            .registrar
            .handle_register(&self.directory, now, now_unix, source, &msg)
        {
            Ok(o) => o,
            Err(e) => panic!("{e}"),
        }
    }

    fn bindings(&self, ext: &str) -> Vec<pbx::Binding> {
        self.registrar
            .location()
            .lookup(self.now(), tenant_id(1), ext)
            .cloned()
            .collect()
    }
}

/// A phone: what it writes in its REGISTERs and how it answers challenges.
struct Phone {
    user: String,
    domain: String,
    /// Request-URI (Linphone: the domain; SIPp: the PBX's address).
    ruri: String,
    call_id: String,
    cseq: u32,
    source: Peer,
    /// The Contact header value (without expiry).
    contact: String,
    client: DigestClient,
    /// Which of the offered challenges it answers.
    algorithm: Algorithm,
    challenge: Option<Challenge>,
    cnonce: u32,
}

impl Phone {
    /// Linphone: a SIP instance, Request-URI = domain, NAT'd contact.
    fn linphone(user: &str, instance: &str, source: &str) -> Phone {
        Phone {
            user: user.into(),
            domain: DOMAIN.into(),
            ruri: format!("sip:{DOMAIN}"),
            call_id: format!("lp-{instance}"),
            cseq: 20,
            source: udp(source),
            contact: format!(
                "<sip:{user}@192.168.1.20:5062;transport=udp>;+sip.instance=\"<urn:uuid:{instance}>\";reg-id=1"
            ),
            client: DigestClient::new(user, password(user, 1)),
            algorithm: Algorithm::Sha256,
            challenge: None,
            cnonce: 0,
        }
    }

    /// SIPp's uac register scenario: Request-URI = the PBX's IP, MD5.
    fn sipp(user: &str, source: &str) -> Phone {
        Phone {
            user: user.into(),
            domain: DOMAIN.into(),
            ruri: "sip:198.51.100.10:5060".into(),
            call_id: "1-4242@127.0.0.1".into(),
            cseq: 0,
            source: udp(source),
            contact: format!("sip:{user}@{source}"),
            client: DigestClient::new(user, password(user, 1)),
            algorithm: Algorithm::Md5,
            challenge: None,
            cnonce: 0,
        }
    }

    fn with_password(mut self, password: &str) -> Phone {
        self.client = DigestClient::new(self.user.as_str(), password);
        self
    }

    /// The next REGISTER: `contact` = None for the phone's own Contact,
    /// `Some("")` for none (a query); `expires` the Expires header.
    fn register_text(&mut self, contact: Option<&str>, expires: Option<u32>) -> String {
        self.cseq += 1;
        let mut t = format!(
            "REGISTER {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.168.1.20:5062;branch=z9hG4bK.{cseq}x{branch};rport\r\n\
             From: <sip:{user}@{domain}>;tag=8kf3Ze\r\n\
             To: sip:{user}@{domain}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Call-ID: {call}\r\n\
             Max-Forwards: 70\r\n\
             Supported: replaces, outbound, gruu, path\r\n\
             Accept: application/sdp\r\n\
             User-Agent: Linphone-Desktop/5.2.4 (belle-sip/5.2.0)\r\n",
            ruri = self.ruri,
            cseq = self.cseq,
            call = self.call_id,
            branch = self
                .call_id
                .replace(|c: char| !c.is_ascii_alphanumeric(), ""),
            user = self.user,
            domain = self.domain,
        );
        match contact {
            Some("") => {}
            Some(c) => t.push_str(&format!("Contact: {c}\r\n")),
            None => t.push_str(&format!("Contact: {}\r\n", self.contact)),
        }
        if let Some(e) = expires {
            t.push_str(&format!("Expires: {e}\r\n"));
        }
        if let Some(ch) = &self.challenge {
            self.cnonce += 1;
            let c = self
                .client
                .respond(ch, "REGISTER", &self.ruri, &format!("cn{}", self.cnonce))
                .unwrap();
            t.push_str(&format!("Authorization: {c}\r\n"));
        }
        t.push_str("Content-Length: 0\r\n\r\n");
        t
    }

    /// Remembers the challenge of a 401 it would answer.
    fn learn(&mut self, response: &Message) {
        let challenges: Vec<Challenge> = response
            .challenges(HeaderName::WwwAuthenticate)
            .map(Result::unwrap)
            .collect();
        // Its own algorithm when offered, else the first (as phones do).
        self.challenge = challenges
            .iter()
            .find(|c| c.algorithm == self.algorithm)
            .or(challenges.first())
            .cloned();
    }

    /// Sends a REGISTER, answering a 401 once as a phone does.
    fn register(
        &mut self,
        pbx: &mut Pbx,
        contact: Option<&str>,
        expires: Option<u32>,
    ) -> RegisterOutcome {
        let text = self.register_text(contact, expires);
        let out = pbx.send(self.source, &text);
        if status(&out) != 401 {
            return out;
        }
        self.learn(&out.response);
        let text = self.register_text(contact, expires);
        pbx.send(self.source, &text)
    }
}

fn status(o: &RegisterOutcome) -> u16 {
    o.response.status().unwrap()
}

fn contacts(o: &RegisterOutcome) -> Vec<(String, u32)> {
    o.response
        .contacts()
        .map(|c| {
            let c = c.unwrap();
            let uri = c.addr().unwrap().uri.to_string();
            (uri, c.expires().unwrap().unwrap())
        })
        .collect()
}

fn kinds(o: &RegisterOutcome) -> Vec<ChangeKind> {
    o.changes.iter().map(|c| c.kind).collect()
}

fn failures(o: &RegisterOutcome) -> Vec<AuthFailure> {
    o.events
        .iter()
        .filter_map(|e| match e {
            RegistrarEvent::AuthFailed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn the_digest_offer_is_configurable() {
    for (offer, expected) in [
        (pbx::DigestOffer::Md5Only, vec![Algorithm::Md5]),
        (
            pbx::DigestOffer::Md5ThenSha256,
            vec![Algorithm::Md5, Algorithm::Sha256],
        ),
        (
            pbx::DigestOffer::Sha256ThenMd5,
            vec![Algorithm::Sha256, Algorithm::Md5],
        ),
        (pbx::DigestOffer::Sha256Only, vec![Algorithm::Sha256]),
    ] {
        let mut pbx = Pbx::with_config(RegistrarConfig {
            digest_offer: offer,
            ..RegistrarConfig::default()
        });
        let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
        let text = phone.register_text(None, Some(3600));
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 401);
        let algorithms: Vec<_> = out
            .response
            .challenges(HeaderName::WwwAuthenticate)
            .map(|c| c.unwrap().algorithm)
            .collect();
        assert_eq!(algorithms, expected, "{offer:?}");
    }
}

#[test]
fn a_tenant_may_have_an_offer_of_its_own() {
    let mut pbx = Pbx::new();
    pbx.registrar
        .set_tenant_digest_offer("OTHER.tally.local.", pbx::DigestOffer::Sha256ThenMd5);
    let offered = |pbx: &mut Pbx, domain: &str| {
        let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
        phone.domain = domain.into();
        phone.ruri = format!("sip:{domain}");
        let text = phone.register_text(None, Some(3600));
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 401);
        out.response
            .challenges(HeaderName::WwwAuthenticate)
            .map(|c| c.unwrap().algorithm)
            .collect::<Vec<_>>()
    };
    assert_eq!(offered(&mut pbx, DOMAIN), [Algorithm::Md5]);
    assert_eq!(
        offered(&mut pbx, "other.tally.local"),
        [Algorithm::Sha256, Algorithm::Md5]
    );
}

#[test]
fn digest_offer_names_are_parsed_strictly() {
    use pbx::DigestOffer;
    assert_eq!(DigestOffer::from_names(&["md5"]), Ok(DigestOffer::Md5Only));
    assert_eq!(
        DigestOffer::from_names(&["SHA-256", "MD5"]),
        Ok(DigestOffer::Sha256ThenMd5)
    );
    assert_eq!(DigestOffer::Md5ThenSha256.to_string(), "MD5, SHA-256");
    for bad in [&[][..], &["SHA-512"], &["MD5", "MD5"], &["SHA-256-sess"]] {
        assert!(DigestOffer::from_names(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn first_register_gets_one_md5_challenge_by_default() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let text = phone.register_text(None, Some(3600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 401);
    let r = &out.response;
    assert!(r.to().unwrap().tag().is_some(), "To tag added");
    assert_eq!(r.call_id().unwrap(), phone.call_id);
    let challenges: Vec<Challenge> = r
        .challenges(HeaderName::WwwAuthenticate)
        .map(Result::unwrap)
        .collect();
    let algorithms: Vec<_> = challenges.iter().map(|c| c.algorithm).collect();
    assert_eq!(algorithms, [Algorithm::Md5]);
    for c in &challenges {
        assert_eq!(c.realm, DOMAIN);
        assert!(!c.stale);
        assert_eq!(c.qop, [sip::auth::Qop::Auth]);
    }
    assert!(out.changes.is_empty());
    assert!(out.events.is_empty(), "the first leg is not a failure");
    assert!(pbx.bindings("101").is_empty());
}

#[test]
fn sha256_answer_registers_the_device() {
    let mut pbx = Pbx::with_config(RegistrarConfig {
        digest_offer: pbx::DigestOffer::Sha256ThenMd5,
        ..RegistrarConfig::default()
    });
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200, "{:?}", out.response.reason_phrase());
    assert_eq!(kinds(&out), [ChangeKind::Added]);
    assert_eq!(
        contacts(&out),
        [("sip:101@192.168.1.20:5062;transport=udp".to_string(), 3600)]
    );
    let c = out.response.contacts().next().unwrap().unwrap();
    assert_eq!(c.instance().as_deref(), Some("urn:uuid:a1"));
    assert!(out.response.header(HeaderName::Date).is_some());
    assert!(out.response.to().unwrap().tag().is_some());
    let aor = out.aor.unwrap();
    assert_eq!((aor.tenant, aor.extension.as_str()), (tenant_id(1), "101"));

    assert!(out.changes[0].kind.is_live(), "the store upserts it");
    let record = &out.changes[0].record;
    assert_eq!(record.tenant_id, tenant_id(1));
    assert_eq!(record.extension, "101");
    assert_eq!(record.key, "<urn:uuid:a1>");
    assert_eq!(record.instance.as_deref(), Some("urn:uuid:a1"));
    assert_eq!(record.reg_id, Some(1));
    assert_eq!(record.expires_unix, T0_UNIX + 3600);
    assert_eq!(record.call_id, phone.call_id);
    assert_eq!(record.cseq, phone.cseq);

    let b = pbx.bindings("101");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].remaining(pbx.now()), Duration::from_secs(3600));
}

#[test]
fn md5_answer_from_sipp_registering_to_an_ip_address() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::sipp("102", "127.0.0.1:5061");
    // The Request-URI names no tenant: the To host does.
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200, "{:?}", out.response.reason_phrase());
    assert_eq!(
        contacts(&out),
        [("sip:102@127.0.0.1:5061".to_string(), 3600)]
    );
    let b = pbx.bindings("102");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].key.as_str(), "sip:102@127.0.0.1:5061");
    assert_eq!(b[0].instance, None);
}

#[test]
fn the_same_account_answers_md5_and_sha256() {
    for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
        let mut pbx = Pbx::with_config(RegistrarConfig {
            digest_offer: pbx::DigestOffer::Md5ThenSha256,
            ..RegistrarConfig::default()
        });
        let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
        phone.algorithm = algorithm;
        let out = phone.register(&mut pbx, None, None);
        assert_eq!(status(&out), 200, "{algorithm}");
        let record = &out.changes[0].record;
        assert_eq!(record.extension, "101", "{algorithm}");
        // No Expires anywhere: the default hour.
        assert_eq!(contacts(&out)[0].1, 3600);
    }
}

#[test]
fn wrong_password_is_forbidden_and_counted() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112").with_password("guess");
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 403);
    assert_eq!(failures(&out), [AuthFailure::WrongPassword]);
    assert!(out.changes.is_empty());
    assert!(pbx.bindings("101").is_empty());
}

#[test]
fn repeated_failures_throttle_the_source_until_the_cool_down_ends() {
    let mut pbx = Pbx::new();
    let source = "203.0.113.66:5060";
    let mut attacker = Phone::sipp("101", source).with_password("guess");
    for i in 1..=5 {
        pbx.advance(1);
        let out = attacker.register(&mut pbx, None, Some(3600));
        assert_eq!(status(&out), 403, "attempt {i}");
        let blocked = out
            .events
            .iter()
            .any(|e| matches!(e, RegistrarEvent::SourceBlocked { .. }));
        assert_eq!(blocked, i == 5, "attempt {i}");
    }
    // Blocked: even the right password is refused unread.
    let mut phone = Phone::sipp("101", source);
    let text = phone.register_text(None, Some(3600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 403);
    assert_eq!(
        out.response.reason_phrase(),
        Some("Forbidden (too many failed attempts)")
    );
    assert!(matches!(
        out.events[..],
        [RegistrarEvent::RefusedBlocked { source: s, .. }] if s == SourceKey::of("203.0.113.66".parse().unwrap())
    ));
    // Only that source: another address registers.
    let mut other = Phone::sipp("102", "203.0.113.67:5060");
    assert_eq!(status(&other.register(&mut pbx, None, Some(3600))), 200);
    // And only that user: another phone behind the same address does too.
    let mut neighbour = Phone::sipp("102", source);
    assert_eq!(status(&neighbour.register(&mut pbx, None, Some(3600))), 200);

    pbx.advance(299);
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 403);
    pbx.advance(1);
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200, "cool-down over");
}

#[test]
fn failures_are_counted_per_source_and_throttle_is_bounded() {
    let mut pbx = Pbx::with_config(RegistrarConfig {
        throttle: ThrottleConfig {
            max_sources: 50,
            ..ThrottleConfig::default()
        },
        ..RegistrarConfig::default()
    });
    for i in 0..500u32 {
        let source = format!("198.18.{}.{}:5060", i / 250, i % 250);
        let mut phone = Phone::sipp("101", &source).with_password("guess");
        assert_eq!(status(&phone.register(&mut pbx, None, Some(60))), 403);
        assert!(pbx.registrar.tracked_sources() <= 50);
    }
    pbx.advance(61);
    pbx.registrar.handle_timeout(pbx.now(), pbx.now_unix());
    assert_eq!(pbx.registrar.tracked_sources(), 0);
}

/// Security review, finding 2: five forged REGISTERs naming unknown users
/// (or domains) "from" a victim's address used to lock that address out.
#[test]
fn spoofed_failures_for_unknown_users_never_lock_the_source_out() {
    let mut pbx = Pbx::new();
    let victim = "203.0.113.80:5060";
    for i in 0..50 {
        let mut forged = Phone::sipp(&format!("9{i:02}"), victim);
        assert_eq!(status(&forged.register(&mut pbx, None, Some(60))), 404);
        let mut forged = Phone::sipp(&format!("8{i:02}"), victim);
        forged.domain = format!("nowhere-{i}.example");
        assert_eq!(status(&forged.register(&mut pbx, None, Some(60))), 404);
    }
    // Forged wrong passwords for 102 block 102 from there, nobody else.
    for _ in 0..5 {
        let mut forged = Phone::sipp("102", victim).with_password("guess");
        assert_eq!(status(&forged.register(&mut pbx, None, Some(60))), 403);
    }
    let mut phone = Phone::sipp("101", victim);
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200, "{:?}", out.response.reason_phrase());
    // The same unknown name again from there is blocked, and the answer
    // is the one a blocked known user gets.
    let mut unknown = Phone::sipp("900", victim);
    for _ in 0..4 {
        let _ = unknown.register(&mut pbx, None, Some(60));
    }
    let out = unknown.register(&mut pbx, None, Some(60));
    assert_eq!(status(&out), 403);
    assert_eq!(
        out.response.reason_phrase(),
        Some("Forbidden (too many failed attempts)")
    );
}

/// Issue 16: a phone that cannot answer the offered algorithm (libre 1.0
/// and SHA-256) just sends its REGISTER again later; the admin gets one
/// event naming the device and the offer.
#[test]
fn a_device_that_never_answers_is_reported_at_the_third_challenge() {
    let mut pbx = Pbx::with_config(RegistrarConfig {
        digest_offer: pbx::DigestOffer::Sha256Only,
        ..RegistrarConfig::default()
    });
    let source = "127.0.0.1:6330";
    let mut phone = Phone::sipp("101", source);
    let mut reported = Vec::new();
    for i in 1..=31 {
        pbx.advance(30);
        let text = phone.register_text(None, Some(3600));
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 401);
        for e in out.events {
            if let RegistrarEvent::ChallengesUnanswered {
                user,
                device,
                method,
                challenges,
                offered,
                ..
            } = e
            {
                assert_eq!(user, "101");
                assert_eq!(device, udp(source));
                assert_eq!(method, sip::Method::Register);
                assert_eq!(offered, pbx::DigestOffer::Sha256Only);
                reported.push((i, challenges));
            }
        }
    }
    assert_eq!(reported, [(3, 3), (30, 30)]);
    // A device that answers (even wrongly) is not that problem.
    let mut other = Phone::sipp("102", "127.0.0.1:6331").with_password("guess");
    for _ in 0..5 {
        let out = other.register(&mut pbx, None, Some(3600));
        assert!(
            !out.events
                .iter()
                .any(|e| matches!(e, RegistrarEvent::ChallengesUnanswered { .. }))
        );
    }
}

/// Security review, finding 13: an answer without qop carries no nonce
/// count, so it could be replayed for the nonce's lifetime.
#[test]
fn digest_without_qop_is_refused_unless_allowed_and_then_answers_once() {
    for allowed in [false, true] {
        let mut pbx = Pbx::with_config(RegistrarConfig {
            allow_digest_without_qop: allowed,
            ..RegistrarConfig::default()
        });
        let mut phone = Phone::sipp("101", "203.0.113.9:5060");
        let text = phone.register_text(None, Some(3600));
        let out = pbx.send(phone.source, &text);
        phone.learn(&out.response);
        // An RFC 2069 phone: ignores qop.
        if let Some(ch) = phone.challenge.as_mut() {
            ch.qop.clear();
        }
        let text = phone.register_text(None, Some(3600));
        assert!(!text.contains("nc="));
        let out = pbx.send(phone.source, &text);
        if !allowed {
            assert_eq!(status(&out), 403);
            assert_eq!(
                out.response.reason_phrase(),
                Some("Forbidden (digest without qop=auth)")
            );
            assert_eq!(failures(&out), [AuthFailure::DigestWithoutQop]);
            assert!(pbx.bindings("101").is_empty());
            continue;
        }
        assert_eq!(status(&out), 200);
        // The same request again (a replay): challenged afresh, stale.
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 401);
        let ch = out
            .response
            .challenges(HeaderName::WwwAuthenticate)
            .next()
            .unwrap()
            .unwrap();
        assert!(ch.stale);
        assert!(failures(&out).is_empty());
    }
}

/// Issue 17, hashed credentials: HA1s computed for another realm (the
/// tenant's domain changed since) cannot answer; the phone is told why and
/// the throttle does not count it, however often it tries.
#[test]
fn credentials_of_another_realm_are_refused_with_the_reason_not_counted() {
    let mut pbx = Pbx::new();
    pbx.directory
        .upsert_user(User {
            tenant_id: tenant_id(1),
            id: Id::from_u64(1_102),
            extension: Extension::new("102"),
            display_name: "Ext 102".into(),
            credentials: pbx::SipCredentials::from_password(
                "102",
                "old.example",
                &password("102", 1),
            ),
            ring_timeout: Duration::from_secs(30),
            enabled: true,
            forwarding: Default::default(),
            max_concurrent_calls: None,
            recording: false,
            pickup_group: String::new(),
        })
        .unwrap();
    for _ in 0..8 {
        let mut phone = Phone::sipp("102", "203.0.113.9:5060");
        let out = phone.register(&mut pbx, None, Some(3600));
        assert_eq!(status(&out), 403);
        assert_eq!(
            out.response.reason_phrase(),
            Some("Forbidden (no SIP password for this domain; set it again)")
        );
        assert_eq!(failures(&out), [AuthFailure::SipPasswordNotSet]);
    }
    // None set at all: the same.
    pbx.directory
        .upsert_user(User {
            tenant_id: tenant_id(1),
            id: Id::from_u64(1_102),
            extension: Extension::new("102"),
            display_name: "Ext 102".into(),
            credentials: pbx::SipCredentials::default(),
            ring_timeout: Duration::from_secs(30),
            enabled: true,
            forwarding: Default::default(),
            max_concurrent_calls: None,
            recording: false,
            pickup_group: String::new(),
        })
        .unwrap();
    let mut phone = Phone::sipp("102", "203.0.113.9:5060");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 403);
}

#[test]
fn refresh_extends_the_expiry() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(600))), 200);
    pbx.advance(250);
    assert_eq!(pbx.bindings("101")[0].remaining(pbx.now()).as_secs(), 350);
    // Linphone refreshes with credentials for the nonce it holds (nc=2).
    let text = phone.register_text(None, Some(600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Refreshed]);
    assert_eq!(out.changes[0].record.expires_unix, pbx.now_unix() + 600);
    assert_eq!(contacts(&out)[0].1, 600);
    let b = pbx.bindings("101");
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].remaining(pbx.now()).as_secs(), 600);
    assert_eq!(b[0].cseq, phone.cseq);
}

#[test]
fn stale_nonce_is_rechallenged_with_stale_true() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    pbx.advance(301);
    let text = phone.register_text(None, Some(3600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 401);
    let stale: Vec<bool> = out
        .response
        .challenges(HeaderName::WwwAuthenticate)
        .map(|c| c.unwrap().stale)
        .collect();
    assert_eq!(stale, [true]);
    assert!(out.events.is_empty(), "a stale nonce is not a failure");
    phone.learn(&out.response);
    let text = phone.register_text(None, Some(3600));
    assert_eq!(status(&pbx.send(phone.source, &text)), 200);
}

#[test]
fn a_nonce_from_another_key_is_rechallenged_not_counted() {
    let mut pbx = Pbx::new();
    let mut other = Pbx::new();
    other.registrar = Registrar::new(RegistrarConfig::default(), [9; 32], 1);
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut other, None, Some(3600))), 200);
    // The PBX restarted with a new key: the phone's nonce means nothing.
    let text = phone.register_text(None, Some(3600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 401);
    assert!(out.events.is_empty());
}

#[test]
fn credentials_must_be_for_the_to_user_and_the_request_uri() {
    let mut pbx = Pbx::new();
    // 102 authenticates correctly but registers 101's address.
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    phone.client = DigestClient::new("102", password("102", 1));
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 403);
    assert_eq!(failures(&out), [AuthFailure::UsernameMismatch]);

    // Credentials computed for another Request-URI.
    let mut phone = Phone::linphone("101", "a2", "203.0.113.8:40112");
    let text = phone.register_text(None, Some(3600));
    phone.learn(&pbx.send(phone.source, &text).response);
    let text = phone.register_text(None, Some(3600)).replacen(
        &format!("REGISTER sip:{DOMAIN} "),
        "REGISTER sip:DEMO.tally.local;x=1 ",
        1,
    );
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 400);
    assert_eq!(
        out.response.reason_phrase(),
        Some("Bad Request (digest uri does not match the Request-URI)")
    );
}

#[test]
fn two_devices_two_bindings_unregister_one_then_all() {
    let mut pbx = Pbx::new();
    let mut desk = Phone::linphone("101", "desk", "203.0.113.7:40112");
    let mut mobile = Phone::linphone("101", "mobile", "198.51.100.23:61000");
    mobile.contact =
        "<sip:101@10.1.2.3:5060;transport=udp>;+sip.instance=\"<urn:uuid:mobile>\"".into();
    assert_eq!(status(&desk.register(&mut pbx, None, Some(3600))), 200);
    let out = mobile.register(&mut pbx, None, Some(1800));
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Added]);
    assert_eq!(
        contacts(&out),
        [
            ("sip:101@192.168.1.20:5062;transport=udp".to_string(), 3600),
            ("sip:101@10.1.2.3:5060;transport=udp".to_string(), 1800),
        ]
    );
    // Same contact URI, other instance: still two devices.
    assert_eq!(pbx.bindings("101").len(), 2);

    // The desk phone unregisters (expires=0 in the Contact).
    let contact = format!("{};expires=0", desk.contact);
    let out = desk.register(&mut pbx, Some(&contact), None);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Removed]);
    assert!(!out.changes[0].kind.is_live(), "the store deletes it");
    assert_eq!(out.changes[0].record.key, "<urn:uuid:desk>");
    assert_eq!(contacts(&out).len(), 1);
    assert_eq!(
        pbx.bindings("101")[0].instance.as_deref(),
        Some("urn:uuid:mobile")
    );

    // Contact: * with Expires: 0 removes everything.
    assert_eq!(status(&desk.register(&mut pbx, None, Some(3600))), 200);
    assert_eq!(pbx.bindings("101").len(), 2);
    let out = desk.register(&mut pbx, Some("*"), Some(0));
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Removed, ChangeKind::Removed]);
    assert!(contacts(&out).is_empty());
    assert!(pbx.bindings("101").is_empty());
    assert_eq!(pbx.registrar.location().binding_count(), 0);
}

#[test]
fn wildcard_needs_expires_zero_and_no_other_contact() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    for (contact, expires) in [
        ("*", Some(3600)),
        ("*", None),
        ("*, <sip:101@192.0.2.1>", Some(0)),
    ] {
        let text = phone.register_text(Some(contact), expires);
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 400, "{contact} {expires:?}");
        assert!(out.changes.is_empty());
    }
    assert_eq!(pbx.bindings("101").len(), 1);
}

#[test]
fn expiry_below_min_is_423_above_max_is_clamped() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let out = phone.register(&mut pbx, None, Some(30));
    assert_eq!(status(&out), 423);
    assert_eq!(out.response.header(HeaderName::MinExpires), Some("60"));
    assert!(pbx.bindings("101").is_empty());

    // The per-contact parameter wins over the header.
    let contact = format!("{};expires=59", phone.contact);
    assert_eq!(
        status(&phone.register(&mut pbx, Some(&contact), Some(3600))),
        423
    );
    let contact = format!("{};expires=60", phone.contact);
    let out = phone.register(&mut pbx, Some(&contact), Some(30));
    assert_eq!(status(&out), 200);
    assert_eq!(contacts(&out)[0].1, 60);

    let out = phone.register(&mut pbx, None, Some(86_400));
    assert_eq!(status(&out), 200);
    assert_eq!(contacts(&out)[0].1, 7200);
    assert_eq!(out.changes[0].record.expires_unix, pbx.now_unix() + 7200);
}

#[test]
fn nat_target_is_the_source_address_not_the_contact() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    let b = &pbx.bindings("101")[0];
    assert_eq!(b.contact_uri, "sip:101@192.168.1.20:5062;transport=udp");
    assert_eq!(b.target(), udp("203.0.113.7:40112"));

    // The NAT rebinds to a new port: the next refresh moves the target.
    phone.source = Peer::new(Transport::Tcp, "203.0.113.7:50999".parse().unwrap());
    let text = phone.register_text(None, Some(3600));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Refreshed]);
    let record = &out.changes[0].record;
    assert_eq!(
        (record.transport, record.source),
        (Transport::Tcp, "203.0.113.7:50999".parse().unwrap())
    );
    assert_eq!(pbx.bindings("101")[0].target(), phone.source);
}

#[test]
fn expired_bindings_are_swept() {
    let mut pbx = Pbx::new();
    let mut a = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let mut b = Phone::linphone("102", "b1", "203.0.113.8:40112");
    assert_eq!(status(&a.register(&mut pbx, None, Some(60))), 200);
    assert_eq!(status(&b.register(&mut pbx, None, Some(120))), 200);
    pbx.advance(59);
    assert!(
        pbx.registrar
            .handle_timeout(pbx.now(), pbx.now_unix())
            .is_empty()
    );
    assert_eq!(pbx.bindings("101").len(), 1);
    pbx.advance(1);
    // Lookups stop returning it the moment it expires, swept or not.
    assert!(pbx.bindings("101").is_empty());
    let swept = pbx.registrar.handle_timeout(pbx.now(), pbx.now_unix());
    assert_eq!(swept.len(), 1);
    assert_eq!(swept[0].kind, ChangeKind::Expired);
    assert_eq!(swept[0].record.extension, "101");
    assert_eq!(swept[0].record.expires_unix, pbx.now_unix());
    assert_eq!(pbx.registrar.location().binding_count(), 1);
    assert_eq!(pbx.bindings("102").len(), 1);
}

#[test]
fn same_call_id_with_lower_cseq_is_refused() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    let stored = phone.cseq;
    for cseq in [stored, stored - 5] {
        phone.cseq = cseq - 1; // register_text increments
        let text = phone.register_text(None, Some(1800));
        let out = pbx.send(phone.source, &text);
        assert_eq!(status(&out), 500, "CSeq {cseq}");
        assert!(out.changes.is_empty());
    }
    // Nothing changed; removing is subject to the same rule.
    phone.cseq = stored - 2;
    let text = phone.register_text(Some("*"), Some(0));
    assert_eq!(status(&pbx.send(phone.source, &text)), 500);
    assert_eq!(pbx.bindings("101")[0].remaining(pbx.now()).as_secs(), 3600);
    // A new Call-ID (the phone rebooted) replaces the binding whatever its CSeq.
    phone.call_id = "after-reboot".into();
    phone.cseq = 0;
    let text = phone.register_text(None, Some(1800));
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Refreshed]);
}

#[test]
fn unknown_domain_or_user_is_404_and_counted() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::sipp("555", "203.0.113.9:5060");
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 404);
    assert_eq!(failures(&out), [AuthFailure::UnknownUser]);

    let mut phone = Phone::sipp("101", "203.0.113.9:5060");
    phone.domain = "nowhere.example".into();
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 404);
    assert_eq!(failures(&out), [AuthFailure::UnknownDomain]);
}

#[test]
fn disabled_user_is_forbidden_without_a_challenge() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::sipp("199", "203.0.113.9:5060");
    let out = phone.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 403);
    assert_eq!(
        out.response.reason_phrase(),
        Some("Forbidden (user disabled)")
    );
    assert!(out.events.is_empty());
}

#[test]
fn tenants_are_selected_by_domain_and_kept_apart() {
    let mut pbx = Pbx::new();
    let mut a = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let mut b = Phone::linphone("101", "b1", "203.0.113.8:40112");
    b.domain = "OTHER.tally.local".into();
    b.ruri = "sip:other.tally.local".into();
    b.client = DigestClient::new("101", password("101", 2));
    // Tenant 1's password does not open tenant 2's 101.
    let mut wrong = Phone::linphone("101", "x", "203.0.113.9:40112");
    wrong.domain = "other.tally.local".into();
    wrong.ruri = "sip:other.tally.local".into();
    assert_eq!(status(&wrong.register(&mut pbx, None, Some(3600))), 403);

    assert_eq!(status(&a.register(&mut pbx, None, Some(3600))), 200);
    let out = b.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200);
    assert_eq!(out.aor.unwrap().tenant, tenant_id(2));
    let loc = pbx.registrar.location();
    let one: Vec<_> = loc.lookup(pbx.now(), tenant_id(1), "101").collect();
    let two: Vec<_> = loc.lookup(pbx.now(), tenant_id(2), "101").collect();
    assert_eq!((one.len(), two.len()), (1, 1));
    assert_eq!(one[0].instance.as_deref(), Some("urn:uuid:a1"));
    assert_eq!(two[0].instance.as_deref(), Some("urn:uuid:b1"));
}

#[test]
fn register_without_contact_lists_the_bindings() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    pbx.advance(100);
    let out = phone.register(&mut pbx, Some(""), None);
    assert_eq!(status(&out), 200);
    assert!(out.changes.is_empty());
    assert_eq!(contacts(&out)[0].1, 3500);
}

#[test]
fn per_user_cap_evicts_the_binding_that_expires_first() {
    let mut pbx = Pbx::with_config(RegistrarConfig {
        max_bindings_per_user: 3,
        ..RegistrarConfig::default()
    });
    for (i, expires) in [(1, 3600), (2, 600), (3, 3600)] {
        let mut p = Phone::linphone("101", &format!("d{i}"), "203.0.113.7:40112");
        assert_eq!(status(&p.register(&mut pbx, None, Some(expires))), 200);
    }
    let mut p = Phone::linphone("101", "d4", "203.0.113.7:40112");
    let out = p.register(&mut pbx, None, Some(3600));
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Added, ChangeKind::Evicted]);
    assert_eq!(out.changes[1].record.key, "<urn:uuid:d2>");
    let instances: Vec<_> = pbx
        .bindings("101")
        .into_iter()
        .filter_map(|b| b.instance)
        .collect();
    assert_eq!(instances, ["urn:uuid:d1", "urn:uuid:d3", "urn:uuid:d4"]);
}

#[test]
fn export_then_import_keeps_the_bindings() {
    let mut pbx = Pbx::new();
    let mut desk = Phone::linphone("101", "desk", "203.0.113.7:40112");
    let mut sipp = Phone::sipp("102", "127.0.0.1:5061");
    assert_eq!(status(&desk.register(&mut pbx, None, Some(3600))), 200);
    assert_eq!(status(&sipp.register(&mut pbx, None, Some(1800))), 200);
    pbx.advance(100);
    let mut records = pbx.registrar.location().export(pbx.now(), pbx.now_unix());
    records.sort_by(|a, b| a.extension.cmp(&b.extension));
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].expires_unix, T0_UNIX + 3600);
    assert_eq!(records[1].expires_unix, T0_UNIX + 1800);

    // A restart ten seconds later: a new process, a new monotonic clock.
    let mut restarted = Pbx::new();
    restarted.elapsed = Duration::from_secs(110);
    let report =
        restarted
            .registrar
            .restore(restarted.now(), restarted.now_unix(), records.clone());
    assert_eq!((report.restored, report.expired), (2, 0));
    assert!(report.rejected.is_empty());
    let desk_binding = &restarted.bindings("101")[0];
    assert_eq!(
        desk_binding.remaining(restarted.now()).as_secs(),
        3600 - 110
    );
    assert_eq!(desk_binding.target(), udp("203.0.113.7:40112"));
    assert_eq!(
        desk_binding.contact_uri,
        "sip:101@192.168.1.20:5062;transport=udp"
    );
    assert_eq!(desk_binding.instance.as_deref(), Some("urn:uuid:desk"));
    // Exporting again gives the same records.
    let mut again = restarted
        .registrar
        .location()
        .export(restarted.now(), restarted.now_unix());
    again.sort_by(|a, b| a.extension.cmp(&b.extension));
    assert_eq!(again, records);

    // The CSeq survived: the stored one is still refused, the next one
    // refreshes. (The nonce survived too: the nodes share the key.)
    sipp.cseq -= 1;
    let text = sipp.register_text(None, Some(1800));
    assert_eq!(status(&restarted.send(sipp.source, &text)), 500);
    let text = sipp.register_text(None, Some(1800));
    let out = restarted.send(sipp.source, &text);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Refreshed]);

    // Restored after both expired: nothing comes back.
    let mut late = Pbx::new();
    late.elapsed = Duration::from_secs(4000);
    let report = late.registrar.restore(late.now(), late.now_unix(), records);
    assert_eq!((report.restored, report.expired), (0, 2));
}

#[test]
fn unsupported_require_and_uri_scheme() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    let text = phone.register_text(None, Some(3600)).replacen(
        "Max-Forwards: 70\r\n",
        "Max-Forwards: 70\r\nRequire: outbound, path\r\n",
        1,
    );
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 420);
    assert_eq!(
        out.response.header(HeaderName::Unsupported),
        Some("outbound, path")
    );

    phone.ruri = "tel:+15551234".into();
    let text = phone.register_text(None, Some(3600));
    assert_eq!(status(&pbx.send(phone.source, &text)), 416);
}

#[test]
fn malformed_requests_get_precise_answers_and_never_panic() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::linphone("101", "a1", "203.0.113.7:40112");
    assert_eq!(status(&phone.register(&mut pbx, None, Some(3600))), 200);
    let cases = [
        (
            "Expires: 3600\r\n",
            "Expires: soon\r\n",
            "invalid Expires header: not a number",
        ),
        (
            ";reg-id=1",
            ";reg-id=1;expires=99999999999",
            "invalid expires parameter",
        ),
        (";reg-id=1", ";reg-id=1;q=7", "invalid q parameter"),
        (
            "<sip:101@192.168.1.20:5062;transport=udp>",
            "<mailto:101@example.com>",
            "Contact must be a sip: or sips: URI",
        ),
        (
            "Authorization: Digest ",
            "Authorization: Digest ,=",
            "invalid Authorization: expected parameter name at byte 8",
        ),
        ("CSeq: ", "CSeq: x", "invalid CSeq header: not a number"),
    ];
    for (from, to, reason) in cases {
        let text = phone.register_text(None, Some(3600));
        assert!(text.contains(from), "{from}");
        let out = pbx.send(phone.source, &text.replacen(from, to, 1));
        assert_eq!(status(&out), 400, "{to}");
        assert_eq!(
            out.response.reason_phrase(),
            Some(format!("Bad Request ({reason})").as_str())
        );
        assert!(out.changes.is_empty());
    }
    // A Contact with an instance is still one binding after all that.
    assert_eq!(pbx.bindings("101").len(), 1);

    // Not a REGISTER, or nothing to echo: no response at all.
    let options = "OPTIONS sip:demo.tally.local SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let no_call_id = "REGISTER sip:demo.tally.local SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:a@h>\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    let (now, now_unix) = (pbx.now(), pbx.now_unix());
    for (text, expected) in [
        (options, RegisterError::NotRegister),
        (
            no_call_id,
            RegisterError::Unanswerable(sip::ParseError::MissingHeader(HeaderName::CallId)),
        ),
    ] {
        let msg = Message::parse(text.as_bytes().to_vec()).unwrap();
        let got = pbx
            .registrar
            .handle_register(&pbx.directory, now, now_unix, phone.source, &msg)
            .unwrap_err();
        assert_eq!(got, expected);
    }
}

#[test]
fn contact_forms_phones_send_are_read() {
    let mut pbx = Pbx::new();
    let mut phone = Phone::sipp("101", "203.0.113.7:5060");
    // Compact header name, two contacts on one line, one with q.
    let text = phone
        .register_text(
            Some("<sip:101@203.0.113.7:5060>;q=0.8, \"Desk\" <sip:101@203.0.113.7:5062>"),
            Some(600),
        )
        .replacen("Contact:", "m:", 1);
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 401);
    phone.learn(&out.response);
    let text = phone
        .register_text(
            Some("<sip:101@203.0.113.7:5060>;q=0.8, \"Desk\" <sip:101@203.0.113.7:5062>"),
            Some(600),
        )
        .replacen("Contact:", "m:", 1);
    let out = pbx.send(phone.source, &text);
    assert_eq!(status(&out), 200);
    assert_eq!(kinds(&out), [ChangeKind::Added, ChangeKind::Added]);
    let b = pbx.bindings("101");
    assert_eq!(b[0].q, Some(800));
    assert_eq!(b[1].q, None);
    assert!(matches!(
        out.response.contacts().next(),
        Some(Ok(Contact::Addr(_)))
    ));
}
