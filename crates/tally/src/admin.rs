//! The system admin: the account that provisions tenants (SPEC §7 role
//! `SystemAdmin`).
//!
//! Its password is kept as an argon2id hash (PHC string: algorithm,
//! parameters and salt included) in the store's `system_accounts` table,
//! so every node sharing a PostgreSQL database accepts it and a reset on
//! one node holds on all. Releases before the REST identity work kept the
//! hash in `system-admin.phc` in the data directory: when the store has no
//! hash yet and that file exists, it is imported once and removed.
//!
//! On first start the password is the one given (`--admin-password` or
//! `$TALLY_ADMIN_PASSWORD`) or a generated one, printed once. Giving a
//! password on a later start resets it (the way back in after losing it):
//! it clears the account's sign-in lock-out, and when the password is not
//! the stored one it revokes every system-admin token (security review,
//! findings 5 and 6).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use store::Store;

use crate::{clock, random};

/// Where releases before the store-backed identity kept the hash.
pub const LEGACY_FILE: &str = "system-admin.phc";
/// Length of a generated password (about 93 bits, see [`random::password`]).
const GENERATED_LENGTH: usize = 16;

/// The system admin's account as the API checks it: its name, and the
/// store that holds its hash.
#[derive(Clone)]
pub struct SystemAdmin {
    pub username: String,
    store: Store,
}

impl std::fmt::Debug for SystemAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemAdmin")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What [`SystemAdmin::ensure`] did.
pub enum Setup {
    /// First start: the account was created; the password is `Some` when
    /// it was generated (to be printed once).
    Created { generated: Option<String> },
    /// The given password replaced the stored one.
    Reset,
    /// The hash of `system-admin.phc` was moved into the store.
    Imported,
    /// The stored account is used as it is.
    Existing,
}

impl SystemAdmin {
    /// Loads the account from the store, importing `data_dir`'s legacy
    /// file, creating or resetting it.
    pub async fn ensure(
        store: &Store,
        data_dir: &Path,
        username: &str,
        password: Option<&str>,
    ) -> anyhow::Result<(SystemAdmin, Setup)> {
        let stored = store.system_password_hash(username).await?;
        let legacy = data_dir.join(LEGACY_FILE);
        let file = match std::fs::read_to_string(&legacy) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", legacy.display())),
        };
        let now = clock::unix_millis();
        let setup = match (password, stored, file) {
            (Some(password), stored, file) => {
                // The way back in clears the account's lock-out (finding
                // 6), whoever kept it locked.
                crate::api::clear_system_account_locks(store, username).await?;
                let unchanged = stored
                    .as_deref()
                    .is_some_and(|hash| verify_password(hash, password));
                let hash = hash_password(password)?;
                store.set_system_password_hash(username, &hash, now).await?;
                if stored.is_some() && !unchanged {
                    // A new password ends every session of the old one
                    // (finding 5): whoever stole a token loses it too.
                    let revoked = store.revoke_system_admin_tokens(now).await?;
                    tracing::info!(
                        revoked,
                        "system admin password changed: its tokens are revoked"
                    );
                }
                if stored.is_some() || file.is_some() {
                    Setup::Reset
                } else {
                    Setup::Created { generated: None }
                }
            }
            (None, Some(hash), _) => {
                PasswordHash::new(&hash)
                    .map_err(|e| anyhow!("the stored system admin hash is unreadable: {e}"))?;
                Setup::Existing
            }
            (None, None, Some(hash)) => {
                PasswordHash::new(&hash)
                    .map_err(|e| anyhow!("{} is not a password hash: {e}", legacy.display()))?;
                store.set_system_password_hash(username, &hash, now).await?;
                Setup::Imported
            }
            (None, None, None) => {
                let password = random::password(GENERATED_LENGTH)?;
                let hash = hash_password(&password)?;
                store.set_system_password_hash(username, &hash, now).await?;
                Setup::Created {
                    generated: Some(password),
                }
            }
        };
        // The store holds the hash now; a stale file would only mislead.
        if legacy.exists() {
            std::fs::remove_file(&legacy)
                .with_context(|| format!("cannot remove {}", legacy.display()))?;
        }
        Ok((
            SystemAdmin {
                username: username.to_owned(),
                store: store.clone(),
            },
            setup,
        ))
    }

    /// Whether `username`/`password` are this account's. The hash is read
    /// from the store at each call (a reset on another node holds here);
    /// the argon2id check runs on the blocking pool.
    pub async fn verify(&self, username: &str, password: &str) -> anyhow::Result<bool> {
        let hash = self.store.system_password_hash(&self.username).await?;
        let name_ok = username == self.username;
        let password = password.to_owned();
        // Verify even for a wrong username, so timing does not tell which
        // half was wrong.
        let password_ok = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => verify_password(&hash, &password),
            None => {
                burn_verification(&password);
                false
            }
        })
        .await?;
        Ok(password_ok && name_ok)
    }
}

