//! The scheduler: turns each enabled job's calendar expressions into runs: its `schedule` into
//! backup runs, its `verify.schedule` (if set) into verification runs, its `verify.drill`
//! schedule (if set) into restore drills.
//!
//! For every job the catalog keeps `checked_until`, the time up to which its elapse times have
//! been handled, so that next-run times survive restarts. At start-up, elapse times that passed
//! while bmsd was down are *missed*: a `run-once` job gets exactly one catch-up run, a `skip` job
//! none. A disabled job never runs, and its elapse times pass unhandled. The verification
//! schedule keeps its own mark (`verify:JOB`), the drill schedule `drill:JOB`; both follow the
//! same rules. Targets' prune
//! calendars are handled by `retention::schedule`.

use crate::runner;
use crate::runner::RunnerRef;
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
pub async fn run(runner: RunnerRef, cancel: CancellationToken) {
    let shared = &runner.shared;
    let mut startup = true;
    loop {
        let now = Timestamp::now();
        let next_wake = match tick(&runner, now, startup).await {
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
    Drill,
}

impl Which {
    /// Key of the schedule mark in the catalog (job names cannot contain ':').
    fn key(self, job: &str) -> String {
        match self {
            Which::Backup => job.to_owned(),
            Which::Verify => format!("verify:{job}"),
            Which::Drill => format!("drill:{job}"),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Which::Backup => "run",
            Which::Verify => "verification",
            Which::Drill => "restore drill",
        }
    }

    async fn submit(
        self,
        runner: &RunnerRef,
        job: &str,
        trigger: RunTrigger,
    ) -> Result<bms_proto::api::RunInfo, bms_proto::ApiError> {
        match self {
            Which::Backup => runner::submit(runner, job, trigger).await,
            Which::Verify => runner::submit_verify(runner, job, trigger).await,
            Which::Drill => runner::submit_drill(runner, job, trigger, None).await,
        }
    }
}

/// One pass over all jobs; returns the earliest time something is due.
async fn tick(
    runner: &RunnerRef,
    now: Timestamp,
    startup: bool,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let shared = &runner.shared;
    let jobs = shared.catalog.call(|c| c.list_jobs()).await?;
    let mut earliest: Option<Timestamp> = None;
    for job in jobs {
        let backup = step(
            runner,
            &job,
            Which::Backup,
            &job.spec.schedule,
            now,
            startup,
        )
        .await?;
        earliest = min(earliest, backup);
        if let Some(expr) = &job.spec.verify.schedule {
            let verify = step(runner, &job, Which::Verify, expr, now, startup).await?;
            earliest = min(earliest, verify);
        }
        if let Some(drill) = &job.spec.verify.drill {
            let d = step(runner, &job, Which::Drill, &drill.schedule, now, startup).await?;
            earliest = min(earliest, d);
        }
    }
    // The targets' prune calendars (docs/retention.md).
    earliest = min(
        earliest,
        crate::retention::schedule::tick(runner, now).await?,
    );
    Ok(earliest)
}

/// What one pass decides for one schedule of one job, from the catalog's mark and the clock
/// alone (no I/O, so that it is tested with any clock; see the tests below).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decision {
    /// A run to queue now, with the elapse it stands for.
    submit: Option<(RunTrigger, Timestamp)>,
    /// The new `checked_until` mark, when it changes.
    mark: Option<Timestamp>,
    /// When this schedule is due next (with its randomized delay).
    next_due: Option<Timestamp>,
    /// The first elapse missed while bmsd was down (found at start-up).
    missed: Option<Timestamp>,
    /// The mark lay in the future: the clock was set back.
    clock_went_back: bool,
}

/// The scheduling rule (module docs): `checked` is the stored mark, `changed` the job's last
/// change.
fn decide(
    job: &JobInfo,
    cal: &CalendarSpec,
    checked: Option<Timestamp>,
    changed: Option<Timestamp>,
    now: Timestamp,
    startup: bool,
) -> Decision {
    let stored = checked;
    // Nothing before the job's last change is due: a mark older than that belongs to a removed
    // job of the same name or to an older schedule. A job not seen by the scheduler yet counts
    // from its creation, so an elapse between `job add` and a shutdown is still missed at the
    // next start.
    let mut checked = max(checked, changed);
    let mut clock_went_back = false;
    if checked.is_some_and(|c| c > now + SignedDuration::from_secs(60)) {
        // The clock went back (it was ahead when the mark was set): start again from now,
        // or nothing would be due until the clock catches up.
        clock_went_back = true;
        checked = Some(now);
    }
    let (Some(checked), true) = (checked, job.spec.enabled) else {
        // Disabled (or never marked): nothing before now is due.
        return Decision {
            submit: None,
            mark: Some(now),
            next_due: if job.spec.enabled {
                due_after(job, cal, now).map(|d| d.1)
            } else {
                None
            },
            missed: None,
            clock_went_back,
        };
    };
    let mut submit = None;
    let mut missed = None;
    let mut mark = checked;
    if startup {
        if let Some((elapse, _)) = due_after(job, cal, checked).filter(|(_, due)| *due <= now) {
            missed = Some(elapse);
            if job.spec.missed == MissedPolicy::RunOnce {
                submit = Some((RunTrigger::CatchUp, elapse));
            }
            mark = now;
        }
    } else if let Some((elapse, due)) = due_after(job, cal, checked) {
        if due <= now {
            submit = Some((RunTrigger::Schedule, elapse));
            // Several elapses passed at once (suspend, clock jump): they collapse into this run.
            mark = if cal.next_after(elapse).is_some_and(|n| n <= now) {
                now
            } else {
                elapse
            };
        }
    }
    Decision {
        submit,
        mark: (Some(mark) != stored || clock_went_back).then_some(mark),
        next_due: due_after(job, cal, mark).map(|d| d.1),
        missed,
        clock_went_back,
    }
}

/// Handles one schedule of one job; returns when it is due next.
async fn step(
    runner: &RunnerRef,
    job: &JobInfo,
    which: Which,
    expr: &str,
    now: Timestamp,
    startup: bool,
) -> Result<Option<Timestamp>, bms_proto::ApiError> {
    let shared = &runner.shared;
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
    let changed: Option<Timestamp> = job.updated_at.parse().ok();
    let d = decide(job, &cal, checked, changed, now, startup);
    if d.clock_went_back {
        warn!(job = %name, mark = ?checked, "{what} schedule mark lies in the future; the clock was set back; rescheduling from now");
    }
    if let (Some(elapse), None) = (d.missed, d.submit) {
        info!(job = %name, missed = %elapse, "{what}s were missed while bmsd was down; policy skip");
    }
    match d.submit {
        Some((RunTrigger::CatchUp, elapse)) => {
            info!(job = %name, missed = %elapse, "{what}s were missed while bmsd was down: one catch-up {what}");
            if let Err(e) = which.submit(runner, &name, RunTrigger::CatchUp).await {
                warn!(job = %name, "cannot queue catch-up {what}: {e}");
            }
        }
        Some((trigger, _)) => {
            if let Err(e) = which.submit(runner, &name, trigger).await {
                warn!(job = %name, "cannot queue scheduled {what}: {e}");
            }
        }
        None => {}
    }
    if let Some(mark) = d.mark {
        let k = key.clone();
        shared
            .catalog
            .call(move |c| c.set_checked_until(&k, mark))
            .await?;
    }
    Ok(d.next_due)
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

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A job created at `created` on the schedule `expr` (UTC).
    fn job(expr: &str, missed: &str, enabled: bool) -> (JobInfo, CalendarSpec) {
        let spec: bms_proto::api::JobSpec = serde_json::from_value(serde_json::json!({
            "name": "j", "sources": ["/srv"], "schedule": expr, "targets": ["t"],
            "missed": missed, "enabled": enabled,
        }))
        .unwrap();
        let info = JobInfo {
            spec,
            schedule_normalized: String::new(),
            next_runs: vec![],
            created_at: "2026-11-01T00:00:00Z".into(),
            updated_at: "2026-11-01T00:00:00Z".into(),
        };
        (info, CalendarSpec::parse(expr).unwrap())
    }

    fn changed(j: &JobInfo) -> Option<Timestamp> {
        j.updated_at.parse().ok()
    }

    #[test]
    fn due_now_submits_one_run_and_marks_the_elapse() {
        let (j, cal) = job("*-*-* 02:00:00 UTC", "run-once", true);
        let mark = ts("2026-11-30T02:00:00Z");
        // Before the elapse: nothing, due at the next 02:00.
        let d = decide(
            &j,
            &cal,
            Some(mark),
            changed(&j),
            ts("2026-12-01T01:59:59Z"),
            false,
        );
        assert_eq!(d.submit, None);
        assert_eq!(d.mark, None);
        assert_eq!(d.next_due, Some(ts("2026-12-01T02:00:00Z")));
        // At the elapse: one scheduled run, the mark moves to it.
        let now = ts("2026-12-01T02:00:00.5Z");
        let d = decide(&j, &cal, Some(mark), changed(&j), now, false);
        assert_eq!(
            d.submit,
            Some((RunTrigger::Schedule, ts("2026-12-01T02:00:00Z")))
        );
        assert_eq!(d.mark, Some(ts("2026-12-01T02:00:00Z")));
        assert_eq!(d.next_due, Some(ts("2026-12-02T02:00:00Z")));
        // The next pass with the new mark does not run it again.
        let d2 = decide(&j, &cal, d.mark, changed(&j), now, false);
        assert_eq!((d2.submit, d2.mark), (None, None));
    }

    #[test]
    fn elapses_missed_while_down_give_one_catch_up_or_none() {
        let mark = ts("2026-11-27T02:00:00Z");
        let now = ts("2026-12-01T12:00:00Z");
        let (j, cal) = job("*-*-* 02:00:00 UTC", "run-once", true);
        let d = decide(&j, &cal, Some(mark), changed(&j), now, true);
        assert_eq!(
            d.submit,
            Some((RunTrigger::CatchUp, ts("2026-11-28T02:00:00Z")))
        );
        assert_eq!(d.mark, Some(now), "four missed elapses, one catch-up");
        assert_eq!(d.next_due, Some(ts("2026-12-02T02:00:00Z")));
        let (j, cal) = job("*-*-* 02:00:00 UTC", "skip", true);
        let d = decide(&j, &cal, Some(mark), changed(&j), now, true);
        assert_eq!(d.submit, None);
        assert_eq!(d.missed, Some(ts("2026-11-28T02:00:00Z")));
        assert_eq!(d.mark, Some(now));
    }

    #[test]
    fn several_elapses_at_once_collapse_into_one_run() {
        // A suspend or clock jump while running: the pass sees three elapses behind it.
        let (j, cal) = job("*-*-* *:00:00 UTC", "run-once", true);
        let now = ts("2026-12-01T05:30:00Z");
        let d = decide(
            &j,
            &cal,
            Some(ts("2026-12-01T02:00:00Z")),
            changed(&j),
            now,
            false,
        );
        assert_eq!(
            d.submit,
            Some((RunTrigger::Schedule, ts("2026-12-01T03:00:00Z")))
        );
        assert_eq!(d.mark, Some(now));
        assert_eq!(d.next_due, Some(ts("2026-12-01T06:00:00Z")));
    }

    #[test]
    fn clock_set_back_reschedules_from_now() {
        let (j, cal) = job("*-*-* 02:00:00 UTC", "run-once", true);
        // The mark was set while the clock was a year ahead.
        let d = decide(
            &j,
            &cal,
            Some(ts("2027-12-01T02:00:00Z")),
            changed(&j),
            ts("2026-12-01T12:00:00Z"),
            false,
        );
        assert!(d.clock_went_back);
        assert_eq!(d.submit, None);
        assert_eq!(d.mark, Some(ts("2026-12-01T12:00:00Z")));
        assert_eq!(d.next_due, Some(ts("2026-12-02T02:00:00Z")));
        // A mark a few seconds ahead (clock adjustments) is left alone.
        let d = decide(
            &j,
            &cal,
            Some(ts("2026-12-01T12:00:30Z")),
            changed(&j),
            ts("2026-12-01T12:00:00Z"),
            false,
        );
        assert!(!d.clock_went_back);
        assert_eq!(d.mark, None);
    }

    #[test]
    fn disabled_jobs_never_run_and_their_elapses_pass() {
        let (j, cal) = job("*-*-* 02:00:00 UTC", "run-once", false);
        let now = ts("2026-12-01T12:00:00Z");
        for startup in [true, false] {
            let d = decide(
                &j,
                &cal,
                Some(ts("2026-11-20T02:00:00Z")),
                changed(&j),
                now,
                startup,
            );
            assert_eq!(d.submit, None);
            assert_eq!(d.mark, Some(now));
            assert_eq!(d.next_due, None);
        }
    }

    #[test]
    fn a_new_job_counts_from_its_last_change() {
        let (j, cal) = job("*-*-* 02:00:00 UTC", "run-once", true);
        // No mark yet, changed on Nov 1: the elapses since then were missed at start-up.
        let now = ts("2026-11-03T12:00:00Z");
        let d = decide(&j, &cal, None, changed(&j), now, true);
        assert_eq!(
            d.submit,
            Some((RunTrigger::CatchUp, ts("2026-11-01T02:00:00Z")))
        );
        // A mark older than the last change (a removed job of the same name) is ignored.
        let d = decide(
            &j,
            &cal,
            Some(ts("2026-01-01T00:00:00Z")),
            changed(&j),
            ts("2026-11-01T01:00:00Z"),
            false,
        );
        assert_eq!(d.submit, None);
        assert_eq!(d.next_due, Some(ts("2026-11-01T02:00:00Z")));
    }

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
