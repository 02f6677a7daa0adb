//! Bindings other nodes wrote (issue 15: the location shared in
//! PostgreSQL). A call may land on a node that did not take the callee's
//! REGISTER (Kamailio spreads calls by Call-ID), so every node applies
//! the rows the others persisted, polled from the store, to its own
//! location. The row of a binding key is the latest write of any node;
//! a removal is a row whose expiry has passed (a tombstone).
//!
//! # Decisions
//!
//! - **Newest wins, by the REGISTER's own order** (RFC 3261 §10.3): with
//!   the same Call-ID, the higher CSeq; with another Call-ID (the device
//!   restarted) the later expiry, which is the later registration since
//!   expiries are granted from the moment of the REGISTER. A local binding
//!   newer than the row (its own write still on the way to the store)
//!   is kept; the row catches up at the next poll.
//! - **A tombstone removes** the binding it names (the same Call-ID and a
//!   CSeq at least the held one's: the registrar reports a removal with
//!   the binding as it was), and any binding of that key with another
//!   Call-ID: the row is the key's latest write. The one race (a new
//!   registration here not yet persisted when an older tombstone is read)
//!   heals at the next poll, which reads the new row.
//! - **Nothing to persist**: these changes are already in the store, so
//!   no [`BindingChange`](super::BindingChange) comes out of them.
//! - Same checks as a restore ([`Location::import`]): a record is
//!   untrusted input.

use std::time::{Duration, Instant};

use super::{BindingRecord, Location};

/// What [`Location::apply_shared`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SharedReport {
    /// Bindings added or replaced.
    pub applied: usize,
    /// Bindings removed (unregistered elsewhere).
    pub removed: usize,
    /// Rows already known, or older than the binding held.
    pub unchanged: usize,
    /// Rows that do not make a binding (logged by the caller).
    pub rejected: usize,
}

impl Location {
    /// Applies bindings read back from the shared store (see the module doc).
    pub fn apply_shared(
        &mut self,
        now: Instant,
        now_unix: u64,
        max_remaining: Duration,
        records: impl IntoIterator<Item = BindingRecord>,
    ) -> SharedReport {
        let mut report = SharedReport::default();
        for record in records {
            let held = self.held(now, now_unix, &record);
            let live = record.expires_unix > now_unix;
            let newer = match &held {
                None => true,
                Some((call_id, cseq, _)) if *call_id == record.call_id => {
                    record.cseq > *cseq || (!live && record.cseq == *cseq)
                }
                Some((_, _, expires_unix)) => !live || record.expires_unix > *expires_unix,
            };
            match (held.is_some(), live, newer) {
                (_, _, false) | (false, false, _) => report.unchanged += 1,
                (true, false, true) => {
                    self.remove_key(&record);
                    report.removed += 1;
                }
                (_, true, true) => match self.import_one(now, now_unix, max_remaining, &record) {
                    Ok(()) => report.applied += 1,
                    Err(_) => report.rejected += 1,
                },
            }
        }
        report
    }

    /// The held binding with the record's key: its Call-ID, CSeq and
    /// expiry (Unix seconds).
    fn held(
        &self,
        now: Instant,
        now_unix: u64,
        record: &BindingRecord,
    ) -> Option<(String, u32, u64)> {
        self.users
            .get(&record.tenant_id)?
            .get(record.extension.as_str())?
            .iter()
            .find(|b| b.key.as_str() == record.key)
            .map(|b| {
                let expires = now_unix.saturating_add(b.remaining(now).as_secs());
                (b.call_id.clone(), b.cseq, expires)
            })
    }

