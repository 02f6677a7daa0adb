//! Outbound routing: a dialled number → the first outbound rule that
//! takes it → the trunks to try, in order, and when to try the next.
//!
//! # Decisions
//!
//! - **Rules are tried in their order**, first match wins, the way
//!   PortSIP and Asterisk dial plans read. A rule with a "from these
//!   extensions" list is skipped for other callers.
//! - **Failover** ([`fails_over`]): to the next trunk on 408, any 5xx, a
//!   transport error or no answer at all from the carrier, and before the
//!   INVITE when a trunk is down or at its concurrent-call limit
//!   ([`Availability`]). Never on another 4xx, 6xx: 404, 486 or 603 are
//!   the far end's answer, and another carrier would ring the same busy
//!   person (or bill a second attempt at a wrong number).
//! - **Caller ID** ([`caller_id`]): the rule's, else the user's
//!   `outbound_caller_id`, else the trunk's default, else the extension.
//! - **Who may dial out** ([`may_dial_out`]): the user's
//!   `outbound_allowed` and the tenant's limit of outbound calls at once;
//!   each refusal is a 403 with its own reason phrase.

use cdr::TenantId;

use crate::trunk::{OutboundRule, Trunk, TrunkId, Trunks};

use super::number::rewrite;

/// The chosen rule, the number to send, and the trunks to try in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundPlan<'a> {
    pub rule: &'a OutboundRule,
    /// The dialled number after the rule's strip and prepend (the CDR's
    /// `callee` of an `out` call).
    pub number: String,
    /// The rule's enabled trunks, in the rule's order.
    pub trunks: Vec<&'a Trunk>,
}

/// The first rule of `tenant` that takes `dialled` from `caller` (an
/// extension; `None` for a call that came from a trunk, `in2out`, which
/// only rules without an extension filter take).
pub fn select_rule<'a>(
    trunks: &'a Trunks,
    tenant: TenantId,
    caller: Option<&str>,
    dialled: &str,
) -> Option<OutboundPlan<'a>> {
    let rule = trunks.outbound_rules(tenant).iter().find(|rule| {
        let from_ok = rule.from_extensions.is_empty()
            || caller.is_some_and(|c| rule.from_extensions.iter().any(|e| e.as_str() == c));
        from_ok && rule.pattern.matches(dialled)
    })?;
    Some(OutboundPlan {
        rule,
        number: rewrite(dialled, rule.strip, &rule.prepend),
        trunks: rule
            .trunks
            .iter()
            .filter_map(|id| trunks.trunk(*id))
            .filter(|t| t.enabled && t.tenant_id == tenant)
            .collect(),
    })
}

/// Whether a trunk can take a call now (the runtime's live state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Not registered, or OPTIONS keep-alives unanswered.
    Down,
    /// `max_calls` calls in progress through it.
    AtLimit,
}

impl<'a> OutboundPlan<'a> {
    /// The first trunk at or after `from` (an index into `trunks`) that is
    /// available, with its index; the ones skipped on the way are failed
    /// over without an INVITE.
    pub fn next_trunk(
        &self,
        from: usize,
        availability: impl Fn(TrunkId) -> Availability,
    ) -> Option<(usize, &'a Trunk)> {
        self.trunks
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, t)| availability(t.id) == Availability::Available)
            .map(|(i, t)| (i, *t))
    }
}

/// How an attempt through a trunk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    Answered,
    /// A final non-2xx response from the carrier.
    Rejected(u16),
    /// Sending failed (ICMP unreachable, connection refused or reset).
    TransportError,
    /// Nothing came back (timer B): the carrier is as good as gone.
    NoResponse,
}

/// Whether to try the next trunk after `attempt`.
pub fn fails_over(attempt: Attempt) -> bool {
    match attempt {
        Attempt::Answered => false,
        Attempt::Rejected(code) => code == 408 || (500..600).contains(&code),
        Attempt::TransportError | Attempt::NoResponse => true,
    }
}

