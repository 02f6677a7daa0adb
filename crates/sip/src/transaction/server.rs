//! Server transactions: a request Tally received and the responses the TU
//! gives it.
//!
//! INVITE (RFC 3261 §17.2.1, with RFC 6026's Accepted state) and non-INVITE
//! (§17.2.2) share one type, as the client side does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::builder::ResponseBuilder;
use crate::message::{Message, Method};
use crate::transport::Peer;

use super::key::KeyError;
use super::timer::{Fired, Schedule, Timer, TimerConfig};
use super::{Input, Output, State, TransactionError, TransactionEvent, reply_fits};

/// One request Tally received, from its first copy to the end of the wait
/// for its retransmissions (and, for INVITE, its ACK).
///
/// Responses go back to the peer the request came from: over a connection
/// that is the connection (§18.2.2), over UDP it is the source address, which
/// is what `rport` (RFC 3581) asks for and what gets through NAT.
#[derive(Debug)]
pub struct ServerTransaction {
    invite: bool,
    state: State,
    peer: Peer,
    /// What the transaction keeps of the last response it sent: no more
    /// than what the state needs (see [`Kept`]).
    last_response: Kept,
    /// INVITE: the `100 Trying`, sent at the first [`Self::poll_output`]
    /// unless the TU has answered by then (see [`ServerTransaction::new`]).
    trying: Option<Box<Message>>,
    /// A provisional went out: the client stopped retransmitting the
    /// request, so a final response must be retransmitted (Timer G).
    provisional_sent: bool,
    /// Size of the request, the budget of a rejection on an unreliable
    /// transport ([`super::reply_fits`]).
    request_len: usize,
    /// Rejections not sent because they exceeded that budget, not yet
    /// collected by [`Self::take_suppressed`].
    suppressed: u32,
    config: TimerConfig,
    schedule: Schedule,
    outputs: VecDeque<Output>,
}

/// What a server transaction keeps of its last response. A transaction
/// in Completed or Accepted lingers (Timers J and L: 32 s on UDP) only to
/// absorb retransmissions, and every call leaves some behind, so it keeps
/// no more than that needs (issue 18: memory per call).
#[derive(Debug)]
enum Kept {
    Nothing,
    /// Trying/Proceeding: resent often, kept parsed (boxed: a lingering
    /// transaction keeps a `Kept` too, and a `Message` is 224 bytes inline).
    Message(Box<Message>),
    /// Completed: the bytes, parsed again for each (rare) retransmission,
    /// and the To tag an RFC 2543 ACK for a non-2xx carries.
    Bytes {
        bytes: Bytes,
        to_tag: Option<Box<str>>,
    },
    /// Accepted: only the To tag of the 2xx.
    ToTag(Option<Box<str>>),
}

