//! A test bench for the call engine: a virtual clock, a network that
//! delivers every transmit to a per-peer inbox (optionally losing some),
//! and phones that write their SIP as text the way phones do, parse what
//! they receive with `sip::Message::parse`, and answer challenges with
//! `sip::auth::DigestClient`.
//!
//! Fixture: tenant `acme` (domain `acme.example`), extensions 101 (Tom),
//! 102 (Jason), 103 (Ann, ring timeout 20 s) and 104 (never registers).
//! Time zero is T0 = 2026-11-28T14:03:07.123Z; phones register a minute
//! before.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod golden;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cdr::{
    Builder, CallEvent, CallEventKind, Id, RerouteReason, SessionId, TenantId, WireEvent,
    WireProfile,
};
use pbx::{
    Directory, Engine, EngineConfig, EngineEvent, Extension, Input, Output, RoutingNotice, Tenant,
    User,
};
use serde_json::Value;
use sip::auth::{Challenge, DigestClient, strongest_challenge};
use sip::transport::{Peer, Transport};
use sip::{HeaderName, Message, Method};

/// 2026-11-28T14:03:07.123Z in Unix milliseconds.
pub const T0: u64 = 1_795_874_587_123;
pub const DOMAIN: &str = "acme.example";
/// The PBX's advertised address.
pub const PBX: &str = "203.0.113.10:5060";
pub const TENANT: u64 = 883_611_252_155_219_968;
/// Where the bench's clock starts, relative to T0.
const START: i64 = -120_000;

pub fn tenant_id() -> TenantId {
    TenantId::from(Id::from_u64(TENANT))
}

pub fn udp(addr: &str) -> Peer {
    Peer::new(Transport::Udp, addr.parse::<SocketAddr>().unwrap())
}

pub fn tcp(addr: &str) -> Peer {
    Peer::new(Transport::Tcp, addr.parse::<SocketAddr>().unwrap())
}

/// The stored id of the fixture user with extension `ext`.
pub fn user_id(ext: &str) -> Id {
    Id::from_u64(7_000_000 + ext.parse::<u64>().unwrap_or(0))
}

pub fn password(ext: &str) -> String {
    format!("pw-{ext}-secret")
}

/// The fixture's directory: tenant `acme` and its four users.
pub fn directory(d: &mut Directory) {
    d.upsert_tenant(Tenant {
        id: tenant_id(),
        name: "acme".into(),
        domain: DOMAIN.into(),
    })
    .unwrap();
    for (ext, name, ring) in [
        ("101", "Tom", 30),
        ("102", "Jason", 30),
        ("103", "Ann", 20),
        ("104", "Bob", 30),
    ] {
        d.upsert_user(User {
            tenant_id: tenant_id(),
            id: user_id(ext),
            extension: Extension::new(ext),
            display_name: name.into(),
            credentials: pbx::SipCredentials::from_password(ext, DOMAIN, &password(ext)),
            ring_timeout: Duration::from_secs(ring),
            enabled: true,
            forwarding: Default::default(),
            max_concurrent_calls: None,
            recording: false,
            pickup_group: String::new(),
        })
        .unwrap();
    }
}

/// The engine on a virtual clock, and the network around it.
pub struct Bench {
    pub engine: Engine,
    base: Instant,
    /// Milliseconds since T0 (negative before it).
    pub now: i64,
    inboxes: HashMap<Peer, VecDeque<Message>>,
    /// Every transmit, with its time.
    pub wire: Vec<(i64, Peer, Message)>,
    pub call_events: Vec<(SessionId, TenantId, CallEvent)>,
    pub engine_events: Vec<EngineEvent>,
    pub binding_changes: usize,
    /// Agents' feature-code logins and logouts, in order.
    pub agent_logins: Vec<pbx::AgentLogin>,
    /// Transmits to lose: the next message to `peer` matching the predicate.
    losses: Vec<(Peer, Loss)>,
    /// Commands to media relays, in order.
    pub media: Vec<(SessionId, pbx::media::MediaCommand)>,
}

/// Which message to a peer the network loses.
type Loss = Box<dyn Fn(&Message) -> bool>;

impl Bench {
    pub fn new() -> Bench {
        Bench::with_config(EngineConfig::new(1, [0x42; 32], 42, PBX))
    }

