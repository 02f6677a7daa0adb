//! Dialogs (RFC 3261 §12, with RFC 3311 UPDATE, RFC 3515 REFER and RFC 3891
//! Replaces): the peer-to-peer relationship a call leg lives in.
//!
//! # Place in the design
//!
//! The B2BUA in `pbx` holds one [`Dialog`] per call leg: the inbound leg is a
//! UAS dialog (created when Tally answers the caller's INVITE with a tagged
//! response), each outbound leg a UAC dialog (created from the callee's tagged
//! 1xx or 2xx). A forked INVITE gives one early `Dialog` per To tag; the call
//! engine keys them by [`DialogId`].
//!
//! A dialog is a plain value: no clock, no I/O, no randomness. It has no
//! timers and nothing to send on its own, so unlike the transaction and call
//! cores it has no `poll_output`: the call state machine (the sans-IO core of
//! DESIGN.md) feeds it what went in and out of the leg and asks it to write
//! the next in-dialog request. Retransmissions are the transaction layer's.
//!
//! # The surface
//!
//! - Creation: [`Dialog::uac`] (the request sent, a tagged 1xx or a 2xx
//!   received) and [`Dialog::uas`] (the request received, the tagged 1xx or
//!   2xx sent).
//! - Input: [`Dialog::receive_request`] (§12.2.2: sequence check, target
//!   refresh, BYE), [`Dialog::receive_response`] (early → confirmed or
//!   terminated on the UAC side, target refresh, 408/481),
//!   [`Dialog::response_sent`] (early → confirmed or terminated on the UAS
//!   side), [`Dialog::terminate`] (a local decision: timeout, fork lost).
//! - Output: [`Dialog::request`] (§12.2.1.1) and the helpers built on it
//!   ([`Dialog::bye`], [`Dialog::reinvite`], [`Dialog::update`],
//!   [`Dialog::refer`], [`Dialog::refer_notify`], [`Dialog::info`]), and
//!   [`Dialog::ack`] for a 2xx (§13.2.2.4). They return a [`RequestBuilder`]
//!   so that the caller can add what the dialog does not know (credentials,
//!   `Reason`, `Supported`, identity headers) before `build()`.
//!
//! # Decisions
//!
//! - State changes happen inside the input and output calls: receiving a BYE,
//!   or building one, terminates the dialog (RFC 3261 §15.1.1: the UAC
//!   considers the session over as soon as it sends the BYE). There is no
//!   separate "BYE sent" call to forget.
//! - A non-2xx final response to the INVITE ends *every* early dialog of that
//!   INVITE, but it carries at most one of their To tags: the caller, who owns
//!   the set of forks, calls [`Dialog::terminate`] on the others.
//! - Remote tags may be empty (RFC 3261 §12.1.1 and §12.1.2: an RFC 2543 peer
//!   sends none, and the tag is then null). Local tags are Tally's own and are
//!   required.
//! - The remote target comes from Contact. An absent Contact never erases a
//!   target; it is an error only where there is none yet (a 2xx that creates
//!   a dialog, a request that does), except that an early dialog created by a
//!   1xx without Contact borrows the Request-URI until the 2xx brings one.
//! - Target refresh requests: INVITE, UPDATE (RFC 3311), and SUBSCRIBE and
//!   NOTIFY (RFC 6665 §4.1.1; one dialog shared by the INVITE and the REFER
//!   subscription has one target, RFC 5057). The remote target is replaced
//!   when such a request is received (RFC 3261 §12.2.2) and when a 2xx to one
//!   is received (§12.2.1.2).
//! - A request whose CSeq is not above the remote sequence number is refused
//!   ([`DialogError::CSeqOutOfOrder`], answer `500`), except ACK and CANCEL,
//!   which reuse the number of the request they belong to.
//! - The route set is kept as URIs (the Record-Route URIs, §12.1.1); Route
//!   lines are written as `<uri>`. A URI header part (`?…`) is stripped where
//!   a URI becomes the Request-URI (§19.1.5).
//! - The local CSeq of a UAS dialog starts at a number the caller chooses
//!   (RFC 3261 §8.1.1.5 wants it unpredictable; randomness is injected).
//! - `secure` (§12.1.1, §12.1.2): a SIPS Request-URI on a request sent (Tally
//!   only sends those over TLS) or received over TLS, which only the caller
//!   knows.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