impl ServerTransaction {
    /// Starts the transaction for the first copy of `request`, received from
    /// `peer`. The TU, which holds the request, answers it with
    /// [`Input::Respond`].
    ///
    /// An INVITE is answered `100 Trying` at the first
    /// [`ServerTransaction::poll_output`], unless the TU has answered it
    /// before (a challenge, a refusal: one response, not two, and nothing
    /// sent to a source whose request failed its checks). §17.2.1 asks for
    /// a 100 only when the TU will not send a provisional within 200 ms;
    /// Tally sends it as soon as the TU has taken the request on, because
    /// the B2BUA's own answer depends on a far end that rarely answers
    /// within 200 ms, because the sooner it goes the sooner the caller
    /// stops retransmitting, and because a 200 ms timer per call costs
    /// more than a 300-byte datagram.
    pub fn new(
        peer: Peer,
        request: &Message,
        config: TimerConfig,
    ) -> Result<ServerTransaction, TransactionError> {
        let invite = match request.method() {
            None => return Err(KeyError::NotARequest.into()),
            Some(Method::Ack) => return Err(KeyError::AckIsNotATransaction.into()),
            Some(m) => *m == Method::Invite,
        };
        let mut t = ServerTransaction {
            invite,
            state: if invite {
                State::Proceeding
            } else {
                State::Trying
            },
            peer,
            last_response: Kept::Nothing,
            trying: None,
            provisional_sent: false,
            request_len: request.as_bytes().len(),
            suppressed: 0,
            config,
            schedule: Schedule::default(),
            outputs: VecDeque::new(),
        };
        if invite {
            // The 100 copies what the request has; a request without the
            // headers to copy gets no 100 (the TU will answer it 400).
            t.trying = ResponseBuilder::reply(request, 100)
                .build()
                .ok()
                .map(Box::new);
        }
        Ok(t)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The last response sent, while the transaction may send it again
    /// (Proceeding, Completed); `None` once it only absorbs (Accepted,
    /// Confirmed, Terminated).
    pub fn last_response(&self) -> Option<Message> {
        match &self.last_response {
            Kept::Message(m) => Some(Message::clone(m)),
            Kept::Bytes { bytes, .. } => Message::parse(bytes.clone()).ok(),
            Kept::ToTag(_) | Kept::Nothing => None,
        }
    }

    /// The To tag of the final response sent (Completed, Accepted): an
    /// RFC 2543 ACK for it carries that tag (§17.2.3).
    pub fn sent_to_tag(&self) -> Option<&str> {
        match &self.last_response {
            Kept::ToTag(tag) | Kept::Bytes { to_tag: tag, .. } => tag.as_deref(),
            Kept::Message(m) => m.to().ok()?.tag(),
            Kept::Nothing => None,
        }
    }

    /// Feeds a retransmission of the request or an ACK matched to this
    /// transaction, a response from the TU, or a transport error.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), TransactionError> {
        match input {
            Input::Received(msg) => {
                match msg.method() {
                    Some(Method::Ack) => self.on_ack(now, msg),
                    Some(_) => self.on_retransmission(msg.as_bytes().len()),
                    None => {}
                }
                Ok(())
            }
            Input::Respond(response) => self.respond(now, response),
            Input::CancelSent => Err(TransactionError::NotCancellable { state: self.state }),
            Input::TransportError => {
                match self.state {
                    State::Terminated => {}
                    // RFC 6026: Accepted has no transport-error exit; the TU
                    // owns the 2xx and its retransmissions, and the
                    // transaction stays to absorb INVITE retransmissions.
                    // Confirmed sends nothing; a late report changes nothing.
                    State::Accepted | State::Confirmed => {
                        self.emit(TransactionEvent::TransportError);
                    }
                    _ => {
                        self.emit(TransactionEvent::TransportError);
                        self.terminate();
                    }
                }
                Ok(())
            }
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((fired, at)) = self.schedule.take_due(now) {
            match fired {
                Fired::Retransmit { timer, interval } => {
                    // Timer G: the non-2xx final response, until the ACK.
                    self.resend(self.request_len);
                    let next = self.config.backoff(timer, interval);
                    self.schedule.arm_retransmit(timer, at, next, now);
                }
                Fired::Expired(Timer::H) => {
                    self.emit(TransactionEvent::Timeout(Timer::H));
                    self.terminate();
                }
                Fired::Expired(_) => self.terminate(),
            }
        }
    }

    /// The next output. The first call sends an INVITE's pending
    /// `100 Trying` (see [`ServerTransaction::new`]).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(trying) = self.trying.take()
            && self.state == State::Proceeding
            && matches!(self.last_response, Kept::Nothing)
        {
            self.send(*trying);
        }
        super::drain(&mut self.outputs, self.state)
    }

    /// Rejections left unsent since the last call because they were larger
    /// than the request's budget on an unreliable transport.
    pub fn take_suppressed(&mut self) -> u32 {
        std::mem::take(&mut self.suppressed)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.next()
    }

    fn on_retransmission(&mut self, len: usize) {
        // Proceeding and Completed answer a retransmission with the last
        // response (§17.2.1, §17.2.2); Trying has none yet; Confirmed and
        // Accepted absorb it (RFC 6026 §7.1: the TU retransmits a 2xx).
        // The budget is this copy's size: a forged small "retransmission"
        // must not draw the large response a large original earned.
        if matches!(self.state, State::Proceeding | State::Completed) {
            self.resend(len);
        }
    }

    fn on_ack(&mut self, now: Instant, ack: Message) {
        if !self.invite {
            return;
        }
        match self.state {
            State::Completed => {
                self.schedule.clear();
                self.state = State::Confirmed;
                // Confirmed absorbs; nothing is sent again.
                self.last_response = Kept::Nothing;
                self.arm(Timer::I, now);
            }
            State::Accepted => self.emit(TransactionEvent::Ack(ack)),
            _ => {}
        }
    }