    /// A bench whose engine runs with `config` (node 1, the fixture's key
    /// and seed expected; change only what a test is about).
    pub fn with_config(config: EngineConfig) -> Bench {
        let mut engine = Engine::new(config).unwrap();
        directory(engine.directory_mut());
        Bench {
            engine,
            base: Instant::now(),
            now: START,
            inboxes: HashMap::new(),
            wire: Vec::new(),
            call_events: Vec::new(),
            engine_events: Vec::new(),
            binding_changes: 0,
            agent_logins: Vec::new(),
            losses: Vec::new(),
            media: Vec::new(),
        }
    }

    /// The engine's `Instant` for the bench's current time.
    pub fn instant_now(&self) -> Instant {
        self.instant(self.now)
    }

    fn instant(&self, at: i64) -> Instant {
        self.base + Duration::from_millis((at - START) as u64)
    }

    fn unix_ms(at: i64) -> u64 {
        (T0 as i64 + at) as u64
    }

    /// Moves the clock to `at` (ms after T0), firing every timer on the way
    /// at its exact deadline.
    pub fn at(&mut self, at: i64) {
        assert!(at >= self.now, "time runs forwards: {at} < {}", self.now);
        let target = self.instant(at);
        while let Some(deadline) = self.engine.poll_timeout() {
            if deadline > target {
                break;
            }
            let ms = deadline.duration_since(self.base).as_millis() as i64 + START;
            self.now = ms.max(self.now);
            self.engine
                .handle_timeout(self.instant(self.now), Self::unix_ms(self.now));
            self.collect();
        }
        self.now = at;
    }

    /// Delivers `text` from `peer` to the PBX now.
    pub fn send(&mut self, peer: Peer, text: &str) {
        let message = Message::parse(text.as_bytes().to_vec())
            .unwrap_or_else(|e| panic!("test message does not parse ({e}):\n{text}"));
        self.engine.handle_input(
            self.instant(self.now),
            Self::unix_ms(self.now),
            Input::Received { peer, message },
        );
        self.collect();
    }

    pub fn transport_error(&mut self, peer: Peer) {
        self.engine.handle_input(
            self.instant(self.now),
            Self::unix_ms(self.now),
            Input::TransportError { peer },
        );
        self.collect();
    }

    /// The node stops: [`Input::HangUpAll`] now.
    pub fn hang_up_all(&mut self) {
        self.engine.handle_input(
            self.instant(self.now),
            Self::unix_ms(self.now),
            Input::HangUpAll,
        );
        self.collect();
    }

    /// Feeds `input` now.
    pub fn input(&mut self, input: Input) {
        self.engine
            .handle_input(self.instant(self.now), Self::unix_ms(self.now), input);
        self.collect();
    }

    /// Runs a call-control command now ([`Engine::control`]).
    pub fn control(&mut self, command: pbx::Control) -> pbx::ControlReply {
        let reply = self
            .engine
            .control(self.instant(self.now), Self::unix_ms(self.now), command);
        self.collect();
        reply
    }

    /// Loses the next message the PBX sends to `peer` that matches `what`.
    pub fn lose(&mut self, peer: Peer, what: impl Fn(&Message) -> bool + 'static) {
        self.losses.push((peer, Box::new(what)));
    }

