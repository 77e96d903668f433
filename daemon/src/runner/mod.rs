//! The job runner: a queue of runs with a global concurrency limit and one run per job at a time.
//! Each run is a catalog record from `queued` to a final state; progress is kept in memory and
//! streamed to watchers.

mod error;
mod execute;
mod execute_copy;
pub mod execute_drill;
mod execute_tape;
mod execute_verify;
pub mod finish;
pub mod hook_groups;
pub mod hooks;
pub mod progress;
mod prune;
mod steps;
mod tape_changer;
#[cfg(test)]
mod tests;
mod verify_tape;
pub mod watch;

pub use error::RunError;
pub use finish::{finish, End, RunHead};
pub use prune::{policies as prune_policies, submit_prune};
pub use steps::{open_repo, record_check};

use crate::catalog::NewRun;
use crate::state::SharedRef;
use bms_proto::api::{Event, RunInfo, RunKind, RunProgress, RunState, RunTrigger};
use bms_proto::{ApiError, ErrorKind};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Cancelled,
    TimedOut,
    Shutdown,
}

/// A run that is queued or going.
pub struct Active {
    pub run_id: i64,
    pub job: String,
    /// `Backup`, or `Verify` for a scheduled verification.
    pub kind: RunKind,
    pub trigger: RunTrigger,
    /// The target a `prune` run works on (prune runs are per target; docs/retention.md).
    pub target: Option<String>,
    /// An on-demand verification's read-data percentage (default: the job's policy).
    pub read_data: Option<u8>,
    /// Set to stop the engine; it checks this often.
    pub stop: Arc<AtomicBool>,
    pub reason: Mutex<Option<StopReason>>,
    pub progress: tokio::sync::watch::Sender<RunProgress>,
}

impl Active {
    pub fn request_stop(&self, reason: StopReason) {
        if let Ok(mut r) = self.reason.lock() {
            r.get_or_insert(reason);
        }
        self.stop.store(true, Ordering::SeqCst);
    }
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.reason.lock().ok().and_then(|r| *r)
    }
}

#[derive(Default)]
struct Table {
    queue: VecDeque<Arc<Active>>,
    running: HashMap<i64, Arc<Active>>,
}

/// What carries out a run that left the queue (and records its end with [`finish`]). bmsd uses
/// [`execute_run`]; the runner's unit tests put a fake engine here.
pub type Exec = fn(RunnerRef, Arc<Active>) -> BoxFuture;
pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs a queued run with the engine: backup, copies, verification (docs/architecture.md).
pub fn execute_run(runner: RunnerRef, active: Arc<Active>) -> BoxFuture {
    Box::pin(async move { execute::run(&runner, &active).await })
}

/// The runner: the queue and the runs in progress, and the daemon's shared core that runs use.
/// Whoever submits, cancels or watches runs holds a [`RunnerRef`]; the core
/// ([`crate::state::Shared`]) knows nothing of the runner.
pub struct Runner {
    /// The catalog, the event bus and the configuration in force.
    pub shared: SharedRef,
    table: Mutex<Table>,
    wake: Notify,
    exec: Exec,
    /// Ends of runs that the catalog could not take yet.
    pub unrecorded: finish::Unrecorded,
    /// The catalog's own backup after successful backup runs.
    pub catalog_copies: Arc<crate::catalog_backup::Copies>,
}

pub type RunnerRef = Arc<Runner>;

impl Runner {
    pub fn new(shared: SharedRef) -> RunnerRef {
        Runner::with_exec(shared, execute_run)
    }

