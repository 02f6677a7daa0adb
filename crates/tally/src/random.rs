//! Randomness from the operating system: the engine's seed and nonce key,
//! generated passwords, API tokens and password salts.
//!
//! The sans-IO cores draw nothing themselves (DESIGN.md, "Sans-IO cores");
//! the binary is the one place that asks the OS.

use anyhow::Context as _;

/// `N` random bytes.
pub fn bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).context("the operating system gave no random bytes")?;
    Ok(out)
}

pub fn u64() -> anyhow::Result<u64> {
    Ok(u64::from_le_bytes(bytes::<8>()?))
}

/// An opaque bearer token: 32 random bytes as 64 lowercase hex digits.
pub fn token() -> anyhow::Result<String> {
    Ok(hex(&bytes::<32>()?))
}

/// A password a person can read out and type: `len` characters from an
/// alphabet without look-alikes (no `0`/`O`, `1`/`l`/`I`). 56 symbols, so
/// 16 characters carry about 93 bits.
pub fn password(len: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in bytes::<32>()? {
            // Rejection sampling keeps every symbol equally likely.
            let limit = 256 - 256 % ALPHABET.len();
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

pub fn hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_have_the_length_and_alphabet_asked() {
        let p = password(16).unwrap();
        assert_eq!(p.len(), 16);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(!p.contains(['0', 'O', '1', 'l', 'I']));
        assert_ne!(p, password(16).unwrap());
    }

    #[test]
    fn tokens_are_hex() {
        let t = token().unwrap();
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
