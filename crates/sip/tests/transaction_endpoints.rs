//! Two transaction layers talking over an in-memory network with 10 ms of
//! latency, quinn-proto style: a calling endpoint (client transactions) and
//! a called one (server transactions) run whole INVITE exchanges on one
//! virtual clock, with chosen packets lost on the way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::builder::ViaValue;
use sip::header::HeaderName;
use sip::transaction::{
    Output, Received, TimerConfig, TransactionEvent, TransactionId, Transactions,
};
use sip::transport::{Peer, Transport};
use sip::{Message, Method, RequestBuilder, ResponseBuilder};

const LATENCY: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    Caller,
    Callee,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }

    fn addr(self) -> SocketAddr {
        match self {
            Side::Caller => "192.0.2.10:5060".parse().unwrap(),
            Side::Callee => "192.0.2.20:5060".parse().unwrap(),
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }
}

/// `INVITE`, `ACK`, or a status code with its CSeq method: `180/INVITE`.
fn label(m: &Message) -> String {
    match m.method() {
        Some(method) => method.to_string(),
        None => format!("{}/{}", m.status().unwrap(), m.cseq().unwrap().method),
    }
}

struct Network {
    t0: Instant,
    now: Instant,
    caller: Transactions,
    callee: Transactions,
    /// Messages in flight: when they arrive, where, what.
    wire: Vec<(Instant, Side, Message)>,
    /// Which copies to lose: (sender, label, nth copy from 1).
    lose: Vec<(Side, &'static str, usize)>,
    sent: HashMap<(Side, String), usize>,
    /// The callee TU's plan: responses to each new INVITE, with delays.
    answers: Vec<(u16, Duration)>,
    /// Responses the callee TU has scheduled: (when, transaction, response).
    pending: Vec<(Instant, TransactionId, Message)>,
    /// New INVITEs the callee TU holds, by server transaction.
    invites: HashMap<TransactionId, Message>,
    /// When the caller TU hangs up (cancels its INVITE), and which one.
    hang_up: Option<(Instant, TransactionId)>,
    /// What happened, `"<ms> <who> <what>"`.
    trace: Vec<String>,
}

impl Network {
    fn new(answers: Vec<(u16, Duration)>, lose: Vec<(Side, &'static str, usize)>) -> Network {
        let t0 = Instant::now();
        Network {
            t0,
            now: t0,
            caller: Transactions::new(TimerConfig::default()),
            callee: Transactions::new(TimerConfig::default()),
            wire: Vec::new(),
            lose,
            sent: HashMap::new(),
            answers,
            pending: Vec::new(),
            invites: HashMap::new(),
            hang_up: None,
            trace: Vec::new(),
        }
    }

    fn log(&mut self, who: Side, what: String) {
        let ms = (self.now - self.t0).as_millis();
        self.trace.push(format!("{ms} {} {what}", who.name()));
    }

    fn send(&mut self, from: Side, message: Message) {
        let l = label(&message);
        let n = self.sent.entry((from, l.clone())).or_insert(0);
        *n += 1;
        let n = *n;
        if self
            .lose
            .iter()
            .any(|&(s, what, nth)| s == from && what == l && nth == n)
        {
            self.log(from, format!("sends {l} (lost)"));
        } else {
            self.log(from, format!("sends {l}"));
            self.wire.push((self.now + LATENCY, from.other(), message));
        }
    }

    fn layer(&mut self, side: Side) -> &mut Transactions {
        match side {
            Side::Caller => &mut self.caller,
            Side::Callee => &mut self.callee,
        }
    }

    /// Drains both layers: transmits go on the wire, events go to the TUs.
    fn drain(&mut self) {
        for side in [Side::Caller, Side::Callee] {
            while let Some((id, out)) = self.layer(side).poll_output() {
                match out {
                    Output::Transmit { peer, message } => {
                        assert_eq!(peer.addr, side.other().addr());
                        self.send(side, message);
                    }
                    Output::Event(event) => self.on_event(side, id, event),
                }
            }
        }
    }

    fn on_event(&mut self, side: Side, _id: TransactionId, event: TransactionEvent) {
        let what = match &event {
            TransactionEvent::Provisional(m) | TransactionEvent::Final(m) => {
                format!("hears {}", label(m))
            }
            TransactionEvent::Ack(m) => format!("hears {}", label(m)),
            other => format!("hears {other:?}"),
        };
        self.log(side, what);
        // The caller's dialog layer ACKs a 2xx itself, outside the
        // transaction, with a new branch (RFC 3261 §13.2.2.4); a 2xx to a
        // CANCEL is not ACKed.
        if let TransactionEvent::Final(ok) = event
            && side == Side::Caller
            && ok.status().is_some_and(|s| (200..300).contains(&s))
            && ok.cseq().unwrap().method == Method::Invite
        {
            let ack = RequestBuilder::new(Method::Ack, "sip:bob@192.0.2.20:5060")
                .header(
                    HeaderName::Via,
                    ViaValue {
                        transport: "UDP",
                        sent_by: "192.0.2.10:5060",
                        branch: "z9hG4bKack2xx",
                    },
                )
                .header(HeaderName::MaxForwards, 70)
                .header(HeaderName::From, ok.header(HeaderName::From).unwrap())
                .header(HeaderName::To, ok.header(HeaderName::To).unwrap())
                .header(HeaderName::CallId, ok.call_id().unwrap())
                .header(HeaderName::CSeq, "1 ACK")
                .build()
                .unwrap();
            self.send(Side::Caller, ack);
        }
    }

    fn deliver(&mut self, to: Side, message: Message) {
        let from = Peer::new(Transport::Udp, to.other().addr());
        let now = self.now;
        match self.layer(to).receive(now, from, message).unwrap() {
            Received::Existing(_) => {}
            Received::Request { id, request } => {
                self.log(to, format!("gets new {}", label(&request)));
                for (code, delay) in self.answers.clone() {
                    let r = ResponseBuilder::reply(&request, code)
                        .to_tag("callee1")
                        .build()
                        .unwrap();
                    self.pending.push((now + delay, id, r));
                }
                self.invites.insert(id, request);
            }
            Received::Cancel {
                id,
                request,
                invite: Some(invite),
            } => {
                self.log(to, "gets CANCEL for its INVITE".to_owned());
                let ok = ResponseBuilder::reply(&request, 200)
                    .to_tag("callee1")
                    .build()
                    .unwrap();
                self.callee.respond(now, id, ok).unwrap();
                // §9.2: the INVITE, still unanswered, is answered 487.
                self.pending.retain(|p| p.1 != invite);
                let terminated = ResponseBuilder::reply(&self.invites[&invite], 487)
                    .to_tag("callee1")
                    .build()
                    .unwrap();
                self.callee.respond(now, invite, terminated).unwrap();
            }
            Received::Ack(ack) => {
                self.log(to, format!("gets {} outside transactions", label(&ack)))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Runs until nothing is in flight, scheduled or armed.
    fn run(&mut self) {
        loop {
            self.drain();
            let next = [
                self.wire.iter().map(|w| w.0).min(),
                self.pending.iter().map(|p| p.0).min(),
                self.hang_up.map(|h| h.0),
                self.caller.poll_timeout(),
                self.callee.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else { break };
            assert!(
                next - self.t0 < Duration::from_secs(120),
                "runaway: {:#?}",
                self.trace
            );
            self.now = next;
            let (due, later): (Vec<_>, Vec<_>) = self.wire.drain(..).partition(|w| w.0 <= next);
            self.wire = later;
            for (_, to, message) in due {
                self.deliver(to, message);
            }
            let (due, later): (Vec<_>, Vec<_>) = self.pending.drain(..).partition(|p| p.0 <= next);
            self.pending = later;
            for (_, id, response) in due {
                self.callee.respond(next, id, response).unwrap();
            }
            if let Some((at, call)) = self.hang_up
                && at <= next
            {
                self.hang_up = None;
                self.log(Side::Caller, "hangs up".to_owned());
                self.caller.cancel(next, call).unwrap();
            }
            self.caller.handle_timeout(next);
            self.callee.handle_timeout(next);
        }
    }

    fn start_call(&mut self) {
        self.start_call_hanging_up(None);
    }

    fn start_call_hanging_up(&mut self, after: Option<Duration>) {
        let invite = RequestBuilder::new(Method::Invite, "sip:bob@192.0.2.20:5060")
            .header(
                HeaderName::Via,
                ViaValue {
                    transport: "UDP",
                    sent_by: "192.0.2.10:5060",
                    branch: "z9hG4bKinv1",
                },
            )
            .header(HeaderName::MaxForwards, 70)
            .header(HeaderName::From, "<sip:alice@192.0.2.10>;tag=caller1")
            .header(HeaderName::To, "<sip:bob@192.0.2.20>")
            .header(HeaderName::CallId, "sim-1@192.0.2.10")
            .header(HeaderName::CSeq, "1 INVITE")
            .header(HeaderName::Contact, "<sip:alice@192.0.2.10:5060>")
            .build()
            .unwrap();
        let id = self
            .caller
            .send_request(
                self.now,
                Peer::new(Transport::Udp, Side::Callee.addr()),
                invite,
            )
            .unwrap();
        self.hang_up = after.map(|d| (self.now + d, id));
        self.run();
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn answered_call_with_a_lost_invite() {
    let mut net = Network::new(
        vec![(180, ms(0)), (200, ms(2_000))],
        vec![(Side::Caller, "INVITE", 1)],
    );
    net.start_call();
    assert_eq!(
        net.trace,
        [
            "0 caller sends INVITE (lost)",
            // Timer A.
            "500 caller sends INVITE",
            "510 callee gets new INVITE",
            // The TU rang at once: its 180 goes without a 100.
            "510 callee sends 180/INVITE",
            "520 caller hears 180/INVITE",
            "2510 callee sends 200/INVITE",
            "2520 caller hears 200/INVITE",
            "2520 caller sends ACK",
            "2530 callee gets ACK outside transactions",
            // Timer L (64·T1 after the 200) and Timer M (after it arrived).
            "34510 callee hears Terminated",
            "34520 caller hears Terminated",
        ]
    );
    assert!(net.caller.is_empty() && net.callee.is_empty());
}

#[test]
fn rejected_call_with_a_lost_ack_and_a_lost_486() {
    let mut net = Network::new(
        vec![(486, ms(1_000))],
        vec![(Side::Caller, "ACK", 1), (Side::Callee, "486/INVITE", 2)],
    );
    net.start_call();
    assert_eq!(
        net.trace,
        [
            "0 caller sends INVITE",
            "10 callee gets new INVITE",
            "10 callee sends 100/INVITE",
            "20 caller hears 100/INVITE",
            "1010 callee sends 486/INVITE",
            // The client transaction ACKs at once; the TU hears the 486 once.
            "1020 caller sends ACK (lost)",
            "1020 caller hears 486/INVITE",
            // Timer G: T1, then 2·T1.
            "1510 callee sends 486/INVITE (lost)",
            "2510 callee sends 486/INVITE",
            "2520 caller sends ACK",
            // Confirmed: Timer I = T4 after the ACK.
            "7530 callee hears Terminated",
            // Timer D = 32 s after the first 486.
            "33020 caller hears Terminated",
        ]
    );
    assert!(net.caller.is_empty() && net.callee.is_empty());
}

#[test]
fn unanswered_invite_times_out_on_both_sides() {
    // Every INVITE is lost: the caller's Timer B fires, the callee never knew.
    let lose = (1..=7).map(|n| (Side::Caller, "INVITE", n)).collect();
    let mut net = Network::new(vec![], lose);
    net.start_call();
    let sent: Vec<_> = net
        .trace
        .iter()
        .filter(|l| l.ends_with("sends INVITE (lost)"))
        .cloned()
        .collect();
    assert_eq!(sent.len(), 7);
    assert_eq!(
        &net.trace[7..],
        [
            "32000 caller hears Timeout(B)",
            "32000 caller hears Terminated"
        ]
    );
}

#[test]
fn cancelled_call() {
    let mut net = Network::new(vec![(180, ms(0)), (200, ms(20_000))], vec![]);
    net.start_call_hanging_up(Some(ms(5_000)));
    assert_eq!(
        net.trace,
        [
            "0 caller sends INVITE",
            "10 callee gets new INVITE",
            "10 callee sends 180/INVITE",
            "20 caller hears 180/INVITE",
            "5000 caller hangs up",
            "5000 caller sends CANCEL",
            "5010 callee gets CANCEL for its INVITE",
            "5010 callee sends 200/CANCEL",
            "5010 callee sends 487/INVITE",
            "5020 caller hears 200/CANCEL",
            "5020 caller sends ACK",
            "5020 caller hears 487/INVITE",
            // Timer K ends the caller's CANCEL, Timer I the callee's INVITE,
            // Timer J the callee's CANCEL, Timer D the caller's INVITE.
            "10020 caller hears Terminated",
            "10030 callee hears Terminated",
            "37010 callee hears Terminated",
            "37020 caller hears Terminated",
        ]
    );
    assert!(net.caller.is_empty() && net.callee.is_empty());
}
