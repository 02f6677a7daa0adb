//! `recordings.retention_days`: once an hour, recordings older than that
//! lose their row and then their file (a crash in between leaves a file
//! with no row, never a row whose file is gone on purpose).

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdr::UnixMillis;
use store::Store;
use tokio::task::JoinHandle;

const EVERY: Duration = Duration::from_secs(3600);
/// Rows per transaction: keeps the write lock short.
const BATCH: u32 = 200;

/// Prunes everything created before `before`; returns how many went.
pub async fn prune_once(
    store: &Store,
    dir: &Path,
    before: UnixMillis,
) -> Result<usize, store::StoreError> {
    let mut total = 0;
    loop {
        let pruned = store.prune_recordings(before, BATCH).await?;
        for r in &pruned {
            // Paths are written by the PBX as `tenant/session.wav`.
            if r.path.split('/').any(|p| p == ".." || p.is_empty()) {
                continue;
            }
            let file = dir.join(&r.path);
            if let Err(e) = tokio::fs::remove_file(&file).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %file.display(), error = %e, "expired recording not deleted");
            }
        }
        total += pruned.len();
        if pruned.len() < BATCH as usize {
            return Ok(total);
        }
    }
}

/// The hourly task; `None` when recordings are kept forever (0 days).
pub fn spawn(store: Store, dir: PathBuf, days: u32) -> Option<JoinHandle<()>> {
    if days == 0 {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let keep_ms = u64::from(days) * 24 * 3600 * 1000;
            let before = UnixMillis(crate::clock::unix_ms().saturating_sub(keep_ms));
            match prune_once(&store, &dir, before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "expired recordings deleted"),
                Err(e) => {
                    tracing::warn!(error = %e, "recording retention failed; retrying in an hour")
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use cdr::{Id, SessionId, TenantId};
    use store::{Recording, Tenant};

    use super::*;

    #[tokio::test]
    async fn expired_rows_and_files_go_young_ones_stay() {
        let dir = std::env::temp_dir().join(format!("tally-rec-retention-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("1")).unwrap();
        let store = Store::open(&format!("sqlite:{}", dir.join("db.sqlite").display()))
            .await
            .unwrap();
        let tenant = TenantId::from(Id::from_u64(1));
        store
            .create_tenant(&Tenant::new(tenant, "t", "t.example", UnixMillis(0)))
            .await
            .unwrap();
        for (n, created) in [(10u64, 1_000u64), (20, 5_000)] {
            let path = format!("1/{n}.wav");
            std::fs::write(dir.join(&path), b"RIFF").unwrap();
            store
                .insert_recording(&Recording {
                    id: Id::from_u64(n + 1),
                    tenant_id: tenant,
                    session_id: SessionId::from(Id::from_u64(n)),
                    caller: "101".into(),
                    callee: "102".into(),
                    started_at: UnixMillis(created),
                    duration_ms: 1000,
                    size_bytes: 4,
                    path,
                    created_at: UnixMillis(created),
                })
                .await
                .unwrap();
        }
        assert_eq!(
            prune_once(&store, &dir, UnixMillis(2_000)).await.unwrap(),
            1
        );
        assert!(!dir.join("1/10.wav").exists());
        assert!(dir.join("1/20.wav").exists());
        assert_eq!(
            prune_once(&store, &dir, UnixMillis(2_000)).await.unwrap(),
            0
        );
        assert!(spawn(store, dir.clone(), 0).is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
