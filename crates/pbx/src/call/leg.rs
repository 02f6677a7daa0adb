//! What the caller leg and the target legs have in common: the peer the
//! leg's messages come from, its dialog, and the ACK bookkeeping of the
//! 2xx responses crossing it; plus the small message helpers every concern
//! uses (copying a body from leg to leg, BYE, a repeated ACK).

use bytes::Bytes;
use sip::Message;
use sip::builder::{ResponseBuilder, default_reason};
use sip::dialog::Dialog;
use sip::transaction::TransactionId;
use sip::transport::Peer;

use super::effect::Ctx;
use super::unacked::Unacked;
use crate::context::{InternalError, Written};

/// One leg of the call, whichever side it is on.
#[derive(Debug)]
pub(super) struct Leg {
    pub peer: Peer,
    pub dialog: Option<Dialog>,
    /// The 2xx the PBX sent on this leg, until the leg ACKs it. This and the
    /// two messages below are boxed: they are empty most of a call's life,
    /// and inline they made every leg ~960 bytes (issue 18: memory per live
    /// call).
    pub unacked: Option<Box<Unacked>>,
    /// A 2xx this leg sent to an INVITE the PBX relayed to it, not ACKed
    /// yet: the ACK goes when the other leg's ACK arrives.
    pub owed_ack: Option<Box<Message>>,
    /// The last ACK sent on this leg, sent again if its 2xx comes again.
    pub last_ack: Option<Box<SentAck>>,
}

impl Leg {
    pub(super) fn new(peer: Peer) -> Self {
        Leg {
            peer,
            dialog: None,
            unacked: None,
            owed_ack: None,
            last_ack: None,
        }
    }

    /// Sends this leg's last ACK again if it acknowledged `ok` (same To tag
    /// and CSeq): the peer missed it.
    pub(super) fn resend_ack(&self, cx: &mut Ctx<'_>, ok: &Message) {
        if let Some(ack) = self.last_ack.as_deref().and_then(|a| a.again_for(ok)) {
            cx.transmit(self.peer, ack);
        }
    }
}

/// An ACK the PBX sent for a 2xx, kept (for the rest of the call, and by
/// the engine until the INVITE's transaction ends) only to be sent again
/// if that 2xx comes again because the ACK was lost. So it keeps the bytes
/// and what matches it to the 2xx (To tag and CSeq), not the parsed
/// message: it is parsed again only in that rare case (issue 18: memory
/// per live call).
#[derive(Clone, Debug)]
pub(crate) struct SentAck {
    bytes: Bytes,
    to_tag: Option<Box<str>>,
    cseq: Option<u32>,
}

impl SentAck {
    pub(crate) fn new(ack: &Message) -> Self {
        SentAck {
            bytes: ack.as_bytes().clone(),
            to_tag: to_tag(ack).map(Box::from),
            cseq: cseq(ack),
        }
    }

    /// The ACK again, if it acknowledges the 2xx `ok` (same To tag and
    /// CSeq).
    pub(crate) fn again_for(&self, ok: &Message) -> Option<Message> {
        if self.to_tag.as_deref() != to_tag(ok) || self.cseq != cseq(ok) {
            return None;
        }
        // The PBX built it, so it parses; `None` is the only way to say
        // otherwise without a panic.
        Message::parse(self.bytes.clone()).ok()
    }
}

fn to_tag(m: &Message) -> Option<&str> {
    m.to().ok().and_then(|t| t.tag())
}

fn cseq(m: &Message) -> Option<u32> {
    m.cseq().ok().map(|c| c.seq)
}

/// BYE in `dialog`, in a client transaction of its own.
pub(super) fn send_bye(cx: &mut Ctx<'_>, peer: Peer, dialog: &mut Dialog) -> Option<TransactionId> {
    let local = cx.sv.local_parts(peer.transport);
    let bye = dialog
        .bye(&local.local())
        .map_err(|error| InternalError::Dialog {
            what: Written::Bye,
            error,
        })
        .and_then(|b| {
            b.build().map_err(|error| InternalError::Unbuildable {
                what: Written::Bye,
                error,
            })
        })
        .and_then(|m| {
            cx.sv
                .txns
                .send_request(cx.clk.now, peer, m)
                .map_err(|error| InternalError::Refused {
                    what: Written::Bye,
                    error,
                })
        });
    match bye {
        Ok(id) => Some(id),
        Err(e) => {
            cx.internal(e);
            None
        }
    }
}

/// The Content-Type and body of a message that has one: what is copied
/// from leg to leg (SDP passes through).
pub(super) fn body_of(m: &Message) -> Option<(String, Bytes)> {
    if m.body().is_empty() {
        return None;
    }
    let ct = m.content_type().unwrap_or("application/sdp").to_owned();
    Some((ct, m.body_bytes()))
}

/// `request`'s response carrying `r`'s code, reason phrase and body.
pub(super) fn relayed_response(request: &Message, r: &Message) -> ResponseBuilder {
    let code = r.status().unwrap_or(500);
    let reason = r.reason_phrase().unwrap_or(default_reason(code));
    let b = ResponseBuilder::for_request(request, code, reason);
    match body_of(r) {
        Some((ct, body)) => b.body(&ct, body),
        None => b,
    }
}
