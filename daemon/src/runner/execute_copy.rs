//! Copy runs: a snapshot of the primary target copied to a further target, transferring only the
//! chunks the destination lacks. Each copy is its own run record and catalog snapshot.

use super::steps::{open_repo, preflight, start_child, stopped, with_lock_status};
use super::{finish, progress, Active, End, RunError, RunHead, Runner};
use crate::catalog::NewRun;
use crate::targets::Purpose;
use bms_proto::api::*;
use std::sync::Arc;
use tracing::warn;

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
) -> Result<CopyStats, RunError> {
    let src = open_repo(&src, Purpose::CopyFrom)?;
    let dst = open_repo(&dst, Purpose::CopyInto)?;
    let report = |p: &bms_engine::copy::CopyProgress| {
        active.progress.send_modify(|pr| {
            pr.files = p.blobs_copied;
            pr.bytes_read = p.bytes_copied;
            pr.bytes_added = p.bytes_copied;
        });
    };
    let s = bms_engine::copy::copy_snapshot(&src, &dst, snapshot, &report, &active.stop)?;
    Ok(CopyStats {
        snapshot_id: s.snapshot_id,
        chunks_copied: s.chunks_copied,
        bytes_copied: s.bytes_copied,
        chunks_total: s.chunks_total,
        bytes_total: s.bytes_total,
    })
}

/// The start of a copy run to `dst` (disk, NAS, S3 or tape): its pre-flight check (a failure
/// is recorded as a failed copy run), the child run, the parent's progress reset by `phase`,
/// and the copy's progress forwarded from its parent's while it goes.
pub(super) async fn begin(
    runner: &Runner,
    parent: &Active,
    job: &JobSpec,
    src: &TargetSpec,
    dst: &TargetSpec,
    phase: impl FnOnce(&mut RunProgress),
) -> Result<(RunInfo, progress::Forwarder), RunError> {
    let shared = &runner.shared;
    if let Err(e) = preflight(shared, dst).await {
        return Err(failed_before_start(runner, parent, job, src, dst, e).await);
    }
    let run = start_child(
        runner,
        parent,
        &job.name,
        RunKind::Copy,
        &dst.name,
        Some(&src.name),
    )
    .await
    .map_err(|e| RunError::Step(format!("copy to '{}': {e}", dst.name)))?;
    parent.progress.send_modify(|p| {
        p.bytes_read = 0;
        p.bytes_added = 0;
        phase(p);
    });
    let forwarder = progress::forward(
        shared,
        run.id,
        &run.job,
        run.kind,
        parent.progress.subscribe(),
    );
    Ok((run, forwarder))
}

/// Copies `snapshot` from `src` to `dst` as its own run; `Err` is a line for the parent's log.
pub async fn copy(
    runner: &Runner,
    parent: &Arc<Active>,
    job: &JobSpec,
    src: &TargetSpec,
    dst: &TargetSpec,
    snapshot: &str,
) -> Result<(), RunError> {
    if dst.kind == TargetKind::Tape {
        return super::execute_tape::copy(runner, parent, job, src, dst, snapshot).await;
    }
    let shared = &runner.shared;
    let (run, forwarder) = begin(runner, parent, job, src, dst, |p| {
        p.phase = format!("copy to {}", dst.name);
    })
    .await?;
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
    .unwrap_or_else(|e| Err(RunError::Step(format!("copy task failed: {e}"))));
    drop(forwarder);
    let mut log = Vec::new();
    let (mut state, snap, stats, mut err) = match &result {
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
            (state, None, RunStats::default(), Some(e.to_string()))
        }
    };
    if let Some(id) = &snap {
        let mut o = super::steps::Outcome {
            state,
            snapshot: None,
            stats: RunStats::default(),
            error: err.take(),
        };
        super::steps::seal(shared, dst, id, &mut o, &mut log).await;
        (state, err) = (o.state, o.error);
        record_copied_snapshot(shared, src, dst, id, run.id, &mut log).await;
    }
    let end = End {
        state,
        snapshot: snap,
        stats,
        error: err.clone(),
        log,
    };
    finish(runner, RunHead::of(&run), end).await;
    match err {
        None => Ok(()),
        Some(e) if state == RunState::Warning => {
            Err(RunError::Step(format!("copy to '{}': {e}", dst.name)))
        }
        Some(e) => Err(RunError::Step(format!(
            "copy to '{}' failed: {e}",
            dst.name
        ))),
    }
}

/// Records the snapshot record of `src` for the copy on `dst` (made by run `run`).
pub(super) async fn record_copied_snapshot(
    shared: &crate::state::SharedRef,
    src: &TargetSpec,
    dst: &TargetSpec,
    id: &str,
    run: i64,
    log: &mut Vec<String>,
) {
    let found = shared.catalog.call({
        let (id, target) = (id.to_owned(), src.name.clone());
        move |c| {
            c.list_snapshots(None, Some(&target))
                .map(|l| l.into_iter().find(|s| s.id == id))
        }
    });
    match found.await {
        Ok(Some(mut rec)) => {
            rec.target = dst.name.clone();
            rec.run_id = Some(run);
            if let Err(e) = shared.catalog.call(move |c| c.record_snapshot(&rec)).await {
                warn!(run, "cannot record the copied snapshot {id}: {e}");
                log.push(format!(
                    "bmsd could not record snapshot {id} on '{}' in the catalog: {e}",
                    dst.name
                ));
            }
        }
        Ok(None) => {}
        Err(e) => {
            warn!(run, "cannot read snapshot {id} from the catalog: {e}");
            log.push(format!(
                "bmsd could not record snapshot {id} on '{}' in the catalog: {e}",
                dst.name
            ));
        }
    }
}

/// A copy whose target failed its pre-flight check: recorded as a failed copy run; returns the
/// line for the parent's log.
pub(super) async fn failed_before_start(
    runner: &Runner,
    parent: &Active,
    job: &JobSpec,
    src: &TargetSpec,
    dst: &TargetSpec,
    e: RunError,
) -> RunError {
    let msg = e.to_string();
    if let Err(e) = record_failed_copy(runner, parent, &job.name, &src.name, &dst.name, &msg).await
    {
        warn!(
            run = parent.run_id,
            "cannot record the failed copy to '{}' of run {}: {e}", dst.name, parent.run_id
        );
    }
    RunError::Step(format!("copy to '{}' failed: {msg}", dst.name))
}

/// Records a copy run that failed before it started.
async fn record_failed_copy(
    runner: &Runner,
    parent: &Active,
    job: &str,
    src: &str,
    dst: &str,
    msg: &str,
) -> Result<(), bms_proto::ApiError> {
    let shared = &runner.shared;
    let (job, src, dst, msg) = (
        job.to_owned(),
        src.to_owned(),
        dst.to_owned(),
        msg.to_owned(),
    );
    let parent_id = parent.run_id;
    let trigger = parent.trigger;
    let run = shared
        .catalog
        .call(move |c| {
            c.insert_run(&NewRun {
                job: &job,
                kind: RunKind::Copy,
                trigger,
                state: RunState::Queued,
                target: Some(&dst),
                source_target: Some(&src),
                parent_run: Some(parent_id),
                error: None,
            })
        })
        .await?;
    shared.events.publish(Event::RunQueued { run: run.clone() });
    finish(
        runner,
        RunHead::of(&run),
        End::new(RunState::Failed, Some(msg)),
    )
    .await;
    Ok(())
}
