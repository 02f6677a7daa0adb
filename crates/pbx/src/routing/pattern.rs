//! Dial patterns of outbound rules, in the PortSIP/Asterisk notation every
//! PBX administrator already knows.
//!
//! | symbol | matches |
//! |---|---|
//! | `0`–`9`, `*`, `#`, `+` | itself |
//! | `X` | any digit `0`–`9` |
//! | `Z` | `1`–`9` |
//! | `N` | `2`–`9` |
//! | `[15-7]` | one of the digits listed (ranges allowed) |
//! | `.` | one or more further characters (last only) |
//! | `!` | zero or more further characters (last only) |
//!
//! A leading `_` (Asterisk's marker for "this is a pattern") is accepted
//! and ignored; letters are accepted in either case.
//!
//! # Decisions
//!
//! - **Wildcards only at the end.** Asterisk allows `.` in the middle, but
//!   then `9.1` is ambiguous for a reader, and nobody writes it in an
//!   outbound rule. With the tail last, matching is one pass over the
//!   number with no backtracking, so a rule list is cheap to scan for
//!   every call.
//! - **Parse, then match.** A pattern is compiled once when it is
//!   provisioned ([`DialPattern::parse`] is what the REST API calls, so a
//!   malformed pattern is refused with its position) and matched many
//!   times.

use std::fmt;
use std::str::FromStr;

/// The longest pattern accepted: longer than any dialled number.
pub const MAX_PATTERN_LEN: usize = 64;

/// The characters a dialled number is made of, each with its bit in a
/// [`Class`].
const ALPHABET: &[u8; 13] = b"0123456789*#+";

fn bit(c: u8) -> Option<u16> {
    ALPHABET.iter().position(|&a| a == c).map(|i| 1u16 << i)
}

/// A set of dialable characters (one position of a pattern).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Class(u16);

impl Class {
    fn digits(from: u8, to: u8) -> Class {
        Class((from..=to).filter_map(bit).fold(0, |acc, b| acc | b))
    }

    fn contains(self, c: u8) -> bool {
        bit(c).is_some_and(|b| self.0 & b != 0)
    }
}

/// What may follow the fixed positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tail {
    /// Nothing: the number has exactly as many characters as the pattern.
    None,
    /// `.`: at least one more dialable character.
    OneOrMore,
    /// `!`: any number of dialable characters, none included.
    ZeroOrMore,
}

/// A compiled dial pattern. `Display` gives back the text it was parsed
/// from (normalised: no `_`, letters upper case).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialPattern {
    text: String,
    positions: Vec<Class>,
    tail: Tail,
}

/// Why a pattern does not parse; positions count characters from 0 in the
/// text as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_PATTERN_LEN} characters")]
    TooLong,
    #[error("has {found:?} at position {at}: expected a digit, *, #, +, X, Z, N, [, . or !")]
    UnexpectedCharacter { found: char, at: usize },
    #[error("has a [ at position {at} that is never closed")]
    UnclosedClass { at: usize },
    #[error("has an empty [] at position {at}")]
    EmptyClass { at: usize },
    #[error("has {found:?} inside [] at position {at}: only digits and ranges such as 1-5")]
    BadClass { found: char, at: usize },
    #[error("has a backwards range {from}-{to} at position {at}")]
    BackwardsRange { from: char, to: char, at: usize },
    #[error("has {wildcard:?} at position {at}: . and ! may only end a pattern")]
    WildcardNotLast { wildcard: char, at: usize },
}

