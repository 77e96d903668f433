//! One backup run: pre-flight, pre-hook, backup to the primary target, copies to the others,
//! post-hook, and the catalog records of each step.

use super::hooks;
use super::steps::{
    arm_timeout, job_and_targets, open_repo, preflight, seal, stopped, with_lock_status, Outcome,
};
use super::{finish, progress, Active, End, RunError, RunHead, Runner, StopReason};
use crate::state::SharedRef;
use crate::targets::Purpose;
use bms_engine::BackupOptions;
use bms_proto::api::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::warn;

fn stats_of(s: &bms_engine::BackupSummary) -> RunStats {
    RunStats {
        files_new: s.files_new,
        files_changed: s.files_changed,
        files_unmodified: s.files_unmodified,
        bytes_read: s.bytes_read,
        bytes_total: s.bytes_total,
        bytes_added: s.bytes_added,
        chunks_new: s.chunks_new,
        chunks_total: s.chunks_total,
        warnings: s.warnings_count,
    }
}

fn host() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// Runs a queued run (a backup, or a scheduled verification) to completion and records it.
pub async fn run(runner: &Runner, active: &Arc<Active>) {
    let shared = &runner.shared;
    let id = active.run_id;
    let mut log = Vec::new();
    let mut forwarder = None;
    let outcome = if active.stop.load(std::sync::atomic::Ordering::SeqCst) {
        // Stopped between leaving the queue and starting: nothing ran.
        let (state, msg) = stopped(active.stop_reason(), 0);
        Outcome {
            state,
            snapshot: None,
            stats: RunStats::default(),
            error: Some(format!("{msg} before it started")),
        }
    } else {
        match shared
            .catalog
            .call(move |c| {
                c.start_run(id)?;
                c.get_run(id)
            })
            .await
        {
            Err(e) => Outcome::failed(RunError::Start(e)),
            Ok(started) => {
                shared.events.publish(Event::RunStarted { run: started });
                forwarder = Some(progress::forward(
                    shared,
                    id,
                    &active.job,
                    active.kind,
                    active.progress.subscribe(),
                ));
                if active.kind == RunKind::Verify {
                    super::execute_verify::scheduled(runner, active, &mut log).await
                } else if active.kind == RunKind::Drill {
                    super::execute_drill::scheduled(runner, active, &mut log).await
                } else if active.kind == RunKind::Prune {
                    super::prune::execute(runner, active, &mut log).await
                } else {
                    backup(runner, active, &mut log).await
                }
            }
        }
    };
    drop(forwarder);
    let head = RunHead {
        id,
        job: active.job.clone(),
        kind: active.kind,
    };
    let end = End {
        state: outcome.state,
        snapshot: outcome.snapshot,
        stats: outcome.stats,
        error: outcome.error,
        log,
    };
    active.progress.send_modify(|p| p.phase = "done".into());
    finish(runner, head, end).await;
}

async fn backup(runner: &Runner, active: &Arc<Active>, log: &mut Vec<String>) -> Outcome {
    let shared = &runner.shared;
    let (job, targets) = match job_and_targets(shared, &active.job).await {
        Ok(jt) => jt,
        Err(e) => return Outcome::failed(e),
    };
    let Some(primary) = targets.first().cloned() else {
        return Outcome::failed(RunError::NoTarget);
    };
    let env_base = vec![
        ("BMS_JOB", job.name.clone()),
        ("BMS_RUN_ID", active.run_id.to_string()),
        ("BMS_TARGET", primary.name.clone()),
    ];
    let hook_timeout = Duration::from_secs(job.hooks.timeout_secs.max(1) as u64);
    // The job's timeout covers the whole run: pre-hook, backup and copies.
    let timer = arm_timeout(active, job.timeout_secs);
    let outcome = backup_steps(runner, active, &job, &targets, &env_base, hook_timeout, log).await;
    if let Some(t) = timer {
        t.abort();
    }
    post_hook(
        (&shared.catalog, active.run_id),
        &job,
        &env_base,
        &outcome,
        hook_timeout,
        active.stop_reason(),
        log,
    )
    .await;
    outcome
}

