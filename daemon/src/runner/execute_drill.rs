//! Restore drills (docs/compliance.md): a `drill` run restores a random sample of files from the
//! latest snapshot of the job on its primary target into a private scratch directory under the
//! state directory, compares them with the snapshot's recorded hashes and records the sample,
//! the restore rate and the projected full-restore time; each further target gets a `drill` run
//! of its own that belongs to it. A drill that finds a problem is a verification error for the
//! "0" rule.

use super::steps::{
    arm_timeout, job_and_targets, open_repo, preflight, start_child, stopped, Outcome,
};
use super::{finish, Active, End, RunError, RunHead, Runner};
use crate::state::SharedRef;
use crate::targets::Purpose;
use bms_proto::api::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// The directory below the state directory that holds drills' scratch directories.
pub const SCRATCH_DIR: &str = "drills";

/// Removes scratch directories a drill left behind (bmsd was killed during it); called at
/// start-up, before any run.
pub fn clear_scratch(state_dir: &Path) {
    let dir = state_dir.join(SCRATCH_DIR);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            tracing::warn!(
                "cannot remove old drill scratch directories in {}: {e}",
                dir.display()
            );
        }
    }
}

/// What one target's drill found.
struct Drilled {
    state: RunState,
    error: Option<String>,
    log: Vec<String>,
}

impl Drilled {
    fn failed(error: String) -> Drilled {
        Drilled {
            state: RunState::Failed,
            error: Some(error),
            log: Vec::new(),
        }
    }
}

/// The policy a drill follows: the job's, or the defaults for an on-demand drill of a job that
/// has none.
fn policy_of(job: &JobSpec) -> DrillPolicy {
    job.verify.drill.clone().unwrap_or(DrillPolicy {
        schedule: String::new(),
        sample_files: DRILL_SAMPLE_FILES,
        sample_bytes: DRILL_SAMPLE_BYTES,
    })
}

