//! What the engine lends a session while it handles one input: the two
//! readings of "now", the transaction table, the id sources and the PBX's
//! own addresses ([`Services`]). The engine owns them; a session borrows
//! them for one call and hands back effects (`call::Effect`) for
//! everything else, so `call` never reaches into the engine (DESIGN.md,
//! "How `pbx` runs calls").
//!
//! The transaction table is lent rather than driven through effects
//! because sending a request must return its transaction id at once (the
//! session keys its legs by it); what the table transmits still reaches the
//! runtime only through the engine's drain.

use std::time::Instant;

use sip::builder::{ResponseBuilder, ViaValue};
use sip::dialog::{DialogError, Local};
use sip::transaction::{
    TimerConfig, TransactionError, TransactionId, TransactionLimits, Transactions,
};
use sip::transport::Transport;
use sip::{Message, Method, ParseError};

use crate::ids::{IdGenerator, IdSource};

/// The methods the PBX handles, for `Allow` (RFC 3261 §20.5).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY";

/// The two readings of "now" every entry point gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    pub now: Instant,
    pub unix_ms: u64,
}

impl Clock {
    pub(crate) fn unix_secs(&self) -> u64 {
        self.unix_ms / 1000
    }
}

/// What the PBX writes or sends that turned out impossible. Each is a bug
/// (a message the PBX built did not parse, a transaction refused it), so it
/// is reported as [`crate::EngineEvent::Internal`], never panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InternalError {
    /// A message the PBX wrote does not parse back.
    #[error("{what} does not build: {error}")]
    Unbuildable { what: Written, error: ParseError },
    /// The dialog refused to write an in-dialog request.
    #[error("{what} cannot be written in its dialog: {error}")]
    Dialog { what: Written, error: DialogError },
    /// The transaction layer refused a request or a response.
    #[error("the transaction layer refused {what}: {error}")]
    Refused {
        what: Written,
        error: TransactionError,
    },
    /// A target's 2xx the PBX cannot build a dialog from (no Contact).
    #[error("unusable 2xx from a target: {0}")]
    Unusable2xx(DialogError),
    /// The caller leg's dialog could not be created from a response sent.
    #[error("caller dialog: {0}")]
    CallerDialog(DialogError),
    /// The registrar could not answer a REGISTER.
    #[error("REGISTER: {0}")]
    Register(crate::registrar::RegisterError),
}

/// Which message an [`InternalError`] is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The INVITE to a target.
    Invite,
    Ack,
    Bye,
    Cancel,
    /// An in-dialog request relayed from the other leg.
    Relayed(Method),
    Response,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Written::Invite => f.write_str("INVITE"),
            Written::Ack => f.write_str("ACK"),
            Written::Bye => f.write_str("BYE"),
            Written::Cancel => f.write_str("CANCEL"),
            Written::Relayed(m) => write!(f, "relayed {m}"),
            Written::Response => f.write_str("response"),
        }
    }
}

/// The engine's means that sessions borrow (see the module documentation).
pub(crate) struct Services {
    pub txns: Transactions,
    pub ids: IdSource,
    /// Session and target ids.
    pub snowflake: Box<dyn IdGenerator>,
    pub timers: TimerConfig,
    /// `host:port` for Via and Contact, per transport.
    advertised: Vec<(Transport, String)>,
    /// `transfer.on_failure` (`call/transfer.rs`).
    pub transfer_on_failure: crate::call::TransferOnFailure,
    /// Media anchoring, when the runtime has a relay (`crate::media`).
    pub media: Option<crate::media::MediaPolicy>,
    pub relay_ports: Option<Box<dyn crate::media::RelayPorts>>,
    /// Why the runtime has no relay (`Engine::set_media_off`): the detail
    /// of a wanted recording's `media_off` error.
    pub media_off: Option<String>,
}

impl Services {
    pub(crate) fn new(
        timers: TimerConfig,
        limits: TransactionLimits,
        ids: IdSource,
        snowflake: Box<dyn IdGenerator>,
        advertised: Vec<(Transport, String)>,
    ) -> Self {
        Services {
            txns: Transactions::with_limits(timers, limits),
            ids,
            snowflake,
            timers,
            advertised,
            transfer_on_failure: Default::default(),
            media: None,
            relay_ports: None,
            media_off: None,
        }
    }

    /// `host:port` for Via and Contact on `transport`.
    pub(crate) fn sent_by(&self, transport: Transport) -> &str {
        self.advertised
            .iter()
            .find(|(t, _)| *t == transport)
            .or(self.advertised.first())
            .map_or("tally.invalid", |(_, a)| a.as_str())
    }

    /// The PBX's Contact on `transport`.
    pub(crate) fn contact(&self, transport: Transport) -> String {
        let sent_by = self.sent_by(transport);
        match transport {
            Transport::Udp => format!("<sip:tally@{sent_by}>"),
            t => format!(
                "<sip:tally@{sent_by};transport={}>",
                t.as_str().to_ascii_lowercase()
            ),
        }
    }

    /// Via (with a fresh branch) and Contact for a request sent on `transport`.
    pub(crate) fn local_parts(&mut self, transport: Transport) -> LocalParts {
        LocalParts {
            transport,
            sent_by: self.sent_by(transport).to_owned(),
            branch: self.ids.branch(),
            contact: self.contact(transport),
        }
    }

    /// Answers server transaction `id`, returning what was sent.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: ResponseBuilder,
    ) -> Result<Message, InternalError> {
        let message = response
            .build()
            .map_err(|error| InternalError::Unbuildable {
                what: Written::Response,
                error,
            })?;
        self.txns
            .respond(now, id, message.clone())
            .map_err(|error| InternalError::Refused {
                what: Written::Response,
                error,
            })?;
        Ok(message)
    }
}

/// Via and Contact for one request the PBX sends.
pub(crate) struct LocalParts {
    transport: Transport,
    pub sent_by: String,
    pub branch: String,
    pub contact: String,
}

impl LocalParts {
    pub(crate) fn local(&self) -> Local<'_> {
        Local {
            via: self.via(),
            contact: &self.contact,
        }
    }

    pub(crate) fn via(&self) -> ViaValue<'_> {
        ViaValue {
            transport: self.transport.as_str(),
            sent_by: &self.sent_by,
            branch: &self.branch,
        }
    }
}