use crate::builder::{RequestBuilder, ViaValue};
use crate::error::{ParseError, ValueError};
use crate::header::HeaderName;
use crate::headers::{CSeq, Contact, NameAddr, ReferTo, Replaces};
use crate::message::{Message, Method};
use crate::uri::Uri;

/// What identifies a dialog at one end (RFC 3261 §12): the Call-ID and the
/// two tags, local first. The same dialog has mirrored ids at its two ends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog a received in-dialog message belongs to.
    ///
    /// For a request Tally is the UAS of that transaction: the local tag is
    /// the To tag (a request without one is not in a dialog) and the remote
    /// tag the From tag. For a response Tally sent the request: the local tag
    /// is the From tag and the remote tag the To tag. A missing remote tag is
    /// the null tag of an RFC 2543 peer.
    pub fn of_received(msg: &Message) -> Result<DialogId, DialogError> {
        let (local, remote) = if msg.is_request() {
            (HeaderName::To, HeaderName::From)
        } else {
            (HeaderName::From, HeaderName::To)
        };
        let local_tag = tag_of(msg, local)?.ok_or(DialogError::MissingTag(local))?;
        let remote_tag = tag_of(msg, remote)?.unwrap_or_default();
        Ok(DialogId {
            call_id: msg.call_id()?.to_owned(),
            local_tag,
            remote_tag,
        })
    }

    /// The dialog of ours an incoming `Replaces` names (RFC 3891 §3: its
    /// to-tag is the local tag at the UA that receives it).
    pub fn from_replaces(r: &Replaces) -> DialogId {
        DialogId {
            call_id: r.call_id.clone(),
            local_tag: r.to_tag.clone(),
            remote_tag: r.from_tag.clone(),
        }
    }

    /// The `Replaces` that asks the remote UA of this dialog to replace it
    /// (attended transfer): the inverse of [`DialogId::from_replaces`].
    pub fn replaces(&self, early_only: bool) -> Replaces {
        Replaces {
            call_id: self.call_id.clone(),
            to_tag: self.remote_tag.clone(),
            from_tag: self.local_tag.clone(),
            early_only,
        }
    }
}

/// RFC 3261 §12 dialog states. An early dialog is created by a tagged 1xx, a
/// confirmed one by a 2xx.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

impl fmt::Display for DialogState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
        })
    }
}

/// Which end of the dialog-creating transaction Tally was. Both ends send
/// and receive requests afterwards; the role matters for the creating
/// transaction's responses and for who may send BYE on an early dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Uac,
    Uas,
}

/// Why a dialog refused a message or a request could not be written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialogError {
    /// A header the dialog reads is missing or malformed, in a received
    /// message or in a value the caller supplied.
    #[error(transparent)]
    Message(#[from] ParseError),
    /// From or To lacks the tag this side put there.
    #[error("{0} header has no tag")]
    MissingTag(HeaderName),
    /// The response cannot create a dialog: a 100, an untagged 1xx, or a
    /// final non-2xx.
    #[error("a {0} response does not create a dialog")]
    NotDialogCreating(u16),
    /// The Call-ID or tags are those of another dialog (answer `481`).
    #[error("the message belongs to another dialog")]
    WrongDialog,
    /// RFC 3261 §12.2.2: an out-of-order request (answer `500`).
    #[error("CSeq {received} is not above the remote sequence number {remote_seq}")]
    CSeqOutOfOrder { received: u32, remote_seq: u32 },
    /// A request for a dialog that has ended (answer `481`).
    #[error("the dialog is terminated")]
    Terminated,
    /// The method may not be sent in the dialog's state (a re-INVITE on an
    /// early dialog, a BYE from the callee before its 2xx, anything after
    /// BYE).
    #[error("{method} cannot be sent in a {state} dialog")]
    NotAllowed { method: Method, state: DialogState },
    /// ACK is written by [`Dialog::ack`]; CANCEL belongs to the INVITE's
    /// client transaction.
    #[error("{0} is not written as an in-dialog request")]
    NotADialogRequest(Method),
    /// The local CSeq would reach 2**31 (RFC 3261 §8.1.1.5).
    #[error("the local CSeq would exceed 2**31 - 1")]
    CSeqOverflow,
}

