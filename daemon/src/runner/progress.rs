//! `RunProgress` events from a run's progress channel: at most [`PER_SECOND`] a second, and
//! one about every [`HEARTBEAT`] while the run goes even when nothing changed (watchers print
//! on each, docs/architecture.md "Events"). The first is published at once, none after
//! [`Forwarder::stop`], so a run's events stay in order.

use crate::state::SharedRef;
use bms_proto::api::{Event, RunKind, RunProgress};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

pub const PER_SECOND: u32 = 4;
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Publishes a run's progress until stopped (or dropped).
pub struct Forwarder {
    closed: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

struct Source {
    shared: SharedRef,
    run: i64,
    job: String,
    kind: RunKind,
}

impl Source {
    fn publish(&self, closed: &Mutex<bool>, progress: RunProgress) {
        let closed = match closed.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if !*closed {
            self.shared.events.publish(Event::RunProgress {
                run: self.run,
                job: self.job.clone(),
                kind: self.kind,
                progress,
            });
        }
    }
}

/// Starts publishing the progress in `rx` as run `run`'s.
pub fn forward(
    shared: &SharedRef,
    run: i64,
    job: &str,
    kind: RunKind,
    mut rx: watch::Receiver<RunProgress>,
) -> Forwarder {
    let closed = Arc::new(Mutex::new(false));
    let src = Source {
        shared: shared.clone(),
        run,
        job: job.to_owned(),
        kind,
    };
    let first = rx.borrow_and_update().clone();
    src.publish(&closed, first);
    let c = closed.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / PER_SECOND);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = Instant::now();
        loop {
            tick.tick().await;
            let changed = match rx.has_changed() {
                Ok(c) => c,
                Err(_) => return,
            };
            if changed || last.elapsed() >= HEARTBEAT {
                let p = rx.borrow_and_update().clone();
                src.publish(&c, p);
                last = Instant::now();
            }
        }
    });
    Forwarder { closed, task }
}

impl Forwarder {
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        match self.closed.lock() {
            Ok(mut c) => *c = true,
            Err(p) => *p.into_inner() = true,
        }
        self.task.abort();
    }
}