    fn collect(&mut self) {
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Transmit { peer, message } => {
                    self.wire.push((self.now, peer, message.clone()));
                    if let Some(i) = self
                        .losses
                        .iter()
                        .position(|(p, what)| *p == peer && what(&message))
                    {
                        drop(self.losses.remove(i));
                        continue;
                    }
                    self.inboxes.entry(peer).or_default().push_back(message);
                }
                Output::CallEvent {
                    session,
                    tenant,
                    event,
                } => self.call_events.push((session, tenant, event)),
                Output::BindingChanges(c) => self.binding_changes += c.len(),
                Output::AgentLogin(change) => self.agent_logins.push(change),
                Output::Event(EngineEvent::Internal { session, detail }) => {
                    panic!("engine bug (session {session:?}): {detail}")
                }
                Output::Event(e) => self.engine_events.push(e),
                Output::Media {
                    session, command, ..
                } => self.media.push((session, command)),
            }
        }
    }

    /// Everything delivered to `peer` since the last call, `100 Trying`
    /// left out.
    pub fn take(&mut self, peer: Peer) -> Vec<Message> {
        self.inboxes
            .remove(&peer)
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.status() != Some(100))
            .collect()
    }

    /// The one message delivered to `peer` (besides `100 Trying`).
    pub fn take_one(&mut self, peer: Peer) -> Message {
        let mut all = self.take(peer);
        assert_eq!(
            all.len(),
            1,
            "expected one message to {peer}, got {:?}",
            all.iter().map(Message::summary).collect::<Vec<_>>()
        );
        all.remove(0)
    }

    /// Registers `phone` (answering the 401).
    pub fn register(&mut self, phone: &mut Phone) {
        let text = phone.register(None);
        self.send(phone.peer, &text);
        let challenge = self.take_one(phone.peer);
        assert_eq!(challenge.status(), Some(401), "{}", challenge.summary());
        let text = phone.register(Some(&challenge));
        self.send(phone.peer, &text);
        let ok = self.take_one(phone.peer);
        assert_eq!(ok.status(), Some(200), "{}", ok.summary());
    }

    /// The caller's INVITE and its `407` now, the authenticated retry 40 ms
    /// later (when the session starts). Returns the caller's call.
    pub fn dial(&mut self, caller: &mut Phone, number: &str) -> Call {
        let mut call = caller.call(number, Some(SDP_A));
        let text = caller.invite(&mut call, None);
        self.send(caller.peer, &text);
        let challenge = self.take_one(caller.peer);
        assert_eq!(challenge.status(), Some(407), "{}", challenge.summary());
        self.send(caller.peer, &caller.ack_failure(&call, &challenge));
        self.at(self.now + 40);
        let text = caller.invite(&mut call, Some(&challenge));
        self.send(caller.peer, &text);
        call
    }

    /// `(callee, reroute_reason)` of each target the PBX added, in order
    /// (every session).
    pub fn targets(&self) -> Vec<(String, Option<RerouteReason>)> {
        self.call_events
            .iter()
            .filter_map(|(_, _, e)| match &e.kind {
                CallEventKind::TargetAdded(t) => Some((t.callee.clone(), t.reroute_reason)),
                _ => None,
            })
            .collect()
    }

    /// What the engine reported about rules it could not follow.
    pub fn notices(&self) -> Vec<RoutingNotice> {
        self.engine_events
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Routing { notice, .. } => Some(notice.clone()),
                _ => None,
            })
            .collect()
    }

    /// The CallEvents of the one session there is.
    pub fn session_events(&self) -> Vec<CallEvent> {
        let sessions: std::collections::BTreeSet<_> =
            self.call_events.iter().map(|(s, _, _)| *s).collect();
        assert_eq!(sessions.len(), 1, "expected one session, got {sessions:?}");
        self.call_events.iter().map(|(_, _, e)| e.clone()).collect()
    }

    /// The session's CallEvents folded by `cdr::Builder`, as wire events.
    pub fn wire_events(&self) -> Vec<WireEvent> {
        let mut builder = Builder::new();
        let mut out = Vec::new();
        for e in self.session_events() {
            let kind = e.kind.name();
            let wire = builder
                .apply(e)
                .unwrap_or_else(|err| panic!("builder refused {kind}: {err}"));
            out.extend(wire);
        }
        assert!(builder.is_finished(), "the session did not end");
        out
    }

    /// Every event's JSON, with sequences 1, 2, 3…
    pub fn json(&self) -> Vec<Value> {
        self.wire_events()
            .iter()
            .zip(1..)
            .map(|(e, seq)| {
                serde_json::from_str(&e.to_json(seq, &WireProfile::tally()).unwrap()).unwrap()
            })
            .collect()
    }

    /// The `call_cdr` object.
    pub fn cdr(&self) -> Value {
        let last = self.json().pop().unwrap();
        assert_eq!(last["event_type"], "call_cdr");
        last
    }

    /// `event_type` of each wire event, in order.
    pub fn timeline(&self) -> Vec<String> {
        self.json()
            .iter()
            .map(|j| j["event_type"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Messages the PBX sent to `peer` so far (retransmissions included).
    pub fn sent_to(&self, peer: Peer) -> Vec<&Message> {
        self.wire
            .iter()
            .filter(|(_, p, _)| *p == peer)
            .map(|(_, _, m)| m)
            .collect()
    }
}

impl Default for Bench {
    fn default() -> Self {
        Bench::new()
    }
}

pub const SDP_A: &str = "v=0\r\no=101 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\na=sendrecv\r\n";
pub const SDP_B: &str = "v=0\r\no=102 7 7 IN IP4 10.0.0.7\r\ns=-\r\nc=IN IP4 10.0.0.7\r\nt=0 0\r\nm=audio 5004 RTP/AVP 0\r\na=sendrecv\r\n";

/// A SIP phone: one user on one device.
pub struct Phone {
    pub user: String,
    pub display: String,
    pub peer: Peer,
    /// The Contact URI it registers.
    pub contact: String,
    client: DigestClient,
    register_cseq: u32,
    register_call_id: String,
    counter: u32,
    /// The Call-ID of the next call (else one is made up).
    pub next_call_id: Option<String>,
}

impl Phone {
    pub fn new(user: &str, display: &str, peer: Peer) -> Phone {
        let contact = match peer.transport {
            Transport::Udp => format!("sip:{user}@{}", peer.addr),
            t => format!(
                "sip:{user}@{};transport={}",
                peer.addr,
                t.as_str().to_ascii_lowercase()
            ),
        };
        Phone {
            user: user.into(),
            display: display.into(),
            peer,
            contact,
            client: DigestClient::new(user, password(user)),
            register_cseq: 0,
            register_call_id: format!("reg-{user}-{}", peer.addr.port()),
            counter: 0,
            next_call_id: None,
        }
    }

    /// Makes the phone answer challenges with another password.
    pub fn set_password(&mut self, password: &str) {
        self.client = DigestClient::new(self.user.as_str(), password);
    }

    fn via(&mut self) -> String {
        self.counter += 1;
        format!(
            "SIP/2.0/{} {};branch=z9hG4bK-{}-{};rport",
            self.peer.transport, self.peer.addr, self.user, self.counter
        )
    }

    fn answer(&mut self, challenge: &Message, method: &str, uri: &str) -> (String, String) {
        let (name, header) = match challenge.status() {
            Some(401) => ("Authorization", HeaderName::WwwAuthenticate),
            _ => ("Proxy-Authorization", HeaderName::ProxyAuthenticate),
        };
        let challenges: Vec<Challenge> = challenge
            .challenges(header)
            .collect::<Result<_, _>>()
            .unwrap();
        let chosen = strongest_challenge(&challenges).unwrap();
        self.counter += 1;
        let cnonce = format!("cn{}", self.counter);
        let creds = self.client.respond(chosen, method, uri, &cnonce).unwrap();
        (name.to_owned(), creds.to_string())
    }

    /// A REGISTER, answering `challenge` if given.
    pub fn register(&mut self, challenge: Option<&Message>) -> String {
        self.register_cseq += 1;
        let uri = format!("sip:{DOMAIN}");
        let auth = challenge
            .map(|c| {
                let (name, value) = self.answer(c, "REGISTER", &uri);
                format!("{name}: {value}\r\n")
            })
            .unwrap_or_default();
        format!(
            "REGISTER {uri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{DOMAIN}>;tag=r{user}\r\n\
             To: <sip:{user}@{DOMAIN}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <{contact}>\r\n\
             Expires: 3600\r\n\
             {auth}\
             Content-Length: 0\r\n\r\n",
            via = self.via(),
            user = self.user,
            call_id = self.register_call_id,
            cseq = self.register_cseq,
            contact = self.contact,
        )
    }

    /// A new outgoing call to `number`.
    pub fn call(&mut self, number: &str, sdp: Option<&str>) -> Call {
        self.counter += 1;
        let call_id = self.next_call_id.take().unwrap_or_else(|| {
            format!(
                "call-{}-{}@{}",
                self.user,
                self.counter,
                self.peer.addr.ip()
            )
        });
        Call {
            ruri: format!("sip:{number}@{DOMAIN}"),
            call_id,
            local: format!(
                "\"{}\" <sip:{}@{DOMAIN}>;tag=t{}x{}",
                self.display, self.user, self.user, self.counter
            ),
            remote: format!("<sip:{number}@{DOMAIN}>"),
            remote_target: String::new(),
            cseq: 0,
            invite_via: String::new(),
            sdp: sdp.map(str::to_owned),
        }
    }

    /// The INVITE of `call` (a new transaction), answering `challenge`.
    pub fn invite(&mut self, call: &mut Call, challenge: Option<&Message>) -> String {
        call.cseq += 1;
        call.invite_via = self.via();
        let auth = challenge
            .map(|c| {
                let (name, value) = self.answer(c, "INVITE", &call.ruri);
                format!("{name}: {value}\r\n")
            })
            .unwrap_or_default();
        let body = call.sdp.clone().unwrap_or_default();
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_owned()
        };
        format!(
            "INVITE {ruri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} INVITE\r\n\
             Contact: <{contact}>\r\n\
             Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE\r\n\
             User-Agent: TestPhone/1.0\r\n\
             {auth}{ct}\
             Content-Length: {len}\r\n\r\n{body}",
            ruri = call.ruri,
            via = call.invite_via,
            from = call.local,
            to = call.remote,
            call_id = call.call_id,
            cseq = call.cseq,
            contact = self.contact,
            len = body.len(),
        )
    }

    /// The ACK for a non-2xx final response to the INVITE (same branch).
    pub fn ack_failure(&self, call: &Call, response: &Message) -> String {
        format!(
            "ACK {ruri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\n\
             Content-Length: 0\r\n\r\n",
            ruri = call.ruri,
            via = call.invite_via,
            from = call.local,
            to = response.header(HeaderName::To).unwrap(),
            call_id = call.call_id,
            cseq = call.cseq,
        )
    }

    /// The CANCEL of the INVITE of `call`.
    pub fn cancel(&self, call: &Call) -> String {
        format!(
            "CANCEL {ruri} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} CANCEL\r\n\
             Content-Length: 0\r\n\r\n",
            ruri = call.ruri,
            via = call.invite_via,
            from = call.local,
            to = call.remote,
            call_id = call.call_id,
            cseq = call.cseq,
        )
    }

    /// The ACK for the 2xx `ok` (a new branch), with `sdp` if given.
    pub fn ack(&mut self, call: &mut Call, ok: &Message, sdp: Option<&str>) -> String {
        call.confirm(ok);
        let body = sdp.unwrap_or_default();
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "ACK {target} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} ACK\r\n\
             {ct}Content-Length: {len}\r\n\r\n{body}",
            target = call.remote_target,
            via = self.via(),
            from = call.local,
            to = call.remote,
            call_id = call.call_id,
            cseq = ok.cseq().unwrap().seq,
            len = body.len(),
        )
    }

    /// An in-dialog request of `call` (after its 2xx), with a body.
    pub fn request(&mut self, call: &mut Call, method: &str, body: Option<(&str, &str)>) -> String {
        call.cseq += 1;
        let (ct, body) = match body {
            Some((ct, b)) => (format!("Content-Type: {ct}\r\n"), b.to_owned()),
            None => (String::new(), String::new()),
        };
        let contact = if matches!(method, "INVITE" | "UPDATE") {
            format!("Contact: <{}>\r\n", self.contact)
        } else {
            String::new()
        };
        format!(
            "{method} {target} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             From: {from}\r\n\
             To: {to}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\n\
             {contact}{ct}Content-Length: {len}\r\n\r\n{body}",
            target = call.remote_target,
            via = self.via(),
            from = call.local,
            to = call.remote,
            call_id = call.call_id,
            cseq = call.cseq,
            len = body.len(),
        )
    }

    /// The phone's side of an incoming INVITE: its To tag is `tag`.
    pub fn incoming(&mut self, invite: &Message) -> Call {
        self.counter += 1;
        let to = invite.header(HeaderName::To).unwrap();
        Call {
            ruri: invite.request_uri_str().unwrap().to_owned(),
            call_id: invite.call_id().unwrap().to_owned(),
            local: format!("{to};tag=u{}x{}", self.user, self.counter),
            remote: invite.header(HeaderName::From).unwrap().to_owned(),
            remote_target: contact_uri(invite),
            cseq: 100,
            invite_via: String::new(),
            sdp: None,
        }
    }

    /// A response of `call`'s side to `request` (To tag added for all but 100).
    pub fn respond(&self, call: &Call, request: &Message, code: u16, sdp: Option<&str>) -> String {
        let reason = sip::builder::default_reason(code);
        let mut t = format!("SIP/2.0 {code} {reason}\r\n");
        for v in request.header_lines(HeaderName::Via) {
            t += &format!("Via: {v}\r\n");
        }
        let to = request.header(HeaderName::To).unwrap();
        let to = if request.to().unwrap().tag().is_some() || code == 100 {
            to.to_owned()
        } else {
            call.local.clone()
        };
        t += &format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            request.header(HeaderName::From).unwrap(),
            request.call_id().unwrap(),
            request.header(HeaderName::CSeq).unwrap(),
        );
        if code > 100 && code < 300 && request.method() != Some(&Method::Bye) {
            t += &format!("Contact: <{}>\r\n", self.contact);
        }
        match sdp {
            Some(b) => {
                t += &format!(
                    "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
            }
            None => t += "Content-Length: 0\r\n\r\n",
        }
        t
    }
}

