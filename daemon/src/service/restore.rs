//! Restores through bmsd: the audited restore and its operation.

use super::core::{Caller, Ctx, Item, Items, Operation};
use super::engine_error::from_engine;
use super::restore_audit::RestoreAudit;
use super::run_ops::{find_snapshot, TICK};
use crate::runner::RunnerRef;
use crate::state::SharedRef;
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

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
    // A tape target is read through the catalog's record of its archive (docs/tape.md).
    let plan = if target.spec.kind == TargetKind::Tape {
        let (t, id) = (snap.target.clone(), snap.id.clone());
        let plan = shared
            .catalog
            .call(move |c| c.tape_restore_plan(&t, &id))
            .await?;
        if plan.is_empty() {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!(
                    "no complete tape archive of snapshot {} on target '{}' is recorded (its \
                     media were erased or recycled, or the copy failed): restore from another \
                     target",
                    snap.id, snap.target
                ),
            ));
        }
        Some(plan)
    } else {
        crate::targets::Target::from_spec(&target.spec)?
            .require(crate::targets::Purpose::RestoreFrom)?;
        None
    };
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
        if let Some(plan) = &plan {
            return super::tape_restore::restore(&spec, plan, &opts, &flag);
        }
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
                (r.map_err(|e| from_engine(&e)), cancelled)
            }
            Err(e) => (
                Err(ApiError::internal(format!(
                    "internal error: the restore task failed: {e}"
                ))),
                false,
            ),
        };
        let shown = r.clone().map_err(|e| e.message);
        audit.finished(&owner, &shown, cancelled).await;
        let _ = done_tx.send(r);
    });
    let summary = done_rx
        .await
        .map_err(|_| ApiError::internal("the restore ended without a result"))?
        .map_err(|mut e| {
            e.message = format!("restore failed: {}", e.message);
            e
        })?;
    drop(cancel);
    let value = serde_json::to_value(&summary).ok();
    Ok(RestoreReply {
        files: summary.files,
        bytes: summary.bytes,
        done: true,
        summary: value,
    })
}

impl Operation for Restore {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RestoreReply, ApiError> {
        restore(ctx.shared, self, ctx.caller.uid, |_, _| {}).await
    }

    fn stream(self, caller: Caller, runner: RunnerRef) -> Items<RestoreReply> {
        restore_items(runner.shared.clone(), self, caller.uid)
    }

    /// A restore refused for lack of the admin role is logged (a warning with the caller's uid
    /// and what it asked for), not audited: a caller who may only read does not write to the
    /// catalog.
    fn log_refused(&self, caller: &Caller) {
        let uid = caller.uid;
        tracing::warn!(
            uid,
            snapshot = %self.snapshot,
            to = %self.to,
            paths = ?self.paths,
            "restore refused: uid {uid} is not root or in group 'bms-admin'"
        );
    }
}

/// A restore on behalf of `uid`: progress items, then the summary.
pub fn restore_items(shared: SharedRef, req: Restore, uid: u32) -> Items<RestoreReply> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(restore_stream(shared, req, uid, tx));
    rx
}

async fn restore_stream(
    shared: SharedRef,
    req: Restore,
    uid: u32,
    tx: mpsc::Sender<Item<RestoreReply>>,
) {
    let progress_tx = tx.clone();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = move |files: u64, bytes: u64| {
        let Ok(mut l) = last.lock() else { return };
        if l.elapsed() >= TICK {
            *l = std::time::Instant::now();
            let r = RestoreReply {
                files,
                bytes,
                done: false,
                summary: None,
            };
            let _ = progress_tx.try_send(Item::More(r));
        }
    };
    // Dropping the restore future stops the restore (see [`restore`]).
    let result = tokio::select! {
        r = restore(&shared, req, uid, progress) => r,
        _ = tx.closed() => {
            tracing::info!("restore stopped: the client went away");
            return;
        }
        _ = shared.shutdown.cancelled() => Err(ApiError::new(
            ErrorKind::Busy,
            "restore stopped: bmsd is shutting down; what was restored so far stays in the \
             target directory; run the restore again (with --overwrite if-changed) once bmsd is back",
        )),
    };
    let _ = tx
        .send(match result {
            Ok(r) => Item::Last(r),
            Err(e) => Item::Failed(e),
        })
        .await;
}
