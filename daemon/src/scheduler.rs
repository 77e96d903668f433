//! The scheduler: turns each enabled job's calendar expressions into runs: its `schedule` into
//! backup runs, its `verify.schedule` (if set) into verification runs.
//!
//! For every job the catalog keeps `checked_until`, the time up to which its elapse times have
//! been handled, so that next-run times survive restarts. At start-up, elapse times that passed
//! while bmsd was down are *missed*: a `run-once` job gets exactly one catch-up run, a `skip` job
//! none. A disabled job never runs, and its elapse times pass unhandled. The verification
//! schedule keeps its own mark (`verify:JOB`) and follows the same rules.

use crate::runner;
use crate::state::SharedRef;
use bms_proto::api::{JobInfo, MissedPolicy, RunTrigger};
use bms_proto::calendar::CalendarSpec;
use jiff::{SignedDuration, Timestamp};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// The scheduler looks again at least this often (clock changes, suspend).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// A stable pseudo-random delay in `0..=max` seconds for one elapse of one job, so that the
/// randomized delay is the same after a restart.
pub fn randomized_delay(job: &str, elapse: Timestamp, max: u32) -> SignedDuration {
    if max == 0 {
        return SignedDuration::ZERO;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in job.bytes().chain(elapse.as_second().to_le_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    SignedDuration::from_secs((h % (max as u64 + 1)) as i64)
}

/// When a job is due next after `after`, with its randomized delay.
fn due_after(
    job: &JobInfo,
    cal: &CalendarSpec,
    after: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let elapse = cal.next_after(after)?;
    let due = elapse
        .checked_add(randomized_delay(
            &job.spec.name,
            elapse,
            job.spec.randomized_delay_secs,
        ))
        .ok()?;
    Some((elapse, due))
}

/// Runs until `cancel` fires.
pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    let mut startup = true;
    loop {
        let now = Timestamp::now();
        let next_wake = match tick(&shared, now, startup).await {
            Ok(w) => w,
            Err(e) => {
                warn!("scheduler: {e}");
                None
            }
        };
        startup = false;
        let sleep = next_wake
            .map(|t| {
                let d = t.duration_since(Timestamp::now());
                Duration::from_millis(d.as_millis().clamp(0, MAX_SLEEP.as_millis() as i128) as u64)
            })
            .unwrap_or(MAX_SLEEP);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(sleep) => {}
            _ = shared.scheduler_wake.notified() => {}
        }
    }
}

/// A job's schedules: its backups, and its verification (`verify.schedule`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Backup,
    Verify,
}

impl Which {
    /// Key of the schedule mark in the catalog (job names cannot contain ':').
    fn key(self, job: &str) -> String {
        match self {
            Which::Backup => job.to_owned(),
            Which::Verify => format!("verify:{job}"),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Which::Backup => "run",
            Which::Verify => "verification",
        }
    }

    async fn submit(
        self,
        shared: &SharedRef,
        job: &str,
        trigger: RunTrigger,
    ) -> Result<bms_proto::api::RunInfo, bms_proto::ApiError> {
        match self {
            Which::Backup => runner::submit(shared, job, trigger).await,
            Which::Verify => runner::submit_verify(shared, job, trigger).await,
        }
    }
}

/// One pass over all jobs; returns the earliest time something is due.
async fn tick(
    shared: &SharedRef,
    now: Timestamp,
    startup: bool,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let jobs = shared.catalog.call(|c| c.list_jobs()).await?;
    let mut earliest: Option<Timestamp> = None;
    for job in jobs {
        let backup = step(
            shared,
            &job,
            Which::Backup,
            &job.spec.schedule,
            now,
            startup,
        )
        .await?;
        earliest = min(earliest, backup);
        if let Some(expr) = &job.spec.verify.schedule {
            let verify = step(shared, &job, Which::Verify, expr, now, startup).await?;
            earliest = min(earliest, verify);
        }
    }
    Ok(earliest)
}