    fn respond(&mut self, now: Instant, response: Message) -> Result<(), TransactionError> {
        let status = response.status().ok_or(TransactionError::NotAResponse)?;
        let provisional = status < 200;
        let success = (200..300).contains(&status);
        match self.state {
            State::Terminated => return Err(TransactionError::Terminated),
            // The state changes before `send`, which keeps what the new
            // state needs of the response.
            State::Proceeding if self.invite => {
                if success {
                    // RFC 6026 §8.5: the TU retransmits the 2xx; the
                    // transaction stays to absorb INVITE retransmissions.
                    self.state = State::Accepted;
                    self.send(response);
                    self.arm(Timer::L, now);
                } else if provisional {
                    self.send(response);
                } else {
                    self.state = State::Completed;
                    self.send_rejection(response);
                    // Without a provisional the client is still in Calling,
                    // retransmitting its INVITE (Timer A), and each copy is
                    // answered again: Timer G would only multiply what a
                    // spoofed source receives (the stateless UAS of §8.2.7
                    // behaves the same way).
                    if self.provisional_sent
                        && let Some(interval) = self.config.initial(Timer::G, self.reliable())
                    {
                        self.schedule.arm_retransmit(Timer::G, now, interval, now);
                    }
                    self.arm(Timer::H, now);
                }
            }
            // Further 2xx from the TU: its own retransmissions.
            State::Accepted if success => self.send(response),
            State::Trying | State::Proceeding if !self.invite => {
                if provisional {
                    self.state = State::Proceeding;
                    self.send(response);
                } else {
                    self.state = State::Completed;
                    if status >= 300 {
                        self.send_rejection(response);
                    } else {
                        self.send(response);
                    }
                    self.arm(Timer::J, now);
                }
            }
            state => return Err(TransactionError::ResponseNotAllowed { status, state }),
        }
        Ok(())
    }

    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }

    /// Starts a state timer; a zero timer (I, J on a reliable transport)
    /// terminates at once.
    fn arm(&mut self, timer: Timer, now: Instant) {
        match self.config.initial(timer, self.reliable()) {
            Some(Duration::ZERO) => self.terminate(),
            Some(d) => self.schedule.arm_expiry(timer, now, d),
            None => {}
        }
    }

    /// Sends `response` and keeps what the state it leads to needs of it
    /// (called after the state changed).
    fn send(&mut self, response: Message) {
        self.trying = None;
        if response.status().is_some_and(|c| c < 200) {
            self.provisional_sent = true;
        }
        let to_tag = || response.to().ok().and_then(|to| to.tag().map(Box::from));
        self.last_response = match self.state {
            // Retransmitted on every copy of the request until the final
            // response: kept parsed.
            State::Trying | State::Proceeding => Kept::Message(Box::new(response.clone())),
            // Retransmitted (Timer G, copies of the request) for up to 32 s
            // after the call: only the bytes, parsed again when sent.
            State::Completed => Kept::Bytes {
                bytes: response.as_bytes().clone(),
                to_tag: to_tag(),
            },
            // Never sent again by the transaction (the TU retransmits a
            // 2xx); only its To tag matches an RFC 2543 ACK.
            State::Accepted => Kept::ToTag(to_tag()),
            State::Calling | State::Confirmed | State::Terminated => Kept::Nothing,
        };
        self.outputs.push_back(Output::Transmit {
            peer: self.peer,
            message: response,
        });
    }

    /// A final non-2xx: sent only within the request's budget
    /// ([`super::reply_fits`]); beyond it the transaction goes on
    /// (absorbing retransmissions and the ACK) with nothing to repeat.
    fn send_rejection(&mut self, response: Message) {
        if reply_fits(
            self.peer.transport,
            self.request_len,
            response.as_bytes().len(),
        ) {
            self.send(response);
        } else {
            self.trying = None;
            self.suppressed += 1;
            self.last_response = Kept::Nothing;
        }
    }

    /// The last response again, for a request copy of `len` bytes (or a
    /// Timer G firing, budgeted by the original request).
    fn resend(&mut self, len: usize) {
        if let Some(r) = self.last_response() {
            if !reply_fits(self.peer.transport, len, r.as_bytes().len()) {
                self.suppressed += 1;
                return;
            }
            self.outputs.push_back(Output::Transmit {
                peer: self.peer,
                message: r,
            });
        }
    }

    fn terminate(&mut self) {
        self.schedule.clear();
        self.state = State::Terminated;
        self.last_response = Kept::Nothing;
        self.emit(TransactionEvent::Terminated);
    }

    fn emit(&mut self, event: TransactionEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}
