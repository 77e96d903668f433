//! Copy runs: a snapshot of the primary target copied to a further target, transferring only the
//! chunks the destination lacks. Each copy is its own run record and catalog snapshot.

use super::steps::{open_repo, preflight, start_child, stopped, with_lock_status};
use super::Active;
use crate::catalog::NewRun;
use crate::state::SharedRef;
use crate::targets::Purpose;
use bms_proto::api::*;
use std::sync::Arc;

/// What a copy moved.
pub struct CopyStats {
    pub snapshot_id: String,
    pub chunks_copied: u64,
    pub bytes_copied: u64,
    pub chunks_total: u64,
    pub bytes_total: u64,
}

fn engine_copy(
    src: TargetSpec,
    dst: TargetSpec,
    snapshot: &str,
    active: &Arc<Active>,
) -> Result<CopyStats, String> {
    let src = open_repo(&src, Purpose::CopyFrom).map_err(|e| e.to_string())?;
    let dst = open_repo(&dst, Purpose::CopyInto).map_err(|e| e.to_string())?;
    let report = |p: &bms_engine::copy::CopyProgress| {
        active.progress.send_modify(|pr| {
            pr.files = p.blobs_copied;
            pr.bytes_read = p.bytes_copied;
            pr.bytes_added = p.bytes_copied;
        });
    };
    let s = bms_engine::copy::copy_snapshot(&src, &dst, snapshot, &report, &active.stop)
        .map_err(|e| e.to_string())?;
    Ok(CopyStats {
        snapshot_id: s.snapshot_id,
        chunks_copied: s.chunks_copied,
        bytes_copied: s.bytes_copied,
        chunks_total: s.chunks_total,
        bytes_total: s.bytes_total,
    })
}

/// Copies `snapshot` from `src` to `dst` as its own run; `Err` is a line for the parent's log.
pub async fn copy(
    shared: &SharedRef,
    parent: &Arc<Active>,
    job: &JobSpec,
    src: &TargetSpec,
    dst: &TargetSpec,
    snapshot: &str,
) -> Result<(), String> {
    if let Err(msg) = preflight(shared, dst).await {
        let _ = record_failed_copy(shared, parent, &job.name, &src.name, &dst.name, &msg).await;
        return Err(format!("copy to '{}' failed: {msg}", dst.name));
    }
    let run = start_child(
        shared,
        parent,
        &job.name,
        RunKind::Copy,
        &dst.name,
        Some(&src.name),
    )
    .await
    .map_err(|e| format!("copy to '{}': {e}", dst.name))?;
    parent.progress.send_modify(|p| {
        p.phase = format!("copy to {}", dst.name);
        p.bytes_read = 0;
        p.bytes_added = 0;
    });
    let (sp, dp, snap, a) = (
        src.clone(),
        dst.clone(),
        snapshot.to_owned(),
        parent.clone(),
    );
    let result = tokio::task::spawn_blocking(move || {
        with_lock_status(&a, || engine_copy(sp, dp, &snap, &a))
    })
    .await
    .unwrap_or_else(|e| Err(format!("copy task failed: {e}")));
    let (state, snap, stats, err) = match &result {
        Ok(s) => (
            RunState::Succeeded,
            Some(s.snapshot_id.clone()),
            RunStats {
                bytes_added: s.bytes_copied,
                chunks_new: s.chunks_copied,
                chunks_total: s.chunks_total,
                bytes_total: s.bytes_total,
                ..Default::default()
            },
            None,
        ),
        Err(e) => {
            let state = if parent.stop.load(std::sync::atomic::Ordering::SeqCst) {
                stopped(parent.stop_reason(), 0).0
            } else {
                RunState::Failed
            };
            (state, None, RunStats::default(), Some(e.clone()))
        }
    };
    if let Some(id) = &snap {
        let name = shared.catalog.call({
            let (id, target) = (id.clone(), src.name.clone());
            move |c| {
                c.list_snapshots(None, Some(&target))
                    .map(|l| l.into_iter().find(|s| s.id == id))
            }
        });
        if let Ok(Some(mut rec)) = name.await {
            rec.target = dst.name.clone();
            rec.run_id = Some(run.id);
            let _ = shared.catalog.call(move |c| c.record_snapshot(&rec)).await;
        }
    }
    let (rid, e2) = (run.id, err.clone());
    let _ = shared
        .catalog
        .call(move |c| c.finish_run(rid, state, snap.as_deref(), &stats, e2.as_deref(), &[]))
        .await;
    match err {
        None => Ok(()),
        Some(e) => Err(format!("copy to '{}' failed: {e}", dst.name)),
    }
}

/// Records a copy run that failed before it started.
async fn record_failed_copy(
    shared: &SharedRef,
    parent: &Active,
    job: &str,
    src: &str,
    dst: &str,
    msg: &str,
) -> Result<(), bms_proto::ApiError> {
    let (job, src, dst, msg) = (
        job.to_owned(),
        src.to_owned(),
        dst.to_owned(),
        msg.to_owned(),
    );
    let parent_id = parent.run_id;
    let trigger = parent.trigger;
    shared
        .catalog
        .call(move |c| {
            c.insert_run(&NewRun {
                job: &job,
                kind: RunKind::Copy,
                trigger,
                state: RunState::Failed,
                target: Some(&dst),
                source_target: Some(&src),
                parent_run: Some(parent_id),
                error: Some(&msg),
            })
        })
        .await
        .map(|_| ())
}
