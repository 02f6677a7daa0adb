//! The registration client of a `register` trunk, sans-IO (DESIGN.md:
//! "Sans-IO cores"): the runtime feeds responses and time, and drains the
//! REGISTERs to send and the status changes to show in
//! `GET /api/trunks/{id}`.
//!
//! ```text
//!   Idle ──timer──▶ Waiting ──200──▶ Registered ──refresh──▶ Waiting …
//!                    │  ▲ 401/407 (once: answered with the trunk's credentials)
//!                    │  └─┘
//!                    └─ 4xx/5xx/6xx, second challenge, no answer, transport error
//!                          ──▶ BackingOff ──retry──▶ Waiting
//! ```
//!
//! # Decisions
//!
//! - **One challenge per attempt.** A 401/407 is answered once, with the
//!   strongest digest it offers (SHA-256 over MD5, `sip::auth`); a second
//!   challenge to the answered request means the credentials are wrong,
//!   and retrying at once would only lock the account at the carrier.
//! - **Refresh before expiry**: 300 s before for lifetimes above 10
//!   minutes, half-way for shorter ones, with the lifetime the carrier
//!   granted (the Contact's `expires`, else `Expires`), not the one asked.
//! - **Exponential back-off on failure**: 30 s, 60 s, 120 s … capped at
//!   30 minutes; a `Retry-After` (503) is honoured when it is longer. A
//!   success resets it. A 423 takes the carrier's `Min-Expires` and tries
//!   again at once.
//! - **Retransmission is the client's own** over UDP (Timer E:
//!   [`crate::trunk_retransmit`], T1 doubling to T2, T2 once a 1xx came);
//!   an attempt with no final answer after 32 s (64·T1, Timer F) is a
//!   failure, as is a transport error. Over TCP nothing is sent twice.
//! - **The Contact's user is the trunk's own token**
//!   ([`crate::trunk::contact_user`]), not its account name: a carrier
//!   that calls the registered Contact names the trunk in the
//!   Request-URI, and inbound routing knows the trunk from it even when
//!   the carrier calls from another address than the registrar's
//!   ([`crate::routing::route_inbound`]).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sip::auth::{DigestClient, strongest_challenge};
use sip::builder::RequestBuilder;
use sip::header::HeaderName;
use sip::message::{Message, Method};

use crate::ids::IdSource;
use crate::trunk::{Trunk, TrunkId, TrunkTransport, contact_user};
use crate::trunk_retransmit::Retransmit;

/// How long an attempt waits for a final response (64·T1).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(32);
/// The first back-off after a failure; it doubles per failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);

/// Why the last attempt failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("the carrier answered {0}")]
    Rejected(u16),
    #[error("the carrier challenged the answered request again: wrong credentials?")]
    ChallengedTwice,
    #[error("no digest challenge we can answer: {0}")]
    Unanswerable(String),
    #[error("no answer from the carrier")]
    NoResponse,
    #[error("the carrier cannot be reached")]
    Transport,
    #[error("the REGISTER could not be built: {0}")]
    Build(String),
}

/// Where a trunk's registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// A REGISTER is on its way (first, refresh or retry).
    Registering,
    /// Registered until `until`.
    Registered { until: Instant },
    /// The last attempt failed; the next one is at `retry_at`.
    Failed {
        error: RegistrationError,
        retry_at: Instant,
    },
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum RegistrationOutput {
    /// Send this REGISTER to the trunk's host (or outbound proxy).
    Send(Message),
    /// The state changed (for logs and the trunk's live state).
    Changed(RegistrationState),
}

#[derive(Clone, Debug)]
enum Step {
    /// Nothing in flight; the next REGISTER goes at `at`.
    Idle { at: Instant },
    Waiting {
        cseq: u32,
        deadline: Instant,
        challenged: bool,
    },
}

