//! The catalog's part of the period report (docs/reports.md): aggregates in SQL, per job.
//!
//! Times are the catalog's RFC 3339 text in one format (UTC, milliseconds), so comparing the
//! text compares the times; callers pass `since`/`until` in that format.

use super::{db_err, Catalog};
use bms_proto::api::*;
use bms_proto::ApiError;
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeMap;

/// Every run state, in the order the report lists them.
pub const STATES: [RunState; 8] = [
    RunState::Queued,
    RunState::Running,
    RunState::Succeeded,
    RunState::Warning,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Interrupted,
    RunState::Skipped,
];

/// Failures listed per job at most.
const MAX_FAILURES: u32 = 100;

/// What the catalog says about one job in `[since, until)`.
pub struct RunFacts {
    pub runs: u64,
    pub runs_by_state: BTreeMap<String, u64>,
    pub runs_by_day: BTreeMap<String, BTreeMap<String, u64>>,
    pub backup_runs: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub last_success: Option<String>,
    /// Finish time of the last successful backup before `since`.
    pub success_before: Option<String>,
    /// First and last successful backup finished in the period, and the longest gap in
    /// seconds between two consecutive ones.
    pub first_in_period: Option<String>,
    pub last_in_period: Option<String>,
    pub inner_gap_secs: Option<f64>,
    pub failures: Vec<ReportFailure>,
    pub changes: Vec<ComplianceChange>,
    /// Bytes the period's backup runs added, running total at the end of each day.
    pub stored_by_day: BTreeMap<String, u64>,
    pub drills: Vec<ReportDrill>,
}

const SUCCESS: &str = "kind = 'backup' AND state IN ('succeeded', 'warning')";

