//! REFER, as the engine routes it (DESIGN.md, "How `pbx` runs calls":
//! cross-session features are engine decisions). A REFER outside any
//! dialog is refused (`403`: the PBX takes transfers of calls only); one in
//! a dialog the PBX does not know gets `481`; a blind transfer (no
//! `Replaces` in its Refer-To) is the session's own business
//! (`call/transfer.rs`).

use sip::Message;
use sip::builder::ResponseBuilder;
use sip::transaction::TransactionId;
use sip::transport::Peer;

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
        self.run(sid, clk, |s, cx| s.on_refer(cx, leg, peer, id, request));
    }
}
