//! Client transactions: a request Tally sends and the responses to it.
//!
//! INVITE (RFC 3261 §17.1.1, with RFC 6026's Accepted state) and non-INVITE
//! (§17.1.2) share one type: they differ in a handful of transitions, and
//! one type keeps the table of transactions a single map.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::message::{Message, Method};
use crate::transport::Peer;
use crate::validate::check_request;

use super::key::TransactionKey;
use super::requests::ack_for_failure;
use super::timer::{Fired, Schedule, Timer, TimerConfig};
use super::{Input, Output, State, TransactionError, TransactionEvent};

/// One request Tally sends, from the first transmission to the end of the
/// wait for stray retransmissions of its final response.
#[derive(Debug)]
pub struct ClientTransaction {
    invite: bool,
    state: State,
    peer: Peer,
    /// The request, while it may be sent again or cancelled (Calling,
    /// Trying, Proceeding). Dropped on the final response: Completed and
    /// Accepted linger up to 32 s per call only to absorb retransmissions
    /// (the ACK below, or nothing), and a parsed INVITE is kilobytes.
    request: Option<Box<Message>>,
    /// INVITE only: the ACK sent for a non-2xx final response, sent again for
    /// each retransmission of that response.
    ack: Option<Box<Message>>,
    config: TimerConfig,
    schedule: Schedule,
    outputs: VecDeque<Output>,
}

impl ClientTransaction {
    /// Starts the transaction: `request` is sent at once (see
    /// [`ClientTransaction::poll_output`]). It must pass
    /// [`check_request`], carry an RFC 3261 branch, and not be an ACK.
    pub fn new(
        now: Instant,
        peer: Peer,
        request: Message,
        config: TimerConfig,
    ) -> Result<ClientTransaction, TransactionError> {
        TransactionKey::client(&request)?;
        check_request(&request).map_err(TransactionError::InvalidRequest)?;
        let invite = request.method() == Some(&Method::Invite);
        let (state, retransmit, timeout) = if invite {
            (State::Calling, Timer::A, Timer::B)
        } else {
            (State::Trying, Timer::E, Timer::F)
        };
        let mut t = ClientTransaction {
            invite,
            state,
            peer,
            request: Some(Box::new(request.clone())),
            ack: None,
            config,
            schedule: Schedule::default(),
            outputs: VecDeque::new(),
        };
        t.transmit(request);
        if let Some(interval) = config.initial(retransmit, t.reliable()) {
            t.schedule.arm_retransmit(retransmit, now, interval, now);
        }
        t.arm(timeout, now);
        Ok(t)
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_invite(&self) -> bool {
        self.invite
    }

    /// The request this transaction sends, until its final response
    /// arrives (see the field).
    pub fn request(&self) -> Option<&Message> {
        self.request.as_deref()
    }

    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// Feeds a response matched to this transaction, or a transport error.
    /// A client transaction sends no responses: [`Input::Respond`] is refused.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), TransactionError> {
        match input {
            Input::Received(msg) => {
                self.on_response(now, msg);
                Ok(())
            }
            Input::Respond(_) => Err(TransactionError::NotAServerTransaction),
            Input::CancelSent => {
                if !(self.invite && self.state == State::Proceeding) {
                    return Err(TransactionError::NotCancellable { state: self.state });
                }
                // §9.1: without a final response 64·T1 after the CANCEL, the
                // INVITE is given up. A second CANCEL does not push it back.
                if self.schedule.next().is_none() {
                    self.arm(Timer::B, now);
                }
                Ok(())
            }
            Input::TransportError => {
                if self.state != State::Terminated {
                    self.emit(TransactionEvent::TransportError);
                    self.terminate();
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
                    if let Some(request) = self.request.as_deref().cloned() {
                        self.transmit(request);
                    }
                    // §17.1.2.2: in Proceeding, Timer E is reset to T2.
                    let next = if timer == Timer::E && self.state == State::Proceeding {
                        self.config.t2
                    } else {
                        self.config.backoff(timer, interval)
                    };
                    self.schedule.arm_retransmit(timer, at, next, now);
                }
                Fired::Expired(timer @ (Timer::B | Timer::F)) => {
                    self.emit(TransactionEvent::Timeout(timer));
                    self.terminate();
                }
                Fired::Expired(_) => self.terminate(),
            }
        }
    }

