//! Snowflake ids and the newtypes that keep them apart (SPEC §1).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::UnixMillis;

/// 2018-01-01T00:00:00Z in Unix milliseconds: the Snowflake epoch.
pub const SNOWFLAKE_EPOCH: UnixMillis = UnixMillis(1_514_764_800_000);

const NODE_BITS: u32 = 10;
const SEQUENCE_BITS: u32 = 12;
const TIME_SHIFT: u32 = NODE_BITS + SEQUENCE_BITS;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;
/// Largest timestamp (ms since the Snowflake epoch) that keeps bit 63 clear.
const MAX_TIMESTAMP: u64 = (1 << 41) - 1;

/// Number of distinct node numbers (10 bits).
pub const NODE_COUNT: u16 = 1 << NODE_BITS;
/// Number of sequence values per node per millisecond (12 bits).
pub const SEQUENCES_PER_MS: u16 = 1 << SEQUENCE_BITS;

/// A 64-bit time-ordered id (SPEC §1).
///
/// Layout, most significant bit first:
///
/// ```text
/// | 0 | ms since 2018-01-01T00:00:00Z (41 bits) | node (10 bits) | sequence (12 bits) |
/// ```
///
/// The top bit stays 0 until 2087-09-07 so every id is a positive SQL
/// `BIGINT`. On the wire ids are decimal strings, because JavaScript cannot
/// hold 64-bit integers (PortSIP made the same switch in v16.0.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(u64);

impl Id {
    /// Wraps a raw value (from the database, or a test).
    pub const fn from_u64(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Composes an id from its three fields. Fields wider than their slot
    /// are masked, so this never panics.
    pub const fn from_parts(since_epoch_ms: u64, node: u16, sequence: u16) -> Self {
        Self(
            (since_epoch_ms << TIME_SHIFT)
                | ((node as u64 & NODE_MASK) << SEQUENCE_BITS)
                | (sequence as u64 & SEQUENCE_MASK),
        )
    }

    /// Milliseconds since [`SNOWFLAKE_EPOCH`] stored in the id.
    pub const fn since_epoch_ms(self) -> u64 {
        self.0 >> TIME_SHIFT
    }

    /// The moment the id was made (to the millisecond), as Unix time.
    pub const fn timestamp(self) -> UnixMillis {
        UnixMillis(SNOWFLAKE_EPOCH.0.saturating_add(self.since_epoch_ms()))
    }

    /// The node that made the id.
    pub const fn node(self) -> u16 {
        ((self.0 >> SEQUENCE_BITS) & NODE_MASK) as u16
    }

    /// The sequence number within the node's millisecond.
    pub const fn sequence(self) -> u16 {
        (self.0 & SEQUENCE_MASK) as u16
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a string is not an id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseIdError {
    #[error("id is empty")]
    Empty,
    #[error("id must be decimal digits only, found {found:?}")]
    NotDecimal { found: char },
    /// `"007"` would be the same number as `"7"`; ids are compared as
    /// strings by clients, so only the canonical spelling is accepted.
    #[error("id must not have leading zeros")]
    LeadingZero,
    #[error("id does not fit in 64 bits")]
    Overflow,
}

impl FromStr for Id {
    type Err = ParseIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(ParseIdError::Empty);
        }
        if let Some(found) = text.chars().find(|c| !c.is_ascii_digit()) {
            return Err(ParseIdError::NotDecimal { found });
        }
        if text.len() > 1 && text.starts_with('0') {
            return Err(ParseIdError::LeadingZero);
        }
        // Only digits remain, so the sole failure left is overflow.
        text.parse::<u64>()
            .map(Id)
            .map_err(|_| ParseIdError::Overflow)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl serde::de::Visitor<'_> for IdVisitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit id written as a decimal string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Id, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(IdVisitor)
    }
}

/// Defines a newtype over [`Id`] that serializes exactly like it.
macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Id);

        impl $name {
            /// The underlying id.
            pub const fn id(self) -> Id {
                self.0
            }
        }

        impl From<Id> for $name {
            fn from(id: Id) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                text.parse().map(Self)
            }
        }
    };
}

