//! The one-time move from plaintext SIP passwords to digest HA1s
//! (migration 0007): rows written before it still hold the password in
//! `sip_password`; the binary reads them at start-up, computes the HA1s
//! (the store does no digest arithmetic) and stores them in place of the
//! password, row by row, each only if its password is still the one read.
//! See DESIGN.md, "Storage".

use cdr::{Id, TenantId};

use crate::Store;
use crate::convert::{db_id, get_id};
use crate::db::{Conn, Row, args, with_conn, with_write_tx};
use crate::directory::SipHashes;
use crate::error::StoreError;

/// A user whose SIP password is still stored in plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct PlaintextSipPassword {
    pub user_id: Id,
    pub tenant_id: TenantId,
    /// The digest username.
    pub extension: String,
    /// The tenant's SIP domain: the digest realm.
    pub realm: String,
    pub password: String,
}

impl std::fmt::Debug for PlaintextSipPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaintextSipPassword")
            .field("user_id", &self.user_id)
            .field("extension", &self.extension)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Users whose SIP password is still in plaintext (none once every
    /// row was hashed).
    pub async fn plaintext_sip_passwords(&self) -> Result<Vec<PlaintextSipPassword>, StoreError> {
        with_conn!(&self.pool, |conn| plaintext(conn))
    }

    /// Stores `hashes` in place of the plaintext password `was`; `false`
    /// when the row changed meanwhile (another node hashed it, or the user
    /// was updated or deleted): nothing is written then.
    pub async fn replace_plaintext_sip_password(
        &self,
        user: &PlaintextSipPassword,
        hashes: &SipHashes,
    ) -> Result<bool, StoreError> {
        with_write_tx!(&self.pool, |conn| replace(conn, user, hashes))
    }
}

async fn plaintext(conn: &mut impl Conn) -> Result<Vec<PlaintextSipPassword>, StoreError> {
    conn.fetch_all(
        "SELECT u.id, u.tenant_id, u.extension, u.sip_password, t.sip_domain \
         FROM users u JOIN tenants t ON t.id = u.tenant_id \
         WHERE u.sip_password <> '' ORDER BY u.id",
        &args![],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(PlaintextSipPassword {
            user_id: get_id(row, "id")?,
            tenant_id: get_id(row, "tenant_id")?,
            extension: row.text("extension")?,
            realm: row.text("sip_domain")?,
            password: row.text("sip_password")?,
        })
    })
    .collect()
}

async fn replace(
    conn: &mut impl Conn,
    user: &PlaintextSipPassword,
    hashes: &SipHashes,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "UPDATE users SET sip_password = '', sip_realm = $3, sip_ha1_md5 = $4, \
             sip_ha1_sha256 = $5 \
             WHERE id = $1 AND sip_password = $2 AND sip_password <> ''",
            &args![
                db_id("user_id", user.user_id)?,
                user.password.as_str(),
                hashes.realm.as_str(),
                hashes.md5.as_str(),
                hashes.sha256.as_str(),
            ],
        )
        .await?;
    if n > 0 {
        crate::directory::bump_version(&mut *conn).await?;
    }
    Ok(n > 0)
}
