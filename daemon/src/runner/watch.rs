//! `WatchRun` (docs/protocol.md): a run's detail each time it changes, from the event bus and the
//! run's progress channel — the catalog is read when the run starts or ends, not polled.

use super::{Runner, RunnerRef};
use crate::state::SharedRef;
use bms_proto::api::{Event, RunDetail};
use bms_proto::ApiError;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// While a run goes, a detail is sent at least this often (clients print progress on each).
pub const TICK: Duration = Duration::from_secs(1);

/// The run, its log and its live progress (an end not yet in the catalog included).
pub async fn detail(runner: &Runner, id: i64) -> Result<RunDetail, ApiError> {
    let (run, log) = runner
        .shared
        .catalog
        .call(move |c| Ok((c.get_run(id)?, c.run_log(id)?)))
        .await?;
    let progress = runner.active(id).map(|a| a.progress.borrow().clone());
    let mut d = RunDetail { run, log, progress };
    runner.unrecorded.overlay(&mut d);
    Ok(d)
}

/// Streams run `id`'s detail until it is final (the last item) or the receiver is dropped.
pub fn watch_run(runner: RunnerRef, id: i64) -> mpsc::Receiver<Result<RunDetail, ApiError>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        // Subscribe before the first read, so that an end after it is not missed.
        let mut events = runner.shared.events.subscribe();
        let mut d = match detail(&runner, id).await {
            Ok(d) => d,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut tick = tokio::time::interval(TICK);
        tick.tick().await;
        loop {
            let last = d.run.state.is_final();
            if tx.send(Ok(d.clone())).await.is_err() || last {
                return;
            }
            let reread = loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Ok(Event::RunStarted { run } | Event::RunFinished { run, .. })
                            if run.id == id => break true,
                        Ok(Event::RunProgress { run, .. }) if run == id => break false,
                        Ok(_) => {}
                        // Missed events: the catalog has the truth.
                        Err(RecvError::Lagged(_)) => break true,
                        Err(RecvError::Closed) => return,
                    },
                    _ = tick.tick() => break false,
                    _ = tx.closed() => return,
                }
            };
            if reread {
                match detail(&runner, id).await {
                    Ok(new) => d = new,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            } else {
                d.progress = runner.active(id).map(|a| a.progress.borrow().clone());
            }
            tick.reset();
        }
    });
    rx
}

/// Streams the bus's events (of one job, with `job`) until the receiver is dropped: first an
/// empty reply once subscribed, then one per event. A reader that falls behind gets a reply with
/// `missed` instead of the dropped events.
pub fn watch_events(
    shared: &SharedRef,
    job: Option<String>,
) -> mpsc::Receiver<bms_proto::api::EventReply> {
    use bms_proto::api::EventReply;
    let (tx, rx) = mpsc::channel(64);
    let mut events = shared.events.subscribe();
    tokio::spawn(async move {
        // The first reply, empty, says the subscription is in place.
        let hello = EventReply {
            event: None,
            missed: None,
        };
        if tx.send(hello).await.is_err() {
            return;
        }
        loop {
            let reply = tokio::select! {
                ev = events.recv() => match ev {
                    Ok(e) if job.is_none() || e.job() == job.as_deref() => EventReply {
                        event: Some(e),
                        missed: None,
                    },
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => EventReply {
                        event: None,
                        missed: Some(n),
                    },
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
            };
            // A full channel waits here; the bus keeps going and this reader lags.
            if tx.send(reply).await.is_err() {
                return;
            }
        }
    });
    rx
}
