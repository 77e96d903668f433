//! Scheduled reports (docs/reports.md, "Scheduled reports"): each `[[reports]]` entry of
//! bmsd.toml is produced on its calendar, rendered by the same code as `bmsctl report`
//! (bms-proto's `report` module) from the same data (the `Report` operation's builder), written
//! into its directory and/or mailed through an alert e-mail channel.
//!
//! The time up to which a report's elapses were handled is kept in the catalog (schedule mark
//! `report:NAME`), so a restart neither repeats nor forgets one: elapses missed while bmsd was
//! down give one catch-up report. A failure (directory missing, SMTP down) is logged and raises
//! a `report_failed` alert, which the report's next success resolves; it never stops bmsd.

pub mod config;
mod produce;

use crate::state::SharedRef;
use bms_proto::calendar::CalendarSpec;
use config::ScheduledReport;
use jiff::Timestamp;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// Looked at again at least this often (reloads, clock changes).
const MAX_SLEEP: Duration = Duration::from_secs(30);

fn mark_key(name: &str) -> String {
    format!("report:{name}")
}

/// What one pass decides for one report: the period end to produce now, if any, the new mark
/// and when it is due next.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    until: Option<Timestamp>,
    mark: Option<Timestamp>,
    next: Option<Timestamp>,
}

/// The rule: a report is due at each elapse after its mark; several elapses behind (bmsd was
/// down, or a clock jump) make one report up to now. A report never seen before starts now.
fn decide(cal: &CalendarSpec, mark: Option<Timestamp>, now: Timestamp) -> Decision {
    let Some(mark) = mark.filter(|m| *m <= now + jiff::SignedDuration::from_secs(60)) else {
        return Decision {
            until: None,
            mark: Some(now),
            next: cal.next_after(now),
        };
    };
    match cal.next_after(mark) {
        Some(e) if e <= now => {
            let until = if cal.next_after(e).is_some_and(|n| n <= now) {
                now
            } else {
                e
            };
            Decision {
                until: Some(until),
                mark: Some(until),
                next: cal.next_after(until),
            }
        }
        next => Decision {
            until: None,
            mark: None,
            next,
        },
    }
}

/// Runs until `cancel` fires.
pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    loop {
        let reports = shared.config().config.reports;
        let mut earliest: Option<Timestamp> = None;
        for r in &reports {
            match step(&shared, r).await {
                Ok(Some(t)) => earliest = Some(earliest.map_or(t, |e: Timestamp| e.min(t))),
                Ok(None) => {}
                Err(e) => warn!(report = %r.name, "scheduled report: {e}"),
            }
        }
        let sleep = earliest
            .map(|t| {
                let ms = t.duration_since(Timestamp::now()).as_millis();
                Duration::from_millis(ms.clamp(0, MAX_SLEEP.as_millis() as i128) as u64)
            })
            .unwrap_or(MAX_SLEEP);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Handles one report; returns when it is due next.
async fn step(
    shared: &SharedRef,
    r: &ScheduledReport,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let cal = match CalendarSpec::parse(&r.calendar) {
        Ok(c) => c,
        Err(e) => {
            warn!(report = %r.name, "calendar cannot be parsed: {e}");
            return Ok(None);
        }
    };
    let key = mark_key(&r.name);
    let k = key.clone();
    let mark = shared.catalog.call(move |c| c.checked_until(&k)).await?;
    let d = decide(&cal, mark, Timestamp::now());
    if let Some(m) = d.mark {
        // Marked before producing: a report that fails is not retried in a loop; the alert
        // says so and the next elapse tries again.
        shared
            .catalog
            .call(move |c| c.set_checked_until(&key, m))
            .await?;
    }
    if let Some(until) = d.until {
        produce::produce(shared, r, until).await;
    }
    Ok(d.next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_at_each_elapse_once_and_once_after_downtime() {
        let cal = CalendarSpec::parse("*-*-* 06:00:00 UTC").unwrap();
        let now = ts("2026-12-03T05:00:00Z");
        // First sight: starts now, nothing produced.
        let d = decide(&cal, None, now);
        assert_eq!((d.until, d.mark), (None, Some(now)));
        assert_eq!(d.next, Some(ts("2026-12-03T06:00:00Z")));
        // Not yet due.
        let d = decide(&cal, Some(now), ts("2026-12-03T05:59:59Z"));
        assert_eq!((d.until, d.mark), (None, None));
        // Due: the period ends at the elapse.
        let d = decide(&cal, Some(now), ts("2026-12-03T06:00:01Z"));
        assert_eq!(d.until, Some(ts("2026-12-03T06:00:00Z")));
        assert_eq!(d.mark, d.until);
        assert_eq!(d.next, Some(ts("2026-12-04T06:00:00Z")));
        // Three elapses missed: one report up to now.
        let later = ts("2026-12-06T12:00:00Z");
        let d = decide(&cal, Some(now), later);
        assert_eq!((d.until, d.mark), (Some(later), Some(later)));
        // A mark in the future (the clock went back): start again from now.
        let d = decide(&cal, Some(ts("2027-01-01T00:00:00Z")), now);
        assert_eq!((d.until, d.mark), (None, Some(now)));
    }
}