id_newtype!(
    /// One end-to-end call (SPEC §1). Carried in `X-Session-Id`.
    SessionId
);
id_newtype!(
    /// The call detail record of a session: always `session_id + 1`.
    CdrId
);
id_newtype!(
    /// A tenant (company).
    TenantId
);
id_newtype!(
    /// One target (leg the PBX INVITEd) of a session.
    TargetId
);

impl SessionId {
    /// `session_id + 1`, as PortSIP does (SPEC §1).
    ///
    /// For ids made by [`Snowflake::next_session`] the `+ 1` stays inside
    /// the sequence field and never collides with another id. An arbitrary
    /// parsed id of `u64::MAX` wraps to 0 rather than panicking.
    pub const fn cdr_id(self) -> CdrId {
        CdrId(Id(self.0.0.wrapping_add(1)))
    }
}

/// The node number given to [`Snowflake::new`] does not fit in 10 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("snowflake node {0} out of range (must be below {NODE_COUNT})")]
pub struct InvalidNode(pub u16);

/// A pure Snowflake id generator for one node. The caller passes the time.
///
/// Guarantees, for one generator value:
///
/// * ids strictly increase and are never reused, even if the clock goes
///   backwards (the generator keeps using its last millisecond) or more than
///   4096 ids are wanted in one millisecond (it borrows the next millisecond,
///   so the embedded time may run slightly ahead of the clock until the
///   clock catches up);
/// * a session id's successor (its `cdr_id`) is never handed out, see
///   [`Snowflake::next_session`].
///
/// Uniqueness across process restarts relies on the restart taking longer
/// than the generator ran ahead of the clock (a few ms under extreme load);
/// uniqueness across nodes relies on distinct node numbers.
///
/// Times before 2018 are treated as the epoch itself, times after 2087 as
/// the last representable millisecond; both keep ids unique and increasing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snowflake {
    node: u16,
    /// Millisecond (since the Snowflake epoch) of the last id issued.
    current_ms: u64,
    /// Next free sequence value in `current_ms`; may reach 4096 (= full).
    next_sequence: u16,
}

impl Snowflake {
    /// A generator for `node` (< 1024).
    pub fn new(node: u16) -> Result<Self, InvalidNode> {
        if node >= NODE_COUNT {
            return Err(InvalidNode(node));
        }
        Ok(Self {
            node,
            current_ms: 0,
            next_sequence: 0,
        })
    }

    /// The node this generator stamps into its ids.
    pub const fn node(&self) -> u16 {
        self.node
    }

    /// The next id at `now`.
    pub fn next(&mut self, now: UnixMillis) -> Id {
        let sequence = self.reserve(now, 1);
        Id::from_parts(self.current_ms, self.node, sequence)
    }

    /// The next session id at `now`.
    ///
    /// Reserves **two** consecutive sequence values in the same millisecond
    /// and returns the first: the second is the session's `cdr_id`
    /// ([`SessionId::cdr_id`]), which therefore can never be handed out as
    /// another id.
    pub fn next_session(&mut self, now: UnixMillis) -> SessionId {
        let sequence = self.reserve(now, 2);
        SessionId(Id::from_parts(self.current_ms, self.node, sequence))
    }

