//! REFER, as the engine routes it (DESIGN.md, "How `pbx` runs calls":
//! cross-session features are engine decisions). A REFER outside any
//! dialog is refused (`403`: the PBX takes transfers of calls only); one in
//! a dialog the PBX does not know gets `481`; a blind transfer (no
//! `Replaces` in its Refer-To) is the session's own business
//! (`call/transfer.rs`); an attended one joins two sessions
//! (`call/attended.rs`): the engine finds the session the Replaces names,
//! lets the REFER's session accept, takes C's leg out of the other one and
//! hands it over, re-pointing C's dialog in its index.

use sip::builder::ResponseBuilder;
use sip::dialog::DialogId;
use sip::headers::ReferTo;
use sip::transaction::TransactionId;
use sip::transport::Peer;
use sip::{HeaderName, Message};

use super::Engine;
use crate::context::Clock;

impl Engine {
    pub(super) fn on_refer(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        in_dialog: bool,
    ) {
        if !in_dialog {
            let tag = self.sv.ids.tag();
            let b = ResponseBuilder::for_request(&request, 403, "REFER Outside A Call").to_tag(tag);
            return self.respond(clk, id, b);
        }
        let Some((sid, leg)) = self.dialog_owner(&request) else {
            return self.reply(clk, id, &request, 481, None);
        };
        let replaces = request
            .header(HeaderName::ReferTo)
            .and_then(|v| ReferTo::parse(v).ok())
            .and_then(|r| r.replaces);
        let Some(replaces) = replaces else {
            return self.run(sid, clk, |s, cx| s.on_refer(cx, leg, peer, id, request));
        };
        // Attended: the dialog the Replaces names (its to-tag is ours).
        let named = DialogId::from_replaces(&replaces);
        let other = self
            .dialogs
            .get(&(named.call_id, named.local_tag))
            .copied()
            .filter(|(s2, _)| *s2 != sid);
        let tenant = self.sessions.get(&sid).map(|s| s.tenant_id());
        let checked = match other {
            Some((s2, l2)) => match self.sessions.get(&s2) {
                Some(s) if Some(s.tenant_id()) == tenant => s.replaceable(l2).map(|c| (s2, l2, c)),
                _ => Err((404, "Replaced Dialog Not Found")),
            },
            None => Err((404, "Replaced Dialog Not Found")),
        };
        let mut accepted = false;
        let verdict = checked.map(|_| ());
        self.run(sid, clk, |s, cx| {
            accepted = s.accept_attended(cx, leg, peer, id, &request, verdict);
        });
        let (true, Ok((s2, l2, c))) = (accepted, checked) else {
            return;
        };
        let mut handoff = None;
        self.run(s2, clk, |s, cx| handoff = s.hand_off(cx, l2, c));
        match handoff {
            Some(h) => self.run(sid, clk, |s, cx| s.adopt(cx, h)),
            None => self.run(sid, clk, |s, cx| s.attended_lost(cx)),
        }
    }
}
