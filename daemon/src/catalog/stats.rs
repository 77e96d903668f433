//! Figures for the metrics endpoint, read in one go.

use super::{db_err, Catalog};
use bms_proto::ApiError;

/// The latest facts about one job.
#[derive(Debug, Clone, Default)]
pub struct JobFacts {
    pub name: String,
    pub enabled: bool,
    /// Unix seconds of the end of the latest finished backup run, and its state.
    pub last_run: Option<(f64, String)>,
    pub last_success: Option<f64>,
    pub last_snapshot_bytes: Option<u64>,
    pub last_duration_secs: Option<f64>,
    /// Unix seconds of the end of the latest verification that ran to a verdict (after a backup
    /// or scheduled), and whether it found the repository clean.
    pub last_verify: Option<(f64, bool)>,
    /// Unix seconds of the next elapse of the job's schedule (none for a bad or past-only one).
    pub next_run: Option<f64>,
}

/// (job, [(rule, 1 pass / 0 fail / -1 unknown)], compliant).
pub type ComplianceGauges = (String, Vec<(String, i64)>, bool);

/// Everything the metrics endpoint reports from the catalog.
#[derive(Debug, Clone, Default)]
pub struct CatalogFacts {
    pub targets: u32,
    pub jobs: Vec<JobFacts>,
    /// (job, kind, state, count) over the whole run history.
    pub run_counts: Vec<(String, String, String, u64)>,
    /// (target, ok, free bytes) of the latest pre-flight checks.
    pub target_checks: Vec<(String, bool, Option<u64>)>,
    /// (severity, count) of the alerts not resolved (docs/alerts.md).
    pub alerts_open: Vec<(String, u64)>,
    /// Failed notification attempts, all channels.
    pub notification_failures: u64,
    /// Notifications waiting in the outbox.
    pub notifications_pending: u64,
    /// (target, snapshots) recorded in the catalog.
    pub target_snapshots: Vec<(String, u64)>,
    /// (target, unix seconds, problems) of each target's latest verification (or drill) that
    /// reached a verdict; a failed one that recorded no count counts as 1 problem.
    pub target_verify: Vec<(String, f64, u64)>,
    /// (state, location kind, count) of the media in the media manager (docs/tape.md).
    pub media: Vec<(String, String, u64)>,
    /// Repository figures per target, measured after the runs that change them (filled by the
    /// metrics endpoint from [`crate::usage`]).
    pub usage: Vec<(String, bms_engine::usage::Usage)>,
    /// Notification attempts by (channel, outcome) since bmsd started (filled by the metrics
    /// endpoint from [`crate::state::Shared::notifications`]).
    pub notifications: Vec<(Vec<String>, u64)>,
    /// Per job: (job, [(rule, 1 pass / 0 fail / -1 unknown)], compliant) (docs/compliance.md);
    /// filled by the metrics endpoint from an evaluation.
    pub compliance: Vec<ComplianceGauges>,
}

fn unix(ts: Option<String>) -> Option<f64> {
    ts?.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond() as f64 / 1000.0)
}

/// Unix seconds of a calendar's next elapse after now, in the system's time zone.
fn next_elapse(schedule: &str) -> Option<f64> {
    let cal = bms_proto::calendar::CalendarSpec::parse(schedule).ok()?;
    let tz = jiff::tz::TimeZone::system();
    let t = cal
        .upcoming_in(jiff::Timestamp::now(), &tz, 1)
        .into_iter()
        .next()?;
    Some(t.as_millisecond() as f64 / 1000.0)
}

impl Catalog {
    /// A counter of every row this catalog connection has changed since it opened: equal
    /// values mean equal [`Catalog::gauge_facts`] (until a job's next run passes).
    pub fn change_count(&self) -> u64 {
        self.conn.total_changes()
    }