    /// A runner with a given way to execute runs (its unit tests use a fake engine).
    pub fn with_exec(shared: SharedRef, exec: Exec) -> RunnerRef {
        Arc::new(Runner {
            shared,
            table: Mutex::default(),
            wake: Notify::new(),
            exec,
            unrecorded: finish::Unrecorded::default(),
            catalog_copies: Arc::default(),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        match self.table.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        }
    }

    /// Run ids queued and running, in order.
    pub fn snapshot(&self) -> (Vec<i64>, Vec<i64>) {
        let t = self.table();
        let mut running: Vec<i64> = t.running.keys().copied().collect();
        running.sort_unstable();
        (running, t.queue.iter().map(|a| a.run_id).collect())
    }

    pub fn active(&self, run_id: i64) -> Option<Arc<Active>> {
        let t = self.table();
        t.running
            .get(&run_id)
            .cloned()
            .or_else(|| t.queue.iter().find(|a| a.run_id == run_id).cloned())
    }

    /// Tells systemd what runs now (`systemctl status` shows it).
    pub fn notify_status(&self) {
        let text = {
            let t = self.table();
            let mut jobs: Vec<String> = t
                .running
                .values()
                .map(|a| format!("{} (run {})", a.job, a.run_id))
                .collect();
            jobs.sort();
            match (jobs.is_empty(), t.queue.len()) {
                (true, 0) => "ready: idle".to_owned(),
                (true, q) => format!("ready: {q} queued"),
                (false, 0) => format!("running: {}", jobs.join(", ")),
                (false, q) => format!("running: {}; {q} queued", jobs.join(", ")),
            }
        };
        crate::notify::send(&[sd_notify::NotifyState::Status(&text)]);
    }

    /// Lets the dispatcher look at the queue again (after a change of the concurrency limit).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    fn mark_finished(&self, run_id: i64) {
        self.table().running.remove(&run_id);
        self.notify_status();
        self.wake.notify_one();
    }
}

/// Queues a backup run of `job`. A job that is already queued or running gets a `skipped` run
/// record with the reason instead.
pub async fn submit(
    runner: &RunnerRef,
    job: &str,
    trigger: RunTrigger,
) -> Result<RunInfo, ApiError> {
    submit_kind(runner, job, RunKind::Backup, trigger, None, None).await
}

/// Queues a verification of `job`'s primary target (its `verify.schedule`). It may run beside a
/// backup of the job (verify takes a shared lock on the repository); a second verification of
/// the same job is skipped.
pub async fn submit_verify(
    runner: &RunnerRef,
    job: &str,
    trigger: RunTrigger,
) -> Result<RunInfo, ApiError> {
    submit_kind(runner, job, RunKind::Verify, trigger, None, None).await
}

/// Queues a verification now (`bmsctl verify`, docs/compliance.md): of `target` only, when
/// given (it must be one of the job's), else of every target of the job as on its schedule;
/// `read_data` overrides the job's `verify.read_data_percent`.
pub async fn submit_verify_now(
    runner: &RunnerRef,
    job: &str,
    target: Option<String>,
    read_data: Option<u8>,
) -> Result<RunInfo, ApiError> {
    submit_kind(
        runner,
        job,
        RunKind::Verify,
        RunTrigger::Manual,
        target,
        read_data,
    )
    .await
}

/// Queues a restore drill of `job` (its `verify.drill.schedule`, or on demand with `bmsctl verify
/// --drill`): of `target` only when given, else of every target of the job.
pub async fn submit_drill(
    runner: &RunnerRef,
    job: &str,
    trigger: RunTrigger,
    target: Option<String>,
) -> Result<RunInfo, ApiError> {
    submit_kind(runner, job, RunKind::Drill, trigger, target, None).await
}

async fn submit_kind(
    runner: &RunnerRef,
    job: &str,
    kind: RunKind,
    trigger: RunTrigger,
    only_target: Option<String>,
    read_data: Option<u8>,
) -> Result<RunInfo, ApiError> {
    let shared = &runner.shared;
    let spec = {
        let name = job.to_owned();
        shared.catalog.call(move |c| c.get_job(&name)).await?.spec
    };
    if let Some(t) = &only_target {
        if !spec.targets.contains(t) {
            return Err(ApiError::invalid(
                "target",
                format!(
                    "target '{t}' is not a target of job '{job}' (its targets: {}); name one of them",
                    spec.targets.join(", ")
                ),
            ));
        }
    }
    let primary = only_target.clone().or(spec.targets.first().cloned());
    let name = job.to_owned();
    let run = shared
        .catalog
        .call(move |c| {
            c.insert_run(&NewRun {
                job: &name,
                kind,
                trigger,
                state: RunState::Queued,
                target: primary.as_deref(),
                source_target: None,
                parent_run: None,
                error: None,
            })
        })
        .await?;
    shared.events.publish(Event::RunQueued { run: run.clone() });
    let active = Arc::new(Active {
        run_id: run.id,
        job: job.to_owned(),
        kind,
        trigger,
        target: only_target,
        read_data,
        stop: Arc::new(AtomicBool::new(false)),
        reason: Mutex::new(None),
        progress: tokio::sync::watch::channel(RunProgress {
            phase: "queued".into(),
            ..Default::default()
        })
        .0,
    });
    // Check and enqueue under one lock, so two submissions cannot both pass.
    let other = {
        let mut t = runner.table();
        let other = t
            .running
            .values()
            .chain(t.queue.iter())
            .find(|a| a.job == job && a.kind == kind)
            .map(|a| a.run_id);
        if other.is_none() {
            t.queue.push_back(active);
        }
        other
    };
    let Some(other) = other else {
        runner.wake.notify_one();
        return Ok(run);
    };
    let reason = match kind {
        RunKind::Drill => format!(
            "a restore drill of job '{job}' is already running (run {other}); this {} drill was skipped",
            trigger.as_str()
        ),
        RunKind::Verify => format!(
            "a verification of job '{job}' is already running (run {other}); this {} verification was skipped",
            trigger.as_str()
        ),
        _ => format!(
            "job '{job}' is already running (run {other}); this {} run was skipped",
            trigger.as_str()
        ),
    };
    info!(job, "{reason}");
    Ok(finish(
        runner,
        RunHead::of(&run),
        End::new(RunState::Skipped, Some(reason)),
    )
    .await)
}