/// The steps of a run up to the post-hook.
async fn backup_steps(
    runner: &Runner,
    active: &Arc<Active>,
    job: &JobSpec,
    targets: &[TargetSpec],
    env_base: &[(&'static str, String)],
    hook_timeout: Duration,
    log: &mut Vec<String>,
) -> Outcome {
    let shared = &runner.shared;
    let Some(primary) = targets.first().cloned() else {
        return Outcome::failed(RunError::NoTarget);
    };
    if primary.kind == TargetKind::Tape {
        // A tape target takes copies only: refused before its pre-flight check.
        return Outcome::failed(
            crate::targets::capabilities(TargetKind::Tape).refusal(&primary.name, Purpose::Backup),
        );
    }
    active
        .progress
        .send_modify(|p| p.phase = "preflight".into());
    if let Err(e) = preflight(shared, &primary).await {
        // The post-hook runs after every run that got this far, failed ones included.
        return Outcome::failed(e);
    }
    if let Some(pre) = &job.hooks.pre {
        active.progress.send_modify(|p| p.phase = "pre-hook".into());
        let mut env = env_base.to_vec();
        env.push(("BMS_PHASE", "pre".into()));
        let r = hooks::run(
            pre,
            &env,
            hook_timeout,
            Some(&active.stop),
            (&shared.catalog, active.run_id),
        )
        .await;
        log.push(format!("pre-hook: {}", r.how));
        if !r.output.is_empty() {
            log.push(format!("pre-hook output:\n{}", r.output.trim_end()));
        }
        if !r.ok {
            let outcome = if r.stopped {
                let (state, msg) = stopped(active.stop_reason(), job.timeout_secs);
                Outcome {
                    state,
                    snapshot: None,
                    stats: RunStats::default(),
                    error: Some(format!("{msg} (in the pre-hook); nothing was backed up")),
                }
            } else {
                Outcome::failed(format!(
                    "pre-hook failed ({}); nothing was backed up",
                    r.how
                ))
            };
            return outcome;
        }
    }
    let mut outcome = backup_to_primary(shared, active, job, &primary, log).await;
    if matches!(outcome.state, RunState::Succeeded | RunState::Warning) {
        if let Some(snapshot) = outcome.snapshot.clone() {
            seal(shared, &primary, &snapshot, &mut outcome, log).await;
            for dst in targets.iter().skip(1) {
                if active.stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if let Err(e) =
                    super::execute_copy::copy(runner, active, job, &primary, dst, &snapshot).await
                {
                    let msg = e.to_string();
                    log.push(msg.clone());
                    outcome.state = RunState::Warning;
                    outcome.error.get_or_insert(msg);
                }
            }
            if job.verify.after_backup && !active.stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Err(e) = super::execute_verify::verify(runner, active, job, &primary).await {
                    let msg = e.to_string();
                    log.push(msg.clone());
                    outcome.state = RunState::Warning;
                    outcome.error.get_or_insert(msg);
                }
            }
            if active.stop.load(std::sync::atomic::Ordering::SeqCst) {
                // The snapshot on the primary is complete; the copies were stopped.
                let (state, msg) = stopped(active.stop_reason(), job.timeout_secs);
                outcome.state = state;
                outcome.error = Some(format!(
                    "{msg} while copying; the snapshot on '{}' is complete",
                    primary.name
                ));
            }
        }
    }
    outcome
}

/// At shutdown the post-hook gets at most this long, so bmsd still stops within its grace time.
const POST_HOOK_AT_SHUTDOWN: Duration = Duration::from_secs(2);

async fn post_hook(
    record: (&crate::catalog::CatalogHandle, i64),
    job: &JobSpec,
    env_base: &[(&'static str, String)],
    outcome: &Outcome,
    timeout: Duration,
    stop: Option<StopReason>,
    log: &mut Vec<String>,
) {
    let timeout = if stop == Some(StopReason::Shutdown) {
        timeout.min(POST_HOOK_AT_SHUTDOWN)
    } else {
        timeout
    };
    let Some(post) = &job.hooks.post else { return };
    let mut env = env_base.to_vec();
    env.push(("BMS_PHASE", "post".into()));
    env.push(("BMS_RESULT", outcome.state.as_str().into()));
    env.push(("BMS_SNAPSHOT", outcome.snapshot.clone().unwrap_or_default()));
    env.push(("BMS_ERROR", outcome.error.clone().unwrap_or_default()));
    // The post-hook runs even for a stopped run: it is not stopped itself.
    let r = hooks::run(post, &env, timeout, None, record).await;
    log.push(format!("post-hook: {}", r.how));
    if !r.output.is_empty() {
        log.push(format!("post-hook output:\n{}", r.output.trim_end()));
    }
}

async fn backup_to_primary(
    shared: &SharedRef,
    active: &Arc<Active>,
    job: &JobSpec,
    target: &TargetSpec,
    log: &mut Vec<String>,
) -> Outcome {
    active.progress.send_modify(|p| p.phase = "backup".into());
    let (job_name, target_name) = (job.name.clone(), target.name.clone());
    let expected = shared
        .catalog
        .call(move |c| c.list_snapshots(Some(&job_name), Some(&target_name)))
        .await
        .ok()
        .and_then(|s| s.last().map(|s| s.stats.bytes_total))
        .unwrap_or(0);
    let opts = BackupOptions {
        sources: job.sources.iter().map(Into::into).collect(),
        excludes: job.excludes.clone(),
        one_file_system: job.one_file_system,
        job: job.name.clone(),
        host: host(),
        tags: vec![format!("run:{}", active.run_id)],
        parent: None,
        force_full: false,
    };
    let spec = target.clone();
    let a = active.clone();
    let result = tokio::task::spawn_blocking(move || {
        let repo = open_repo(&spec, Purpose::Backup)?;
        let started = Instant::now();
        let report = |p: &bms_engine::Progress| {
            let secs = started.elapsed().as_secs_f64().max(0.001);
            let rate = p.bytes_read as f64 / secs;
            let eta = (expected > p.bytes_read && rate > 0.0)
                .then(|| ((expected - p.bytes_read) as f64 / rate) as u64);
            a.progress.send_modify(|pr| {
                pr.files = p.files;
                pr.bytes_read = p.bytes_read;
                pr.bytes_added = p.bytes_added;
                pr.bytes_expected = expected;
                pr.bytes_per_sec = rate;
                pr.eta_secs = eta;
            });
        };
        let stop: &AtomicBool = &a.stop;
        with_lock_status(&a, || repo.backup(&opts, &report, stop))
    })
    .await;
    match result {
        Err(e) => Outcome::failed(format!("the backup task failed: {e}")),
        Ok(Err(e)) => {
            if active.stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (state, msg) = stopped(active.stop_reason(), job.timeout_secs);
                Outcome {
                    state,
                    snapshot: None,
                    stats: RunStats::default(),
                    error: Some(msg),
                }
            } else {
                Outcome::failed(e.to_string())
            }
        }
        Ok(Ok(summary)) => {
            log.extend(summary.notes.iter().cloned());
            log.extend(summary.warnings.iter().map(|w| format!("warning: {w}")));
            let stats = stats_of(&summary);
            let rec = SnapshotRecord {
                id: summary.snapshot_id.clone(),
                target: target.name.clone(),
                job: job.name.clone(),
                // The repository's own time and paths, so that a rebuilt record equals this one
                // (docs/operations.md "Recovering the catalog").
                time: crate::catalog::catalog_time(&summary.time),
                host: host(),
                paths: summary.paths.clone(),
                partial: summary.partial,
                run_id: Some(active.run_id),
                stats: stats.clone(),
            };
            if let Err(e) = shared.catalog.call(move |c| c.record_snapshot(&rec)).await {
                warn!(
                    run = active.run_id,
                    "cannot record snapshot in the catalog: {e}"
                );
                log.push(format!(
                    "bmsd could not record snapshot {} in the catalog: {e}",
                    summary.snapshot_id
                ));
            }
            Outcome {
                state: if summary.partial {
                    RunState::Warning
                } else {
                    RunState::Succeeded
                },
                snapshot: Some(summary.snapshot_id),
                error: summary.partial.then(|| {
                    format!(
                        "partial snapshot: {} warnings (entries left out; see the run log)",
                        summary.warnings_count
                    )
                }),
                stats,
            }
        }
    }
}
