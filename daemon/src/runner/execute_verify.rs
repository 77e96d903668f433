//! Verification of a job's primary target: a structural check of its repository plus
//! `verify.read_data_percent` of its packs re-read. It runs after a backup (`verify.after_backup`,
//! recorded as a `verify` run that belongs to the backup run) and on the job's own calendar
//! (`verify.schedule`, a `verify` run of its own).

use super::steps::{
    arm_timeout, job_and_targets, open_repo, preflight, start_child, stopped, Outcome,
};
use super::{finish, progress, Active, End, RunError, RunHead, Runner};
use crate::state::SharedRef;
use crate::targets::Purpose;
use bms_proto::api::*;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What one verification found.
struct Checked {
    state: RunState,
    error: Option<String>,
    log: Vec<String>,
}

/// Verifies `target`'s repository (or, for a tape target, reads `job`'s latest archive back
/// from tape); `run_id` is the verify run's id (named in messages).
async fn check(
    shared: &SharedRef,
    job: &str,
    target: &TargetSpec,
    percent: u8,
    run_id: i64,
    stop: Arc<AtomicBool>,
    active: Option<&Arc<Active>>,
) -> Checked {
    if target.kind == TargetKind::Tape {
        return check_tape(shared, job, target, run_id, stop, active).await;
    }
    let opts = bms_engine::verify::VerifyOptions {
        read_data: percent >= 100,
        read_data_percent: (percent > 0 && percent < 100).then_some(percent),
    };
    let spec = target.clone();
    let progress = active.map(|a| a.progress.clone());
    let result = tokio::task::spawn_blocking(move || {
        let repo = open_repo(&spec, Purpose::Verify)?;
        repo.verify_cancellable(
            &opts,
            &|p: &bms_engine::verify::VerifyProgress| {
                if let Some(tx) = &progress {
                    tx.send_modify(|r| {
                        r.phase = format!("verify: {} {}/{}", p.phase, p.done, p.total)
                    });
                }
            },
            &stop,
        )
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let result = match result {
        Ok(mut rep) => {
            let extra = crate::immutability::catalog_seal_problems(shared, target).await;
            if !extra.is_empty() {
                rep.problems.extend(extra);
                rep.ok = false;
            }
            Ok(rep)
        }
        Err(e) => Err(e),
    };
    // The evidence of the "0" rule (docs/compliance.md): what this check itself found.
    let problems = match &result {
        Ok(rep) if rep.ok => Some(0),
        Ok(rep) => Some(rep.problems.len().max(1) as u64),
        Err(_) => None,
    };
    if let Err(e) = shared
        .catalog
        .call(move |c| c.set_verify_result(run_id, percent, problems))
        .await
    {
        tracing::warn!(run = run_id, "cannot record the verification result: {e}");
    }
    match result {
        Ok(rep) if rep.ok => Checked {
            state: RunState::Succeeded,
            error: None,
            log: rep.notes,
        },
        Ok(rep) => {
            tamper_events(shared, target, &rep.problems);
            let mut log: Vec<String> = rep.problems.iter().map(problem_line).collect();
            log.extend(rep.notes.iter().cloned());
            Checked {
                state: RunState::Failed,
                error: Some(format!(
                    "verification of '{}' found {} problem(s); see 'bmsctl run show {run_id}' and run 'bmsctl repo verify {} --read-data'",
                    target.name,
                    rep.problems.len(),
                    target.path
                )),
                log,
            }
        }
        Err(e) => Checked {
            state: RunState::Failed,
            error: Some(format!(
                "verification of '{}' could not run: {e}",
                target.name
            )),
            log: Vec::new(),
        },
    }
}

/// Verifies a tape target: every file of the latest complete archive is read back and checked
/// against the tape catalog's hash; recorded as a read of all data (100 %).
async fn check_tape(
    shared: &SharedRef,
    job: &str,
    target: &TargetSpec,
    run_id: i64,
    stop: Arc<AtomicBool>,
    active: Option<&Arc<Active>>,
) -> Checked {
    let progress = active.map(|a| a.progress.clone());
    let result = super::verify_tape::verify(shared, job, target, stop, progress).await;
    let problems = match &result {
        Ok(v) => Some(v.problems.len() as u64),
        Err(_) => None,
    };
    if let Err(e) = shared
        .catalog
        .call(move |c| c.set_verify_result(run_id, 100, problems))
        .await
    {
        tracing::warn!(run = run_id, "cannot record the verification result: {e}");
    }
    match result {
        Ok(v) if v.problems.is_empty() => {
            let mut log = v.notes;
            log.push(format!(
                "tape archive of snapshot {} verified: {} members, every file's hash matches",
                short(&v.snapshot),
                v.files
            ));
            Checked {
                state: RunState::Succeeded,
                error: None,
                log,
            }
        }
        Ok(v) => {
            const SHOWN: usize = 10;
            let shown: Vec<&str> = v.problems.iter().take(SHOWN).map(String::as_str).collect();
            let more = if v.problems.len() > SHOWN {
                format!(" and {} more", v.problems.len() - SHOWN)
            } else {
                String::new()
            };
            let mut log: Vec<String> = v.problems.iter().map(|p| format!("tape: {p}")).collect();
            log.extend(v.notes);
            Checked {
                state: RunState::Failed,
                error: Some(format!(
                    "verification of tape target '{}' found {} problem(s) in the archive of                      snapshot {}: {}{more}; restore those files from another copy and write a                      new tape copy (`bmsctl job run {job} --wait`); see 'bmsctl run show {run_id}'",
                    target.name,
                    v.problems.len(),
                    short(&v.snapshot),
                    shown.join("; ")
                )),
                log,
            }
        }
        Err(e) => Checked {
            state: RunState::Failed,
            error: Some(format!(
                "verification of '{}' could not run: {e}",
                target.name
            )),
            log: Vec::new(),
        },
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Publishes `TamperDetected` for every sealed object that lost its immutable attribute.
fn tamper_events(shared: &SharedRef, target: &TargetSpec, problems: &[bms_engine::Problem]) {
    for p in problems.iter().filter(|p| p.kind == "seal") {
        let what = p
            .message
            .split(" should be")
            .next()
            .unwrap_or("object")
            .to_owned();
        tracing::error!(target = %target.name, "tamper: {}", p.message);
        shared.events.publish(Event::TamperDetected {
            target: Some(target.name.clone()),
            what,
            detail: p.message.clone(),
        });
    }
}

/// A problem for the run log: what is wrong, and the first files it affects.
fn problem_line(p: &bms_engine::Problem) -> String {
    const SHOWN: usize = 10;
    let mut line = format!("{}: {}", p.kind, p.message);
    if !p.files.is_empty() {
        let shown: Vec<&str> = p.files.iter().take(SHOWN).map(String::as_str).collect();
        line.push_str(&format!("; affected files: {}", shown.join(", ")));
        if p.files.len() > SHOWN {
            line.push_str(&format!(" and {} more", p.files.len() - SHOWN));
        }
    }
    line
}

/// Records the end of a child verify run.
async fn finish_child(runner: &Runner, run: &RunInfo, c: Checked) {
    let end = End {
        state: c.state,
        snapshot: None,
        stats: RunStats::default(),
        error: c.error,
        log: c.log,
    };
    finish(runner, RunHead::of(run), end).await;
}

/// Verifies `target` as a `verify` run that belongs to `parent`; returns its error, if any.
async fn verify_child(
    runner: &Runner,
    parent: &Arc<Active>,
    job: &JobSpec,
    target: &TargetSpec,
    with_preflight: bool,
) -> Option<String> {
    let percent = parent.read_data.unwrap_or(job.verify.read_data_percent);
    let shared = &runner.shared;
    let run = match start_child(
        runner,
        parent,
        &job.name,
        RunKind::Verify,
        &target.name,
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Some(format!("verify of '{}': {e}", target.name)),
    };
    parent
        .progress
        .send_modify(|p| p.phase = format!("verify {}", target.name));
    let forwarder = progress::forward(
        shared,
        run.id,
        &run.job,
        run.kind,
        parent.progress.subscribe(),
    );
    let mut c = Checked {
        state: RunState::Succeeded,
        error: None,
        log: Vec::new(),
    };
    if with_preflight {
        if let Err(e) = preflight(shared, target).await {
            c.state = RunState::Failed;
            c.error = Some(e.to_string());
        }
    }
    if c.error.is_none() {
        c = check(
            shared,
            &job.name,
            target,
            percent,
            run.id,
            parent.stop.clone(),
            None,
        )
        .await;
    }
    if let Some(reason) = parent.stop_reason() {
        let (state, msg) = stopped(Some(reason), job.timeout_secs);
        c.state = state;
        c.error = Some(format!("verification of '{}' {msg}", target.name));
    }
    drop(forwarder);
    let error = c.error.clone();
    finish_child(runner, &run, c).await;
    error
}

/// Verifies `target` after a backup; `Err` is a line for the backup run's log and error.
pub async fn verify(
    runner: &Runner,
    parent: &Arc<Active>,
    job: &JobSpec,
    target: &TargetSpec,
) -> Result<(), RunError> {
    match verify_child(runner, parent, job, target, false).await {
        None => Ok(()),
        Some(e) => Err(RunError::Step(e)),
    }
}

/// The targets a verify or drill run checks: the one it names, or else every target of the job.
/// Tape targets are read back from tape (docs/tape.md, "Verify and restore drills of tape
/// targets").
pub(super) fn chosen_targets(targets: Vec<TargetSpec>, only: Option<&str>) -> Vec<TargetSpec> {
    match only {
        Some(only) => targets.into_iter().filter(|t| t.name == only).collect(),
        None => targets,
    }
}

/// A scheduled verification (a queued `verify` run): the primary target is checked by this run,
/// every further target (the copies) by a `verify` run that belongs to it; each after its
/// pre-flight check. The run fails when any target has problems. The job's timeout applies.
pub(super) async fn scheduled(
    runner: &Runner,
    active: &Arc<Active>,
    log: &mut Vec<String>,
) -> Outcome {
    let shared = &runner.shared;
    let (job, targets) = match job_and_targets(shared, &active.job).await {
        Ok(jt) => jt,
        Err(e) => return Outcome::failed(e),
    };
    // An on-demand verification of one target checks only that one, as this run.
    let targets = chosen_targets(targets, active.target.as_deref());
    let Some((primary, further)) = targets.split_first() else {
        return Outcome::failed(RunError::NoTarget);
    };
    let percent = active.read_data.unwrap_or(job.verify.read_data_percent);
    let timer = arm_timeout(active, job.timeout_secs);
    let mut errors = Vec::new();
    active
        .progress
        .send_modify(|p| p.phase = "preflight".into());
    match preflight(shared, primary).await {
        Err(e) => errors.push(e.to_string()),
        Ok(()) => {
            let c = check(
                shared,
                &job.name,
                primary,
                percent,
                active.run_id,
                active.stop.clone(),
                Some(active),
            )
            .await;
            log.extend(c.log);
            errors.extend(c.error);
        }
    }
    for t in further {
        if active.stop_reason().is_some() {
            break;
        }
        if let Some(e) = verify_child(runner, active, &job, t, true).await {
            log.push(e.clone());
            errors.push(e);
        }
    }
    if let Some(t) = timer {
        t.abort();
    }
    if let Some(reason) = active.stop_reason() {
        let (state, msg) = stopped(Some(reason), job.timeout_secs);
        return Outcome {
            state,
            snapshot: None,
            stats: RunStats::default(),
            error: Some(format!("verification {msg}")),
        };
    }
    Outcome {
        state: if errors.is_empty() {
            RunState::Succeeded
        } else {
            RunState::Failed
        },
        snapshot: None,
        stats: RunStats::default(),
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}