impl DialPattern {
    pub fn parse(text: &str) -> Result<DialPattern, PatternError> {
        let body = text.strip_prefix('_').unwrap_or(text);
        let offset = text.len() - body.len();
        if body.is_empty() {
            return Err(PatternError::Empty);
        }
        if body.chars().count() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        let chars: Vec<char> = body.chars().collect();
        let mut positions = Vec::new();
        let mut tail = Tail::None;
        let mut normal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let at = i + offset;
            let c = chars[i];
            if tail != Tail::None {
                // A wildcard was followed by something.
                let wildcard = if tail == Tail::OneOrMore { '.' } else { '!' };
                return Err(PatternError::WildcardNotLast {
                    wildcard,
                    at: at - 1,
                });
            }
            match c.to_ascii_uppercase() {
                'X' => positions.push(Class::digits(b'0', b'9')),
                'Z' => positions.push(Class::digits(b'1', b'9')),
                'N' => positions.push(Class::digits(b'2', b'9')),
                '.' => tail = Tail::OneOrMore,
                '!' => tail = Tail::ZeroOrMore,
                '[' => {
                    let close = chars[i + 1..]
                        .iter()
                        .position(|&c| c == ']')
                        .map(|p| p + i + 1)
                        .ok_or(PatternError::UnclosedClass { at })?;
                    positions.push(class(&chars[i + 1..close], at + 1)?);
                    normal.extend(&chars[i..=close]);
                    i = close + 1;
                    continue;
                }
                d if d.is_ascii() && bit(d as u8).is_some() => {
                    positions.push(Class(bit(d as u8).unwrap_or(0)));
                }
                _ => return Err(PatternError::UnexpectedCharacter { found: c, at }),
            }
            normal.push(c.to_ascii_uppercase());
            i += 1;
        }
        Ok(DialPattern {
            text: normal,
            positions,
            tail,
        })
    }

    /// Whether `number` (already normalised: dialable characters only)
    /// matches the whole pattern.
    pub fn matches(&self, number: &str) -> bool {
        let number = number.as_bytes();
        if number.len() < self.positions.len() {
            return false;
        }
        let (fixed, rest) = number.split_at(self.positions.len());
        let fixed_ok = fixed
            .iter()
            .zip(&self.positions)
            .all(|(&c, class)| class.contains(c));
        let rest_ok = rest.iter().all(|&c| bit(c).is_some());
        fixed_ok
            && rest_ok
            && match self.tail {
                Tail::None => rest.is_empty(),
                Tail::OneOrMore => !rest.is_empty(),
                Tail::ZeroOrMore => true,
            }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// The inside of `[...]`, starting at character position `at`.
fn class(inside: &[char], at: usize) -> Result<Class, PatternError> {
    if inside.is_empty() {
        return Err(PatternError::EmptyClass { at: at - 1 });
    }
    let mut set = 0u16;
    let mut i = 0;
    while i < inside.len() {
        let c = inside[i];
        if !c.is_ascii_digit() {
            return Err(PatternError::BadClass {
                found: c,
                at: at + i,
            });
        }
        if inside.get(i + 1) == Some(&'-') {
            let Some(&to) = inside.get(i + 2).filter(|t| t.is_ascii_digit()) else {
                let found = inside.get(i + 2).copied().unwrap_or(']');
                return Err(PatternError::BadClass {
                    found,
                    at: at + i + 2,
                });
            };
            if to < c {
                return Err(PatternError::BackwardsRange {
                    from: c,
                    to,
                    at: at + i,
                });
            }
            set |= Class::digits(c as u8, to as u8).0;
            i += 3;
        } else {
            set |= Class::digits(c as u8, c as u8).0;
            i += 1;
        }
    }
    Ok(Class(set))
}

impl FromStr for DialPattern {
    type Err = PatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DialPattern::parse(s)
    }
}

