//! The digest arithmetic of RFC 7616 §3.4, shared by server and client.

use md5::Md5;
use sha2::{Digest, Sha256};

use super::{Algorithm, DigestHash, Qop};

/// `H(username:realm:password)` in lowercase hex: what a directory stores
/// instead of the password ([`super::UserSecret::Md5Ha1`] and
/// [`super::UserSecret::Sha256Ha1`]). The same value serves the `-sess`
/// variants.
pub fn ha1(hash: DigestHash, username: &str, realm: &str, password: &str) -> String {
    hash_hex(
        hash,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    )
}

/// The qop-dependent inputs of a response.
pub(crate) struct QopInputs<'a> {
    pub qop: Qop,
    pub nc: u32,
    pub cnonce: &'a str,
}

/// The `response` parameter in lowercase hex.
///
/// `ha1` is the stored HA1 (lowercase hex) for `algorithm.hash()`; the
/// session re-keying happens here. A session algorithm without qop has no
/// cnonce; callers refuse that combination before getting here, and it is
/// computed with an empty cnonce so this function stays total.
pub(crate) fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<&QopInputs<'_>>,
) -> String {
    let hash = algorithm.hash();
    let session_ha1;
    let ha1 = if algorithm.is_session() {
        let cnonce = qop.map_or("", |q| q.cnonce);
        session_ha1 = hash_hex(hash, &[ha1.as_bytes(), nonce.as_bytes(), cnonce.as_bytes()]);
        session_ha1.as_str()
    } else {
        ha1
    };
    let ha2 = hash_hex(hash, &[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some(q) => {
            let nc = format!("{:08x}", q.nc);
            hash_hex(
                hash,
                &[
                    ha1.as_bytes(),
                    nonce.as_bytes(),
                    nc.as_bytes(),
                    q.cnonce.as_bytes(),
                    q.qop.as_str().as_bytes(),
                    ha2.as_bytes(),
                ],
            )
        }
        None => hash_hex(hash, &[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// `H(p0:p1:...)` in lowercase hex.
fn hash_hex(hash: DigestHash, parts: &[&[u8]]) -> String {
    match hash {
        DigestHash::Md5 => digest_hex::<Md5>(parts),
        DigestHash::Sha256 => digest_hex::<Sha256>(parts),
    }
}

fn digest_hex<D: Digest>(parts: &[&[u8]]) -> String {
    let mut d = D::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            d.update(b":");
        }
        d.update(part);
    }
    hex(&d.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Whether `s` is `len` hex digits (either case).
pub(crate) fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Equality that takes the same time wherever the first difference is, so a
/// client cannot learn the expected digest byte by byte. Lengths are public.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ha1_of_rfc_2617_example() {
        // RFC 2617 §3.5: HA1 = MD5("Mufasa:testrealm@host.com:Circle Of Life").
        assert_eq!(
            ha1(
                DigestHash::Md5,
                "Mufasa",
                "testrealm@host.com",
                "Circle Of Life"
            ),
            "939e7578ed9e3c518a452acee763bce9"
        );
    }

    #[test]
    fn rfc_2069_response_without_qop() {
        // RFC 2069 §2.4's example, recomputed (the RFC's printed value is
        // known to be wrong; see its errata).
        let h = ha1(
            DigestHash::Md5,
            "Mufasa",
            "testrealm@host.com",
            "CircleOfLife",
        );
        let r = response(
            Algorithm::Md5,
            &h,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            None,
        );
        assert_eq!(r, "1949323746fe6a43ef61f9606e7febea");
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(hex(&[0x00, 0x7f, 0xff]), "007fff");
        assert!(is_hex("00aAfF", 6));
        assert!(!is_hex("00aAfg", 6));
        assert!(!is_hex("00", 3));
    }
}
