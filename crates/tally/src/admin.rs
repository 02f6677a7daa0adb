//! The system admin: the account that provisions tenants (SPEC §7 role
//! `SystemAdmin`).
//!
//! Its password is kept as an argon2id hash (PHC string: algorithm,
//! parameters and salt included) in `system-admin.phc` in the data
//! directory, written with mode 0600. The file is this node's: the store has
//! no table for API identities yet; when the REST identity work adds one
//! (tenant admins and users, API keys), the hash moves there unchanged.
//!
//! On first start the password is the one given (`--admin-password` or
//! `$TALLY_ADMIN_PASSWORD`) or a generated one, printed once. Giving a
//! password on a later start resets it (the way back in after losing it).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::random;

const FILE: &str = "system-admin.phc";
/// Length of a generated password (about 93 bits, see [`random::password`]).
const GENERATED_LENGTH: usize = 16;

/// The system admin's credentials as the API checks them.
#[derive(Clone)]
pub struct SystemAdmin {
    pub username: String,
    password_hash: String,
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
    /// The stored account is used as it is.
    Existing,
}

impl SystemAdmin {
    /// Loads the account from `data_dir`, creating or resetting it.
    pub fn ensure(
        data_dir: &Path,
        username: &str,
        password: Option<&str>,
    ) -> anyhow::Result<(SystemAdmin, Setup)> {
        let path = data_dir.join(FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text.trim().to_owned()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let (hash, setup) = match (stored, password) {
            (Some(hash), None) => {
                PasswordHash::new(&hash)
                    .map_err(|e| anyhow!("{} is not a password hash: {e}", path.display()))?;
                (hash, Setup::Existing)
            }
            (Some(_), Some(password)) => (write_hash(&path, password)?, Setup::Reset),
            (None, Some(password)) => (
                write_hash(&path, password)?,
                Setup::Created { generated: None },
            ),
            (None, None) => {
                let password = random::password(GENERATED_LENGTH)?;
                (
                    write_hash(&path, &password)?,
                    Setup::Created {
                        generated: Some(password),
                    },
                )
            }
        };
        Ok((
            SystemAdmin {
                username: username.to_owned(),
                password_hash: hash,
            },
            setup,
        ))
    }

    /// Whether `username`/`password` are this account's. Slow on purpose
    /// (argon2id): call it off the async threads.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        // Verify even for a wrong username, so timing does not tell which
        // half was wrong.
        let password_ok = PasswordHash::new(&self.password_hash).is_ok_and(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        });
        password_ok && username == self.username
    }
}

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::encode_b64(&random::bytes::<16>()?).map_err(|e| anyhow!("salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("hashing the admin password: {e}"))
}

fn write_hash(path: &PathBuf, password: &str) -> anyhow::Result<String> {
    let hash = hash_password(password)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, format!("{hash}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-admin-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn created_generated_then_kept_then_reset() {
        let dir = temp_dir("lifecycle");
        let (admin, setup) = SystemAdmin::ensure(&dir, "admin", None).unwrap();
        let Setup::Created {
            generated: Some(password),
        } = setup
        else {
            panic!("no generated password");
        };
        assert!(admin.verify("admin", &password));
        assert!(!admin.verify("admin", "wrong"));
        assert!(!admin.verify("root", &password));
        let stored = std::fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains(&password));

        let (again, setup) = SystemAdmin::ensure(&dir, "admin", None).unwrap();
        assert!(matches!(setup, Setup::Existing));
        assert!(again.verify("admin", &password));

        let (reset, setup) = SystemAdmin::ensure(&dir, "admin", Some("new-password")).unwrap();
        assert!(matches!(setup, Setup::Reset));
        assert!(reset.verify("admin", "new-password"));
        assert!(!reset.verify("admin", &password));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
