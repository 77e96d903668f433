//! The event bus (docs/architecture.md, "Events"): runs and target checks publish typed
//! [`Event`]s on a `tokio::sync::broadcast` channel; `WatchRun`, `WatchEvents` and the metrics
//! counters listen. Publishing never waits: a subscriber that falls more than [`CAPACITY`] events
//! behind is told how many it missed (`RecvError::Lagged`) and re-reads the state from the catalog.

use bms_proto::api::TargetCheck;
pub use bms_proto::api::{Event, TargetHealth};
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::broadcast;

/// Events a subscriber may fall behind before it lags.
pub const CAPACITY: usize = 1024;

pub struct Bus {
    tx: broadcast::Sender<Event>,
    /// Counters that only grow (`bms_runs_total`), fed from every published event in order.
    pub counters: RunCounters,
    /// The latest state of each target, so that `TargetStateChanged` is published on a change.
    targets: Mutex<HashMap<String, (TargetHealth, String)>>,
}

impl Default for Bus {
    fn default() -> Bus {
        Bus::new()
    }
}

impl Bus {
    pub fn new() -> Bus {
        Bus {
            tx: broadcast::channel(CAPACITY).0,
            counters: RunCounters::default(),
            targets: Mutex::default(),
        }
    }

    /// Publishes an event; it never blocks. Nobody listening is fine.
    pub fn publish(&self, event: Event) {
        self.counters.apply(&event);
        let _ = self.tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publishes `TargetStateChanged` when a check's verdict differs from the previous one.
    pub fn target_checked(&self, check: &TargetCheck) {
        let health = health_of(check);
        let reason = check.message.clone();
        let changed = {
            let mut t = match self.targets.lock() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            };
            let now = (health, check.state.clone());
            let changed = t.get(&check.name).map(|(h, s)| (*h, s.clone())) != Some(now.clone());
            t.insert(check.name.clone(), now);
            changed
        };
        if changed {
            self.publish(Event::TargetStateChanged {
                target: check.name.clone(),
                state: health,
                reason,
                free_bytes: check.free_bytes,
            });
        }
    }
}

/// A check that passed with a remark (`low space`) is a warning; a failed one an error.
pub fn health_of(check: &TargetCheck) -> TargetHealth {
    match (check.ok, check.state.as_str()) {
        (true, "ok") => TargetHealth::Ok,
        (true, _) => TargetHealth::Warning,
        (false, _) => TargetHealth::Error,
    }
}

/// `bms_runs_total`: finished runs by job, kind and final state. Seeded from the catalog when
/// bmsd starts, then counted from `RunFinished` events; it only grows while bmsd runs.
#[derive(Default)]
pub struct RunCounters {
    runs: std::sync::Mutex<std::collections::BTreeMap<(String, String, String), u64>>,
    /// Grows with every change of the counts, so that the metrics endpoint renders them again
    /// only when they changed.
    generation: std::sync::atomic::AtomicU64,
}

impl RunCounters {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String, String), u64>> {
        match self.runs.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        }
    }

    /// Adds the runs the catalog holds in a final state (`CatalogFacts::run_counts`).
    pub fn seed(&self, counts: &[(String, String, String, u64)]) {
        let mut r = self.lock();
        for (job, kind, state, n) in counts {
            let is_final = bms_proto::api::RunState::parse(state).is_some_and(|s| s.is_final());
            if is_final {
                *r.entry((job.clone(), kind.clone(), state.clone()))
                    .or_default() += n;
            }
        }
        self.bump();
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A number that changes whenever the counts change.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Counts one event.
    pub fn apply(&self, event: &bms_proto::api::Event) {
        if let bms_proto::api::Event::RunFinished { run, state, .. } = event {
            *self
                .lock()
                .entry((
                    run.job.clone(),
                    run.kind.as_str().to_owned(),
                    state.as_str().to_owned(),
                ))
                .or_default() += 1;
            self.bump();
        }
    }

    /// The counts, in the shape of `CatalogFacts::run_counts`.
    pub fn snapshot(&self) -> Vec<(String, String, String, u64)> {
        self.lock()
            .iter()
            .map(|((j, k, s), n)| (j.clone(), k.clone(), s.clone(), *n))
            .collect()
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn check(ok: bool, state: &str) -> TargetCheck {
        TargetCheck {
            name: "nas".into(),
            ok,
            state: state.into(),
            message: format!("{state}!"),
            free_bytes: None,
            fs_type: None,
            checked_at: String::new(),
        }
    }

    #[test]
    fn target_state_is_published_when_it_changes() {
        let bus = Bus::new();
        let mut rx = bus.subscribe();
        bus.target_checked(&check(true, "ok"));
        bus.target_checked(&check(true, "ok"));
        bus.target_checked(&check(false, "not mounted"));
        let mut seen = Vec::new();
        while let Ok(Event::TargetStateChanged { state, reason, .. }) = rx.try_recv() {
            seen.push((state, reason));
        }
        assert_eq!(
            seen,
            vec![
                (TargetHealth::Ok, "ok!".to_owned()),
                (TargetHealth::Error, "not mounted!".to_owned())
            ]
        );
    }

    #[test]
    fn a_slow_subscriber_lags_and_publishing_never_blocks() {
        let bus = Bus::new();
        let mut rx = bus.subscribe();
        for _ in 0..CAPACITY + 10 {
            bus.target_checked(&check(true, "ok"));
            bus.target_checked(&check(false, "missing"));
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
    }
}
