//! Rebuilding the catalog from the repositories (docs/operations.md "Recovering the catalog"):
//! every snapshot file of a target's repository becomes a snapshot record with its id, time,
//! statistics and job, and a seal its file carries becomes a seal record. Repositories are
//! opened through the daemon's one target-opening path ([`crate::targets::open_target`]), so a
//! target opens here exactly as it does for its runs.

use crate::catalog::{catalog_time, Catalog, Found};
use crate::state::SharedRef;
use crate::targets::{open_target, Purpose, Target};
use bms_engine::store::{seal::rfc3339, Kind};
use bms_engine::SnapshotInfo;
use bms_proto::api::{RebuildReply, RunStats, SnapshotRecord, TargetInfo, TargetRebuild};
use bms_proto::ApiError;
use std::collections::BTreeSet;
use tracing::{info, warn};

/// The record of a snapshot read from `target`'s repository (no run: the merge finds it).
pub fn record_of(target: &str, info: &SnapshotInfo) -> SnapshotRecord {
    let s = &info.snapshot;
    SnapshotRecord {
        id: info.id.clone(),
        target: target.to_owned(),
        job: s.job.clone(),
        time: catalog_time(&s.time),
        host: s.host.clone(),
        paths: s.paths.clone(),
        partial: s.partial,
        run_id: None,
        stats: RunStats {
            files_new: s.stats.files_new,
            files_changed: s.stats.files_changed,
            files_unmodified: s.stats.files_unmodified,
            bytes_read: s.stats.bytes_read,
            bytes_total: s.stats.bytes_total,
            bytes_added: s.stats.bytes_added,
            chunks_new: s.stats.chunks_new,
            chunks_total: s.stats.chunks_total,
            warnings: s.stats.warnings_count,
        },
    }
}

/// Reads every snapshot of a target's repository, with its seal (blocking: run it off the
/// async threads). Damaged snapshot files are left out and logged; verify reports them.
pub fn scan(target: &Target) -> Result<Vec<Found>, String> {
    let repo = open_target(target, Purpose::RestoreFrom).map_err(|e| e.to_string())?;
    let (list, damaged) = repo.snapshots_checked().map_err(|e| e.to_string())?;
    for d in &damaged {
        warn!(
            target = %target.name,
            "catalog rebuild: snapshot file {} is damaged ({}); it is left out: run `bmsctl \
             verify --target {}`",
            d.id,
            d.reason,
            target.name
        );
    }
    let store = repo.store().clone();
    let mut out = Vec::with_capacity(list.len());
    for info in &list {
        let seal = match store.sealed_until(Kind::Snapshots, &info.id) {
            Ok(Some(until)) => {
                let objects = bms_engine::immutable::snapshot_objects(&repo, &info.id)
                    .map(|o| (o.packs.len() + o.index.len() + 1) as u64)
                    .unwrap_or(1);
                Some((rfc3339(until), objects))
            }
            Ok(None) => None,
            Err(e) => {
                warn!(target = %target.name, "catalog rebuild: cannot read the seal of snapshot {}: {e}", info.id);
                None
            }
        };
        out.push(Found {
            record: record_of(&target.name, info),
            seal,
        });
    }
    Ok(out)
}

/// The targets to rebuild: `only` (which must exist and hold a repository), else every target
/// whose kind holds a repository.
fn pick(targets: Vec<TargetInfo>, only: Option<&str>) -> Result<Vec<Target>, ApiError> {
    let mut out = Vec::new();
    if let Some(name) = only {
        let Some(t) = targets.into_iter().find(|t| t.spec.name == name) else {
            return Err(ApiError::not_found("target", name));
        };
        let target = Target::from_spec(&t.spec)?;
        target.require(Purpose::RestoreFrom)?;
        out.push(target);
        return Ok(out);
    }
    for t in targets {
        let target = Target::from_spec(&t.spec)?;
        if target.require(Purpose::RestoreFrom).is_ok() {
            out.push(target);
        }
    }
    Ok(out)
}

fn add(
    reply: &mut RebuildReply,
    unknown: &mut BTreeSet<String>,
    r: (TargetRebuild, BTreeSet<String>),
) {
    let (t, u) = r;
    reply.added += t.added;
    reply.kept += t.kept;
    reply.seals += t.seals;
    unknown.extend(u);
    reply.targets.push(t);
}

fn failed(target: &Target, error: String) -> (TargetRebuild, BTreeSet<String>) {
    warn!(target = %target.name, "catalog rebuild: cannot read the repository: {error}");
    (
        TargetRebuild {
            target: target.name.clone(),
            error: Some(error),
            ..Default::default()
        },
        BTreeSet::new(),
    )
}

fn log_done(reply: &RebuildReply) {
    info!(
        added = reply.added,
        kept = reply.kept,
        seals = reply.seals,
        "catalog rebuilt from {} target(s): {} snapshot records added, {} kept, {} seals added{}",
        reply.targets.len(),
        reply.added,
        reply.kept,
        reply.seals,
        if reply.unknown_jobs.is_empty() {
            String::new()
        } else {
            format!(
                "; jobs not in the catalog: {} (apply their declaration)",
                reply.unknown_jobs.join(", ")
            )
        }
    );
}

/// Rebuilds the snapshot records of every target (or of `only`) through the catalog thread.
pub async fn rebuild(shared: &SharedRef, only: Option<String>) -> Result<RebuildReply, ApiError> {
    let targets = shared.catalog.call(|c| c.list_targets()).await?;
    let targets = pick(targets, only.as_deref())?;
    let mut reply = RebuildReply::default();
    let mut unknown = BTreeSet::new();
    for target in targets {
        let t = target.clone();
        let scanned = tokio::task::spawn_blocking(move || scan(&t))
            .await
            .map_err(|e| ApiError::internal(format!("the rebuild task failed: {e}")))?;
        let r = match scanned {
            Ok(found) => {
                let name = target.name.clone();
                shared
                    .catalog
                    .call(move |c| c.merge_rebuilt(&name, &found))
                    .await?
            }
            Err(e) => failed(&target, e),
        };
        add(&mut reply, &mut unknown, r);
    }
    reply.unknown_jobs = unknown.into_iter().collect();
    log_done(&reply);
    Ok(reply)
}

/// The rebuild of bmsd's start on a new catalog: every target it knows, before it serves.
pub fn rebuild_at_start(catalog: &mut Catalog) -> Result<RebuildReply, ApiError> {
    let targets = pick(catalog.list_targets()?, None)?;
    let mut reply = RebuildReply::default();
    let mut unknown = BTreeSet::new();
    for target in targets {
        let r = match scan(&target) {
            Ok(found) => catalog.merge_rebuilt(&target.name, &found)?,
            // An empty new repository directory has nothing to rebuild.
            Err(e) if target.dir().is_some_and(empty_dir) => {
                let _ = e;
                continue;
            }
            Err(e) => failed(&target, e),
        };
        add(&mut reply, &mut unknown, r);
    }
    reply.unknown_jobs = unknown.into_iter().collect();
    if reply.added > 0 || reply.targets.iter().any(|t| t.error.is_some()) {
        log_done(&reply);
    }
    Ok(reply)
}

fn empty_dir(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}