/// One dialog (or dialog to be) as a phone keeps it.
#[derive(Clone, Debug)]
pub struct Call {
    pub ruri: String,
    pub call_id: String,
    /// Our From (UAC) or To (UAS) value, with our tag.
    pub local: String,
    /// The peer's value, with its tag once known.
    pub remote: String,
    /// Where in-dialog requests go (the peer's Contact).
    pub remote_target: String,
    pub cseq: u32,
    pub invite_via: String,
    pub sdp: Option<String>,
}

impl Call {
    /// Takes the To tag and Contact of a 2xx.
    pub fn confirm(&mut self, ok: &Message) {
        self.remote = ok.header(HeaderName::To).unwrap().to_owned();
        self.remote_target = contact_uri(ok);
    }
}

/// The URI of a message's first Contact.
pub fn contact_uri(m: &Message) -> String {
    match m.contacts().next().unwrap().unwrap() {
        sip::headers::Contact::Addr(a) => a.uri.as_str().to_owned(),
        sip::headers::Contact::Wildcard => panic!("wildcard contact"),
    }
}

/// Whether `m` is a request of `method`.
pub fn is(m: &Message, method: Method) -> bool {
    m.method() == Some(&method)
}

/// The standard cast: caller 101 and callee 102's desk phone, registered.
pub struct Cast {
    pub bench: Bench,
    pub alice: Phone,
    pub bob: Phone,
}