/// Bytes in a short human form.
fn size(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Drills `target` for `job` as run `run_id`.
async fn drill_target(
    shared: &SharedRef,
    job: &JobSpec,
    target: &TargetSpec,
    run_id: i64,
    stop: Arc<AtomicBool>,
) -> Drilled {
    if target.kind == TargetKind::Tape {
        return drill_tape(shared, job, target, run_id, stop).await;
    }
    let policy = policy_of(job);
    let (jname, tname) = (job.name.clone(), target.name.clone());
    let snaps = match shared
        .catalog
        .call(move |c| c.list_snapshots(Some(&jname), Some(&tname)))
        .await
    {
        Ok(s) => s,
        Err(e) => return Drilled::failed(format!("cannot read the catalog's snapshots: {e}")),
    };
    let Some(snap) = snaps
        .into_iter()
        .filter(|s| !s.partial)
        .max_by(|a, b| a.time.cmp(&b.time))
    else {
        return Drilled::failed(format!(
            "target '{}' holds no complete snapshot of job '{}' to drill; run 'bmsctl job run {} --wait' first",
            target.name, job.name, job.name
        ));
    };
    let state_dir = shared.config().config.state_dir.clone();
    let parent = state_dir.join(SCRATCH_DIR);
    if let Err(e) = bms_engine::fsutil::ensure_dir_private(&parent) {
        return Drilled::failed(format!(
            "cannot create the drill directory {}: {e}; check the state directory's permissions",
            parent.display()
        ));
    }
    let scratch: PathBuf = parent.join(format!("run-{run_id}"));
    let opts = bms_engine::drill::DrillOptions {
        snapshot: snap.id.clone(),
        scratch,
        sample_files: policy.sample_files,
        sample_bytes: policy.sample_bytes,
        seed: None,
    };
    let spec = target.clone();
    let result = tokio::task::spawn_blocking(move || {
        let repo = open_repo(&spec, Purpose::RestoreFrom)?;
        repo.drill(&opts, &stop)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let rep = match result {
        Ok(r) => r,
        Err(e) => {
            let d = Drilled::failed(format!(
                "restore drill of '{}' could not run: {e}",
                target.name
            ));
            record(shared, run_id, None, None).await;
            return d;
        }
    };
    let stats = DrillStats {
        snapshot: rep.snapshot_id.clone(),
        files_sampled: rep.files_sampled,
        bytes_sampled: rep.bytes_sampled,
        files_total: rep.files_total,
        bytes_total: rep.bytes_total,
        files_failed: rep.files_failed,
        restore_secs: rep.restore.as_secs_f64(),
        bytes_per_sec: rep.bytes_per_sec(),
        rto_secs: rep.rto_secs(),
    };
    let problems = if rep.ok() {
        0
    } else {
        rep.problems.len().max(1) as u64
    };
    record(shared, run_id, Some(&stats), Some(problems)).await;
    let mut log = vec![format!(
        "drill of '{}': restored {} of {} files ({} of {}) of snapshot {} in {:.2} s ({}/s); projected full restore {:.0} s",
        target.name,
        stats.files_sampled,
        stats.files_total,
        size(stats.bytes_sampled),
        size(stats.bytes_total),
        &stats.snapshot[..stats.snapshot.len().min(12)],
        stats.restore_secs,
        size(stats.bytes_per_sec as u64),
        stats.rto_secs
    )];
    const SHOWN: usize = 20;
    log.extend(rep.problems.iter().take(SHOWN).cloned());
    if rep.problems.len() > SHOWN {
        log.push(format!("and {} more problems", rep.problems.len() - SHOWN));
    }
    if rep.ok() {
        Drilled {
            state: RunState::Succeeded,
            error: None,
            log,
        }
    } else {
        Drilled {
            state: RunState::Failed,
            error: Some(format!(
                "restore drill of '{}' failed: {} of {} sampled files not restored intact ({} problem(s)) from snapshot {}; see 'bmsctl run show {run_id}' and run 'bmsctl verify --job {} --target {} --read-data 100'",
                target.name,
                stats.files_failed,
                stats.files_sampled,
                rep.problems.len(),
                &stats.snapshot[..stats.snapshot.len().min(12)],
                job.name,
                target.name
            )),
            log,
        }
    }
}

/// The drill of a tape target is a full read of its latest archive (docs/tape.md, "Verify and
/// restore drills of tape targets"): a sample spread over the archive would cost the same pass
/// over its tape file. Its statistics are those of the whole archive.
async fn drill_tape(
    shared: &SharedRef,
    job: &JobSpec,
    target: &TargetSpec,
    run_id: i64,
    stop: Arc<AtomicBool>,
) -> Drilled {
    let v = match super::verify_tape::verify(shared, &job.name, target, stop, None).await {
        Ok(v) => v,
        Err(e) => {
            record(shared, run_id, None, None).await;
            return Drilled::failed(format!(
                "restore drill of '{}' could not run: {e}",
                target.name
            ));
        }
    };
    let secs = v.secs.max(1e-6);
    let stats = DrillStats {
        snapshot: v.snapshot.clone(),
        files_sampled: v.files,
        bytes_sampled: v.bytes,
        files_total: v.files,
        bytes_total: v.bytes,
        files_failed: v.problems.len() as u64,
        restore_secs: v.secs,
        bytes_per_sec: v.bytes as f64 / secs,
        rto_secs: v.secs,
    };
    record(shared, run_id, Some(&stats), Some(v.problems.len() as u64)).await;
    let short = &v.snapshot[..v.snapshot.len().min(12)];
    let mut log = vec![format!(
        "drill of tape target '{}': read back all {} files ({}) of snapshot {short} in {:.2} s          ({}/s); a drill of a tape target reads the whole archive",
        target.name,
        v.files,
        size(v.bytes),
        v.secs,
        size(stats.bytes_per_sec as u64)
    )];
    log.extend(v.notes);
    log.extend(v.problems.iter().map(|p| format!("tape: {p}")));
    if v.problems.is_empty() {
        return Drilled {
            state: RunState::Succeeded,
            error: None,
            log,
        };
    }
    Drilled {
        state: RunState::Failed,
        error: Some(format!(
            "restore drill of tape target '{}' failed: {} problem(s) in the archive of snapshot              {short}: {}; see 'bmsctl run show {run_id}'",
            target.name,
            v.problems.len(),
            v.problems.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
        )),
        log,
    }
}

/// Stores a drill's statistics and its problem count (the evidence of the "0" rule).
async fn record(shared: &SharedRef, run: i64, stats: Option<&DrillStats>, problems: Option<u64>) {
    let stats = stats.cloned();
    if let Err(e) = shared
        .catalog
        .call(move |c| {
            if let Some(s) = &stats {
                c.set_drill_stats(run, s)?;
            }
            c.set_drill_problems(run, problems)
        })
        .await
    {
        tracing::warn!(run, "cannot record the drill result: {e}");
    }
}

/// Drills a further target as a `drill` run that belongs to `parent`; returns its error.
async fn drill_child(
    runner: &Runner,
    parent: &Arc<Active>,
    job: &JobSpec,
    target: &TargetSpec,
) -> Option<String> {
    let shared = &runner.shared;
    let run = match start_child(
        runner,
        parent,
        &job.name,
        RunKind::Drill,
        &target.name,
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return Some(format!("drill of '{}': {e}", target.name)),
    };
    parent
        .progress
        .send_modify(|p| p.phase = format!("drill {}", target.name));
    let mut d = match preflight(shared, target).await {
        Err(e) => Drilled::failed(e.to_string()),
        Ok(()) => drill_target(shared, job, target, run.id, parent.stop.clone()).await,
    };
    if let Some(reason) = parent.stop_reason() {
        let (state, msg) = stopped(Some(reason), job.timeout_secs);
        d.state = state;
        d.error = Some(format!("restore drill of '{}' {msg}", target.name));
    }
    let error = d.error.clone();
    let end = End {
        state: d.state,
        snapshot: None,
        stats: RunStats::default(),
        error: d.error,
        log: d.log,
    };
    finish(runner, RunHead::of(&run), end).await;
    error
}

/// A queued `drill` run: the primary target (or the one named) by this run, every further
/// target by a child `drill` run; the run fails when any drill does.
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
    let targets = super::execute_verify::chosen_targets(targets, active.target.as_deref());
    let Some((primary, further)) = targets.split_first() else {
        return Outcome::failed(RunError::NoTarget);
    };
    let timer = arm_timeout(active, job.timeout_secs);
    let mut errors = Vec::new();
    active
        .progress
        .send_modify(|p| p.phase = "preflight".into());
    match preflight(shared, primary).await {
        Err(e) => errors.push(e.to_string()),
        Ok(()) => {
            active
                .progress
                .send_modify(|p| p.phase = format!("drill {}", primary.name));
            let d = drill_target(shared, &job, primary, active.run_id, active.stop.clone()).await;
            log.extend(d.log);
            errors.extend(d.error);
        }
    }
    for t in further {
        if active.stop_reason().is_some() {
            break;
        }
        if let Some(e) = drill_child(runner, active, &job, t).await {
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
            error: Some(format!("restore drill {msg}")),
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