    /// The gauge figures and the run counts over the whole history (which seed the counters
    /// when bmsd starts).
    pub fn facts(&self) -> Result<CatalogFacts, ApiError> {
        let mut facts = self.gauge_facts()?;
        let mut stmt = self
            .conn
            .prepare("SELECT job, kind, state, count(*) FROM runs GROUP BY job, kind, state ORDER BY 1, 2, 3")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?.max(0) as u64,
                ))
            })
            .map_err(db_err)?;
        facts.run_counts = rows.collect::<Result<_, _>>().map_err(db_err)?;
        Ok(facts)
    }

    /// Everything the metrics endpoint reports from the catalog except the run counts (the
    /// endpoint's counters come from the event bus).
    pub fn gauge_facts(&self) -> Result<CatalogFacts, ApiError> {
        let (targets, _, _) = self.counts()?;
        let mut facts = CatalogFacts {
            targets,
            ..Default::default()
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT j.name, j.enabled, j.schedule, \
                 (SELECT finished_at || ' ' || state FROM runs r WHERE r.job = j.name AND r.kind = 'backup' \
                    AND r.finished_at IS NOT NULL AND r.state != 'skipped' ORDER BY r.id DESC LIMIT 1), \
                 (SELECT finished_at FROM runs r WHERE r.job = j.name AND r.kind = 'backup' \
                    AND r.state IN ('succeeded', 'warning') ORDER BY r.id DESC LIMIT 1), \
                 (SELECT bytes_total FROM runs r WHERE r.job = j.name AND r.kind = 'backup' \
                    AND r.state IN ('succeeded', 'warning') ORDER BY r.id DESC LIMIT 1), \
                 (SELECT duration_secs FROM runs r WHERE r.job = j.name AND r.kind = 'backup' \
                    AND r.finished_at IS NOT NULL AND r.state != 'skipped' ORDER BY r.id DESC LIMIT 1), \
                 (SELECT finished_at || ' ' || state FROM runs r WHERE r.job = j.name AND r.kind = 'verify' \
                    AND r.state IN ('succeeded', 'failed') \
                    AND NOT EXISTS (SELECT 1 FROM runs p WHERE p.id = r.parent_run AND p.kind = 'verify') \
                    ORDER BY r.id DESC LIMIT 1) \
                 FROM jobs j ORDER BY j.name",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                let schedule: Option<String> = r.get(2)?;
                let last: Option<String> = r.get(3)?;
                let last_run = last.and_then(|s| {
                    let (t, state) = s.split_once(' ')?;
                    Some((unix(Some(t.to_owned()))?, state.to_owned()))
                });
                let verify: Option<String> = r.get(7)?;
                let last_verify = verify.and_then(|s| {
                    let (t, state) = s.split_once(' ')?;
                    Some((unix(Some(t.to_owned()))?, state == "succeeded"))
                });
                Ok(JobFacts {
                    name: r.get(0)?,
                    enabled: r.get(1)?,
                    last_run,
                    last_success: unix(r.get(4)?),
                    last_snapshot_bytes: r.get::<_, Option<i64>>(5)?.map(|b| b.max(0) as u64),
                    last_duration_secs: r.get(6)?,
                    last_verify,
                    next_run: schedule.as_deref().and_then(next_elapse),
                })
            })
            .map_err(db_err)?;
        facts.jobs = rows.collect::<Result<_, _>>().map_err(db_err)?;
        let mut stmt = self
            .conn
            .prepare("SELECT target, count(*) FROM snapshots GROUP BY target ORDER BY 1")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
            .map_err(db_err)?;
        facts.target_snapshots = rows.collect::<Result<_, _>>().map_err(db_err)?;
        // SQLite takes the bare columns from the row of max(id).
        let mut stmt = self
            .conn
            .prepare(
                "SELECT target, max(id), finished_at, state, verify_errors FROM runs \
                 WHERE kind IN ('verify', 'drill') AND state IN ('succeeded', 'failed') \
                 AND target IS NOT NULL AND finished_at IS NOT NULL GROUP BY target ORDER BY 1",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                let state: String = r.get(3)?;
                let counted: Option<i64> = r.get(4)?;
                let problems = match counted {
                    Some(n) => n.max(0) as u64,
                    None => u64::from(state != "succeeded"),
                };
                Ok((r.get::<_, String>(0)?, unix(r.get(2)?), problems))
            })
            .map_err(db_err)?;
        for row in rows {
            let (target, at, problems) = row.map_err(db_err)?;
            if let Some(at) = at {
                facts.target_verify.push((target, at, problems));
            }
        }
        let mut stmt = self
            .conn
            .prepare("SELECT state, location_kind, count(*) FROM media GROUP BY 1, 2 ORDER BY 1, 2")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })
            .map_err(db_err)?;
        facts.media = rows.collect::<Result<_, _>>().map_err(db_err)?;
        for t in self.list_targets()? {
            if let Some(c) = t.last_check {
                facts.target_checks.push((t.spec.name, c.ok, c.free_bytes));
            }
        }
        (
            facts.alerts_open,
            facts.notification_failures,
            facts.notifications_pending,
        ) = self.alert_facts()?;
        Ok(facts)
    }
}
