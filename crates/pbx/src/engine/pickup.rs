//! Call pickup and INVITE with Replaces, as the engine decides them
//! (DESIGN.md, "Call pickup"; cross-session features are engine
//! decisions). The phone's INVITE is authenticated like any call; instead
//! of starting a session it joins another one (`call/pickup.rs`):
//!
//! - **Pickup** (the tenant's feature codes: `*8` group, `**<ext>`
//!   directed). The picker must be in a pickup group (`403`); a directed
//!   pickup's extension must exist (`404`) and share the picker's group
//!   (`403`); a group pickup takes a call ringing any other user of the
//!   group. Of the calls that qualify, the oldest (lowest session id) is
//!   taken; none: `404`. A call the picker itself placed, or one ringing
//!   the picker, is never picked. Inputs are handled one at a time, and a
//!   picked call stops ringing in the same step, so of two pickers at
//!   once exactly one wins: the other finds nothing (`404`).
//! - **Replaces** (RFC 3891): the dialog named (its to-tag is the PBX's)
//!   must be an answered call of the caller's tenant, else `481`. The
//!   caller takes the named party's place. When the caller was the other
//!   party of an answered call with the named party (the consultation of
//!   an attended transfer, RFC 5589), the result is a REFER with
//!   Replaces' (`attended.rs`): the named party ends
//!   `attended_transfer_complete`, and the consultation ends with the
//!   caller's leg `replaced` and `attended_transfer_complete`. Otherwise
//!   the named party ends `replaced`.
//!
//! - **Replaces naming an early dialog** (a BLF pickup, as Yealink,
//!   Polycom and Grandstream phones do it: the dialog of a device the PBX
//!   is ringing, with or without `early-only`). It is a directed pickup of
//!   that device's extension, with `**<ext>`'s authorisation (the
//!   picker's pickup group, the extension in it, never a call the picker
//!   placed: `403`) and its result: the ringing targets of that extension
//!   end `replaced`, the picker is a new answered target. Phones fill the
//!   tags differently (from the device's view or the PBX's), so the dialog
//!   is found by its Call-ID (the PBX's own, unique) with either tag the
//!   PBX's. `early-only` naming an answered dialog: `486` (RFC 3891 §3).
//!
//! Refusals are answered here and change nothing; no CDR is written for
//! the joining INVITE itself (it is a target of the call it joins).

use cdr::{EndReason, SessionId};
use sip::builder::ResponseBuilder;
use sip::dialog::DialogId;
use sip::headers::Replaces;
use sip::transaction::TransactionId;
use sip::transport::Peer;
use sip::{HeaderName, Message};

use super::Engine;
use super::auth::Caller;
use crate::call::Newcomer;
use crate::context::Clock;
use crate::directory::Feature;

impl Engine {
    /// An authenticated INVITE that dials a feature code or carries
    /// Replaces is handled here (`None`); any other comes back.
    pub(super) fn feature_invite(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        caller: Caller,
        dialled: &str,
    ) -> Option<(Message, Caller)> {
        if request.header(HeaderName::Replaces).is_some() {
            self.on_replaces(clk, peer, id, request, caller);
            return None;
        }
        let feature = self
            .directory
            .feature_codes(caller.tenant.id)
            .feature(dialled);
        match feature {
            Some(Feature::AgentLogin(on, queue)) => {
                let dialled = dialled.to_owned();
                self.agent_code(clk, peer, id, request, caller, dialled, (on, queue));
                None
            }
            Some(f) => {
                self.on_pickup(clk, peer, id, request, caller, f);
                None
            }
            None => Some((request, caller)),
        }
    }

    fn refuse_invite(
        &mut self,
        clk: Clock,
        id: TransactionId,
        request: &Message,
        code: u16,
        why: &str,
    ) {
        let tag = self.sv.ids.tag();
        let b = ResponseBuilder::for_request(request, code, why).to_tag(tag);
        self.respond(clk, id, b);
    }

