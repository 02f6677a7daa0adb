//! Secrets at rest (issue 17): the stored secrets the PBX must read back
//! (webhook passwords, bearer tokens and signing secrets, trunk
//! passwords) are sealed with ChaCha20-Poly1305 (RFC 8439, ring's AEAD,
//! the crypto provider rustls already uses) under a 32-byte key the node
//! is given (`TALLY_SECRET_KEY` or `[security] secret_key_file`).
//!
//! A sealed value is `enc:v1:` followed by base64 (standard alphabet, no
//! padding) of a random 96-bit nonce, the ciphertext and the 128-bit tag.
//! The associated data names the column and the row (`trunks.password:`
//! and the trunk's id, …), so a sealed value copied into another row or
//! column does not open. A value without the prefix is plaintext: rows
//! written before a key was set still read, and are sealed by
//! [`Store::seal_secrets`] at start-up or at their next write. Empty
//! values (no secret) stay empty.
//!
//! Without a key nothing is sealed and sealed values do not open: the
//! start-up check fails with a [`StoreError::Secret`] naming the row,
//! as it does with a key that is not the one the rows were sealed with.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::Store;
use crate::db::{Conn, Row, args, with_write_tx};
use crate::error::StoreError;

/// What a sealed value starts with (the version of the format).
pub const SEALED_PREFIX: &str = "enc:v1:";

/// A 32-byte ChaCha20-Poly1305 key.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// 64 hexadecimal digits, or base64 (standard or URL-safe alphabet,
    /// padded or not) of 32 bytes; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or("neither 64 hexadecimal digits nor base64")?
        };
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes, not 32", b.len()))?;
        Ok(SecretKey(bytes))
    }
}

/// Seals and opens stored secrets; without a key, a pass-through for
/// plaintext.
#[derive(Clone, Default)]
pub(crate) struct Sealer {
    key: Option<Arc<LessSafeKey>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key", &self.key.is_some())
            .finish()
    }
}

/// Whether a stored value is sealed.
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

impl Sealer {
    pub(crate) fn new(key: Option<&SecretKey>) -> Self {
        Sealer {
            key: key.map(|k| {
                Arc::new(LessSafeKey::new(
                    UnboundKey::new(&CHACHA20_POLY1305, &k.0).expect("a 32-byte key"),
                ))
            }),
        }
    }

    pub(crate) fn has_key(&self) -> bool {
        self.key.is_some()
    }

    /// What to store for `plain` in `place` (column and row, the
    /// associated data).
    pub(crate) fn seal(&self, place: &str, plain: &str) -> Result<String, StoreError> {
        let Some(key) = &self.key else {
            if is_sealed(plain) {
                return Err(StoreError::Secret(format!(
                    "{place}: a secret starting with {SEALED_PREFIX:?} cannot be stored \
                     without a secret key"
                )));
            }
            return Ok(plain.to_owned());
        };
        if plain.is_empty() {
            return Ok(String::new());
        }
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Secret("the system random source failed".into()))?;
        let mut data = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(place.as_bytes()),
            &mut data,
        )
        .map_err(|_| StoreError::Secret(format!("{place}: sealing failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD_NO_PAD.encode(out)))
    }

    /// The plaintext of a stored value (plaintext rows as they are).
    pub(crate) fn open(&self, place: &str, stored: &str) -> Result<String, StoreError> {
        let Some(sealed) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let Some(key) = &self.key else {
            return Err(StoreError::Secret(format!(
                "{place} is encrypted and no secret key is configured \
                 (TALLY_SECRET_KEY or [security] secret_key_file)"
            )));
        };
        let wrong = || {
            StoreError::Secret(format!(
                "{place} does not decrypt with the configured secret key: \
                 is it the key the database was written with?"
            ))
        };
        let bytes = STANDARD_NO_PAD.decode(sealed).map_err(|_| wrong())?;
        if bytes.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(wrong());
        }
        let (nonce, data) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = data.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(place.as_bytes()), &mut data)
            .map_err(|_| wrong())?;
        String::from_utf8(plain.to_vec()).map_err(|_| wrong())
    }

    pub(crate) fn seal_opt(
        &self,
        place: &str,
        plain: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        plain.map(|p| self.seal(place, p)).transpose()
    }

    pub(crate) fn open_opt(
        &self,
        place: &str,
        stored: Option<String>,
    ) -> Result<Option<String>, StoreError> {
        stored.map(|s| self.open(place, &s)).transpose()
    }
}

/// The associated data of a webhook endpoint's `column`.
pub(crate) fn webhook_place(column: &str, tenant: i64) -> String {
    format!("webhook_endpoints.{column}:{tenant}")
}

/// The associated data of a trunk's password.
pub(crate) fn trunk_place(trunk: i64) -> String {
    format!("trunks.password:{trunk}")
}

/// What [`Store::seal_secrets`] found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealReport {
    /// Values that were sealed already (and opened with the key).
    pub sealed_before: usize,
    /// Plaintext values sealed now.
    pub sealed_now: usize,
    /// Plaintext values left as they are (no key).
    pub plaintext: usize,
}

const WEBHOOK_COLUMNS: [&str; 4] = ["password", "token", "secret", "previous_secret"];

