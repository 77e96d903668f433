//! The catalog's own backup (docs/operations.md "Recovering the catalog"): after each
//! successful backup run, bmsd copies its catalog with SQLite's online backup (a consistent
//! copy while it goes on using it) into `catalog-copy/catalog.db` in the state dir and backs
//! that directory up into the run's target under the reserved job name `_catalog`. Dedup keeps
//! repeated copies small. One copy is made at a time: backups that end while one is being
//! stored are covered by a single further copy after it. Once a target holds more than
//! [`FORGET_ABOVE`] copies, all but the newest [`KEEP_LAST`] and the newest of each of the last
//! [`KEEP_DAILY`] days are forgotten (their data goes with the target's next prune).

use crate::state::SharedRef;
use crate::targets::Purpose;
use bms_engine::retention::Policy;
use bms_engine::BackupOptions;
use bms_proto::api::{RunStats, SnapshotRecord, TargetSpec, CATALOG_JOB};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tracing::{info, warn};

/// The directory of the copy in the state dir; the copy is removed once it is stored.
pub const COPY_DIR: &str = "catalog-copy";
/// The file name of the copy, in its snapshot and when restored.
pub const COPY_FILE: &str = "catalog.db";
/// Catalog snapshots kept per target: the newest ones...
pub const KEEP_LAST: u32 = 10;
/// ...and the newest of each of this many days.
pub const KEEP_DAILY: u32 = 30;
/// Older copies are forgotten once a target holds more than this many.
pub const FORGET_ABOVE: usize = 2 * (KEEP_LAST + KEEP_DAILY) as usize;

/// A test hook of debug builds (docs/protocol.md "Test hooks"): `off` stops the catalog's own
/// backup, so that tests of other things see only their own snapshots.
const TEST_ENV: &str = "BMS_TEST_CATALOG_BACKUP";

/// The one copy in progress and the target of the next one, if asked for meanwhile.
#[derive(Default)]
pub struct Copies {
    state: Mutex<(bool, Option<String>)>,
}

impl Copies {
    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, Option<String>)> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

fn disabled() -> bool {
    cfg!(debug_assertions) && std::env::var(TEST_ENV).is_ok_and(|v| v == "off")
}

/// Asks for a copy of the catalog in `target` after a successful backup run into it.
pub fn after_backup(shared: &SharedRef, copies: &Arc<Copies>, target: String) {
    // A daemon that is stopping starts no copy (the catalog is whole in catalog.db then).
    if disabled() || shared.shutdown.is_cancelled() {
        return;
    }
    {
        let mut st = copies.lock();
        if st.0 {
            st.1 = Some(target);
            return;
        }
        st.0 = true;
    }
    let (shared, copies) = (shared.clone(), copies.clone());
    tokio::spawn(async move {
        let mut next = Some(target);
        while let Some(t) = next {
            if shared.shutdown.is_cancelled() {
                info!(target = %t, "bmsd is stopping: no catalog copy into target '{t}' now");
            } else if let Err(e) = store_copy(&shared, &t).await {
                warn!(target = %t, "cannot back up the catalog into target '{t}': {e}; the next successful backup tries again");
            }
            let mut st = copies.lock();
            next = st.1.take();
            if next.is_none() {
                st.0 = false;
            }
        }
    });
}

/// A new, empty, private file for the copy (the directory 0700, the file 0600).
fn fresh_copy_file(state_dir: &Path) -> Result<PathBuf, String> {
    let dir = state_dir.join(COPY_DIR);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(COPY_FILE);
    match std::fs::remove_file(&file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!(
                "cannot remove the old copy {}: {e}",
                file.display()
            ))
        }
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .map_err(|e| format!("cannot create {}: {e}", file.display()))?;
    Ok(file)
}

async fn store_copy(shared: &SharedRef, target: &str) -> Result<(), String> {
    let name = target.to_owned();
    let spec: TargetSpec = shared
        .catalog
        .call(move |c| c.get_target(&name))
        .await
        .map_err(|e| e.message)?
        .spec;
    let state_dir = shared.config().config.state_dir.clone();
    let file = fresh_copy_file(&state_dir)?;
    let dest = file.clone();
    shared
        .catalog
        .call(move |c| c.copy_to(&dest))
        .await
        .map_err(|e| e.message)?;
    let dir = state_dir.join(COPY_DIR);
    let result = tokio::task::spawn_blocking(move || backup_copy(&spec, &dir))
        .await
        .map_err(|e| format!("the catalog backup task failed: {e}"));
    let _ = std::fs::remove_file(&file);
    let (rec, forgotten) = result??;
    let id = rec.id.clone();
    let (t, uid) = (target.to_owned(), shared.daemon_uid);
    shared
        .catalog
        .call(move |c| {
            c.record_snapshot(&rec)?;
            c.forget_snapshots(
                crate::catalog::Actor { uid },
                &t,
                &forgotten,
                "older catalog copies beyond those bmsd keeps",
            )
        })
        .await
        .map_err(|e| e.message)?;
    info!(target = %target, snapshot = %id, "catalog backed up into target '{target}' as snapshot {id}");
    Ok(())
}

/// Backs the copy's directory up into the target and forgets the copies it no longer keeps
/// (blocking). Returns the new snapshot's record and the ids forgotten.
fn backup_copy(spec: &TargetSpec, dir: &Path) -> Result<(SnapshotRecord, Vec<String>), String> {
    let repo = crate::runner::open_repo(spec, Purpose::Backup).map_err(|e| e.to_string())?;
    let host = bms_engine::fsutil::hostname();
    let opts = BackupOptions {
        sources: vec![dir.to_owned()],
        excludes: vec![],
        one_file_system: true,
        job: CATALOG_JOB.into(),
        host: host.clone(),
        tags: vec!["catalog".into()],
        parent: None,
        force_full: false,
    };
    let no = AtomicBool::new(false);
    let s = repo
        .backup(&opts, &|_| {}, &no)
        .map_err(|e| e.to_string())?;
    let rec = SnapshotRecord {
        id: s.snapshot_id.clone(),
        target: spec.name.clone(),
        job: CATALOG_JOB.into(),
        time: crate::catalog::catalog_time(&s.time),
        host,
        paths: s.paths.clone(),
        partial: s.partial,
        run_id: None,
        stats: RunStats {
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unmodified: s.files_unmodified,
            bytes_read: s.bytes_read,
            bytes_total: s.bytes_total,
            bytes_added: s.bytes_added,
            chunks_new: s.chunks_new,
            chunks_total: s.chunks_total,
            warnings: s.warnings_count,
        },
    };
    let policy = Policy {
        last: KEEP_LAST,
        daily: KEEP_DAILY,
        ..Default::default()
    };
    // Forgetting takes the exclusive lock: only once the copies have piled up.
    let copies = repo
        .snapshots()
        .map(|l| l.iter().filter(|i| i.snapshot.job == CATALOG_JOB).count())
        .unwrap_or(0);
    if copies <= FORGET_ABOVE {
        return Ok((rec, Vec::new()));
    }
    let forgotten = match repo.forget_policy(
        &policy,
        &|i| i.snapshot.job == CATALOG_JOB,
        &crate::retention::time_zone(),
        false,
        &no,
    ) {
        Ok(f) => f.removed,
        Err(e) => {
            warn!(target = %spec.name, "cannot forget older catalog copies: {e}");
            Vec::new()
        }
    };
    Ok((rec, forgotten))
}
