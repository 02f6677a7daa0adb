//! Standard Webhooks signing (spec 1.0.0, symmetric `v1`).
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}` with the
//! exact body bytes; the signature is `v1,` + base64(HMAC-SHA256(key,
//! content)); the header carries one space-separated entry per active
//! secret, so a receiver that knows either the old or the new secret
//! accepts the request during a rotation. Secrets are shown as `whsec_` +
//! base64 of 24 to 64 random bytes (the spec's bounds).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Smallest and largest key the spec allows (192 and 512 bits).
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;
const PREFIX: &str = "whsec_";

/// Why a `whsec_…` text is not a usable secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with {PREFIX}")]
    MissingPrefix,
    #[error("must be {PREFIX} followed by standard base64")]
    NotBase64,
    #[error("must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, not {0}")]
    KeyLength(usize),
}

/// A signing secret: its `whsec_…` text and the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    text: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::KeyLength(key.len()));
        }
        Ok(Secret {
            text: text.to_owned(),
            key,
        })
    }

    /// A fresh secret of 32 random bytes.
    pub fn generate() -> std::io::Result<Secret> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).map_err(std::io::Error::other)?;
        Ok(Secret {
            text: format!("{PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn mac(&self, id: &str, timestamp: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// `v1,<base64 signature>`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }

    /// Whether any `v1` entry of a `webhook-signature` header is this
    /// secret's signature (constant-time comparison).
    pub fn verify(&self, id: &str, timestamp: u64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|entry| {
            let Some(encoded) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(encoded) else {
                return false;
            };
            self.mac(id, timestamp, body).verify_slice(&tag).is_ok()
        })
    }
}

/// The `webhook-signature` value for every active secret, space-separated
/// (current first); `None` without secrets.
pub fn signature_header(
    secrets: &[&Secret],
    id: &str,
    timestamp: u64,
    body: &[u8],
) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    Some(
        secrets
            .iter()
            .map(|s| s.sign(id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks reference libraries' test vector (spec repo,
    // libraries/rust and the other language libraries' tests).
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: u64 = 1614265330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_standard_webhooks_test_vector() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY.as_bytes()), EXPECTED);
        assert!(secret.verify(ID, TIMESTAMP, BODY.as_bytes(), EXPECTED));
    }

    #[test]
    fn the_reference_anchor_vector() {
        // delivery-anchors.md §1: recomputed from the Rust library's tests.
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            secret.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let secret = Secret::parse(SECRET).unwrap();
        let body = BODY.as_bytes();
        assert!(!secret.verify(ID, TIMESTAMP + 1, body, EXPECTED));
        assert!(!secret.verify("msg_other", TIMESTAMP, body, EXPECTED));
        assert!(!secret.verify(ID, TIMESTAMP, br#"{"test": 2432232315}"#, EXPECTED));
        let other = Secret::generate().unwrap();
        assert!(!other.verify(ID, TIMESTAMP, body, EXPECTED));
        assert!(!secret.verify(
            ID,
            TIMESTAMP,
            body,
            "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        ));
        assert!(!secret.verify(ID, TIMESTAMP, body, "v1,not-base64!"));
    }

    #[test]
    fn rotation_signs_with_every_active_secret() {
        let old = Secret::parse(SECRET).unwrap();
        let new = Secret::generate().unwrap();
        let header = signature_header(&[&new, &old], ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert!(old.verify(ID, TIMESTAMP, BODY.as_bytes(), &header));
        assert!(new.verify(ID, TIMESTAMP, BODY.as_bytes(), &header));
        assert_eq!(signature_header(&[], ID, TIMESTAMP, b""), None);
    }

    #[test]
    fn bad_secrets_are_refused_with_a_reason() {
        assert!(
            Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .to_string()
                .contains("whsec_")
        );
        assert_eq!(
            Secret::parse("whsec_%%%").unwrap_err(),
            SecretError::NotBase64
        );
        // 16 bytes: too short.
        assert_eq!(
            Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAA==").unwrap_err(),
            SecretError::KeyLength(16)
        );
        assert!(SecretError::KeyLength(16).to_string().contains("24"));
        let generated = Secret::generate().unwrap();
        assert_eq!(Secret::parse(generated.as_str()).unwrap(), generated);
    }
}