/// The registration of one `register` trunk.
pub struct TrunkRegistration {
    trunk: TrunkId,
    registrar: String,
    aor: String,
    contact: String,
    via: String,
    realm: String,
    expires: u32,
    digest: DigestClient,
    ids: IdSource,
    call_id: String,
    from_tag: String,
    cseq: u32,
    step: Step,
    state: RegistrationState,
    failures: u32,
    reliable: bool,
    /// The REGISTER in flight, sent again until answered (UDP).
    retransmit: Option<Retransmit>,
    out: VecDeque<RegistrationOutput>,
}

impl std::fmt::Debug for TrunkRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkRegistration")
            .field("trunk", &self.trunk)
            .field("aor", &self.aor)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl TrunkRegistration {
    /// A client that sends its first REGISTER at `now`. `sent_by` is the
    /// `host:port` the carrier answers to (Via), `contact` the `host:port`
    /// where the PBX takes the carrier's calls; `seed` feeds the Call-ID,
    /// tags, branches and cnonces.
    pub fn new(trunk: &Trunk, sent_by: &str, contact: &str, seed: u64, now: Instant) -> Self {
        let transport = match trunk.transport {
            TrunkTransport::Udp => "UDP",
            TrunkTransport::Tcp => "TCP",
        };
        let param = match trunk.transport {
            TrunkTransport::Udp => "",
            TrunkTransport::Tcp => ";transport=tcp",
        };
        let host = bracketed(&trunk.host);
        let registrar = if trunk.port == 5060 {
            format!("sip:{host}{param}")
        } else {
            format!("sip:{host}:{}{param}", trunk.port)
        };
        let mut ids = IdSource::new(seed);
        TrunkRegistration {
            trunk: trunk.id,
            registrar,
            aor: format!("sip:{}@{}", trunk.username, bracketed(trunk.from_host())),
            contact: format!("<sip:{}@{contact}{param}>", contact_user(trunk)),
            via: format!("SIP/2.0/{transport} {sent_by}"),
            realm: trunk.realm.clone(),
            expires: trunk.register_expires,
            digest: DigestClient::new(trunk.auth_user(), trunk.password.clone()),
            call_id: ids.call_id(),
            from_tag: ids.tag(),
            cseq: ids.first_cseq(),
            ids,
            step: Step::Idle { at: now },
            state: RegistrationState::Registering,
            failures: 0,
            reliable: trunk.transport != TrunkTransport::Udp,
            retransmit: None,
            out: VecDeque::new(),
        }
    }

    pub fn trunk(&self) -> TrunkId {
        self.trunk
    }

    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The Call-ID of every REGISTER of this client: the runtime routes
    /// the carrier's answers to it by this.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    pub fn poll_output(&mut self) -> Option<RegistrationOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(match self.step {
            Step::Idle { at } => at,
            Step::Waiting { deadline, .. } => match &self.retransmit {
                Some(r) => r.at().min(deadline),
                None => deadline,
            },
        })
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.step {
            Step::Idle { at } if now >= at => self.send(now, None, false),
            Step::Waiting { deadline, .. } if now >= deadline => {
                self.fail(now, RegistrationError::NoResponse, None)
            }
            Step::Waiting { .. } => {
                if let Some(again) = self.retransmit.as_mut().and_then(|r| r.due(now)) {
                    self.out.push_back(RegistrationOutput::Send(again));
                }
            }
            _ => {}
        }
    }

    /// Sends the next REGISTER now rather than at its time (the runtime
    /// moved to another of the carrier's servers, or its connection was
    /// lost); nothing while one is in flight.
    pub fn register_now(&mut self, now: Instant) {
        if let Step::Idle { at } = &mut self.step {
            *at = now;
        }
    }

    /// The request could not be sent (or its connection broke).
    pub fn handle_transport_error(&mut self, now: Instant) {
        if matches!(self.step, Step::Waiting { .. }) {
            self.fail(now, RegistrationError::Transport, None);
        }
    }

    /// A response from the carrier; `false` if it is not for the REGISTER
    /// in flight (stale, or another dialog's), and then nothing changed.
    pub fn handle_response(&mut self, now: Instant, response: &Message) -> bool {
        let Step::Waiting {
            cseq, challenged, ..
        } = self.step
        else {
            return false;
        };
        let ours = response.call_id().ok() == Some(self.call_id.as_str())
            && response
                .cseq()
                .is_ok_and(|c| c.seq == cseq && c.method == Method::Register);
        let Some(code) = response.status().filter(|_| ours) else {
            return false;
        };
        match code {
            100..=199 => {
                if let Some(r) = self.retransmit.as_mut() {
                    r.proceeding(now);
                }
            }
            200..=299 => self.registered(now, response),
            401 | 407 if challenged => self.fail(now, RegistrationError::ChallengedTwice, None),
            401 | 407 => self.answer_challenge(now, response, code),
            423 => match response.seconds(HeaderName::MinExpires) {
                Ok(Some(min)) if min > self.expires => {
                    self.expires = min;
                    self.send(now, None, false);
                }
                _ => self.fail(now, RegistrationError::Rejected(423), None),
            },
            _ => {
                let retry_after = response
                    .seconds(HeaderName::RetryAfter)
                    .ok()
                    .flatten()
                    .map(|s| Duration::from_secs(u64::from(s)));
                self.fail(now, RegistrationError::Rejected(code), retry_after)
            }
        }
        true
    }

    fn answer_challenge(&mut self, now: Instant, response: &Message, code: u16) {
        let (challenge_header, answer_header) = if code == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let challenges: Vec<_> = response
            .challenges(challenge_header)
            .filter_map(Result::ok)
            .filter(|c| self.realm.is_empty() || c.realm == self.realm)
            .collect();
        let Some(challenge) = strongest_challenge(&challenges) else {
            let why = if self.realm.is_empty() {
                "none offered".to_owned()
            } else {
                format!("none for realm {}", self.realm)
            };
            return self.fail(now, RegistrationError::Unanswerable(why), None);
        };
        let cnonce = format!("{:016x}", self.ids.next_u64());
        match self
            .digest
            .respond(challenge, "REGISTER", &self.registrar, &cnonce)
        {
            Ok(credentials) => self.send(now, Some((answer_header, credentials.to_string())), true),
            Err(e) => self.fail(now, RegistrationError::Unanswerable(e.to_string()), None),
        }
    }

    fn registered(&mut self, now: Instant, response: &Message) {
        // The lifetime granted to our contact, else the Expires header,
        // else what was asked.
        let contact_user = self.contact.trim_start_matches('<').trim_end_matches('>');
        let granted = response
            .contacts()
            .filter_map(Result::ok)
            .filter(|c| {
                c.addr()
                    .is_some_and(|a| contact_user.starts_with(&a.uri.to_string()))
            })
            .find_map(|c| c.expires().ok().flatten())
            .or_else(|| response.seconds(HeaderName::Expires).ok().flatten())
            .unwrap_or(self.expires);
        let lifetime = Duration::from_secs(u64::from(granted.max(1)));
        let refresh = if granted > 600 {
            lifetime - Duration::from_secs(300)
        } else {
            lifetime / 2
        };
        self.failures = 0;
        self.retransmit = None;
        self.step = Step::Idle { at: now + refresh };
        self.set_state(RegistrationState::Registered {
            until: now + lifetime,
        });
    }

    fn fail(&mut self, now: Instant, error: RegistrationError, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(16))
            .min(MAX_BACKOFF);
        let wait = retry_after.map_or(backoff, |r| r.max(backoff));
        self.retransmit = None;
        self.step = Step::Idle { at: now + wait };
        self.set_state(RegistrationState::Failed {
            error,
            retry_at: now + wait,
        });
    }

    fn set_state(&mut self, state: RegistrationState) {
        if self.state != state {
            self.state = state.clone();
            self.out.push_back(RegistrationOutput::Changed(state));
        }
    }

    fn send(&mut self, now: Instant, credentials: Option<(HeaderName, String)>, challenged: bool) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let branch = self.ids.branch();
        let mut b = RequestBuilder::new(Method::Register, &self.registrar)
            .header(
                HeaderName::Via,
                format!("{};branch={branch};rport", self.via),
            )
            .header(HeaderName::MaxForwards, 70)
            .header(
                HeaderName::From,
                format!("<{}>;tag={}", self.aor, self.from_tag),
            )
            .header(HeaderName::To, format!("<{}>", self.aor))
            .header(HeaderName::CallId, &self.call_id)
            .header(HeaderName::CSeq, format!("{} REGISTER", self.cseq))
            .header(HeaderName::Contact, &self.contact)
            .header(HeaderName::Expires, self.expires);
        if let Some((name, value)) = credentials {
            b = b.header(name, value);
        }
        match b.build() {
            Ok(message) => {
                self.step = Step::Waiting {
                    cseq: self.cseq,
                    deadline: now + ATTEMPT_TIMEOUT,
                    challenged,
                };
                if !matches!(self.state, RegistrationState::Registered { .. }) {
                    self.set_state(RegistrationState::Registering);
                }
                self.retransmit = Retransmit::start(&message, self.reliable, now);
                self.out.push_back(RegistrationOutput::Send(message));
            }
            Err(e) => self.fail(now, RegistrationError::Build(e.to_string()), None),
        }
    }
}

