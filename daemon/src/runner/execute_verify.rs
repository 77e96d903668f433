//! Verification after a backup (the job's `verify.after_backup`): a structural check of the
//! primary target's repository, re-reading `verify.read_data_percent` of its packs, recorded as a
//! `verify` run that belongs to the backup run.

use super::Active;
use crate::state::SharedRef;
use bms_proto::api::*;
use std::path::PathBuf;
use std::sync::Arc;

/// Verifies `target`; `Err` is a line for the backup run's log and error.
pub async fn verify(
    shared: &SharedRef,
    parent: &Arc<Active>,
    job: &JobSpec,
    target: &TargetSpec,
) -> Result<(), String> {
    let run = super::execute_copy::start_child(
        shared,
        parent,
        &job.name,
        RunKind::Verify,
        &target.name,
        None,
    )
    .await
    .map_err(|e| format!("verify of '{}': {e}", target.name))?;
    parent
        .progress
        .send_modify(|p| p.phase = format!("verify {}", target.name));
    let percent = job.verify.read_data_percent;
    let opts = bms_engine::verify::VerifyOptions {
        read_data: percent >= 100,
        read_data_percent: (percent > 0 && percent < 100).then_some(percent),
    };
    let path = PathBuf::from(&target.path);
    let result = tokio::task::spawn_blocking(move || {
        let repo = bms_engine::Repository::open(&path)?;
        repo.verify(&opts, &|_| {})
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    let (state, error, log) = match &result {
        Ok(rep) if rep.ok => (RunState::Succeeded, None, rep.notes.clone()),
        Ok(rep) => {
            let mut log: Vec<String> = rep
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.kind, p.message))
                .collect();
            log.extend(rep.notes.iter().cloned());
            let msg = format!(
                "verification of '{}' found {} problem(s); see 'bmsctl run show {}' and run 'bmsctl repo verify {} --read-data'",
                target.name,
                rep.problems.len(),
                run.id,
                target.path
            );
            (RunState::Failed, Some(msg), log)
        }
        Err(e) => (
            RunState::Failed,
            Some(format!(
                "verification of '{}' could not run: {e}",
                target.name
            )),
            Vec::new(),
        ),
    };
    let (rid, err) = (run.id, error.clone());
    let _ = shared
        .catalog
        .call(move |c| c.finish_run(rid, state, None, &RunStats::default(), err.as_deref(), &log))
        .await;
    match error {
        None => Ok(()),
        Some(e) => Err(e),
    }
}
