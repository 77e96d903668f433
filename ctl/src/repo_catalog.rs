//! `bmsctl repo restore-catalog`: bmsd's catalog taken back from the catalog snapshot that bmsd
//! stores in its targets after each successful backup (docs/operations.md "Recovering the
//! catalog"), for a machine that lost its state dir.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bms_engine::{Overwrite, RestoreOptions, SnapshotInfo};
use bms_proto::api::CATALOG_JOB;

use crate::error::{CliError, CliResult};
use crate::repo::{fail, interrupt_flag, json_out, open};

#[derive(Debug, clap::Args)]
pub struct RestoreCatalogArgs {
    #[arg(value_name = "PATH")]
    pub repo: PathBuf,
    /// bmsd's state dir to put `catalog.db` in (created 0700 if missing); it must not hold a
    /// catalog already.
    #[arg(long, value_name = "STATE_DIR")]
    pub to: PathBuf,
    /// The catalog snapshot to restore (id or unique prefix of 8+ hex characters; default: the
    /// newest snapshot of job `_catalog`).
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
}

fn pick(list: &[SnapshotInfo], spec: Option<&str>, repo: &Path) -> CliResult<SnapshotInfo> {
    let catalogs: Vec<SnapshotInfo> = list
        .iter()
        .filter(|s| s.snapshot.job == CATALOG_JOB)
        .cloned()
        .collect();
    let found = match spec {
        Some(spec) => bms_engine::snapshot::resolve(&catalogs, spec)
            .map_err(|e| {
                CliError::failure(format!(
                    "{e} among the catalog snapshots (job {CATALOG_JOB}) of {}: list them with \
                     `bmsctl repo snapshots {} --job {CATALOG_JOB}`",
                    repo.display(),
                    repo.display()
                ))
            })?
            .clone(),
        None => catalogs
            .iter()
            .max_by_key(|s| (s.snapshot.unix_nanos(), s.id.clone()))
            .cloned()
            .ok_or_else(|| {
                CliError::failure(format!(
                    "{} holds no catalog snapshot (job {CATALOG_JOB}): bmsd stores one in a \
                     target after each successful backup run into it; try the repository of \
                     another target, or rebuild the catalog with `bmsctl catalog rebuild`",
                    repo.display()
                ))
            })?,
    };
    Ok(found)
}

pub fn restore_catalog(a: &RestoreCatalogArgs, json: bool) -> CliResult {
    let db = a.to.join("catalog.db");
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let p = a.to.join(f);
        if p.symlink_metadata().is_ok() {
            return Err(CliError::failure(format!(
                "{} exists: bmsd's state dir {} holds a catalog already; stop bmsd and move \
                 catalog.db with its -wal and -shm files aside first, or give another --to",
                p.display(),
                a.to.display()
            )));
        }
    }
    let r = open(&a.repo)?;
    let list = r.snapshots().map_err(fail)?;
    let snap = pick(&list, a.snapshot.as_deref(), &a.repo)?;
    let Some(dir) = snap.snapshot.paths.first() else {
        return Err(CliError::failure(format!(
            "catalog snapshot {} records no path: it is not one bmsd made",
            snap.short_id
        )));
    };
    let inside = format!("{}/catalog.db", dir.trim_end_matches('/'));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(&a.to)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", a.to.display())))?;
    let tmp =
        a.to.join(format!(".restore-catalog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let opts = RestoreOptions {
        snapshot: snap.id.clone(),
        target: tmp.clone(),
        paths: vec![PathBuf::from(&inside)],
        dry_run: false,
        overwrite: Overwrite::Never,
    };
    let result = r.restore(&opts, &|_| {}, &*interrupt_flag()?);
    let placed = result.map_err(fail).and_then(|s| {
        if !s.errors.is_empty() || s.files != 1 {
            return Err(CliError::failure(format!(
                "catalog snapshot {} did not restore its catalog.db ({} files; {}): check the \
                 repository with `bmsctl repo verify {}`",
                snap.short_id,
                s.files,
                s.errors.join("; "),
                a.repo.display()
            )));
        }
        let restored = crate::snapshot::dest(&tmp, &inside);
        std::fs::set_permissions(&restored, std::fs::Permissions::from_mode(0o600))
            .and_then(|_| std::fs::rename(&restored, &db))
            .map_err(|e| {
                CliError::failure(format!("cannot put the catalog at {}: {e}", db.display()))
            })
    });
    let _ = std::fs::remove_dir_all(&tmp);
    placed?;
    if json {
        json_out(&serde_json::json!({
            "snapshot": snap.id, "time": snap.snapshot.time, "catalog": db,
        }))
    } else {
        println!(
            "restored the catalog of {} (snapshot {}) to {}; start bmsd on this state dir \
             (`bmsd --state-dir {}` unless it is the default)",
            snap.snapshot.time,
            snap.short_id,
            db.display(),
            a.to.display()
        );
        Ok(())
    }
}