    fn remove_key(&mut self, record: &BindingRecord) {
        let Some(by_ext) = self.users.get_mut(&record.tenant_id) else {
            return;
        };
        if let Some(list) = by_ext.get_mut(record.extension.as_str()) {
            list.retain(|b| b.key.as_str() != record.key);
            if list.is_empty() {
                by_ext.remove(record.extension.as_str());
            }
        }
        if by_ext.is_empty() {
            self.users.remove(&record.tenant_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::location::{Aor, ContactUpdate, Extension, RegisterContacts, Registration};
    use cdr::{Id, TenantId};
    use sip::transport::{Peer, Transport};
    use sip::uri::{SipUri, Uri};

    const HOUR: Duration = Duration::from_secs(3600);

    fn aor() -> Aor {
        Aor {
            tenant: TenantId::from(Id::from_u64(7)),
            extension: Extension::new("101"),
        }
    }

    fn row(contact: &str, call_id: &str, cseq: u32, expires_unix: u64) -> BindingRecord {
        let Ok(Uri::Sip(uri)) = Uri::parse(contact) else {
            panic!("test contact {contact}");
        };
        let uri: SipUri<'_> = uri;
        BindingRecord {
            tenant_id: aor().tenant,
            extension: "101".into(),
            key: super::super::BindingKey::new(&uri, None)
                .as_str()
                .to_owned(),
            contact_uri: contact.into(),
            instance: None,
            reg_id: None,
            q: None,
            expires_unix,
            transport: Transport::Udp,
            source: "127.0.0.1:5070".parse().unwrap(),
            path: vec!["<sip:127.0.0.1:5070;lr;received=sip:10.0.0.7:5062>".into()],
            call_id: call_id.into(),
            cseq,
        }
    }

    fn register_locally(loc: &mut Location, t0: Instant, call_id: &str, cseq: u32, expires: u32) {
        let contact = "sip:101@10.0.0.7:5062";
        let Ok(Uri::Sip(uri)) = Uri::parse(contact) else {
            panic!()
        };
        let update = ContactUpdate {
            key: super::super::BindingKey::new(&uri, None),
            contact_uri: contact.into(),
            instance: None,
            reg_id: None,
            q: None,
            expires,
        };
        loc.register(
            t0,
            1000,
            &aor(),
            Registration {
                call_id,
                cseq,
                source: Peer::new(Transport::Udp, "127.0.0.1:5070".parse().unwrap()),
                path: Vec::new(),
                contacts: RegisterContacts::Update(vec![update]),
            },
        )
        .unwrap();
    }

    #[test]
    fn another_nodes_binding_becomes_reachable_here_with_its_path() {
        let t0 = Instant::now();
        let mut loc = Location::new(10);
        let r = row("sip:101@10.0.0.7:5062", "c1", 1, 4600);
        let report = loc.apply_shared(t0, 1000, HOUR * 2, [r.clone()]);
        assert_eq!(report.applied, 1);
        let b = loc.lookup(t0, aor().tenant, "101").next().expect("bound");
        assert_eq!(b.path, r.path);
        assert_eq!(b.remaining(t0), Duration::from_secs(3600));
        // Read again at the next poll: nothing changes.
        let again = loc.apply_shared(t0, 1000, HOUR * 2, [r]);
        assert_eq!((again.applied, again.unchanged), (0, 1));
    }

    #[test]
    fn a_refresh_and_an_unregister_elsewhere_are_followed() {
        let t0 = Instant::now();
        let mut loc = Location::new(10);
        loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c1", 1, 1600)],
        );
        let refreshed = loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c1", 2, 1900)],
        );
        assert_eq!(refreshed.applied, 1);
        let b = loc.lookup(t0, aor().tenant, "101").next().unwrap();
        assert_eq!(b.cseq, 2);
        // The tombstone: expiry in the past, a higher CSeq.
        let gone = loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c1", 3, 1000)],
        );
        assert_eq!(gone.removed, 1);
        assert_eq!(loc.lookup(t0, aor().tenant, "101").count(), 0);
        // A removal as the registrar reports it: the binding as it was.
        loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c1", 4, 1900)],
        );
        let same = loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c1", 4, 1000)],
        );
        assert_eq!(same.removed, 1);
        // A tombstone for a binding never held changes nothing.
        let none = loc.apply_shared(t0, 1000, HOUR, [row("sip:101@10.0.0.9:5062", "c9", 3, 999)]);
        assert_eq!((none.removed, none.unchanged), (0, 1));
    }

    #[test]
    fn a_newer_local_binding_is_not_overwritten_by_an_older_row() {
        let t0 = Instant::now();
        let mut loc = Location::new(10);
        register_locally(&mut loc, t0, "c1", 5, 600);
        let stale = loc.apply_shared(
            t0,
            1000,
            HOUR,
            [
                row("sip:101@10.0.0.7:5062", "c1", 4, 1500),
                row("sip:101@10.0.0.7:5062", "c1", 4, 900),
            ],
        );
        assert_eq!(stale.unchanged, 2, "a lower CSeq of the same Call-ID");
        let b = loc.lookup(t0, aor().tenant, "101").next().unwrap();
        assert_eq!(b.cseq, 5);
        // The device restarted and registered elsewhere: another Call-ID,
        // a later expiry.
        let moved = loc.apply_shared(
            t0,
            1000,
            HOUR,
            [row("sip:101@10.0.0.7:5062", "c2", 1, 1700)],
        );
        assert_eq!(moved.applied, 1);
        let b = loc.lookup(t0, aor().tenant, "101").next().unwrap();
        assert_eq!((b.call_id.as_str(), b.path.len()), ("c2", 1));
    }

    #[test]
    fn rows_that_make_no_binding_are_rejected() {
        let t0 = Instant::now();
        let mut loc = Location::new(10);
        let mut bad = row("sip:101@10.0.0.7:5062", "c1", 1, 4600);
        bad.call_id = "a b".into();
        let report = loc.apply_shared(t0, 1000, HOUR, [bad]);
        assert_eq!(report.rejected, 1);
        assert_eq!(loc.binding_count(), 0);
    }
}