impl fmt::Display for DialPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> DialPattern {
        DialPattern::parse(text).unwrap()
    }

    #[test]
    fn the_symbols_match_what_portsip_documents() {
        assert!(p("9NXXXXXX").matches("92345678"));
        assert!(!p("9NXXXXXX").matches("91345678"), "N is 2-9");
        assert!(!p("9NXXXXXX").matches("9234567"), "too short");
        assert!(!p("9NXXXXXX").matches("923456789"), "too long");
        assert!(p("Z").matches("1") && !p("Z").matches("0"));
        assert!(p("[15-7]").matches("1") && p("[15-7]").matches("6"));
        assert!(!p("[15-7]").matches("2") && !p("[15-7]").matches("8"));
        assert!(p("00.").matches("0044123") && !p("00.").matches("00"));
        assert!(p("00!").matches("00") && p("00!").matches("001"));
        assert!(p("+1NXX").matches("+1234") && !p("+1NXX").matches("1234"));
        assert!(p("*72X").matches("*721") && p("#").matches("#"));
        assert!(p("_9x.").matches("951"), "leading _ and lower case");
        assert_eq!(p("_9x.").to_string(), "9X.");
    }

    #[test]
    fn numbers_with_other_characters_never_match() {
        assert!(!p("X.").matches("1a"));
        assert!(!p("!").matches("12 3"));
        assert!(!p("1!").matches("1é"));
    }

    #[test]
    fn malformed_patterns_say_where() {
        let e = |t: &str| DialPattern::parse(t).unwrap_err();
        assert_eq!(e(""), PatternError::Empty);
        assert_eq!(e("_"), PatternError::Empty);
        assert_eq!(
            e("9Q"),
            PatternError::UnexpectedCharacter { found: 'Q', at: 1 }
        );
        assert_eq!(e("9[12"), PatternError::UnclosedClass { at: 1 });
        assert_eq!(e("9[]"), PatternError::EmptyClass { at: 1 });
        assert_eq!(e("[1-]"), PatternError::BadClass { found: ']', at: 3 });
        assert_eq!(e("[a]"), PatternError::BadClass { found: 'a', at: 1 });
        assert_eq!(
            e("[5-1]"),
            PatternError::BackwardsRange {
                from: '5',
                to: '1',
                at: 1
            }
        );
        assert_eq!(
            e("9.1"),
            PatternError::WildcardNotLast {
                wildcard: '.',
                at: 1
            }
        );
        assert_eq!(
            e("9!."),
            PatternError::WildcardNotLast {
                wildcard: '!',
                at: 1
            }
        );
        assert_eq!(e(&"X".repeat(65)), PatternError::TooLong);
        assert!(e("é").to_string().contains("position 0"));
    }

    /// A small deterministic generator (xorshift64*), so the property
    /// tests need no dependency and every failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A random well-formed pattern and, for each position, the characters
    /// it accepts (the reference the compiled pattern is checked against).
    fn random_pattern(rng: &mut Rng) -> (String, Vec<Vec<u8>>, Option<char>) {
        let mut text = String::new();
        let mut accepted = Vec::new();
        for _ in 0..1 + rng.below(10) {
            match rng.below(6) {
                0 => {
                    text.push('X');
                    accepted.push((b'0'..=b'9').collect());
                }
                1 => {
                    text.push('Z');
                    accepted.push((b'1'..=b'9').collect());
                }
                2 => {
                    text.push('N');
                    accepted.push((b'2'..=b'9').collect());
                }
                3 => {
                    let a = b'0' + rng.below(10) as u8;
                    let b = a + rng.below((b'9' - a + 1) as usize) as u8;
                    text.push_str(&format!("[{}-{}]", a as char, b as char));
                    accepted.push((a..=b).collect());
                }
                _ => {
                    let c = ALPHABET[rng.below(ALPHABET.len())];
                    text.push(c as char);
                    accepted.push(vec![c]);
                }
            }
        }
        let tail = match rng.below(3) {
            0 => None,
            1 => Some('.'),
            _ => Some('!'),
        };
        text.extend(tail);
        (text, accepted, tail)
    }

    #[test]
    fn property_every_number_built_from_a_pattern_matches_it() {
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        for _ in 0..5_000 {
            let (text, accepted, tail) = random_pattern(&mut rng);
            let pattern = p(&text);
            let mut number: Vec<u8> = accepted
                .iter()
                .map(|set| set[rng.below(set.len())])
                .collect();
            let extra = match tail {
                None => 0,
                Some('.') => 1 + rng.below(5),
                _ => rng.below(5),
            };
            for _ in 0..extra {
                number.push(ALPHABET[rng.below(ALPHABET.len())]);
            }
            let number = String::from_utf8(number).unwrap();
            assert!(pattern.matches(&number), "{text} should match {number}");
        }
    }

    #[test]
    fn property_a_number_matches_only_if_every_position_accepts_it() {
        let mut rng = Rng(0xfeed_5678_0123_4567);
        for _ in 0..5_000 {
            let (text, accepted, tail) = random_pattern(&mut rng);
            let pattern = p(&text);
            let len = rng.below(accepted.len() + 4);
            let number: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())])
                .collect();
            let fixed = number.len() >= accepted.len()
                && number.iter().zip(&accepted).all(|(c, set)| set.contains(c));
            let rest = number.len().saturating_sub(accepted.len());
            let expected = fixed
                && match tail {
                    None => rest == 0,
                    Some('.') => rest >= 1,
                    _ => true,
                };
            let number = String::from_utf8(number).unwrap();
            assert_eq!(pattern.matches(&number), expected, "{text} vs {number}");
        }
    }

    #[test]
    fn property_parsing_never_panics_and_round_trips() {
        let mut rng = Rng(0x0dd_ba11);
        let symbols: Vec<char> = "0123456789*#+XZNxzn[]-.!_aé ".chars().collect();
        for _ in 0..20_000 {
            let text: String = (0..rng.below(12))
                .map(|_| symbols[rng.below(symbols.len())])
                .collect();
            if let Ok(pattern) = DialPattern::parse(&text) {
                assert_eq!(p(pattern.as_str()), pattern, "{text}");
            }
        }
    }
}
