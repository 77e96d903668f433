//! `prune` runs: per target, apply the retention policy of every job on it (the job's rules
//! raised to the target's), remove the forgotten snapshots from the repository and the catalog,
//! then prune the repository (docs/retention.md). Queued by `bmsctl prune` and by the target's
//! prune calendar.

use super::steps::{open_repo, preflight, stopped, with_lock_status, Outcome};
use super::{finish, Active, End, RunHead, Runner, RunnerRef};
use crate::catalog::{Actor, NewRun};
use crate::targets::Purpose;
use bms_engine::retention::Policy;
use bms_proto::api::*;
use bms_proto::ApiError;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tracing::info;

/// The jobs that write to `target` (all, or only `job`) and their effective policies there.
pub async fn policies(
    shared: &crate::state::SharedRef,
    target: &TargetSpec,
    job: Option<&str>,
) -> Result<Vec<(String, Policy)>, ApiError> {
    let jobs = shared.catalog.call(|c| c.list_jobs()).await?;
    let mut out = Vec::new();
    for j in jobs {
        if !j.spec.targets.contains(&target.name) || job.is_some_and(|n| n != j.spec.name) {
            continue;
        }
        let p = crate::retention::effective(&j.spec.retention, target.retention.as_ref())?;
        out.push((j.spec.name, p));
    }
    Ok(out)
}

/// Queues a prune run of `target`, limited to the snapshots of `job` when given. A prune of
/// the same target already queued or running gets a `skipped` run with the reason.
pub async fn submit_prune(
    runner: &RunnerRef,
    target: &str,
    job: Option<&str>,
    trigger: RunTrigger,
) -> Result<RunInfo, ApiError> {
    let shared = &runner.shared;
    let t = target.to_owned();
    let info = shared.catalog.call(move |c| c.get_target(&t)).await?;
    crate::targets::Target::from_spec(&info.spec)?.require(Purpose::Prune)?;
    let job_name = job.unwrap_or_default().to_owned();
    let (j, t) = (job_name.clone(), target.to_owned());
    let run = shared
        .catalog
        .call(move |c| {
            c.insert_run(&NewRun {
                job: &j,
                kind: RunKind::Prune,
                trigger,
                state: RunState::Queued,
                target: Some(&t),
                source_target: None,
                parent_run: None,
                error: None,
            })
        })
        .await?;
    shared.events.publish(Event::RunQueued { run: run.clone() });
    let active = Arc::new(Active {
        run_id: run.id,
        job: job_name,
        kind: RunKind::Prune,
        trigger,
        target: Some(target.to_owned()),
        read_data: None,
        stop: Arc::new(AtomicBool::new(false)),
        reason: Mutex::new(None),
        progress: tokio::sync::watch::channel(RunProgress {
            phase: "queued".into(),
            ..Default::default()
        })
        .0,
    });
    let other = {
        let mut t = runner.table();
        let other = t
            .running
            .values()
            .chain(t.queue.iter())
            .find(|a| a.kind == RunKind::Prune && a.target.as_deref() == Some(target))
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
    let reason = format!(
        "a prune of target '{target}' is already queued or running (run {other}); this {} prune was skipped",
        trigger.as_str()
    );
    info!(target, "{reason}");
    Ok(finish(
        runner,
        RunHead::of(&run),
        End::new(RunState::Skipped, Some(reason)),
    )
    .await)
}

/// Carries out a prune run.
pub async fn execute(runner: &Runner, active: &Arc<Active>, log: &mut Vec<String>) -> Outcome {
    let shared = &runner.shared;
    let Some(target) = active.target.clone() else {
        return Outcome::failed("a prune run without a target");
    };
    let t = target.clone();
    let spec = match shared.catalog.call(move |c| c.get_target(&t)).await {
        Ok(i) => i.spec,
        Err(e) => return Outcome::failed(format!("cannot read target '{target}': {}", e.message)),
    };
    if let Err(e) = preflight(shared, &spec).await {
        return Outcome::failed(e);
    }
    let job = (!active.job.is_empty()).then(|| active.job.clone());
    let jobs = match policies(shared, &spec, job.as_deref()).await {
        Ok(j) => j,
        Err(e) => return Outcome::failed(e.message),
    };
    let grace = match crate::retention::prune_grace(&spec) {
        Ok(g) => g,
        Err(e) => return Outcome::failed(e.message),
    };
    active
        .progress
        .send_modify(|p| p.phase = format!("prune {target}"));
    let (a, stop, name) = (active.clone(), active.stop.clone(), target.clone());
    let result = tokio::task::spawn_blocking(move || {
        with_lock_status(&a, || {
            let repo = open_repo(&spec, Purpose::Prune);
            crate::retention::forget_and_prune(repo, &name, &jobs, grace, false, &stop)
        })
    })
    .await;
    let (forgot, sum) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(bms_engine::Error::Cancelled)) => {
            let (state, msg) = stopped(active.stop_reason(), 0);
            return Outcome {
                state,
                snapshot: None,
                stats: RunStats::default(),
                error: Some(msg),
            };
        }
        Ok(Err(e)) => return Outcome::failed(format!("prune of '{target}' failed: {e}")),
        Err(e) => return Outcome::failed(format!("prune of '{target}' failed: {e}")),
    };
    let stats = crate::retention::stats_of(&forgot, &sum);
    for d in &forgot.decisions {
        log.push(format!(
            "{} {} {} {}",
            if d.keep { "keep" } else { "remove" },
            &d.id[..d.id.len().min(8)],
            d.time,
            d.reasons.join(", ")
        ));
    }
    log.extend(sum.notes.iter().cloned());
    for o in &sum.sealed_kept {
        log.push(format!(
            "kept {} {}: immutable until {}",
            o.kind, o.id, o.until
        ));
    }
    let (id, removed, st, t) = (active.run_id, forgot.removed.clone(), stats.clone(), target);
    let why = format!("prune run {id}");
    let recorded = shared
        .catalog
        .call(move |c| {
            c.forget_snapshots(Actor { uid: 0 }, &t, &removed, &why)?;
            c.set_prune_stats(id, &st)
        })
        .await;
    if let Err(e) = recorded {
        return Outcome::failed(format!(
            "pruned, but the catalog could not record it: {}",
            e.message
        ));
    }
    Outcome {
        state: RunState::Succeeded,
        snapshot: None,
        stats: RunStats::default(),
        error: None,
    }
}