/// Handles one schedule of one job; returns when it is due next.
async fn step(
    shared: &SharedRef,
    job: &JobInfo,
    which: Which,
    expr: &str,
    now: Timestamp,
    startup: bool,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let name = job.spec.name.clone();
    let what = which.what();
    let cal = match CalendarSpec::parse(expr) {
        Ok(c) => c,
        Err(e) => {
            warn!(job = %name, "{what} schedule cannot be parsed: {e}");
            return Ok(None);
        }
    };
    let key = which.key(&name);
    let k = key.clone();
    let checked = shared.catalog.call(move |c| c.checked_until(&k)).await?;
    // Nothing before the job's last change is due: a mark older than that belongs to a removed
    // job of the same name or to an older schedule. A job not seen by the scheduler yet counts
    // from its creation, so an elapse between `job add` and a shutdown is still missed at the
    // next start.
    let changed: Option<Timestamp> = job.updated_at.parse().ok();
    let mut checked = max(checked, changed);
    if let Some(c) = checked.filter(|c| *c > now + SignedDuration::from_secs(60)) {
        // The clock went back (it was ahead when the mark was set): start again from now,
        // or nothing would be due until the clock catches up.
        warn!(job = %name, mark = %c, "{what} schedule mark lies in the future; the clock was set back; rescheduling from now");
        checked = Some(now);
        let k = key.clone();
        shared
            .catalog
            .call(move |c| c.set_checked_until(&k, now))
            .await?;
    }
    let Some(checked) = checked.filter(|_| job.spec.enabled) else {
        // Disabled job: nothing before now is due.
        let k = key.clone();
        shared
            .catalog
            .call(move |c| c.set_checked_until(&k, now))
            .await?;
        return Ok(if job.spec.enabled {
            due_after(job, &cal, now).map(|d| d.1)
        } else {
            None
        });
    };
    let mut mark = checked;
    if startup {
        if let Some((elapse, _)) = due_after(job, &cal, checked).filter(|(_, due)| *due <= now) {
            match job.spec.missed {
                MissedPolicy::RunOnce => {
                    info!(job = %name, missed = %elapse, "{what}s were missed while bmsd was down: one catch-up {what}");
                    if let Err(e) = which.submit(shared, &name, RunTrigger::CatchUp).await {
                        warn!(job = %name, "cannot queue catch-up {what}: {e}");
                    }
                }
                MissedPolicy::Skip => {
                    info!(job = %name, missed = %elapse, "{what}s were missed while bmsd was down; policy skip");
                }
            }
            mark = now;
        }
    } else if let Some((elapse, due)) = due_after(job, &cal, checked) {
        if due <= now {
            if let Err(e) = which.submit(shared, &name, RunTrigger::Schedule).await {
                warn!(job = %name, "cannot queue scheduled {what}: {e}");
            }
            // Several elapses passed at once (suspend, clock jump): they collapse into this run.
            mark = if cal.next_after(elapse).is_some_and(|n| n <= now) {
                now
            } else {
                elapse
            };
        }
    }
    if mark != checked {
        let k = key.clone();
        shared
            .catalog
            .call(move |c| c.set_checked_until(&k, mark))
            .await?;
    }
    Ok(due_after(job, &cal, mark).map(|d| d.1))
}

fn max(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn min(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomized_delay_is_stable_and_bounded() {
        let t: Timestamp = "2026-11-30T02:00:00Z".parse().unwrap();
        let a = randomized_delay("home", t, 600);
        assert_eq!(a, randomized_delay("home", t, 600));
        assert!(a >= SignedDuration::ZERO && a <= SignedDuration::from_secs(600));
        assert_eq!(randomized_delay("home", t, 0), SignedDuration::ZERO);
        let spread: std::collections::HashSet<_> = (0..50)
            .map(|i| randomized_delay(&format!("job{i}"), t, 600))
            .collect();
        assert!(spread.len() > 10, "delays should spread out");
    }
}