    fn on_pickup(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        caller: Caller,
        feature: Feature,
    ) {
        let tenant = caller.tenant.id;
        let picker = caller.party.user.clone();
        let group = match self.pickup_group(tenant, &picker) {
            Ok(g) => g,
            Err((code, why)) => return self.refuse_invite(clk, id, &request, code, why),
        };
        let wanted: Option<String> = match &feature {
            Feature::DirectedPickup(ext) => match self.may_pick_up(tenant, &picker, ext) {
                Err((code, why)) => return self.refuse_invite(clk, id, &request, code, why),
                Ok(()) => Some(ext.clone()),
            },
            // (Agent codes never reach pickup: `feature_invite`.)
            Feature::GroupPickup | Feature::AgentLogin(..) => None,
        };
        let in_group = |ext: &str| {
            ext != picker
                && match &wanted {
                    Some(w) => w == ext,
                    None => self
                        .directory
                        .user(tenant, ext)
                        .is_some_and(|u| u.pickup_group == group),
                }
        };
        let mut found: Option<(SessionId, String)> = None;
        for (sid, s) in &self.sessions {
            if s.tenant_id() != tenant || s.is_caller(&picker) {
                continue;
            }
            if found.as_ref().is_some_and(|(f, _)| f < sid) {
                continue;
            }
            if let Some(ext) = s.ringing_extensions().into_iter().find(|e| in_group(e)) {
                let ext = ext.to_owned();
                found = Some((*sid, ext));
            }
        }
        let Some((sid, ext)) = found else {
            return self.refuse_invite(clk, id, &request, 404, "No Call To Pick Up");
        };
        let offered = self.sessions.get(&sid).is_some_and(|s| s.caller_offered());
        if !offered && request.body().is_empty() {
            return self.refuse_invite(clk, id, &request, 488, "Not Acceptable Here (no offer)");
        }
        let who = Newcomer {
            peer,
            invite: request,
            server: id,
            tag: self.sv.ids.tag(),
            party: caller.party,
        };
        self.run(sid, clk, |s, cx| s.take_ringing(cx, &ext, who));
    }

    /// `picker`'s pickup group: `403` when it is in none.
    fn pickup_group(
        &self,
        tenant: cdr::TenantId,
        picker: &str,
    ) -> Result<String, (u16, &'static str)> {
        let group = self
            .directory
            .user(tenant, picker)
            .map(|u| u.pickup_group.clone())
            .unwrap_or_default();
        match group.is_empty() {
            true => Err((403, "Not In A Pickup Group")),
            false => Ok(group),
        }
    }

    /// Whether `picker` may pick up a call ringing `ext` (a directed
    /// pickup's rules).
    fn may_pick_up(
        &self,
        tenant: cdr::TenantId,
        picker: &str,
        ext: &str,
    ) -> Result<(), (u16, &'static str)> {
        let group = self.pickup_group(tenant, picker)?;
        match self.directory.user(tenant, ext) {
            None => Err((404, "No Such Extension")),
            Some(u) if u.pickup_group != group || ext == picker => {
                Err((403, "Not In Your Pickup Group"))
            }
            Some(_) => Ok(()),
        }
    }