impl Store {
    /// The start-up pass over every stored secret, in one transaction:
    /// each sealed value must open with this node's key (else a
    /// [`StoreError::Secret`] naming the row, and nothing is changed),
    /// and with a key each plaintext one is sealed (written only if the
    /// row still holds that plaintext, so nodes starting together do not
    /// undo each other). Without a key, plaintext values are counted.
    pub async fn seal_secrets(&self) -> Result<SealReport, StoreError> {
        let sealer = self.sealer.clone();
        with_write_tx!(&self.pool, |conn| async {
            let mut report = SealReport::default();
            let rows = conn
                .fetch_all(
                    "SELECT tenant_id, password, token, secret, previous_secret \
                     FROM webhook_endpoints ORDER BY tenant_id",
                    &args![],
                )
                .await?;
            for row in &rows {
                let tenant = row.int("tenant_id")?;
                for column in WEBHOOK_COLUMNS {
                    let Some(value) = row.opt_text(column)? else {
                        continue;
                    };
                    let place = webhook_place(column, tenant);
                    if let Some(sealed) = check(&sealer, &place, &value, &mut report)? {
                        // The column name is one of four constants.
                        let sql = match column {
                            "password" => {
                                "UPDATE webhook_endpoints SET password = $1 \
                                           WHERE tenant_id = $2 AND password = $3"
                            }
                            "token" => {
                                "UPDATE webhook_endpoints SET token = $1 \
                                        WHERE tenant_id = $2 AND token = $3"
                            }
                            "secret" => {
                                "UPDATE webhook_endpoints SET secret = $1 \
                                         WHERE tenant_id = $2 AND secret = $3"
                            }
                            _ => {
                                "UPDATE webhook_endpoints SET previous_secret = $1 \
                                  WHERE tenant_id = $2 AND previous_secret = $3"
                            }
                        };
                        conn.execute(sql, &args![sealed.as_str(), tenant, value.as_str()])
                            .await?;
                    }
                }
            }
            let rows = conn
                .fetch_all("SELECT id, password FROM trunks ORDER BY id", &args![])
                .await?;
            for row in &rows {
                let id = row.int("id")?;
                let value = row.text("password")?;
                if let Some(sealed) = check(&sealer, &trunk_place(id), &value, &mut report)? {
                    conn.execute(
                        "UPDATE trunks SET password = $1 WHERE id = $2 AND password = $3",
                        &args![sealed.as_str(), id, value.as_str()],
                    )
                    .await?;
                }
            }
            Ok::<SealReport, StoreError>(report)
        })
    }

    /// Whether this store seals secrets (a key was given).
    pub fn seals_secrets(&self) -> bool {
        self.sealer.has_key()
    }
}

/// Checks one stored value; `Some(sealed)` when it is to be rewritten.
fn check(
    sealer: &Sealer,
    place: &str,
    value: &str,
    report: &mut SealReport,
) -> Result<Option<String>, StoreError> {
    if value.is_empty() {
        return Ok(None);
    }
    if is_sealed(value) {
        sealer.open(place, value)?;
        report.sealed_before += 1;
        return Ok(None);
    }
    if !sealer.has_key() {
        report.plaintext += 1;
        return Ok(None);
    }
    report.sealed_now += 1;
    sealer.seal(place, value).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_bytes([n; 32])
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_place() {
        let sealer = Sealer::new(Some(&key(1)));
        let a = sealer.seal("trunks.password:1", "hunter2").unwrap();
        let b = sealer.seal("trunks.password:1", "hunter2").unwrap();
        assert!(a.starts_with(SEALED_PREFIX) && !a.contains("hunter2"));
        assert_ne!(a, b, "a fresh nonce per value");
        assert_eq!(sealer.open("trunks.password:1", &a).unwrap(), "hunter2");
        let moved = sealer.open("trunks.password:2", &a).unwrap_err();
        assert!(matches!(moved, StoreError::Secret(_)), "{moved}");
        let other = Sealer::new(Some(&key(2))).open("trunks.password:1", &a);
        assert!(other.unwrap_err().to_string().contains("does not decrypt"));
        let none = Sealer::new(None).open("trunks.password:1", &a);
        assert!(none.unwrap_err().to_string().contains("no secret key"));
        let mut tampered = a.clone();
        tampered.push('A');
        assert!(sealer.open("trunks.password:1", &tampered).is_err());
    }

    #[test]
    fn plaintext_and_empty_values_pass() {
        let sealer = Sealer::new(Some(&key(1)));
        assert_eq!(sealer.open("x", "legacy").unwrap(), "legacy");
        assert_eq!(sealer.seal("x", "").unwrap(), "");
        let plain = Sealer::new(None);
        assert_eq!(plain.seal("x", "s").unwrap(), "s");
        assert!(plain.seal("x", "enc:v1:abc").is_err());
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(SecretKey::parse(&hex).unwrap().0[31], 0xff);
        let b64 = STANDARD_NO_PAD.encode([7u8; 32]);
        assert_eq!(SecretKey::parse(&format!(" {b64}\n")).unwrap().0, [7u8; 32]);
        let padded = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert_eq!(SecretKey::parse(&padded).unwrap().0, [9u8; 32]);
        assert!(SecretKey::parse("abcd").is_err());
        assert!(SecretKey::parse(&"zz".repeat(32)).is_err());
        assert!(
            SecretKey::parse(&STANDARD_NO_PAD.encode([1u8; 16]))
                .unwrap_err()
                .contains("16 bytes")
        );
    }
}
