//! Numbers as carriers send them, made comparable with what an
//! administrator typed into a DID or a dial pattern.
//!
//! Carriers differ: one sends `+33123456789`, another `33123456789`,
//! another the national `0123456789`. Each trunk says which country code
//! it strips, so the DID rules of a tenant are written once, in the
//! tenant's own national form.

/// The normalised form of `number` for a trunk with `country_code`
/// (digits only, e.g. `33`; empty: none):
///
/// 1. visual separators (space, `-`, `.`, `(`, `)`) are dropped;
/// 2. a leading `+` is dropped;
/// 3. then the country code, when the number starts with it and more
///    digits follow (so that a short number equal to the code survives).
///
/// Anything else (letters in a SIP user part) is kept, so it matches no
/// rule rather than a wrong one.
pub fn normalise(number: &str, country_code: &str) -> String {
    let compact: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let national = compact.strip_prefix('+').unwrap_or(&compact);
    match national.strip_prefix(country_code) {
        Some(rest) if !country_code.is_empty() && !rest.is_empty() => rest.to_owned(),
        _ => national.to_owned(),
    }
}

/// A dialled number after an outbound rule's rewrite: `strip` leading
/// characters removed, then `prepend` put in front.
pub fn rewrite(number: &str, strip: usize, prepend: &str) -> String {
    let kept: String = number.chars().skip(strip).collect();
    format!("{prepend}{kept}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_and_country_code_are_stripped() {
        assert_eq!(normalise("+33123456789", "33"), "123456789");
        assert_eq!(normalise("33123456789", "33"), "123456789");
        assert_eq!(normalise("+1 (555) 010-9999", "1"), "5550109999");
        assert_eq!(normalise("+44123", "33"), "44123", "another country's");
        assert_eq!(normalise("+15550100", ""), "15550100", "no code configured");
        assert_eq!(normalise("33", "33"), "33", "nothing after the code");
        assert_eq!(normalise("alice", "1"), "alice");
    }

    #[test]
    fn rewrite_strips_then_prepends() {
        assert_eq!(rewrite("90123456", 1, ""), "0123456");
        assert_eq!(rewrite("0123456", 1, "+33"), "+33123456");
        assert_eq!(rewrite("12", 5, "9"), "9");
        assert_eq!(rewrite("555", 0, ""), "555");
    }
}
