//! The one place where a run ends (docs/architecture.md, "Events"): every kind of run — backup,
//! copy, verify, skipped, cancelled while queued, stopped at shutdown, failed before it started —
//! is recorded here and announced with `RunFinished`. An end the catalog cannot take is logged
//! with the run id, kept in memory (shown by `run show`) and written again with the next end.

use super::Runner;
use crate::state::SharedRef;
use bms_proto::api::{Event, RunDetail, RunInfo, RunKind, RunState, RunStats};
use bms_proto::ApiError;
use std::collections::HashMap;
use std::sync::Mutex;
use tracing::{error, info, warn};

/// Which run ends.
#[derive(Debug, Clone)]
pub struct RunHead {
    pub id: i64,
    pub job: String,
    pub kind: RunKind,
}

impl RunHead {
    pub fn of(run: &RunInfo) -> RunHead {
        RunHead {
            id: run.id,
            job: run.job.clone(),
            kind: run.kind,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct End {
    pub state: RunState,
    pub snapshot: Option<String>,
    pub stats: RunStats,
    pub error: Option<String>,
    pub log: Vec<String>,
}

impl End {
    pub fn new(state: RunState, error: Option<String>) -> End {
        End {
            state,
            snapshot: None,
            stats: RunStats::default(),
            error,
            log: Vec::new(),
        }
    }
}

/// Ends the catalog has not taken yet, by run id.
#[derive(Default)]
pub struct Unrecorded {
    ends: Mutex<HashMap<i64, (RunHead, End, String)>>,
}

impl Unrecorded {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, (RunHead, End, String)>> {
        match self.ends.lock() {
            Ok(e) => e,
            Err(p) => p.into_inner(),
        }
    }

    /// Shows an end that is not in the catalog yet in a run's detail.
    pub fn overlay(&self, d: &mut RunDetail) {
        if let Some((_, end, why)) = self.lock().get(&d.run.id) {
            d.run.state = end.state;
            d.run.stats = end.stats.clone();
            d.run.error = end.error.clone();
            d.run.snapshot = end.snapshot.clone().or(d.run.snapshot.take());
            d.log.extend(end.log.iter().cloned());
            d.log.push(format!(
                "bmsd could not record the end of this run in the catalog ({why}); it keeps it in \
                 memory and writes it again when the next run ends"
            ));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

async fn write(shared: &SharedRef, id: i64, end: &End) -> Result<RunInfo, ApiError> {
    let e = end.clone();
    shared
        .catalog
        .call(move |c| {
            c.finish_run(
                id,
                e.state,
                e.snapshot.as_deref(),
                &e.stats,
                e.error.as_deref(),
                &e.log,
            )
        })
        .await
}

/// Records the end of a run and publishes `RunFinished`; returns the run as recorded (or, when
/// the catalog failed, as kept in memory).
pub async fn finish(runner: &Runner, head: RunHead, end: End) -> RunInfo {
    let shared = &runner.shared;
    retry_unrecorded(runner).await;
    let backed_up = head.kind == RunKind::Backup
        && matches!(end.state, RunState::Succeeded | RunState::Warning)
        && end.snapshot.is_some();
    let run = match write(shared, head.id, &end).await {
        Ok(run) => {
            info!(run = head.id, job = %head.job, state = run.state.as_str(), "run finished");
            run
        }
        Err(e) => {
            error!(
                run = head.id,
                job = %head.job,
                "cannot record the end of run {} ({}): {e}",
                head.id,
                end.state.as_str()
            );
            let run = unrecorded_info(shared, &head, &end).await;
            runner
                .unrecorded
                .lock()
                .insert(head.id, (head, end.clone(), e.to_string()));
            run
        }
    };
    shared.events.publish(Event::RunFinished {
        run: run.clone(),
        state: end.state,
        stats: end.stats,
        error: end.error,
    });
    if backed_up {
        if let Some(target) = run.target.clone() {
            crate::catalog_backup::after_backup(shared, &runner.catalog_copies, target);
        }
    }
    run
}

/// The run as the catalog last had it, with the end that could not be written.
async fn unrecorded_info(shared: &SharedRef, head: &RunHead, end: &End) -> RunInfo {
    let id = head.id;
    let mut run = match shared.catalog.call(move |c| c.get_run(id)).await {
        Ok(r) => r,
        Err(_) => RunInfo {
            id,
            job: head.job.clone(),
            kind: head.kind,
            trigger: bms_proto::api::RunTrigger::Manual,
            state: end.state,
            target: None,
            source_target: None,
            snapshot: None,
            parent_run: None,
            queued_at: String::new(),
            started_at: None,
            finished_at: None,
            duration_secs: None,
            stats: RunStats::default(),
            error: None,
            prune: None,
            drill: None,
        },
    };
    run.state = end.state;
    run.stats = end.stats.clone();
    run.error = end.error.clone();
    run.snapshot = end.snapshot.clone().or(run.snapshot);
    run
}

/// Writes the ends kept in memory again.
async fn retry_unrecorded(runner: &Runner) {
    let shared = &runner.shared;
    if runner.unrecorded.is_empty() {
        return;
    }
    let pending: Vec<(i64, End)> = runner
        .unrecorded
        .lock()
        .iter()
        .map(|(id, (_, end, _))| (*id, end.clone()))
        .collect();
    for (id, end) in pending {
        match write(shared, id, &end).await {
            Ok(_) => {
                info!(
                    run = id,
                    "recorded the end of run {id} that the catalog refused before"
                );
                runner.unrecorded.lock().remove(&id);
            }
            Err(e) => warn!(run = id, "still cannot record the end of run {id}: {e}"),
        }
    }
}