/// An argon2id PHC string of `password`, with a fresh salt. Slow on
/// purpose: call it off the async threads.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&random::bytes::<16>()?).map_err(|e| anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("hashing a password: {e}"))
}

/// Whether `password` matches the PHC string `hash`. Slow on purpose.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// Spends the time of one verification, for an account that does not
/// exist or has no password: an unknown user must not answer faster.
pub fn burn_verification(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default());
    let _ = verify_password(hash, password);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    async fn store(dir: &Path) -> Store {
        Store::open(&format!("sqlite:{}", dir.join("db.sqlite").display()))
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn created_generated_then_kept_then_reset() {
        let dir = temp_dir("lifecycle");
        let store = store(&dir).await;
        let (admin, setup) = SystemAdmin::ensure(&store, &dir, "admin", None)
            .await
            .unwrap();
        let Setup::Created {
            generated: Some(password),
        } = setup
        else {
            panic!("no generated password");
        };
        assert!(admin.verify("admin", &password).await.unwrap());
        assert!(!admin.verify("admin", "wrong").await.unwrap());
        assert!(!admin.verify("root", &password).await.unwrap());
        let stored = store.system_password_hash("admin").await.unwrap().unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains(&password));

        let (again, setup) = SystemAdmin::ensure(&store, &dir, "admin", None)
            .await
            .unwrap();
        assert!(matches!(setup, Setup::Existing));
        assert!(again.verify("admin", &password).await.unwrap());

        let (reset, setup) = SystemAdmin::ensure(&store, &dir, "admin", Some("new-password"))
            .await
            .unwrap();
        assert!(matches!(setup, Setup::Reset));
        assert!(reset.verify("admin", "new-password").await.unwrap());
        assert!(!reset.verify("admin", &password).await.unwrap());
        // The first handle reads the store too: the reset holds for it.
        assert!(admin.verify("admin", "new-password").await.unwrap());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_legacy_file_is_imported_once() {
        let dir = temp_dir("legacy");
        let hash = hash_password("from-the-file").unwrap();
        std::fs::write(dir.join(LEGACY_FILE), format!("{hash}\n")).unwrap();
        let store = store(&dir).await;
        let (admin, setup) = SystemAdmin::ensure(&store, &dir, "admin", None)
            .await
            .unwrap();
        assert!(matches!(setup, Setup::Imported));
        assert!(admin.verify("admin", "from-the-file").await.unwrap());
        assert!(!dir.join(LEGACY_FILE).exists(), "the file is removed");
        let (_, setup) = SystemAdmin::ensure(&store, &dir, "admin", None)
            .await
            .unwrap();
        assert!(matches!(setup, Setup::Existing));

        // A corrupt file is refused, not silently replaced.
        let dir2 = temp_dir("legacy-bad");
        std::fs::write(dir2.join(LEGACY_FILE), "not a hash\n").unwrap();
        let store2 = self::store(&dir2).await;
        assert!(
            SystemAdmin::ensure(&store2, &dir2, "admin", None)
                .await
                .is_err()
        );
        store.close().await;
        store2.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&dir2);
    }
}