impl DialogError {
    /// The status of the response a UAS sends for a request the dialog
    /// refused in [`Dialog::receive_request`].
    pub fn status_code(&self) -> u16 {
        match self {
            DialogError::Message(e) => e.status_code(),
            DialogError::MissingTag(_) => 400,
            DialogError::WrongDialog | DialogError::Terminated => 481,
            _ => 500,
        }
    }
}

/// This side's part of a request it sends: its Via, with a branch the caller
/// chose for the new transaction, and its Contact header value (e.g.
/// `<sip:pbx@192.0.2.10:5060;transport=udp>`), written where the method needs
/// one (INVITE, UPDATE, REFER, SUBSCRIBE, NOTIFY).
pub struct Local<'a> {
    pub via: ViaValue<'a>,
    pub contact: &'a str,
}

/// One dialog at one end. See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    role: Role,
    state: DialogState,
    /// CSeq of the dialog-creating request, whose responses drive the early
    /// state.
    origin: CSeq,
    local_seq: Option<u32>,
    /// Where a UAS dialog's local sequence starts.
    first_local_seq: u32,
    remote_seq: Option<u32>,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    secure: bool,
}

/// The highest CSeq number (RFC 3261 §8.1.1.5: less than 2**31).
const MAX_CSEQ: u32 = (1 << 31) - 1;

