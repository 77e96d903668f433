//! Repository figures per target for the metrics endpoint (docs/metrics.md, "Targets"): bytes
//! stored, snapshots, dedup and compression ratios. They are measured once at start and again
//! after each run that changes a repository (a backup, copy or prune that ended with a snapshot
//! or a reclaim), and kept in memory, so a scrape reads no repository.

use crate::state::SharedRef;
use crate::targets::{open_target, Purpose, Target};
use bms_engine::usage::Usage;
use bms_proto::api::{Event, RunKind, RunState, TargetSpec};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// The latest figures of each target whose repository could be read.
#[derive(Debug, Default)]
pub struct UsageBook {
    map: Mutex<BTreeMap<String, Usage>>,
}

impl UsageBook {
    pub fn snapshot(&self) -> Vec<(String, Usage)> {
        let m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn set(&self, target: &str, usage: Option<Usage>) {
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        match usage {
            Some(u) => {
                m.insert(target.to_owned(), u);
            }
            None => {
                m.remove(target);
            }
        }
    }

    /// Forgets targets no longer in the catalog.
    fn retain(&self, names: &[String]) {
        let mut m = match self.map.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        m.retain(|k, _| names.contains(k));
    }
}

/// Whether a finished run may have changed its target's repository.
fn changes_repository(kind: RunKind, state: RunState) -> bool {
    matches!(kind, RunKind::Backup | RunKind::Copy | RunKind::Prune)
        && matches!(state, RunState::Succeeded | RunState::Warning)
}

fn measure(spec: &TargetSpec) -> Result<Usage, String> {
    let target = Target::from_spec(spec).map_err(|e| e.message)?;
    let repo = open_target(&target, Purpose::Verify).map_err(|e| e.to_string())?;
    repo.usage().map_err(|e| e.to_string())
}

async fn update(shared: &SharedRef, book: &UsageBook, name: Option<String>) {
    let targets = match shared.catalog.call(|c| c.list_targets()).await {
        Ok(t) => t,
        Err(e) => {
            warn!("cannot list targets to measure their repositories: {e}");
            return;
        }
    };
    let names: Vec<String> = targets.iter().map(|t| t.spec.name.clone()).collect();
    book.retain(&names);
    for t in targets {
        if name.as_ref().is_some_and(|n| *n != t.spec.name) || !t.supported {
            continue;
        }
        let spec = t.spec.clone();
        let r = tokio::task::spawn_blocking(move || measure(&spec)).await;
        match r {
            Ok(Ok(u)) => book.set(&t.spec.name, Some(u)),
            Ok(Err(e)) => {
                debug!(target = %t.spec.name, "no repository figures: {e}");
                book.set(&t.spec.name, None);
            }
            Err(e) => warn!(target = %t.spec.name, "measuring the repository failed: {e}"),
        }
    }
}

/// Measures every target at start, then each target a run changed.
pub async fn run(shared: SharedRef, book: Arc<UsageBook>, cancel: CancellationToken) {
    let mut events = shared.events.subscribe();
    update(&shared, &book, None).await;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.recv() => e,
        };
        match event {
            Ok(Event::RunFinished { run, state, .. }) if changes_repository(run.kind, state) => {
                // A copy run names its destination as its target.
                update(&shared, &book, run.target.clone()).await;
            }
            Ok(Event::TargetStateChanged { target, .. }) => {
                update(&shared, &book, Some(target)).await;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                debug!("the usage task missed {n} events; measuring every target");
                update(&shared, &book, None).await;
            }
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_runs_that_wrote_change_a_repository() {
        assert!(changes_repository(RunKind::Backup, RunState::Succeeded));
        assert!(changes_repository(RunKind::Copy, RunState::Warning));
        assert!(changes_repository(RunKind::Prune, RunState::Succeeded));
        assert!(!changes_repository(RunKind::Verify, RunState::Succeeded));
        assert!(!changes_repository(RunKind::Backup, RunState::Failed));
    }

    #[test]
    fn the_book_forgets_removed_targets() {
        let b = UsageBook::default();
        b.set("a", Some(Usage::default()));
        b.set("b", Some(Usage::default()));
        b.retain(&["b".to_owned()]);
        let names: Vec<String> = b.snapshot().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["b"]);
        b.set("b", None);
        assert!(b.snapshot().is_empty());
    }
}
