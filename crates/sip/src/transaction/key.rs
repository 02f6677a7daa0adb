//! Which transaction a message belongs to (RFC 3261 §17.1.3 and §17.2.3).
//!
//! A [`TransactionKey`] is computed from a message alone, owns its parts and
//! hashes, so the transaction table is one `HashMap` lookup per message.

use thiserror::Error;

use crate::error::ParseError;
use crate::header::HeaderName;
use crate::message::{Message, Method};

/// Why a message cannot be matched to a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("expected a request")]
    NotARequest,
    #[error("expected a response")]
    NotAResponse,
    #[error("expected a CANCEL")]
    NotACancel,
    #[error("an ACK is not sent in a client transaction of its own")]
    AckIsNotATransaction,
    #[error("the top Via has no branch parameter")]
    NoBranch,
    #[error("the top Via branch {0:?} lacks the RFC 3261 magic cookie")]
    NotRfc3261Branch(String),
    #[error(transparent)]
    Header(#[from] ParseError),
}

/// Which side of a transaction the key names: a request Tally sent (and the
/// responses to it) or a request Tally received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Client,
    Server,
}

/// The identity of a transaction, as matching sees it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    side: Side,
    id: KeyId,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    /// RFC 3261: the branch is unique per transaction. `sent_by` is kept for
    /// server transactions only (§17.2.3: two clients may pick one branch).
    Branch {
        branch: Box<str>,
        sent_by: Option<Box<str>>,
        method: Method,
    },
    /// RFC 2543 peers (no magic cookie): the request's identity is its
    /// Request-URI, tags, Call-ID, CSeq and top Via (§17.2.3).
    Rfc2543(Box<Rfc2543>),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Rfc2543 {
    request_uri: Box<str>,
    to_tag: Option<Box<str>>,
    from_tag: Option<Box<str>>,
    call_id: Box<str>,
    cseq: u32,
    method: Method,
    top_via: Box<str>,
}

/// ACK belongs to the INVITE transaction (§17.2.3, §17.1.1.3).
fn transaction_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        m => m.clone(),
    }
}

fn top_via_value(msg: &Message) -> Result<&str, ParseError> {
    msg.list(HeaderName::Via)
        .next()
        .unwrap_or(Err(crate::error::ValueError::Empty))
        .map_err(|e| ParseError::BadHeader(HeaderName::Via, e))
}

impl TransactionKey {
    /// The key of a client transaction for a request Tally is about to send.
    /// Tally generates its branches, so they must carry the magic cookie.
    pub fn client(request: &Message) -> Result<TransactionKey, KeyError> {
        let method = request.method().ok_or(KeyError::NotARequest)?;
        if *method == Method::Ack {
            return Err(KeyError::AckIsNotATransaction);
        }
        let via = request.via()?;
        if !via.has_rfc3261_branch() {
            return Err(match via.branch() {
                Some(b) => KeyError::NotRfc3261Branch(b.to_owned()),
                None => KeyError::NoBranch,
            });
        }
        let branch = via.branch().ok_or(KeyError::NoBranch)?;
        Ok(TransactionKey::branch(
            Side::Client,
            branch,
            None,
            method.clone(),
        ))
    }

    /// The client transaction a received response belongs to (§17.1.3): the
    /// branch of the top Via and the method of CSeq. (The CSeq method tells a
    /// CANCEL's responses from its INVITE's, which share the branch.)
    pub fn response(response: &Message) -> Result<TransactionKey, KeyError> {
        if response.is_request() {
            return Err(KeyError::NotAResponse);
        }
        let via = response.via()?;
        let branch = via.branch().ok_or(KeyError::NoBranch)?;
        let method = response.cseq()?.method;
        Ok(TransactionKey::branch(Side::Client, branch, None, method))
    }

    /// The server transaction a received request belongs to (§17.2.3). With
    /// an RFC 3261 branch: branch, sent-by and method, an ACK naming the
    /// INVITE transaction. Without one, the RFC 2543 rule: Request-URI, To
    /// tag, From tag, Call-ID, CSeq number, method (ACK again naming INVITE)
    /// and top Via. An RFC 2543 ACK carries the To tag of the response, not
    /// of the INVITE; [`crate::transaction::Transactions`] handles that.
    pub fn server(request: &Message) -> Result<TransactionKey, KeyError> {
        let method = transaction_method(request.method().ok_or(KeyError::NotARequest)?);
        let via = request.via()?;
        if via.has_rfc3261_branch() {
            let branch = via.branch().ok_or(KeyError::NoBranch)?;
            // Host names compare case-insensitively; the port as written
            // (an absent port is not 5060 for this purpose).
            let sent_by = via.sent_by().to_ascii_lowercase();
            return Ok(TransactionKey::branch(
                Side::Server,
                branch,
                Some(sent_by.into()),
                method,
            ));
        }
        let tag = |t: Option<&str>| t.map(Box::from);
        let to_tag = tag(request.to()?.tag());
        let from_tag = tag(request.from()?.tag());
        // Compare the top Via loosely: case and white space aside, it is the
        // same text in a retransmission and in the ACK built from the INVITE.
        let top_via: String = top_via_value(request)?
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Ok(TransactionKey {
            side: Side::Server,
            id: KeyId::Rfc2543(Box::new(Rfc2543 {
                request_uri: request
                    .request_uri_str()
                    .ok_or(KeyError::NotARequest)?
                    .into(),
                to_tag,
                from_tag,
                call_id: request.call_id()?.into(),
                cseq: request.cseq()?.seq,
                method,
                top_via: top_via.into(),
            })),
        })
    }

    /// The INVITE server transaction a received CANCEL targets (§9.2): the
    /// CANCEL's own key with the method INVITE.
    pub fn cancel_target(cancel: &Message) -> Result<TransactionKey, KeyError> {
        if cancel.method() != Some(&Method::Cancel) {
            return Err(KeyError::NotACancel);
        }
        let mut key = TransactionKey::server(cancel)?;
        match &mut key.id {
            KeyId::Branch { method, .. } => *method = Method::Invite,
            KeyId::Rfc2543(k) => k.method = Method::Invite,
        }
        Ok(key)
    }

    pub fn side(&self) -> Side {
        self.side
    }

    /// Whether the key follows the RFC 2543 rule (the peer sent no RFC 3261
    /// branch).
    pub fn is_rfc2543(&self) -> bool {
        matches!(self.id, KeyId::Rfc2543(_))
    }

    /// For an RFC 2543 ACK: the key of the INVITE it acknowledges when that
    /// INVITE carried no To tag, together with the To tag the ACK carries
    /// (which must equal the one of the response the transaction sent).
    pub(crate) fn rfc2543_ack_fallback(&self) -> Option<(TransactionKey, &str)> {
        let KeyId::Rfc2543(k) = &self.id else {
            return None;
        };
        let to_tag = k.to_tag.as_deref()?;
        let mut without = (**k).clone();
        without.to_tag = None;
        Some((
            TransactionKey {
                side: self.side,
                id: KeyId::Rfc2543(Box::new(without)),
            },
            to_tag,
        ))
    }

    fn branch(
        side: Side,
        branch: &str,
        sent_by: Option<Box<str>>,
        method: Method,
    ) -> TransactionKey {
        TransactionKey {
            side,
            id: KeyId::Branch {
                branch: branch.into(),
                sent_by,
                method,
            },
        }
    }
}
