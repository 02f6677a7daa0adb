//! Server transactions: a request Tally received and the responses the TU
//! gives it.
//!
//! INVITE (RFC 3261 §17.2.1, with RFC 6026's Accepted state) and non-INVITE
//! (§17.2.2) share one type, as the client side does.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// The response retransmitted when the request is (a provisional in
    /// Proceeding, the final in Completed); for INVITE, the 2xx in Accepted,
    /// whose To tag an RFC 2543 ACK must carry.
    last_response: Option<Message>,
    /// INVITE: the `100 Trying`, sent at the first [`Self::poll_output`]
    /// unless the TU has answered by then (see [`ServerTransaction::new`]).
    trying: Option<Message>,
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
            last_response: None,
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
            t.trying = ResponseBuilder::reply(request, 100).build().ok();
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

    /// The last response sent (see the field's note on what it is for).
    pub fn last_response(&self) -> Option<&Message> {
        self.last_response.as_ref()
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
            && self.last_response.is_none()
        {
            self.send(trying);
        }
        self.outputs.pop_front()
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
            State::Proceeding if self.invite => {
                if provisional || success {
                    self.send(response);
                } else {
                    self.send_rejection(response);
                }
                if success {
                    // RFC 6026 §8.5: the TU retransmits the 2xx; the
                    // transaction stays to absorb INVITE retransmissions.
                    self.state = State::Accepted;
                    self.arm(Timer::L, now);
                } else if !provisional {
                    self.state = State::Completed;
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
                if status >= 300 {
                    self.send_rejection(response);
                } else {
                    self.send(response);
                }
                if provisional {
                    self.state = State::Proceeding;
                } else {
                    self.state = State::Completed;
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

    fn send(&mut self, response: Message) {
        self.trying = None;
        if response.status().is_some_and(|c| c < 200) {
            self.provisional_sent = true;
        }
        self.outputs.push_back(Output::Transmit {
            peer: self.peer,
            message: response.clone(),
        });
        self.last_response = Some(response);
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
            self.last_response = None;
        }
    }

    /// The last response again, for a request copy of `len` bytes (or a
    /// Timer G firing, budgeted by the original request).
    fn resend(&mut self, len: usize) {
        if let Some(r) = self.last_response.clone() {
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
        self.emit(TransactionEvent::Terminated);
    }

    fn emit(&mut self, event: TransactionEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}