/// An IPv6 literal in brackets, anything else as it is.
fn bracketed(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use sip::auth::{Algorithm, Credentials, DigestServer, UserSecret, Verdict};
    use sip::builder::ResponseBuilder;

    use super::*;
    use crate::routing::inbound::tests::trunk;
    use crate::trunk::TrunkKind;

    const LOCAL: &str = "192.0.2.1:5060";

    fn client(now: Instant) -> TrunkRegistration {
        let mut t = trunk(1, 10, TrunkKind::Register, &[]);
        t.username = "15550100".into();
        t.password = "carrier-secret".into();
        t.register_expires = 600;
        TrunkRegistration::new(&t, LOCAL, LOCAL, 42, now)
    }

    fn sent(c: &mut TrunkRegistration) -> Message {
        let mut sent = None;
        while let Some(o) = c.poll_output() {
            if let RegistrationOutput::Send(m) = o {
                assert!(sent.is_none(), "one REGISTER at a time");
                sent = Some(m);
            }
        }
        sent.expect("a REGISTER")
    }

    fn answer(req: &Message, code: u16, extra: &[(HeaderName, String)]) -> Message {
        let mut b = ResponseBuilder::reply(req, code);
        for (n, v) in extra {
            b = b.header(*n, v);
        }
        b.build().unwrap()
    }

    /// The carrier's side: a digest server for the trunk's account.
    fn carrier() -> DigestServer {
        DigestServer::new("carrier.example", [7; 32])
    }

    fn challenge(server: &mut DigestServer, req: &Message, sha256: bool) -> Message {
        // Carriers list MD5 first; the client must still pick SHA-256.
        let mut extra = vec![(
            HeaderName::WwwAuthenticate,
            server.challenge(1_000, Algorithm::Md5, false).to_string(),
        )];
        if sha256 {
            let c = server.challenge(1_000, Algorithm::Sha256, false);
            extra.push((HeaderName::WwwAuthenticate, c.to_string()));
        }
        answer(req, 401, &extra)
    }

    #[test]
    fn registers_through_a_challenge_and_refreshes_before_expiry() {
        let t0 = Instant::now();
        let mut c = client(t0);
        assert_eq!(c.poll_timeout(), Some(t0));
        c.handle_timeout(t0);
        let first = sent(&mut c);
        assert_eq!(first.request_uri_str(), Some("sip:carrier.example"));
        assert!(first.header(HeaderName::Authorization).is_none());
        assert_eq!(first.header(HeaderName::Expires), Some("600"));
        assert_eq!(
            first.to().unwrap().uri.to_string(),
            "sip:15550100@carrier.example"
        );
        let mut server = carrier();
        assert!(c.handle_response(t0, &challenge(&mut server, &first, true)));
        let second = sent(&mut c);
        assert_ne!(
            second.via().unwrap().branch(),
            first.via().unwrap().branch()
        );
        assert_eq!(second.cseq().unwrap().seq, first.cseq().unwrap().seq + 1);
        assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
        let creds = Credentials::parse(second.header(HeaderName::Authorization).unwrap()).unwrap();
        assert_eq!(creds.algorithm, Algorithm::Sha256, "the strongest offered");
        assert_eq!(
            server.verify(
                1_000,
                "REGISTER",
                &creds,
                UserSecret::Password("carrier-secret")
            ),
            Verdict::Ok
        );
        // The carrier grants less than asked: the refresh follows it.
        let ok = answer(
            &second,
            200,
            &[(
                HeaderName::Contact,
                format!(
                    "{};expires=120",
                    second.header(HeaderName::Contact).unwrap()
                ),
            )],
        );
        assert!(c.handle_response(t0, &ok));
        assert_eq!(
            c.poll_output(),
            Some(RegistrationOutput::Changed(RegistrationState::Registered {
                until: t0 + Duration::from_secs(120)
            }))
        );
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        c.handle_timeout(t0 + Duration::from_secs(59));
        assert!(c.poll_output().is_none(), "not yet");
        c.handle_timeout(t0 + Duration::from_secs(60));
        let refresh = sent(&mut c);
        assert!(
            matches!(c.state(), RegistrationState::Registered { .. }),
            "still registered while refreshing"
        );
        assert_eq!(refresh.call_id().unwrap(), first.call_id().unwrap());
        // A stale answer (the earlier CSeq) changes nothing.
        assert!(!c.handle_response(t0, &ok));
    }

    #[test]
    fn udp_registers_are_retransmitted_until_answered_and_tcp_ones_are_not() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        let contact = first.header(HeaderName::Contact).unwrap().to_owned();
        let mut t = trunk(1, 10, TrunkKind::Register, &[]);
        t.password = "carrier-secret".into();
        assert_eq!(contact, format!("<sip:{}@{LOCAL}>", contact_user(&t)));
        // Timer E: 0.5 s, then 1 s, the same request each time.
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        c.handle_timeout(t0 + Duration::from_millis(500));
        let again = sent(&mut c);
        assert_eq!(again.as_bytes(), first.as_bytes());
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(1500)));
        // A 100 Trying: every T2 from now.
        let trying = answer(&first, 100, &[]);
        assert!(c.handle_response(t0 + Duration::from_millis(600), &trying));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_millis(4600)));
        // Timer F still ends it: no final answer in 32 s is a failure.
        let mut now = t0;
        let mut copies = 0;
        while now < t0 + ATTEMPT_TIMEOUT {
            now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
            while let Some(o) = c.poll_output() {
                if let RegistrationOutput::Send(m) = o {
                    assert_eq!(m.as_bytes(), first.as_bytes());
                    copies += 1;
                }
            }
        }
        assert_eq!(copies, 7, "every 4 s from 4.6 s to 28.6 s");
        assert!(matches!(
            c.state(),
            RegistrationState::Failed {
                error: RegistrationError::NoResponse,
                ..
            }
        ));
        // Over TCP the transport delivers: only Timer F runs.
        t.transport = TrunkTransport::Tcp;
        let mut c = TrunkRegistration::new(&t, LOCAL, LOCAL, 42, t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        assert!(
            first
                .header(HeaderName::Contact)
                .unwrap()
                .ends_with(";transport=tcp>")
        );
        assert!(first.via().unwrap().is_transport("TCP"));
        assert_eq!(c.poll_timeout(), Some(t0 + ATTEMPT_TIMEOUT));
        // register_now does nothing while a REGISTER is in flight, and
        // sends the next one at once when idle.
        c.register_now(t0);
        assert_eq!(c.poll_timeout(), Some(t0 + ATTEMPT_TIMEOUT));
        c.handle_transport_error(t0);
        let retry = c.poll_timeout().unwrap();
        assert!(retry > t0 + FIRST_BACKOFF - Duration::from_secs(1));
        c.register_now(t0 + Duration::from_secs(1));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn md5_only_carriers_are_answered_with_md5() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        let mut server = carrier();
        c.handle_response(t0, &challenge(&mut server, &first, false));
        let second = sent(&mut c);
        let creds = Credentials::parse(second.header(HeaderName::Authorization).unwrap()).unwrap();
        assert_eq!(creds.algorithm.hash(), sip::auth::DigestHash::Md5);
    }

    #[test]
    fn failures_back_off_exponentially_and_a_success_resets() {
        let t0 = Instant::now();
        let mut c = client(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            c.handle_timeout(now);
            let req = sent(&mut c);
            c.handle_response(now, &answer(&req, 503, &[]));
            let next = c.poll_timeout().unwrap();
            waits.push((next - now).as_secs());
            now = next;
        }
        assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1800, 1800]);
        assert!(matches!(
            c.state(),
            RegistrationState::Failed {
                error: RegistrationError::Rejected(503),
                ..
            }
        ));
        // Retry-After longer than the back-off is honoured.
        c.handle_timeout(now);
        let req = sent(&mut c);
        c.handle_response(
            now,
            &answer(&req, 503, &[(HeaderName::RetryAfter, "3600".into())]),
        );
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(3600)));
        now += Duration::from_secs(3600);
        c.handle_timeout(now);
        let req = sent(&mut c);
        c.handle_response(now, &answer(&req, 200, &[]));
        assert_eq!(c.failures(), 0);
        assert!(matches!(c.state(), RegistrationState::Registered { .. }));
        // Granted what was asked (600 s): refresh half-way.
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(300)));
    }

    #[test]
    fn a_second_challenge_no_answer_or_a_transport_error_fail_the_attempt() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        let mut server = carrier();
        c.handle_response(t0, &challenge(&mut server, &first, true));
        let second = sent(&mut c);
        c.handle_response(t0, &challenge(&mut server, &second, true));
        assert!(c.poll_output().is_some_and(|o| matches!(
            o,
            RegistrationOutput::Changed(RegistrationState::Failed {
                error: RegistrationError::ChallengedTwice,
                ..
            })
        )));
        assert!(
            !matches!(c.poll_output(), Some(RegistrationOutput::Send(_))),
            "no third REGISTER at once"
        );
        let retry = c.poll_timeout().unwrap();
        c.handle_timeout(retry);
        sent(&mut c);
        c.handle_timeout(retry + ATTEMPT_TIMEOUT);
        assert!(matches!(
            c.state(),
            RegistrationState::Failed {
                error: RegistrationError::NoResponse,
                ..
            }
        ));
        let retry = c.poll_timeout().unwrap();
        c.handle_timeout(retry);
        sent(&mut c);
        c.handle_transport_error(retry);
        assert!(matches!(
            c.state(),
            RegistrationState::Failed {
                error: RegistrationError::Transport,
                ..
            }
        ));
        assert_eq!(c.failures(), 3);
    }

    #[test]
    fn a_challenge_for_another_realm_is_not_answered() {
        let t0 = Instant::now();
        let mut t = trunk(1, 10, TrunkKind::Register, &[]);
        t.password = "pw".into();
        t.realm = "expected.example".into();
        let mut c = TrunkRegistration::new(&t, LOCAL, LOCAL, 1, t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        c.handle_response(t0, &challenge(&mut carrier(), &first, true));
        assert!(matches!(
            c.state(),
            RegistrationState::Failed {
                error: RegistrationError::Unanswerable(_),
                ..
            }
        ));
    }

    #[test]
    fn interval_too_brief_takes_min_expires() {
        let t0 = Instant::now();
        let mut c = client(t0);
        c.handle_timeout(t0);
        let first = sent(&mut c);
        c.handle_response(
            t0,
            &answer(&first, 423, &[(HeaderName::MinExpires, "1800".into())]),
        );
        let second = sent(&mut c);
        assert_eq!(second.header(HeaderName::Expires), Some("1800"));
    }
}
