//! Steps that the kinds of runs share: opening a target's repository, its pre-flight check, the
//! run's timeout, how a stop becomes a final state, and child runs (copies, verifications).

use super::{Active, RunError, Runner, StopReason};
use crate::catalog::NewRun;
use crate::state::SharedRef;
use crate::targets::{open_target, Purpose, Target};
use bms_engine::Repository;
use bms_proto::api::*;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long a run waits for a repository that another writer holds (two jobs backing up to one
/// target, an offline `bmsctl repo backup`). The wait ends early when the run is cancelled, times
/// out or bmsd stops.
pub const LOCK_WAIT: Duration = Duration::from_secs(24 * 3600);

/// Opens the repository of a target for `purpose` (see [`crate::targets::open_target`]); runs
/// wait for its lock (see [`LOCK_WAIT`]).
pub fn open_repo(target: &TargetSpec, purpose: Purpose) -> Result<Repository, bms_engine::Error> {
    let target =
        Target::from_spec(target).map_err(|e| bms_engine::Error::InvalidArgument(e.message))?;
    let mut repo = open_target(&target, purpose)?;
    repo.set_lock_wait(LOCK_WAIT);
    Ok(repo)
}

/// Runs the engine operation `f` (on the blocking thread) so that while it waits for a
/// repository lock, the run's phase says who holds it ("waiting for lock held by …", shown by
/// `run show` and `run watch`); the phase before the wait comes back once the lock is taken.
pub fn with_lock_status<T>(active: &Arc<Active>, f: impl FnOnce() -> T) -> T {
    let a = active.clone();
    let saved = std::sync::Mutex::new(None::<String>);
    let observer = move |holder: Option<&bms_engine::lock::LockInfo>| match holder {
        Some(h) => a.progress.send_modify(|p| {
            if let Ok(mut s) = saved.lock() {
                s.get_or_insert_with(|| p.phase.clone());
            }
            p.phase = format!("waiting for lock held by {}", h.describe());
        }),
        None => {
            if let Some(phase) = saved.lock().ok().and_then(|mut s| s.take()) {
                a.progress.send_modify(|p| p.phase = phase);
            }
        }
    };
    bms_engine::lock::observe_waits(Box::new(observer), f)
}

/// A job's definition and the specs of its targets, in order (the primary first).
pub async fn job_and_targets(
    shared: &SharedRef,
    job: &str,
) -> Result<(JobSpec, Vec<TargetSpec>), RunError> {
    let name = job.to_owned();
    let job = match shared.catalog.call(move |c| c.get_job(&name)).await {
        Ok(j) => j.spec,
        Err(e) => return Err(RunError::JobUnreadable(e)),
    };
    let mut targets = Vec::new();
    for t in &job.targets {
        let t = t.clone();
        match shared.catalog.call(move |c| c.get_target(&t)).await {
            Ok(info) => targets.push(info.spec),
            Err(e) => return Err(RunError::TargetUnreadable(e)),
        }
    }
    Ok((job, targets))
}

/// How a stop request turns into a final state and message.
pub fn stopped(reason: Option<StopReason>, timeout: u64) -> (RunState, String) {
    match reason {
        Some(StopReason::Cancelled) => (RunState::Cancelled, "cancelled by request".into()),
        Some(StopReason::TimedOut) => (
            RunState::Failed,
            format!("timed out after {timeout} s and was stopped"),
        ),
        Some(StopReason::Shutdown) | None => (
            RunState::Interrupted,
            "bmsd shut down while the run was going".into(),
        ),
    }
}

pub struct Outcome {
    pub state: RunState,
    pub snapshot: Option<String>,
    pub stats: RunStats,
    pub error: Option<String>,
}

impl Outcome {
    pub fn failed(msg: impl std::fmt::Display) -> Outcome {
        Outcome {
            state: RunState::Failed,
            snapshot: None,
            stats: RunStats::default(),
            error: Some(msg.to_string()),
        }
    }
}

/// Checks a target and records the result; `Err` carries the reason.
pub async fn preflight(shared: &SharedRef, target: &TargetSpec) -> Result<(), RunError> {
    let spec = target.clone();
    let check = tokio::task::spawn_blocking(move || crate::preflight::check(&spec))
        .await
        .map_err(|e| RunError::CheckTask(e.to_string()))?;
    if let Err(e) = record_check(shared, &check).await {
        warn!(target = %check.name, "cannot record target check: {e}");
    }
    if check.ok {
        Ok(())
    } else {
        Err(RunError::Preflight {
            target: target.name.clone(),
            message: check.message,
        })
    }
}

/// Stores a target check's result and publishes `TargetStateChanged` when the verdict changed.
pub async fn record_check(
    shared: &SharedRef,
    check: &TargetCheck,
) -> Result<(), bms_proto::ApiError> {
    shared.events.target_checked(check);
    let stored = check.clone();
    shared.catalog.call(move |c| c.store_check(&stored)).await
}

/// Watches the clock for a run's timeout.
pub fn arm_timeout(active: &Arc<Active>, secs: u64) -> Option<tokio::task::JoinHandle<()>> {
    (secs > 0).then(|| {
        let a = active.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            a.request_stop(StopReason::TimedOut);
        })
    })
}

/// Records and starts a run that belongs to `parent` (a copy or a verification).
pub async fn start_child(
    runner: &Runner,
    parent: &Active,
    job: &str,
    kind: RunKind,
    target: &str,
    source_target: Option<&str>,
) -> Result<RunInfo, bms_proto::ApiError> {
    let shared = &runner.shared;
    let (job, target, source) = (
        job.to_owned(),
        target.to_owned(),
        source_target.map(str::to_owned),
    );
    let (parent_run, trigger) = (parent.run_id, parent.trigger);
    let queued = shared
        .catalog
        .call(move |c| {
            c.insert_run(&NewRun {
                job: &job,
                kind,
                trigger,
                state: RunState::Queued,
                target: Some(&target),
                source_target: source.as_deref(),
                parent_run: Some(parent_run),
                error: None,
            })
        })
        .await?;
    let id = queued.id;
    let head = super::RunHead::of(&queued);
    shared.events.publish(Event::RunQueued { run: queued });
    let started = shared
        .catalog
        .call(move |c| {
            c.start_run(id)?;
            c.get_run(id)
        })
        .await;
    let run = match started {
        Ok(run) => run,
        Err(e) => {
            let end = super::End::new(RunState::Failed, Some(format!("cannot start the run: {e}")));
            super::finish(runner, head, end).await;
            return Err(e);
        }
    };
    shared
        .events
        .publish(Event::RunStarted { run: run.clone() });
    Ok(run)
}

/// The sealing step after a snapshot was written to an immutable target: a snapshot that could
/// not be sealed is complete and restorable, so the run ends "with warnings" and says loudly
/// that it is not immutable (docs/operations.md "Immutability").
pub async fn seal(
    shared: &crate::state::SharedRef,
    target: &TargetSpec,
    snapshot: &str,
    outcome: &mut Outcome,
    log: &mut Vec<String>,
) {
    if target.immutable_days == 0 {
        return;
    }
    match crate::immutability::seal_step(shared, target, snapshot).await {
        Ok(line) => log.push(line),
        Err(msg) => {
            warn!("{msg}");
            log.push(msg.clone());
            outcome.state = RunState::Warning;
            outcome.error = Some(match outcome.error.take() {
                Some(e) => format!("{msg}; {e}"),
                None => msg,
            });
        }
    }
}