    /// Reserves `count` consecutive sequence values within one millisecond
    /// and returns the first; advances `current_ms` as needed.
    fn reserve(&mut self, now: UnixMillis, count: u16) -> u16 {
        let now_ms = now.0.saturating_sub(SNOWFLAKE_EPOCH.0).min(MAX_TIMESTAMP);
        if now_ms > self.current_ms {
            self.current_ms = now_ms;
            self.next_sequence = 0;
        }
        if SEQUENCES_PER_MS - self.next_sequence < count {
            // This millisecond is used up: borrow the next one.
            self.current_ms += 1;
            self.next_sequence = 0;
        }
        let first = self.next_sequence;
        self.next_sequence += count;
        first
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): 64 well-mixed bits per draw
/// from a seed, never repeating within 2^64 draws. The workspace's one copy:
/// SIP tags, branches and Call-IDs (`pbx`), tags of stateless rejections
/// (`tally`), webhook retry jitter (`delivery`), reproducible draws in
/// simulations. Not a cryptographic generator: its values are unique and
/// hard to guess only as far as the seed (drawn from the OS at start-up)
/// is secret, which is what RFC 3261 asks of tags and Call-IDs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The stream's increment (2^64 / φ).
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        Self::mix(self.state)
    }

    /// Draw `n` of the stream seeded with `seed` without walking it
    /// (`n` = 1 is what the first [`SplitMix64::next_u64`] returns), so that
    /// threads can share one stream through an atomic counter.
    pub const fn draw(seed: u64, n: u64) -> u64 {
        Self::mix(seed.wrapping_add(n.wrapping_mul(Self::GAMMA)))
    }

    /// The finaliser alone: a bijective mix of `z`, also used to derive
    /// independent seeds from one.
    pub const fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const NOW: UnixMillis = UnixMillis(1_795_874_587_123); // 2026-11-28T14:03:07.123Z

    #[test]
    fn layout_decodes_back() {
        let mut snowflake = Snowflake::new(613).unwrap();
        let id = snowflake.next(NOW);
        assert_eq!(id.timestamp(), NOW);
        assert_eq!(id.since_epoch_ms(), NOW.0 - SNOWFLAKE_EPOCH.0);
        assert_eq!(id.node(), 613);
        assert_eq!(id.sequence(), 0);
        assert_eq!(
            id.as_u64(),
            ((NOW.0 - SNOWFLAKE_EPOCH.0) << 22) | (613 << 12)
        );
        let second = snowflake.next(NOW);
        assert_eq!(second.sequence(), 1);
        assert_eq!(second.as_u64(), id.as_u64() + 1);
        assert!(id.as_u64() < (1 << 63));
    }

    #[test]
    fn portsip_example_ids_decode_to_their_documented_times() {
        let id: Id = "878156644691742720".parse().unwrap();
        assert_eq!(id.timestamp().to_rfc3339(), "2024-08-20T06:00:59.456Z");
        let id: Id = "885337248273272832".parse().unwrap();
        assert_eq!(id.timestamp().to_rfc3339(), "2024-09-09T01:34:08.759Z");
    }

    #[test]
    fn node_must_fit_ten_bits() {
        assert!(Snowflake::new(1023).is_ok());
        assert_eq!(Snowflake::new(1024), Err(InvalidNode(1024)));
        assert_eq!(Snowflake::new(u16::MAX), Err(InvalidNode(u16::MAX)));
    }

    #[test]
    fn monotonic_when_the_clock_goes_backwards() {
        let mut snowflake = Snowflake::new(1).unwrap();
        let a = snowflake.next(NOW);
        let b = snowflake.next(UnixMillis(NOW.0 - 5_000));
        let c = snowflake.next(UnixMillis(NOW.0 - 10_000));
        let d = snowflake.next(UnixMillis(NOW.0 + 1));
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(b.timestamp(), NOW, "a regressed clock keeps the last ms");
        assert_eq!(d.timestamp(), UnixMillis(NOW.0 + 1));
        assert_eq!(d.sequence(), 0);
    }

    #[test]
    fn five_thousand_ids_in_one_millisecond_borrow_the_next() {
        let mut snowflake = Snowflake::new(2).unwrap();
        let ids: Vec<Id> = (0..5000).map(|_| snowflake.next(NOW)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ids[4095].timestamp(), NOW);
        assert_eq!(ids[4095].sequence(), 4095);
        assert_eq!(ids[4096].timestamp(), UnixMillis(NOW.0 + 1));
        assert_eq!(ids[4096].sequence(), 0);
        // The clock catching up to the borrowed ms does not reuse ids.
        let next = snowflake.next(UnixMillis(NOW.0 + 1));
        assert!(next > ids[4999]);
        let later = snowflake.next(UnixMillis(NOW.0 + 2));
        assert_eq!(later.sequence(), 0);
        assert!(later > next);
    }

    #[test]
    fn cdr_ids_never_collide_with_issued_ids() {
        let mut snowflake = Snowflake::new(7).unwrap();
        let mut issued = HashSet::new();
        let mut cdr_ids = HashSet::new();
        let mut last = None;
        // Mix sessions and plain ids, odd and even sequence offsets, across
        // ms boundaries and a clock regression, ending each ms full.
        for i in 0..20_000u64 {
            let now = UnixMillis(NOW.0 + i / 3_000 - u64::from(i % 7_001 == 0));
            let id = if i % 3 == 0 {
                let session = snowflake.next_session(now);
                let cdr = session.cdr_id().id();
                assert_eq!(cdr.as_u64(), session.id().as_u64() + 1);
                assert_eq!(cdr.timestamp(), session.id().timestamp());
                assert!(cdr_ids.insert(cdr));
                session.id()
            } else {
                snowflake.next(now)
            };
            if let Some(last) = last {
                assert!(id > last);
            }
            last = Some(id);
            assert!(issued.insert(id));
        }
        assert!(issued.is_disjoint(&cdr_ids));
    }

    #[test]
    fn session_at_the_last_sequence_moves_to_the_next_millisecond() {
        let mut snowflake = Snowflake::new(3).unwrap();
        for _ in 0..4095 {
            snowflake.next(NOW);
        }
        let session = snowflake.next_session(NOW);
        assert_eq!(session.id().timestamp(), UnixMillis(NOW.0 + 1));
        assert_eq!(session.id().sequence(), 0);
        assert_eq!(snowflake.next(NOW).sequence(), 2);
    }

    #[test]
    fn times_outside_the_layout_are_clamped() {
        let mut snowflake = Snowflake::new(0).unwrap();
        let early = snowflake.next(UnixMillis(0));
        assert_eq!(early.timestamp(), SNOWFLAKE_EPOCH);
        let late = snowflake.next(UnixMillis(u64::MAX));
        assert_eq!(late.since_epoch_ms(), MAX_TIMESTAMP);
        assert!(late.as_u64() < (1 << 63));
        assert!(snowflake.next(UnixMillis(u64::MAX)) > late);
    }

    #[test]
    fn parses_only_canonical_decimal() {
        assert_eq!("0".parse::<Id>(), Ok(Id(0)));
        assert_eq!("18446744073709551615".parse::<Id>(), Ok(Id(u64::MAX)));
        assert_eq!("".parse::<Id>(), Err(ParseIdError::Empty));
        assert_eq!(
            "12a".parse::<Id>(),
            Err(ParseIdError::NotDecimal { found: 'a' })
        );
        assert_eq!(
            "+12".parse::<Id>(),
            Err(ParseIdError::NotDecimal { found: '+' })
        );
        assert_eq!(
            "-1".parse::<Id>(),
            Err(ParseIdError::NotDecimal { found: '-' })
        );
        assert_eq!(
            " 1".parse::<Id>(),
            Err(ParseIdError::NotDecimal { found: ' ' })
        );
        assert_eq!("007".parse::<Id>(), Err(ParseIdError::LeadingZero));
        assert_eq!(
            "18446744073709551616".parse::<Id>(),
            Err(ParseIdError::Overflow)
        );
        assert_eq!(
            "798119942409949184"
                .parse::<SessionId>()
                .map(SessionId::cdr_id),
            "798119942409949185".parse::<CdrId>()
        );
    }

    #[test]
    fn serde_uses_decimal_strings() {
        let tenant: TenantId = "798119491077668864".parse().unwrap();
        assert_eq!(
            serde_json::to_string(&tenant).unwrap(),
            r#""798119491077668864""#
        );
        let back: TenantId = serde_json::from_str(r#""798119491077668864""#).unwrap();
        assert_eq!(back, tenant);
        assert!(serde_json::from_str::<TenantId>("798119491077668864").is_err());
        assert!(serde_json::from_str::<TenantId>(r#""0x10""#).is_err());
        assert!(serde_json::from_str::<TargetId>(r#""""#).is_err());
    }

    #[test]
    fn cdr_id_of_the_largest_value_wraps_instead_of_panicking() {
        let session = SessionId::from(Id::from_u64(u64::MAX));
        assert_eq!(session.cdr_id().id(), Id::from_u64(0));
    }

    #[test]
    fn splitmix64_matches_the_reference_stream() {
        // The first outputs for seed 1234567 of the reference C
        // implementation (https://prng.di.unimi.it/splitmix64.c).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
        assert_eq!(SplitMix64::draw(1_234_567, 2), 3_203_168_211_198_807_973);
    }
}