    /// The next message to send or event for the TU.
    pub fn poll_output(&mut self) -> Option<Output> {
        super::drain(&mut self.outputs, self.state)
    }

    /// When [`ClientTransaction::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.schedule.next()
    }

    fn on_response(&mut self, now: Instant, response: Message) {
        let Some(code) = response.status() else {
            return;
        };
        let provisional = code < 200;
        let success = (200..300).contains(&code);
        match self.state {
            State::Calling | State::Proceeding if self.invite => {
                if provisional {
                    // §17.1.1.2: no more retransmissions, and Timer B only
                    // guards Calling; from here the TU decides (CANCEL). In
                    // Proceeding the only timer is the §9.1 guard: kept.
                    if self.state == State::Calling {
                        self.schedule.clear();
                    }
                    self.state = State::Proceeding;
                    self.emit(TransactionEvent::Provisional(response));
                } else if success {
                    // RFC 6026 §8.4: stay to pass up 2xx retransmissions and
                    // forks; the TU acknowledges each.
                    self.schedule.clear();
                    self.state = State::Accepted;
                    self.request = None;
                    self.arm(Timer::M, now);
                    self.emit(TransactionEvent::Final(response));
                } else {
                    self.schedule.clear();
                    // A response whose To cannot be copied gets no ACK: the
                    // server retransmits it until Timer H, the TU still learns
                    // the outcome.
                    self.ack = self
                        .request
                        .take()
                        .and_then(|request| ack_for_failure(&request, &response).ok())
                        .map(Box::new);
                    if let Some(ack) = self.ack.as_deref().cloned() {
                        self.transmit(ack);
                    }
                    self.state = State::Completed;
                    self.emit(TransactionEvent::Final(response));
                    self.arm(Timer::D, now);
                }
            }
            State::Completed if self.invite && !provisional && !success => {
                // A retransmission: our ACK was lost.
                if let Some(ack) = self.ack.as_deref().cloned() {
                    self.transmit(ack);
                }
            }
            State::Accepted if success => self.emit(TransactionEvent::Final(response)),
            State::Trying | State::Proceeding if !self.invite => {
                // Non-INVITE. Retransmissions continue in Proceeding (§17.1.2.2).
                if provisional {
                    self.state = State::Proceeding;
                    self.emit(TransactionEvent::Provisional(response));
                } else {
                    self.schedule.clear();
                    self.state = State::Completed;
                    self.request = None;
                    self.emit(TransactionEvent::Final(response));
                    self.arm(Timer::K, now);
                }
            }
            // Everything else is absorbed: final retransmissions in
            // Completed, late provisionals, non-2xx after a 2xx.
            _ => {}
        }
    }

    fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }

    /// Starts a state timer; a zero timer (D, K on a reliable transport)
    /// terminates at once.
    fn arm(&mut self, timer: Timer, now: Instant) {
        match self.config.initial(timer, self.reliable()) {
            Some(Duration::ZERO) => self.terminate(),
            Some(d) => self.schedule.arm_expiry(timer, now, d),
            None => {}
        }
    }

    fn terminate(&mut self) {
        self.schedule.clear();
        self.state = State::Terminated;
        self.request = None;
        self.ack = None;
        self.emit(TransactionEvent::Terminated);
    }

    fn transmit(&mut self, message: Message) {
        self.outputs.push_back(Output::Transmit {
            peer: self.peer,
            message,
        });
    }

    fn emit(&mut self, event: TransactionEvent) {
        self.outputs.push_back(Output::Event(event));
    }
}
