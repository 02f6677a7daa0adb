//! The key that seals stored secrets (webhook credentials, trunk
//! passwords; `store::SecretKey`, README "Secrets at rest"): from
//! `[security] secret_key_file`, else from the environment variable
//! `TALLY_SECRET_KEY`; 32 bytes written as 64 hexadecimal digits or
//! base64. A file or variable that is set but does not hold such a key
//! stops the start: running on without the key the operator meant to
//! give would store new secrets in plaintext.

use anyhow::{Context as _, bail};
use store::SecretKey;

use crate::config::Config;

pub const SECRET_KEY_ENV: &str = "TALLY_SECRET_KEY";

/// The configured key, `None` when neither the file nor the variable is
/// set.
pub fn load(config: &Config) -> anyhow::Result<Option<SecretKey>> {
    from_sources(
        config.security.secret_key_file.as_deref(),
        std::env::var(SECRET_KEY_ENV).ok().as_deref(),
    )
}

fn from_sources(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> anyhow::Result<Option<SecretKey>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading [security] secret_key_file {}", path.display()))?;
        return SecretKey::parse(&text).map(Some).map_err(|e| {
            anyhow::anyhow!(
                "[security] secret_key_file {}: not a 32-byte key ({e})",
                path.display()
            )
        });
    }
    match env {
        None => Ok(None),
        Some(text) if text.trim().is_empty() => bail!("{SECRET_KEY_ENV} is set but empty"),
        Some(text) => SecretKey::parse(text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{SECRET_KEY_ENV}: not a 32-byte key ({e})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_wins_and_bad_keys_stop_the_start() {
        let dir = std::env::temp_dir().join(format!("tally-secret-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, format!("{}\n", "ab".repeat(32))).unwrap();
        let hex = "cd".repeat(32);
        assert!(from_sources(Some(&file), Some(&hex)).unwrap().is_some());
        assert!(from_sources(None, Some(&hex)).unwrap().is_some());
        assert!(from_sources(None, None).unwrap().is_none());
        let short = from_sources(None, Some("abcd")).unwrap_err().to_string();
        assert!(short.contains(SECRET_KEY_ENV), "{short}");
        assert!(from_sources(None, Some(" ")).is_err());
        std::fs::write(&file, "not a key").unwrap();
        let bad = from_sources(Some(&file), None).unwrap_err().to_string();
        assert!(bad.contains("secret_key_file"), "{bad}");
        let missing = from_sources(Some(&dir.join("none")), None).unwrap_err();
        assert!(format!("{missing:#}").contains("secret_key_file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