pub const ALICE: &str = "10.0.0.5:5060";
pub const BOB_DESK: &str = "10.0.0.7:5062";
pub const BOB_APP: &str = "198.51.100.23:61000";

impl Cast {
    pub fn new() -> Cast {
        Cast::on(Bench::new())
    }

    /// The cast on `bench` (e.g. [`Bench::with_config`]).
    pub fn on(mut bench: Bench) -> Cast {
        let mut alice = Phone::new("101", "Tom", udp(ALICE));
        alice.next_call_id = Some("3c26a1f1e7b94f0a@10.0.0.5".into());
        let mut bob = Phone::new("102", "Jason", udp(BOB_DESK));
        bench.at(-60_000);
        bench.register(&mut alice);
        bench.register(&mut bob);
        Cast { bench, alice, bob }
    }
}

impl Default for Cast {
    fn default() -> Self {
        Cast::new()
    }
}

/// 101 dials 102; 102's desk phone rings at +210.
pub fn ringing() -> (Cast, Call, Call, Message) {
    let mut cast = Cast::new();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(-40);
    let a_call = bench.dial(alice, "102");
    let invite = bench.take_one(bob.peer);
    assert!(is(&invite, Method::Invite), "{}", invite.summary());
    let b_call = bob.incoming(&invite);
    bench.at(210);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 180, None));
    assert_eq!(bench.take_one(alice.peer).status(), Some(180));
    (cast, a_call, b_call, invite)
}

/// ... and answers at +5870; 101 ACKs 30 ms later.
pub fn answered() -> (Cast, Call, Call) {
    let (mut cast, mut a_call, b_call, invite) = ringing();
    let Cast { bench, alice, bob } = &mut cast;
    bench.at(5870);
    bench.send(bob.peer, &bob.respond(&b_call, &invite, 200, Some(SDP_B)));
    let ok = bench.take_one(alice.peer);
    assert_eq!(ok.status(), Some(200));
    bench.at(5900);
    let ack = alice.ack(&mut a_call, &ok, None);
    bench.send(alice.peer, &ack);
    assert!(is(&bench.take_one(bob.peer), Method::Ack));
    (cast, a_call, b_call)
}