impl Catalog {
    pub fn report_facts(&self, job: &str, since: &str, until: &str) -> Result<RunFacts, ApiError> {
        let mut runs_by_state: BTreeMap<String, u64> =
            STATES.iter().map(|s| (s.as_str().to_owned(), 0)).collect();
        let (mut runs, mut backup_runs, mut bytes_read, mut bytes_added) = (0u64, 0u64, 0u64, 0u64);
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT state, COUNT(*), SUM(kind = 'backup'), \
                     SUM(CASE WHEN kind = 'backup' THEN bytes_read ELSE 0 END), \
                     SUM(CASE WHEN kind = 'backup' THEN bytes_added ELSE 0 END) \
                     FROM runs WHERE job = ?1 AND queued_at >= ?2 AND queued_at < ?3 GROUP BY state",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![job, since, until], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (state, n, b, read, added) = row.map_err(db_err)?;
                let n = n.max(0) as u64;
                runs += n;
                backup_runs += b.max(0) as u64;
                bytes_read += read.max(0) as u64;
                bytes_added += added.max(0) as u64;
                *runs_by_state.entry(state).or_insert(0) += n;
            }
        }
        let mut runs_by_day: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT substr(queued_at, 1, 10), state, COUNT(*) FROM runs \
                     WHERE job = ?1 AND queued_at >= ?2 AND queued_at < ?3 GROUP BY 1, 2",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![job, since, until], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db_err)?;
            for row in rows {
                let (day, state, n) = row.map_err(db_err)?;
                runs_by_day
                    .entry(day)
                    .or_default()
                    .insert(state, n.max(0) as u64);
            }
        }
        let one = |sql: String, p: &[&dyn rusqlite::ToSql]| -> Result<Option<String>, ApiError> {
            self.conn
                .query_row(&sql, p, |r| r.get::<_, Option<String>>(0))
                .optional()
                .map(Option::flatten)
                .map_err(db_err)
        };
        let last_success = one(
            format!("SELECT MAX(finished_at) FROM runs WHERE job = ?1 AND {SUCCESS} AND finished_at < ?2"),
            &[&job, &until],
        )?;
        let success_before = one(
            format!("SELECT MAX(finished_at) FROM runs WHERE job = ?1 AND {SUCCESS} AND finished_at < ?2"),
            &[&job, &since],
        )?;
        let (first_in_period, last_in_period, inner_gap_secs) = self
            .conn
            .query_row(
                &format!(
                    "SELECT MIN(t), MAX(t), MAX(gap) FROM (SELECT finished_at AS t, \
                     (julianday(finished_at) - julianday(LAG(finished_at) OVER (ORDER BY finished_at))) \
                     * 86400.0 AS gap FROM runs WHERE job = ?1 AND {SUCCESS} \
                     AND finished_at >= ?2 AND finished_at < ?3)"
                ),
                params![job, since, until],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<f64>>(2)?,
                    ))
                },
            )
            .map_err(db_err)?;
        Ok(RunFacts {
            runs,
            runs_by_state,
            runs_by_day,
            backup_runs,
            bytes_read,
            bytes_added,
            last_success,
            success_before,
            first_in_period,
            last_in_period,
            inner_gap_secs,
            failures: self.report_failures(job, since, until)?,
            changes: self.report_changes(job, since, until)?,
            stored_by_day: self.report_stored(job, since, until)?,
            drills: self.report_drills(job, since, until)?,
        })
    }

    fn report_stored(
        &self,
        job: &str,
        since: &str,
        until: &str,
    ) -> Result<BTreeMap<String, u64>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT substr(queued_at, 1, 10), SUM(bytes_added) FROM runs \
                 WHERE job = ?1 AND kind = 'backup' AND queued_at >= ?2 AND queued_at < ?3 \
                 GROUP BY 1 ORDER BY 1",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, since, until], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db_err)?;
        let mut total = 0u64;
        let mut out = BTreeMap::new();
        for row in rows {
            let (day, added) = row.map_err(db_err)?;
            total = total.saturating_add(added.max(0) as u64);
            out.insert(day, total);
        }
        Ok(out)
    }

    fn report_drills(
        &self,
        job: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<ReportDrill>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, target, state, finished_at, drill_stats FROM runs \
                 WHERE job = ?1 AND kind = 'drill' AND queued_at >= ?2 AND queued_at < ?3 \
                 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT ?4",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, since, until, MAX_FAILURES], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (run, target, state, finished_at, stats) = row.map_err(db_err)?;
            let Some(state) = RunState::parse(&state) else {
                continue;
            };
            let st: DrillStats = stats
                .and_then(|j| serde_json::from_str(&j).ok())
                .unwrap_or_default();
            out.push(ReportDrill {
                run,
                target,
                state,
                finished_at,
                files_sampled: st.files_sampled,
                bytes_sampled: st.bytes_sampled,
                files_failed: st.files_failed,
                bytes_per_sec: st.bytes_per_sec,
                rto_secs: st.rto_secs,
            });
        }
        Ok(out)
    }

    fn report_failures(
        &self,
        job: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<ReportFailure>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, state, target, queued_at, finished_at, error FROM runs \
                 WHERE job = ?1 AND queued_at >= ?2 AND queued_at < ?3 \
                 AND state IN ('failed', 'cancelled', 'interrupted') ORDER BY id DESC LIMIT ?4",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, since, until, MAX_FAILURES], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (run, kind, state, target, queued_at, finished_at, error) = row.map_err(db_err)?;
            let (Some(kind), Some(state)) = (RunKind::parse(&kind), RunState::parse(&state)) else {
                continue;
            };
            out.push(ReportFailure {
                run,
                kind,
                state,
                target,
                queued_at,
                finished_at,
                error,
            });
        }
        Ok(out)
    }

    fn report_changes(
        &self,
        job: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<ComplianceChange>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, time, rule, \"from\", \"to\", reason FROM compliance_history \
                 WHERE job = ?1 AND time >= ?2 AND time < ?3 ORDER BY id LIMIT 10000",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, since, until], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(db_err)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time, rule, from, to, reason) = row.map_err(db_err)?;
            let (Some(rule), Some(to)) = (Rule::parse(&rule), Verdict::parse(&to)) else {
                continue;
            };
            out.push(ComplianceChange {
                id,
                time,
                job: job.to_owned(),
                rule,
                from: from.as_deref().and_then(Verdict::parse),
                to,
                reason,
            });
        }
        Ok(out)
    }
}