/// Cancels a queued or running run.
pub async fn cancel(runner: &RunnerRef, run_id: i64) -> Result<RunInfo, ApiError> {
    let shared = &runner.shared;
    // A copy run is part of its backup run: cancelling it stops the backup run's copies.
    let target_id = match runner.active(run_id) {
        Some(_) => run_id,
        None => {
            let run = shared.catalog.call(move |c| c.get_run(run_id)).await?;
            match run.parent_run {
                Some(p) if !run.state.is_final() && runner.active(p).is_some() => p,
                _ => run_id,
            }
        }
    };
    let run_id = target_id;
    let Some(active) = runner.active(run_id) else {
        let run = shared.catalog.call(move |c| c.get_run(run_id)).await?;
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "run {run_id} is {}, not queued or running",
                run.state.as_str()
            ),
        ));
    };
    active.request_stop(StopReason::Cancelled);
    let was_queued = {
        let mut t = runner.table();
        let before = t.queue.len();
        t.queue.retain(|a| a.run_id != run_id);
        t.queue.len() != before
    };
    if was_queued {
        let head = RunHead {
            id: run_id,
            job: active.job.clone(),
            kind: active.kind,
        };
        let end = End::new(
            RunState::Cancelled,
            Some("cancelled before it started".into()),
        );
        let run = finish(runner, head, end).await;
        runner.mark_finished(run_id);
        return Ok(run);
    }
    shared.catalog.call(move |c| c.get_run(run_id)).await
}

/// Starts queued runs while slots are free; stops everything on shutdown.
pub async fn dispatch_loop(runner: RunnerRef, cancel: CancellationToken, tracker: TaskTracker) {
    let shared = runner.shared.clone();
    loop {
        loop {
            let limit = shared.config().config.max_concurrent_runs as usize;
            let next = {
                let mut t = runner.table();
                if t.running.len() >= limit {
                    None
                } else {
                    let next = t.queue.pop_front();
                    if let Some(a) = &next {
                        t.running.insert(a.run_id, a.clone());
                    }
                    next
                }
            };
            let Some(active) = next else { break };
            runner.notify_status();
            let runner = runner.clone();
            tracker.spawn(async move {
                let id = active.run_id;
                (runner.exec)(runner.clone(), active).await;
                runner.mark_finished(id);
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = runner.wake.notified() => {}
        }
    }
    // Shutdown: stop running engines (each records its end); queued runs end here.
    let (running, queued) = {
        let mut t = runner.table();
        let queued: Vec<Arc<Active>> = t.queue.drain(..).collect();
        let running: Vec<Arc<Active>> = t.running.values().cloned().collect();
        (running, queued)
    };
    for a in running {
        warn!(run = a.run_id, job = %a.job, "stopping run for shutdown");
        a.request_stop(StopReason::Shutdown);
    }
    for a in queued {
        a.request_stop(StopReason::Shutdown);
        let head = RunHead {
            id: a.run_id,
            job: a.job.clone(),
            kind: a.kind,
        };
        let end = End::new(
            RunState::Interrupted,
            Some("bmsd stopped before this queued run started".into()),
        );
        finish(&runner, head, end).await;
    }
}