/// The caller ID to present on `trunk`.
pub fn caller_id<'a>(
    rule: &'a OutboundRule,
    user_caller_id: &'a str,
    trunk: &'a Trunk,
    extension: &'a str,
) -> &'a str {
    [
        rule.caller_id.as_str(),
        user_caller_id,
        trunk.caller_id.as_str(),
    ]
    .into_iter()
    .find(|id| !id.is_empty())
    .unwrap_or(extension)
}

/// Why an outbound call is refused before any trunk is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutboundRefusal {
    #[error("Outbound Calls Not Allowed")]
    UserNotAllowed,
    #[error("Outbound Call Limit Reached")]
    TenantLimit,
    #[error("No Outbound Route")]
    NoRule,
    #[error("No Trunk Available")]
    NoTrunk,
}

impl OutboundRefusal {
    /// The SIP status; the reason phrase is the `Display`.
    pub fn status(self) -> u16 {
        match self {
            OutboundRefusal::UserNotAllowed | OutboundRefusal::TenantLimit => 403,
            OutboundRefusal::NoRule => 404,
            OutboundRefusal::NoTrunk => 503,
        }
    }
}

/// Whether a user may place one more outbound call: `allowed` is its
/// `outbound_allowed`, `active` the tenant's outbound calls in progress,
/// `limit` the tenant's maximum (`None`: no limit).
pub fn may_dial_out(allowed: bool, active: u32, limit: Option<u32>) -> Result<(), OutboundRefusal> {
    if !allowed {
        return Err(OutboundRefusal::UserNotAllowed);
    }
    if limit.is_some_and(|max| active >= max) {
        return Err(OutboundRefusal::TenantLimit);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cdr::Id;

    use super::*;
    use crate::directory::Extension;
    use crate::routing::DialPattern;
    use crate::routing::inbound::tests::trunk;
    use crate::trunk::TrunkKind;

    fn rule(id: u64, pattern: &str, trunks: &[&Trunk]) -> OutboundRule {
        OutboundRule {
            id: Id::from_u64(id),
            name: format!("rule{id}"),
            pattern: DialPattern::parse(pattern).unwrap(),
            from_extensions: vec![],
            strip: 0,
            prepend: String::new(),
            trunks: trunks.iter().map(|t| t.id).collect(),
            caller_id: String::new(),
        }
    }

    fn table(trunks: &[&Trunk], rules: Vec<OutboundRule>) -> Trunks {
        let mut table = Trunks::new();
        table.replace_tenant(
            trunks[0].tenant_id,
            trunks.iter().map(|t| (*t).clone()).collect(),
            vec![],
            rules,
        );
        table
    }

    #[test]
    fn the_first_matching_rule_wins_and_rewrites() {
        let a = trunk(1, 10, TrunkKind::Register, &[]);
        let b = trunk(2, 10, TrunkKind::Ip, &["192.0.2.1"]);
        let mut international = rule(1, "900.", &[&b]);
        international.strip = 1;
        let mut national = rule(2, "9NXXXXXXXX", &[&a, &b]);
        national.strip = 1;
        national.prepend = "+33".into();
        let table = table(
            &[&a, &b],
            vec![international, national, rule(3, "X.", &[&a])],
        );
        let plan = select_rule(&table, a.tenant_id, Some("101"), "90044123").unwrap();
        assert_eq!(plan.rule.name, "rule1");
        assert_eq!(plan.number, "0044123");
        let plan = select_rule(&table, a.tenant_id, Some("101"), "9234567890").unwrap();
        assert_eq!(plan.rule.name, "rule2");
        assert_eq!(plan.number, "+33234567890");
        assert_eq!(
            plan.trunks.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![a.id, b.id]
        );
        assert_eq!(
            select_rule(&table, a.tenant_id, None, "55")
                .unwrap()
                .rule
                .name,
            "rule3"
        );
        assert!(select_rule(&table, a.tenant_id, None, "*1").is_none());
        let other = TenantId::from(Id::from_u64(99));
        assert!(
            select_rule(&table, other, None, "55").is_none(),
            "rules are per tenant"
        );
    }

    #[test]
    fn an_extension_filter_limits_who_takes_a_rule() {
        let a = trunk(1, 10, TrunkKind::Register, &[]);
        let mut vip = rule(1, "X.", &[&a]);
        vip.from_extensions = vec![Extension::from("100")];
        vip.prepend = "vip".into();
        let table = table(&[&a], vec![vip, rule(2, "X.", &[&a])]);
        let pick = |caller| {
            select_rule(&table, a.tenant_id, caller, "12")
                .unwrap()
                .rule
                .name
                .clone()
        };
        assert_eq!(pick(Some("100")), "rule1");
        assert_eq!(pick(Some("101")), "rule2");
        assert_eq!(pick(None), "rule2", "in2out calls have no extension");
    }

    #[test]
    fn disabled_trunks_are_left_out_and_unavailable_ones_skipped() {
        let a = trunk(1, 10, TrunkKind::Register, &[]);
        let mut b = trunk(2, 10, TrunkKind::Register, &[]);
        let c = trunk(3, 10, TrunkKind::Register, &[]);
        b.enabled = false;
        let table = table(&[&a, &b, &c], vec![rule(1, "X.", &[&a, &b, &c])]);
        let plan = select_rule(&table, a.tenant_id, None, "12").unwrap();
        assert_eq!(plan.trunks.len(), 2);
        let down_a = |id: TrunkId| {
            if id == a.id {
                Availability::Down
            } else {
                Availability::Available
            }
        };
        assert_eq!(
            plan.next_trunk(0, down_a).map(|(i, t)| (i, t.id)),
            Some((1, c.id))
        );
        assert_eq!(
            plan.next_trunk(0, |_| Availability::Available)
                .map(|(i, _)| i),
            Some(0)
        );
        assert!(plan.next_trunk(0, |_| Availability::AtLimit).is_none());
        assert!(plan.next_trunk(2, |_| Availability::Available).is_none());
    }

    #[test]
    fn failover_on_carrier_trouble_never_on_the_far_ends_answer() {
        for code in [408, 500, 502, 503, 504, 580] {
            assert!(fails_over(Attempt::Rejected(code)), "{code}");
        }
        for code in [400, 403, 404, 480, 484, 486, 487, 603, 606] {
            assert!(!fails_over(Attempt::Rejected(code)), "{code}");
        }
        assert!(fails_over(Attempt::TransportError));
        assert!(fails_over(Attempt::NoResponse));
        assert!(!fails_over(Attempt::Answered));
    }

    #[test]
    fn caller_id_comes_from_the_rule_then_the_user_then_the_trunk() {
        let mut t = trunk(1, 10, TrunkKind::Register, &[]);
        let mut r = rule(1, "X.", &[&t]);
        assert_eq!(caller_id(&r, "", &t, "101"), "101");
        t.caller_id = "+33100000000".into();
        assert_eq!(caller_id(&r, "", &t, "101"), "+33100000000");
        assert_eq!(caller_id(&r, "+33111111111", &t, "101"), "+33111111111");
        r.caller_id = "+33122222222".into();
        assert_eq!(caller_id(&r, "+33111111111", &t, "101"), "+33122222222");
    }

    #[test]
    fn refusals_have_a_status_and_a_reason() {
        assert_eq!(may_dial_out(true, 0, None), Ok(()));
        assert_eq!(may_dial_out(true, 1, Some(2)), Ok(()));
        assert_eq!(
            may_dial_out(true, 2, Some(2)),
            Err(OutboundRefusal::TenantLimit)
        );
        assert_eq!(
            may_dial_out(false, 0, None),
            Err(OutboundRefusal::UserNotAllowed)
        );
        assert_eq!(OutboundRefusal::TenantLimit.status(), 403);
        assert_eq!(
            OutboundRefusal::UserNotAllowed.to_string(),
            "Outbound Calls Not Allowed"
        );
        assert_eq!(OutboundRefusal::NoRule.status(), 404);
    }
}