impl Dialog {
    /// The dialog a UAC gets from the request it sent and a tagged 1xx
    /// (early) or a 2xx (confirmed) it received (RFC 3261 §12.1.2).
    ///
    /// Route set: the response's Record-Route, reversed. Remote target: its
    /// Contact. Local sequence: the request's CSeq.
    pub fn uac(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let status = status_of(response)?;
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return Err(DialogError::NotDialogCreating(status)),
        };
        request_method(request)?;
        let (local_uri, local_tag) = party(request, HeaderName::From)?;
        let local_tag = local_tag.ok_or(DialogError::MissingTag(HeaderName::From))?;
        let (remote_uri, remote_tag) = party(response, HeaderName::To)?;
        let remote_tag = match remote_tag {
            Some(t) => t,
            None if state == DialogState::Early => {
                return Err(DialogError::NotDialogCreating(status));
            }
            None => String::new(),
        };
        let call_id = request.call_id()?;
        let origin = request.cseq()?;
        if response.call_id()? != call_id
            || tag_of(response, HeaderName::From)?.as_deref() != Some(local_tag.as_str())
            || response.cseq()? != origin
        {
            return Err(DialogError::WrongDialog);
        }
        let request_uri = request_uri_of(request)?;
        let remote_target = match contact_uri(response)? {
            Some(t) => t,
            None if state == DialogState::Early => request_uri.to_owned(),
            None => return Err(ParseError::MissingHeader(HeaderName::Contact).into()),
        };
        let mut route_set = record_route(response)?;
        route_set.reverse();
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag,
                remote_tag,
            },
            role: Role::Uac,
            state,
            local_seq: Some(origin.seq),
            first_local_seq: origin.seq,
            origin,
            remote_seq: None,
            local_uri,
            remote_uri,
            remote_target,
            route_set,
            secure: is_sips(request_uri),
        })
    }

    /// The dialog a UAS gets from the request it received and the tagged 1xx
    /// (early) or 2xx (confirmed) it sends (RFC 3261 §12.1.1).
    ///
    /// Route set: the request's Record-Route, in order. Remote target: its
    /// Contact. Remote sequence: its CSeq. The first request this side sends
    /// carries `first_local_seq`. `over_tls`: whether the request arrived
    /// over TLS.
    pub fn uas(
        request: &Message,
        response: &Message,
        over_tls: bool,
        first_local_seq: u32,
    ) -> Result<Dialog, DialogError> {
        let status = status_of(response)?;
        let state = match status {
            101..=199 => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return Err(DialogError::NotDialogCreating(status)),
        };
        if first_local_seq > MAX_CSEQ {
            return Err(DialogError::CSeqOverflow);
        }
        request_method(request)?;
        let (remote_uri, remote_tag) = party(request, HeaderName::From)?;
        let (local_uri, local_tag) = party(response, HeaderName::To)?;
        let local_tag = local_tag.ok_or(DialogError::MissingTag(HeaderName::To))?;
        let remote_tag = remote_tag.unwrap_or_default();
        let call_id = request.call_id()?;
        let origin = request.cseq()?;
        if response.call_id()? != call_id
            || tag_of(response, HeaderName::From)?.unwrap_or_default() != remote_tag
            || response.cseq()? != origin
        {
            return Err(DialogError::WrongDialog);
        }
        let remote_target =
            contact_uri(request)?.ok_or(ParseError::MissingHeader(HeaderName::Contact))?;
        Ok(Dialog {
            id: DialogId {
                call_id: call_id.to_owned(),
                local_tag,
                remote_tag,
            },
            role: Role::Uas,
            state,
            remote_seq: Some(origin.seq),
            origin,
            local_seq: None,
            first_local_seq,
            local_uri,
            remote_uri,
            remote_target,
            route_set: record_route(request)?,
            secure: over_tls && is_sips(request_uri_of(request)?),
        })
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The CSeq of the last request this side sent; `None` for a UAS dialog
    /// that has sent none yet.
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }

    /// The CSeq of the last request the peer sent; `None` for a UAC dialog
    /// that has received none yet.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// This side's From (or To) header value, with the local tag.
    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }

    /// The peer's To (or From) header value, with the remote tag.
    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }

    /// The peer's Contact URI: where in-dialog requests go.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, first hop first.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Ends the dialog for a reason no message carries: a transaction timeout,
    /// a fork that lost to another one's 2xx, a non-2xx final response that
    /// named another fork.
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }

    /// A request received in this dialog (RFC 3261 §12.2.2).
    ///
    /// Checks the id and the CSeq order, records the remote sequence number,
    /// replaces the remote target on a target refresh request with a Contact,
    /// and terminates the dialog on BYE. On error, answer with
    /// [`DialogError::status_code`] and leave the dialog as it was.
    pub fn receive_request(&mut self, request: &Message) -> Result<(), DialogError> {
        let method = request_method(request)?;
        if DialogId::of_received(request)? != self.id {
            return Err(DialogError::WrongDialog);
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        if matches!(method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        let seq = request.cseq()?.seq;
        if let Some(remote_seq) = self.remote_seq
            && seq <= remote_seq
        {
            return Err(DialogError::CSeqOutOfOrder {
                received: seq,
                remote_seq,
            });
        }
        let target = if is_target_refresh(method) {
            contact_uri(request)?
        } else {
            None
        };
        self.remote_seq = Some(seq);
        if let Some(t) = target {
            self.remote_target = t;
        }
        if *method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(())
    }

    /// A response received to a request this side sent in the dialog,
    /// including the responses to the dialog-creating request of a UAC.
    ///
    /// Creating transaction of a UAC dialog: a 2xx confirms an early dialog
    /// (route set recomputed from its Record-Route, §13.2.2.4) and a final
    /// non-2xx terminates it. Any 2xx to a target refresh request replaces
    /// the remote target; a 408 or 481 terminates the dialog (§12.2.1.2).
    /// A response with another To tag belongs to another fork:
    /// [`DialogError::WrongDialog`] (create its dialog with [`Dialog::uac`]).
    pub fn receive_response(&mut self, response: &Message) -> Result<(), DialogError> {
        let status = status_of(response)?;
        if DialogId::of_received(response)? != self.id {
            return Err(DialogError::WrongDialog);
        }
        if self.state == DialogState::Terminated {
            // Responses to the BYE, or late ones: nothing left to change.
            return Ok(());
        }
        let cseq = response.cseq()?;
        let creating = self.role == Role::Uac && cseq == self.origin;
        let target = if (creating && status < 300)
            || ((200..300).contains(&status) && is_target_refresh(&cseq.method))
        {
            contact_uri(response)?
        } else {
            None
        };
        let route_set = if creating && self.state == DialogState::Early && status >= 200 {
            let mut r = record_route(response)?;
            r.reverse();
            Some(r)
        } else {
            None
        };
        if let Some(t) = target {
            self.remote_target = t;
        }
        match status {
            200..=299 if creating && self.state == DialogState::Early => {
                self.state = DialogState::Confirmed;
                if let Some(r) = route_set {
                    self.route_set = r;
                }
            }
            300.. if creating && self.state == DialogState::Early => {
                self.state = DialogState::Terminated;
            }
            408 | 481 if !creating => self.state = DialogState::Terminated,
            _ => {}
        }
        Ok(())
    }

    /// A response this side sent to a request of the dialog. On a UAS
    /// dialog, a 2xx to the creating request confirms an early dialog and a
    /// final non-2xx terminates it; other responses change nothing.
    pub fn response_sent(&mut self, response: &Message) -> Result<(), DialogError> {
        let status = status_of(response)?;
        if response.call_id()? != self.id.call_id
            || tag_of(response, HeaderName::To)?.as_deref() != Some(self.id.local_tag.as_str())
        {
            return Err(DialogError::WrongDialog);
        }
        let creating = self.role == Role::Uas && response.cseq()? == self.origin;
        if creating && self.state == DialogState::Early {
            match status {
                200..=299 => self.state = DialogState::Confirmed,
                300.. => self.state = DialogState::Terminated,
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts a request within the dialog (RFC 3261 §12.2.1.1): Request-URI
    /// and Route from the route set and remote target, Via, Max-Forwards,
    /// From, To, Call-ID, CSeq (the next local sequence number) and, where
    /// the method needs one, Contact. A BYE terminates the dialog.
    pub fn request(
        &mut self,
        method: Method,
        local: &Local<'_>,
    ) -> Result<RequestBuilder, DialogError> {
        if matches!(method, Method::Ack | Method::Cancel) {
            return Err(DialogError::NotADialogRequest(method));
        }
        let allowed = match self.state {
            DialogState::Confirmed => true,
            DialogState::Early => match method {
                Method::Invite => false,
                Method::Bye => self.role == Role::Uac,
                _ => true,
            },
            DialogState::Terminated => false,
        };
        if !allowed {
            return Err(DialogError::NotAllowed {
                method,
                state: self.state,
            });
        }
        let seq = match self.local_seq {
            Some(s) if s >= MAX_CSEQ => return Err(DialogError::CSeqOverflow),
            Some(s) => s + 1,
            None => self.first_local_seq,
        };
        let needs_contact = matches!(
            method,
            Method::Invite | Method::Update | Method::Refer | Method::Subscribe | Method::Notify
        );
        let cseq = CSeq { seq, method };
        let mut b = self.start(&cseq, &local.via);
        if needs_contact {
            b = b.header(HeaderName::Contact, local.contact);
        }
        self.local_seq = Some(seq);
        if cseq.method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        Ok(b)
    }

    /// The ACK for a 2xx to an INVITE of this dialog (RFC 3261 §13.2.2.4):
    /// the INVITE's CSeq number, the dialog's route set, a new branch in
    /// `local.via`. It does not use a local sequence number. The caller adds
    /// the INVITE's credentials, and the SDP answer if the INVITE had no
    /// offer.
    pub fn ack(&self, ok: &Message, local: &Local<'_>) -> Result<RequestBuilder, DialogError> {
        let status = status_of(ok)?;
        let cseq = ok.cseq()?;
        if !(200..300).contains(&status) || cseq.method != Method::Invite {
            return Err(ParseError::BadHeader(
                HeaderName::CSeq,
                ValueError::Unexpected("ACK without a 2xx to an INVITE"),
            )
            .into());
        }
        if DialogId::of_received(ok)? != self.id {
            return Err(DialogError::WrongDialog);
        }
        let ack = CSeq {
            seq: cseq.seq,
            method: Method::Ack,
        };
        Ok(self.start(&ack, &local.via))
    }

    /// BYE; the dialog is terminated from here on.
    pub fn bye(&mut self, local: &Local<'_>) -> Result<RequestBuilder, DialogError> {
        self.request(Method::Bye, local)
    }

    /// A re-INVITE with an SDP offer, or without one (the offer then comes
    /// in the 2xx and the answer in the ACK).
    pub fn reinvite(
        &mut self,
        local: &Local<'_>,
        sdp: Option<Bytes>,
    ) -> Result<RequestBuilder, DialogError> {
        let b = self.request(Method::Invite, local)?;
        Ok(with_sdp(b, sdp))
    }

    /// UPDATE (RFC 3311), with an SDP offer or without one (a session
    /// refresh).
    pub fn update(
        &mut self,
        local: &Local<'_>,
        sdp: Option<Bytes>,
    ) -> Result<RequestBuilder, DialogError> {
        let b = self.request(Method::Update, local)?;
        Ok(with_sdp(b, sdp))
    }

    /// REFER (RFC 3515). `refer_to` is the whole Refer-To value (see
    /// [`refer_to_with_replaces`] for an attended transfer); `referred_by` a
    /// Referred-By value (RFC 3892).
    pub fn refer(
        &mut self,
        local: &Local<'_>,
        refer_to: &str,
        referred_by: Option<&str>,
    ) -> Result<RequestBuilder, DialogError> {
        ReferTo::parse(refer_to).map_err(|e| ParseError::BadHeader(HeaderName::ReferTo, e))?;
        if let Some(by) = referred_by {
            NameAddr::parse(by).map_err(|e| ParseError::BadHeader(HeaderName::ReferredBy, e))?;
        }
        let mut b = self
            .request(Method::Refer, local)?
            .header(HeaderName::ReferTo, refer_to);
        if let Some(by) = referred_by {
            b = b.header(HeaderName::ReferredBy, by);
        }
        Ok(b)
    }

    /// A NOTIFY of the implicit subscription a REFER created (RFC 3515
    /// §2.4.4): `Event: refer` (with `;id=` the REFER's CSeq when it was not
    /// the dialog's first), the Subscription-State (e.g. `active;expires=60`,
    /// `terminated;reason=noresource`) and a `message/sipfrag` body holding
    /// the status line of the referred request's progress (e.g. `SIP/2.0 200
    /// OK`).
    pub fn refer_notify(
        &mut self,
        local: &Local<'_>,
        refer_id: Option<u32>,
        subscription_state: &str,
        status_line: &str,
    ) -> Result<RequestBuilder, DialogError> {
        if status_line.contains(['\r', '\n']) {
            return Err(ParseError::StartLine("line break in a sipfrag status line").into());
        }
        let event = match refer_id {
            Some(id) => format!("refer;id={id}"),
            None => "refer".to_owned(),
        };
        let b = self
            .request(Method::Notify, local)?
            .header(HeaderName::Event, event)
            .header(HeaderName::SubscriptionState, subscription_state)
            .body("message/sipfrag;version=2.0", format!("{status_line}\r\n"));
        Ok(b)
    }

    /// INFO with a body, e.g. `application/dtmf-relay` or
    /// `application/media_control+xml`.
    pub fn info(
        &mut self,
        local: &Local<'_>,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Result<RequestBuilder, DialogError> {
        Ok(self.request(Method::Info, local)?.body(content_type, body))
    }

    /// Request-URI, Via, Max-Forwards, Route, From, To, Call-ID, CSeq.
    fn start(&self, cseq: &CSeq, via: &ViaValue<'_>) -> RequestBuilder {
        // Strict routing (an RFC 2543 proxy first, no `;lr`): the first hop
        // becomes the Request-URI and the remote target the last Route.
        let (request_uri, last) = match self.route_set.first() {
            Some(first) if !is_loose_route(first) => {
                (first.as_str(), Some(self.remote_target.as_str()))
            }
            _ => (self.remote_target.as_str(), None),
        };
        let mut b = RequestBuilder::new(cseq.method.clone(), without_headers(request_uri))
            .header(HeaderName::Via, via)
            .header(HeaderName::MaxForwards, 70);
        let routes = self.route_set.iter().skip(usize::from(last.is_some()));
        for r in routes.map(String::as_str).chain(last) {
            b = b.header(HeaderName::Route, format_args!("<{r}>"));
        }
        b.header(HeaderName::From, &self.local_uri)
            .header(HeaderName::To, &self.remote_uri)
            .header(HeaderName::CallId, &self.id.call_id)
            .header(HeaderName::CSeq, cseq)
    }
}

/// A Refer-To value naming `target` (a URI) with the Replaces of the dialog
/// to replace embedded as an escaped URI header (RFC 3891 §7), e.g.
/// `<sip:carol@example.com?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>`.
pub fn refer_to_with_replaces(target: &str, replaces: &Replaces) -> String {
    let sep = match Uri::parse(target) {
        Ok(Uri::Sip(u)) if u.headers.is_some() => '&',
        _ => '?',
    };
    format!(
        "<{target}{sep}Replaces={}>",
        escape_hvalue(&replaces.to_string())
    )
}

/// %-escapes everything a URI header value may not hold literally
/// (RFC 3261 §25.1 `hvalue`: unreserved and hnv-unreserved characters).
fn escape_hvalue(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        let literal = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'!'
                    | b'~'
                    | b'*'
                    | b'\''
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'/'
                    | b'?'
                    | b':'
                    | b'+'
                    | b'$'
            );
        if literal {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_sdp(b: RequestBuilder, sdp: Option<Bytes>) -> RequestBuilder {
    match sdp {
        Some(sdp) => b.body("application/sdp", sdp),
        None => b,
    }
}

/// Requests that replace the remote target (see the module decisions).
fn is_target_refresh(method: &Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify
    )
}

fn status_of(msg: &Message) -> Result<u16, DialogError> {
    msg.status()
        .ok_or(DialogError::Message(ParseError::StartLine(
            "expected a response",
        )))
}

fn request_method(msg: &Message) -> Result<&Method, DialogError> {
    msg.method()
        .ok_or(DialogError::Message(ParseError::StartLine(
            "expected a request",
        )))
}

fn request_uri_of(msg: &Message) -> Result<&str, DialogError> {
    msg.request_uri_str()
        .ok_or(DialogError::Message(ParseError::StartLine(
            "expected a request",
        )))
}

fn is_loose_route(uri: &str) -> bool {
    Uri::parse(uri).is_ok_and(|u| u.sip().is_some_and(|s| s.lr()))
}

fn is_sips(uri: &str) -> bool {
    Uri::parse(uri).is_ok_and(|u| u.sip().is_some_and(|s| s.secure))
}

/// A From or To header value as received, and its tag.
fn party(msg: &Message, name: HeaderName) -> Result<(String, Option<String>), DialogError> {
    let value = msg.single(name)?.ok_or(ParseError::MissingHeader(name))?;
    let addr = NameAddr::parse(value).map_err(|e| ParseError::BadHeader(name, e))?;
    Ok((value.to_owned(), addr.tag().map(str::to_owned)))
}

fn tag_of(msg: &Message, name: HeaderName) -> Result<Option<String>, DialogError> {
    Ok(party(msg, name)?.1)
}

/// The URI of the first Contact, if any.
fn contact_uri(msg: &Message) -> Result<Option<String>, DialogError> {
    match msg.contacts().next() {
        None => Ok(None),
        Some(c) => match c? {
            Contact::Addr(a) => Ok(Some(a.uri.as_str().to_owned())),
            Contact::Wildcard => Err(ParseError::BadHeader(
                HeaderName::Contact,
                ValueError::Unexpected("'*' is not a remote target"),
            )
            .into()),
        },
    }
}

/// The Record-Route URIs in message order.
fn record_route(msg: &Message) -> Result<Vec<String>, DialogError> {
    msg.name_addrs(HeaderName::RecordRoute)
        .map(|r| Ok(r?.uri.as_str().to_owned()))
        .collect()
}

/// A URI without its `?headers` part, for use as a Request-URI (RFC 3261
/// §19.1.5, §12.2.1.1).
fn without_headers(uri: &str) -> &str {
    match Uri::parse(uri) {
        Ok(Uri::Sip(u)) => match u.headers {
            Some(h) => &uri[..uri.len() - h.len() - 1],
            None => uri,
        },
        _ => uri,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvalue_escaping() {
        assert_eq!(
            escape_hvalue("a84b@pc33.atlanta.com;to-tag=1;from-tag=2"),
            "a84b%40pc33.atlanta.com%3Bto-tag%3D1%3Bfrom-tag%3D2"
        );
        assert_eq!(escape_hvalue("x y&z%"), "x%20y%26z%25");
    }

    #[test]
    fn replaces_joins_existing_uri_headers() {
        let r = Replaces::parse("c@h;to-tag=1;from-tag=2").unwrap();
        assert_eq!(
            refer_to_with_replaces("sip:a?b@host?X=1", &r),
            "<sip:a?b@host?X=1&Replaces=c%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"
        );
        assert_eq!(
            refer_to_with_replaces("sip:a?b@host", &r),
            "<sip:a?b@host?Replaces=c%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>"
        );
    }

    #[test]
    fn headers_are_stripped_from_request_uris() {
        assert_eq!(without_headers("sip:a@b;lr?Subject=x"), "sip:a@b;lr");
        assert_eq!(without_headers("sip:a?b@host"), "sip:a?b@host");
        assert_eq!(without_headers("tel:+123"), "tel:+123");
    }

    #[test]
    fn replaces_round_trips_through_dialog_ids() {
        let id = DialogId {
            call_id: "c@h".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into(),
        };
        let r = id.replaces(false);
        assert_eq!((r.to_tag.as_str(), r.from_tag.as_str()), ("theirs", "ours"));
        // At the peer, the same Replaces names its own view of the dialog.
        let peer = DialogId::from_replaces(&r);
        assert_eq!(peer.local_tag, "theirs");
        assert_eq!(peer.remote_tag, "ours");
    }

    #[test]
    fn refusals_map_to_status_codes() {
        assert_eq!(DialogError::WrongDialog.status_code(), 481);
        assert_eq!(DialogError::Terminated.status_code(), 481);
        assert_eq!(
            DialogError::CSeqOutOfOrder {
                received: 1,
                remote_seq: 2
            }
            .status_code(),
            500
        );
        assert_eq!(
            DialogError::from(ParseError::MissingHeader(HeaderName::Contact)).status_code(),
            400
        );
    }
}
