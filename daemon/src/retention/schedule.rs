//! Prune calendars: each disk/NAS target's `prune_schedule` (default `weekly`) queues a
//! `prune` run of the target. The catalog keeps the time up to which a target's calendar was
//! handled; elapses missed while bmsd was down give one catch-up run at the next start; a
//! target seen for the first time starts counting from now.

use crate::runner::{self, RunnerRef};
use crate::targets::Purpose;
use bms_proto::api::RunTrigger;
use bms_proto::calendar::CalendarSpec;
use jiff::Timestamp;
use tracing::{info, warn};

/// One pass over the targets; returns when a prune is due next.
pub async fn tick(
    runner: &RunnerRef,
    now: Timestamp,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let shared = &runner.shared;
    let targets = shared.catalog.call(|c| c.list_targets()).await?;
    let mut earliest: Option<Timestamp> = None;
    for t in targets {
        if !crate::targets::capabilities(t.spec.kind).allows(Purpose::Prune) {
            continue;
        }
        let Some(expr) = super::prune_calendar(&t.spec) else {
            continue;
        };
        let cal = match CalendarSpec::parse(&expr) {
            Ok(c) => c,
            Err(e) => {
                warn!(target = %t.spec.name, "prune schedule {expr:?}: {e}");
                continue;
            }
        };
        let name = t.spec.name.clone();
        let n = name.clone();
        let mark = shared
            .catalog
            .call(move |c| c.prune_checked_until(&n))
            .await?;
        let next = match mark {
            Some(m) if m <= now => cal.next_after(m),
            _ => None,
        };
        let due = matches!(next, Some(n) if n <= now);
        if mark.is_none() || due || mark.is_some_and(|m| m > now) {
            let n = name.clone();
            shared
                .catalog
                .call(move |c| c.set_prune_checked_until(&n, now))
                .await?;
        }
        if due {
            let trigger = if next.is_some_and(|n| now.duration_since(n).as_secs() > 60) {
                RunTrigger::CatchUp
            } else {
                RunTrigger::Schedule
            };
            match runner::submit_prune(runner, &name, None, trigger).await {
                Ok(run) => info!(target = %name, run = run.id, "scheduled prune queued"),
                Err(e) => warn!(target = %name, "cannot queue the scheduled prune: {}", e.message),
            }
        }
        let after = if due || mark.is_none() {
            now
        } else {
            mark.unwrap_or(now)
        };
        if let Some(n) = cal.next_after(after) {
            earliest = Some(earliest.map_or(n, |e: Timestamp| e.min(n)));
        }
    }
    Ok(earliest)
}