    fn on_replaces(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        caller: Caller,
    ) {
        let replaces = request
            .header(HeaderName::Replaces)
            .and_then(|v| Replaces::parse(v).ok());
        let early_only = replaces.as_ref().is_some_and(|r| r.early_only);
        let named = replaces.as_ref().map(DialogId::from_replaces);
        let owner = named
            .as_ref()
            .and_then(|d| self.dialogs.get(&(d.call_id.clone(), d.local_tag.clone())))
            .copied()
            .filter(|(sid, _)| {
                self.sessions
                    .get(sid)
                    .is_some_and(|s| s.tenant_id() == caller.tenant.id)
            });
        // A ringing device's dialog, named with the PBX's tag as either tag.
        let early = owner.or_else(|| {
            let r = replaces.as_ref()?;
            self.dialogs
                .get(&(r.call_id.clone(), r.from_tag.clone()))
                .copied()
                .filter(|(sid, _)| {
                    self.sessions
                        .get(sid)
                        .is_some_and(|s| s.tenant_id() == caller.tenant.id)
                })
        });
        if let Some((sid, leg)) = early
            && let Some(ext) = self.sessions.get(&sid).and_then(|s| s.early_target(leg))
        {
            return self.on_early_replaces(clk, peer, id, request, caller, (sid, ext));
        }
        let sides = owner.and_then(|(sid, leg)| {
            let sides = self.sessions.get(&sid)?.answered_sides()?;
            sides
                .iter()
                .any(|(l, _)| *l == leg)
                .then_some((sid, leg, sides))
        });
        let Some((sid, leg, sides)) = sides else {
            return self.refuse_invite(clk, id, &request, 481, "Call/Transaction Does Not Exist");
        };
        if early_only {
            // RFC 3891 §3: early-only naming a confirmed dialog.
            return self.refuse_invite(clk, id, &request, 486, "Busy Here");
        }
        let newcomer = caller.party.user.clone();
        let replaced = sides
            .iter()
            .find(|(l, _)| *l == leg)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        // The consultation: another answered call between the newcomer
        // and the party it replaces (the oldest, if several).
        let consultation = self
            .sessions
            .iter()
            .filter(|(other, s)| **other != sid && s.tenant_id() == caller.tenant.id)
            .filter_map(|(other, s)| {
                let [(l1, n1), (l2, n2)] = s.answered_sides()?;
                let mine = match (
                    n1 == newcomer && n2 == replaced,
                    n2 == newcomer && n1 == replaced,
                ) {
                    (true, _) => l1,
                    (_, true) => l2,
                    _ => return None,
                };
                Some((*other, mine))
            })
            .min_by_key(|(other, _)| *other);
        let reason = match consultation {
            Some(_) => EndReason::AttendedTransferComplete,
            None => EndReason::Replaced,
        };
        let who = Newcomer {
            peer,
            invite: request.clone(),
            server: id,
            tag: self.sv.ids.tag(),
            party: caller.party,
        };
        let mut outcome = Ok(());
        self.run(sid, clk, |s, cx| {
            outcome = s.take_answered(cx, leg, reason, who)
        });
        if let Err((code, why)) = outcome {
            return self.refuse_invite(clk, id, &request, code, why);
        }
        if let Some((s2, mine)) = consultation {
            self.run(s2, clk, |s, cx| s.consultation_done(cx, mine));
        }
    }
}

impl Engine {
    /// Replaces naming target device `ext` of session `sid`, ringing: a
    /// directed pickup of `ext` (see the module documentation).
    fn on_early_replaces(
        &mut self,
        clk: Clock,
        peer: Peer,
        id: TransactionId,
        request: Message,
        caller: Caller,
        (sid, ext): (SessionId, String),
    ) {
        let tenant = caller.tenant.id;
        let picker = caller.party.user.clone();
        if let Err((code, why)) = self.may_pick_up(tenant, &picker, &ext) {
            return self.refuse_invite(clk, id, &request, code, why);
        }
        let Some(s) = self.sessions.get(&sid) else {
            return self.refuse_invite(clk, id, &request, 481, "Call/Transaction Does Not Exist");
        };
        if s.is_caller(&picker) {
            return self.refuse_invite(clk, id, &request, 403, "Not Your Call To Pick Up");
        }
        if !s.caller_offered() && request.body().is_empty() {
            return self.refuse_invite(clk, id, &request, 488, "Not Acceptable Here (no offer)");
        }
        let who = Newcomer {
            peer,
            invite: request,
            server: id,
            tag: self.sv.ids.tag(),
            party: caller.party,
        };
        self.run(sid, clk, |s, cx| s.take_ringing(cx, &ext, who));
    }
}
