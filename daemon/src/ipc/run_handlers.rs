//! Handlers for runs, snapshots, restores and target checks.

use super::dispatch::Ctx;
use super::handlers::Handle;
use super::restore_audit::RestoreAudit;
use crate::runner;
use crate::state::SharedRef;
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

impl Handle for RunJob {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RunReply, ApiError> {
        let run = runner::submit(ctx.shared, &self.name, RunTrigger::Manual).await?;
        Ok(RunReply { run })
    }
}

impl Handle for ListRuns {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RunList, ApiError> {
        let limit = self.limit.unwrap_or(50).clamp(1, 10_000);
        let runs = ctx
            .shared
            .catalog
            .call(move |c| c.list_runs(self.job.as_deref(), limit))
            .await?;
        Ok(RunList { runs })
    }
}

/// The run, its log and its live progress.
pub async fn run_detail(shared: &SharedRef, id: i64) -> Result<RunDetail, ApiError> {
    runner::watch::detail(shared, id).await
}

impl Handle for GetRun {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RunDetail, ApiError> {
        run_detail(ctx.shared, self.id).await
    }
}

impl Handle for WatchRun {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RunDetail, ApiError> {
        run_detail(ctx.shared, self.id).await
    }
}

impl Handle for CancelRun {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RunReply, ApiError> {
        let run = runner::cancel(ctx.shared, self.id).await?;
        Ok(RunReply { run })
    }
}

impl Handle for ListSnapshots {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<SnapshotList, ApiError> {
        let snapshots = ctx
            .shared
            .catalog
            .call(move |c| c.list_snapshots(self.job.as_deref(), self.target.as_deref()))
            .await?;
        Ok(SnapshotList { snapshots })
    }
}

/// Finds a catalogued snapshot by id or unique prefix (8+ characters), optionally on one target.
pub async fn find_snapshot(
    shared: &SharedRef,
    id: &str,
    target: Option<&str>,
) -> Result<SnapshotRecord, ApiError> {
    if id.len() < 8 {
        return Err(ApiError::invalid(
            "snapshot",
            "give at least 8 characters of the snapshot id",
        ));
    }
    let t = target.map(str::to_owned);
    let all = shared
        .catalog
        .call(move |c| c.list_snapshots(None, t.as_deref()))
        .await?;
    let matches: Vec<SnapshotRecord> = all.into_iter().filter(|s| s.id.starts_with(id)).collect();
    let distinct: std::collections::BTreeSet<&str> =
        matches.iter().map(|s| s.id.as_str()).collect();
    match distinct.len() {
        0 => Err(not_on_target(shared, id, target).await),
        1 => matches
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("snapshot", id)),
        n => Err(ApiError::invalid(
            "snapshot",
            format!("snapshot prefix '{id}' matches {n} snapshots: give more characters"),
        )),
    }
}

/// The error for a snapshot the catalog has not found (on `target`, when given): says when the
/// target does not exist, or names the targets that do hold the snapshot.
async fn not_on_target(shared: &SharedRef, id: &str, target: Option<&str>) -> ApiError {
    let Some(t) = target else {
        return ApiError::not_found("snapshot", id);
    };
    let tname = t.to_owned();
    if let Err(e) = shared.catalog.call(move |c| c.get_target(&tname)).await {
        return e;
    }
    let all = match shared.catalog.call(|c| c.list_snapshots(None, None)).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let holders: std::collections::BTreeSet<String> = all
        .into_iter()
        .filter(|s| s.id.starts_with(id))
        .map(|s| s.target)
        .collect();
    if holders.is_empty() {
        return ApiError::not_found("snapshot", id);
    }
    let names: Vec<String> = holders.into_iter().map(|h| format!("'{h}'")).collect();
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "snapshot '{id}' is not on target '{t}'; it is on {} (use --target {})",
            names.join(", "),
            names[0].trim_matches('\'')
        ),
    )
}

impl Handle for GetSnapshot {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<SnapshotReply, ApiError> {
        let snapshot = find_snapshot(ctx.shared, &self.id, self.target.as_deref()).await?;
        Ok(SnapshotReply { snapshot })
    }
}

