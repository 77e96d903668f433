//! The runner's queue, concurrency limit, one-run-per-job rule, cancel and timeout, with a fake
//! engine (`Runner::with_exec`) and tokio's paused clock: no wall-clock waits.

use super::steps::{arm_timeout, stopped};
use super::*;
use crate::catalog::{Actor, Catalog, CatalogHandle, Upsert};
use crate::config::Config;
use crate::state::{ConfigState, Shared};
use bms_proto::api::{Event, JobSpec};
use tokio::sync::broadcast;

/// Real time a test may take before a wait fails (they take milliseconds).
const REAL_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

struct Fixture {
    deadline: tokio::sync::watch::Receiver<bool>,
    shared: SharedRef,
    runner: RunnerRef,
    events: broadcast::Receiver<Event>,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

/// The fake engine: a run goes until it is stopped (cancel, timeout); a job named `quick*`
/// ends by itself after 10 s of the (paused) clock.
fn fake_engine(runner: RunnerRef, a: Arc<Active>) -> BoxFuture {
    Box::pin(async move {
        let shared = &runner.shared;
        let id = a.run_id;
        let run = shared
            .catalog
            .call(move |c| {
                c.start_run(id)?;
                c.get_run(id)
            })
            .await
            .unwrap();
        shared
            .events
            .publish(Event::RunStarted { run: run.clone() });
        let name = a.job.clone();
        let job = shared
            .catalog
            .call(move |c| c.get_job(&name))
            .await
            .unwrap();
        let timer = arm_timeout(&a, job.spec.timeout_secs);
        let quick = a.job.starts_with("quick");
        let started = tokio::time::Instant::now();
        while !a.stop.load(Ordering::SeqCst) {
            if quick && started.elapsed() >= std::time::Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        if let Some(t) = timer {
            t.abort();
        }
        let end = match a.stop_reason() {
            None => End::new(RunState::Succeeded, None),
            reason => {
                let (state, msg) = stopped(reason, job.spec.timeout_secs);
                End::new(state, Some(msg))
            }
        };
        finish(&runner, RunHead::of(&run), end).await;
    })
}

fn job(name: &str, timeout_secs: u64) -> JobSpec {
    let mut spec: JobSpec = serde_json::from_value(serde_json::json!({
        "name": name,
        "sources": ["/nonexistent"],
        "schedule": "2099-01-01",
        "targets": ["local"],
    }))
    .unwrap();
    spec.timeout_secs = timeout_secs;
    spec
}

fn fixture(limit: u32, jobs: &[(&str, u64)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    cat.ensure_default_target(&dir.path().join("repo")).unwrap();
    for (name, timeout) in jobs {
        cat.put_job(Actor { uid: 0 }, &job(name, *timeout), Upsert::CreateOnly)
            .unwrap();
    }
    let (catalog, _thread) = CatalogHandle::spawn(cat).unwrap();
    let config = Config {
        max_concurrent_runs: limit,
        ..Config::defaults()
    };
    let shared = Shared::new(
        catalog,
        ConfigState {
            config,
            generation: 1,
            loaded_at: String::new(),
            effective_log_level: "info".into(),
        },
    );
    let runner = Runner::with_exec(shared.clone(), fake_engine);
    let events = shared.events.subscribe();
    let cancel = CancellationToken::new();
    tokio::spawn(dispatch_loop(
        runner.clone(),
        cancel.clone(),
        TaskTracker::new(),
    ));
    let (late, deadline) = tokio::sync::watch::channel(false);
    std::thread::spawn(move || {
        std::thread::sleep(REAL_LIMIT);
        let _ = late.send(true);
    });
    Fixture {
        deadline,
        shared,
        runner,
        events,
        cancel,
        _dir: dir,
    }
}

impl Fixture {
    /// Waits for the event `want` picks out; returns it. Fails when [`REAL_LIMIT`] of real
    /// time has passed since the fixture was made (the paused clock cannot bound a wait for the
    /// catalog thread: it jumps ahead whenever the runtime is idle).
    async fn until(&mut self, want: impl Fn(&Event) -> bool) -> Event {
        loop {
            tokio::select! {
                e = self.events.recv() => {
                    let e = e.unwrap();
                    if want(&e) {
                        return e;
                    }
                }
                _ = self.deadline.wait_for(|late| *late) => {
                    panic!("the awaited event did not come within {REAL_LIMIT:?}")
                }
            }
        }
    }

    async fn started(&mut self, id: i64) {
        self.until(|e| matches!(e, Event::RunStarted { run } if run.id == id))
            .await;
    }

    async fn finished(&mut self, id: i64) -> RunInfo {
        match self
            .until(|e| matches!(e, Event::RunFinished { run, .. } if run.id == id))
            .await
        {
            Event::RunFinished { run, .. } => run,
            _ => unreachable!(),
        }
    }

    async fn submit(&self, job: &str) -> i64 {
        submit(&self.runner, job, RunTrigger::Manual)
            .await
            .unwrap()
            .id
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

#[tokio::test(start_paused = true)]
async fn the_queue_holds_runs_beyond_the_limit_and_starts_them_as_slots_free() {
    let wall = std::time::Instant::now();
    let mut f = fixture(2, &[("a", 0), ("b", 0), ("c", 0), ("d", 0)]);
    let ids = [
        f.submit("a").await,
        f.submit("b").await,
        f.submit("c").await,
        f.submit("d").await,
    ];
    f.started(ids[0]).await;
    f.started(ids[1]).await;
    let (running, queued) = f.runner.snapshot();
    assert_eq!(running, vec![ids[0], ids[1]]);
    assert_eq!(queued, vec![ids[2], ids[3]]);
    // A slot frees: the next queued run (in order) starts, the last still waits.
    cancel(&f.runner, ids[1]).await.unwrap();
    assert_eq!(f.finished(ids[1]).await.state, RunState::Cancelled);
    f.started(ids[2]).await;
    let (running, queued) = f.runner.snapshot();
    assert_eq!(running, vec![ids[0], ids[2]]);
    assert_eq!(queued, vec![ids[3]]);
    assert!(wall.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_job_runs_once_at_a_time_and_a_second_submission_is_skipped() {
    let mut f = fixture(4, &[("a", 0)]);
    let first = f.submit("a").await;
    f.started(first).await;
    let second = submit(&f.runner, "a", RunTrigger::Schedule).await.unwrap();
    assert_eq!(second.state, RunState::Skipped);
    let why = second.error.unwrap_or_default();
    assert!(
        why.contains(&format!("already running (run {first})")),
        "{why}"
    );
    assert_eq!(f.finished(second.id).await.state, RunState::Skipped);
    let (running, queued) = f.runner.snapshot();
    assert_eq!((running, queued), (vec![first], vec![]));
}

#[tokio::test(start_paused = true)]
async fn a_run_cancelled_while_queued_never_starts() {
    let mut f = fixture(1, &[("a", 0), ("b", 0)]);
    let a = f.submit("a").await;
    f.started(a).await;
    let b = f.submit("b").await;
    let run = cancel(&f.runner, b).await.unwrap();
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(run.error.as_deref(), Some("cancelled before it started"));
    assert!(run.started_at.is_none(), "{run:?}");
    // Freeing the slot does not start it.
    cancel(&f.runner, a).await.unwrap();
    f.finished(a).await;
    let (running, queued) = f.runner.snapshot();
    assert!(running.is_empty() && queued.is_empty());
    // Cancelling an ended run is refused.
    let e = cancel(&f.runner, b).await.unwrap_err();
    assert!(
        e.message.contains("is cancelled, not queued or running"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_is_stopped_as_failed() {
    let wall = std::time::Instant::now();
    let mut f = fixture(1, &[("slow", 3600), ("quick", 3600)]);
    let virtual_start = tokio::time::Instant::now();
    let id = f.submit("slow").await;
    let run = f.finished(id).await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("timed out after 3600 s and was stopped")
    );
    assert!(virtual_start.elapsed() >= std::time::Duration::from_secs(3600));
    // A run that ends before its timeout is not stopped.
    let id = f.submit("quick").await;
    assert_eq!(f.finished(id).await.state, RunState::Succeeded);
    assert!(wall.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn run_events_come_in_order_and_counters_survive_pruning() {
    let mut f = fixture(2, &[("quick", 0)]);
    let id = f.submit("quick").await;
    let mut seen = Vec::new();
    loop {
        let e = f.until(|e| e.run_id() == Some(id)).await;
        let end = matches!(e, Event::RunFinished { .. });
        seen.push(e);
        if end {
            break;
        }
    }
    assert!(matches!(seen[0], Event::RunQueued { .. }), "{seen:?}");
    assert!(matches!(seen[1], Event::RunStarted { .. }), "{seen:?}");
    let counted = |shared: &SharedRef| {
        shared
            .events
            .counters
            .snapshot()
            .into_iter()
            .find(|(j, k, s, _)| j == "quick" && k == "backup" && s == "succeeded")
            .map(|c| c.3)
    };
    assert_eq!(counted(&f.shared), Some(1));
    // A second run, then history pruning takes the older one away: the counter stays.
    let id2 = f.submit("quick").await;
    f.finished(id2).await;
    let pruned = f
        .shared
        .catalog
        .call(|c| c.prune_runs("2999-01-01T00:00:00.000Z"))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let facts = f.shared.catalog.call(|c| c.facts()).await.unwrap();
    assert_eq!(facts.run_counts[0].3, 1, "the catalog holds one run now");
    assert_eq!(counted(&f.shared), Some(2));
}

#[tokio::test(start_paused = true)]
async fn an_end_the_catalog_refuses_is_shown_and_recorded_later() {
    let mut f = fixture(2, &[("a", 0), ("quick", 0)]);
    let id = f.submit("a").await;
    f.started(id).await;
    // The catalog refuses to record ends from now on.
    let db = rusqlite::Connection::open(f._dir.path().join("catalog.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER refuse BEFORE UPDATE OF finished_at ON runs \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
    )
    .unwrap();
    cancel(&f.runner, id).await.unwrap();
    assert_eq!(f.finished(id).await.state, RunState::Cancelled);
    let d = watch::detail(&f.runner, id).await.unwrap();
    assert_eq!(d.run.state, RunState::Cancelled);
    assert!(
        d.log
            .iter()
            .any(|l| l.contains("could not record the end of this run") && l.contains("disk full")),
        "{:?}",
        d.log
    );
    // Once the catalog takes writes again, the next end writes the kept one too.
    db.execute_batch("DROP TRIGGER refuse;").unwrap();
    let next = f.submit("quick").await;
    f.finished(next).await;
    assert!(f.runner.unrecorded.is_empty());
    let stored = f.shared.catalog.call(move |c| c.get_run(id)).await.unwrap();
    assert_eq!(stored.state, RunState::Cancelled);
    assert_eq!(stored.error.as_deref(), Some("cancelled by request"));
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_running_and_queued_runs_end_interrupted() {
    let mut f = fixture(1, &[("a", 0), ("b", 0)]);
    let a = f.submit("a").await;
    f.started(a).await;
    let b = f.submit("b").await;
    f.cancel.cancel();
    let (mut ra, mut rb) = (None, None);
    while ra.is_none() || rb.is_none() {
        let e = f
            .until(|e| matches!(e, Event::RunFinished { run, .. } if run.id == a || run.id == b))
            .await;
        if let Event::RunFinished { run, .. } = e {
            if run.id == a {
                ra = Some(run);
            } else {
                rb = Some(run);
            }
        }
    }
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.state, RunState::Interrupted);
    assert_eq!(rb.state, RunState::Interrupted);
    assert_eq!(
        rb.error.as_deref(),
        Some("bmsd stopped before this queued run started")
    );
    assert!(rb.started_at.is_none());
}