/// Sets its flag when dropped.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Restores through the engine on behalf of `uid`; `progress` sees (files, bytes) as it goes.
/// The restore is audited (`restore.start` before it writes anything, then `restore.succeeded`,
/// `restore.failed` or `restore.cancelled`) and logged; see docs/operations.md, "Restores".
pub async fn restore(
    shared: &SharedRef,
    req: Restore,
    uid: u32,
    progress: impl Fn(u64, u64) + Send + Sync + 'static,
) -> Result<RestoreReply, ApiError> {
    let to = PathBuf::from(&req.to);
    if !to.is_absolute() {
        return Err(ApiError::invalid(
            "to",
            format!("restore directory '{}' must be absolute", req.to),
        ));
    }
    let overwrite = match req.overwrite.as_deref().unwrap_or("never") {
        "never" => bms_engine::restore::Overwrite::Never,
        "if-changed" => bms_engine::restore::Overwrite::IfChanged,
        "always" => bms_engine::restore::Overwrite::Always,
        other => {
            return Err(ApiError::invalid(
                "overwrite",
                format!("overwrite '{other}' is not one of never, if-changed, always"),
            ))
        }
    };
    let snap = find_snapshot(shared, &req.snapshot, req.target.as_deref()).await?;
    let tname = snap.target.clone();
    let target = shared.catalog.call(move |c| c.get_target(&tname)).await?;
    let opts = bms_engine::restore::RestoreOptions {
        snapshot: snap.id.clone(),
        target: to,
        paths: req.paths.iter().map(PathBuf::from).collect(),
        dry_run: req.dry_run,
        overwrite,
    };
    crate::targets::Target::from_spec(&target.spec)?
        .require(crate::targets::Purpose::RestoreFrom)?;
    let audit = RestoreAudit {
        uid,
        snapshot: snap.id.clone(),
        target: snap.target.clone(),
        paths: req.paths.clone(),
        to: req.to.clone(),
        overwrite: overwrite.name(),
        dry_run: req.dry_run,
    };
    // No record, no restore: the start is on file before anything is written, so a restore
    // whose end is lost (bmsd killed) still shows.
    audit.started(shared).await?;
    let spec = target.spec;
    // Dropping this future (the client went away, or the daemon shuts down) stops the restore.
    let cancel = CancelOnDrop(Arc::new(AtomicBool::new(false)));
    let flag = cancel.0.clone();
    let work = tokio::task::spawn_blocking(move || {
        let repo = crate::runner::open_repo(&spec, crate::targets::Purpose::RestoreFrom)?;
        let r = repo.restore(
            &opts,
            &|p: &bms_engine::restore::RestoreProgress| progress(p.files, p.bytes),
            &flag,
        );
        if matches!(r, Err(bms_engine::Error::Cancelled)) {
            tracing::info!(
                "restore into {} cancelled; what was restored so far stays there",
                opts.target.display()
            );
        }
        r
    });
    // The outcome is recorded by a task of its own, so that it is also recorded when this
    // future is dropped (a cancelled restore).
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let owner = shared.clone();
    tokio::spawn(async move {
        let (r, cancelled) = match work.await {
            Ok(r) => {
                let cancelled = matches!(r, Err(bms_engine::Error::Cancelled));
                (r.map_err(|e| e.to_string()), cancelled)
            }
            Err(e) => (Err(format!("restore task failed: {e}")), false),
        };
        audit.finished(&owner, &r, cancelled).await;
        let _ = done_tx.send(r);
    });
    let summary = done_rx
        .await
        .map_err(|_| ApiError::internal("the restore ended without a result"))?
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("restore failed: {e}")))?;
    drop(cancel);
    let value = serde_json::to_value(&summary).ok();
    Ok(RestoreReply {
        files: summary.files,
        bytes: summary.bytes,
        done: true,
        summary: value,
    })
}

impl Handle for Restore {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<RestoreReply, ApiError> {
        restore(ctx.shared, self, ctx.peer.uid, |_, _| {}).await
    }
}

impl Handle for CheckTarget {
    async fn handle(self, ctx: &Ctx<'_>) -> Result<TargetCheck, ApiError> {
        let name = self.name.clone();
        let target = ctx
            .shared
            .catalog
            .call(move |c| c.get_target(&name))
            .await?;
        let spec = target.spec;
        let check = tokio::task::spawn_blocking(move || crate::preflight::check(&spec))
            .await
            .map_err(|e| ApiError::internal(format!("check failed: {e}")))?;
        runner::record_check(ctx.shared, &check).await?;
        Ok(check)
    }
}
