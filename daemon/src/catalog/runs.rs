//! Runs, catalogued snapshots, scheduler state and target check results.

use super::{db_err, now_rfc3339, Catalog};
use bms_proto::api::*;
use bms_proto::ApiError;
use rusqlite::{params, OptionalExtension, Row};

const RUN_COLUMNS: &str =
    "id, job, kind, trigger, state, target, source_target, snapshot, parent_run, \
    queued_at, started_at, finished_at, duration_secs, files_new, files_changed, files_unmodified, \
    bytes_read, bytes_total, bytes_added, chunks_new, chunks_total, warnings, error, prune_stats, \
    drill_stats";

fn bad(col: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unknown {what} in catalog").into(),
    )
}

fn u(r: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)?.max(0) as u64)
}

fn row_to_run(r: &Row<'_>) -> rusqlite::Result<RunInfo> {
    let kind: String = r.get(2)?;
    let trigger: String = r.get(3)?;
    let state: String = r.get(4)?;
    Ok(RunInfo {
        id: r.get(0)?,
        job: r.get(1)?,
        kind: RunKind::parse(&kind).ok_or_else(|| bad(2, "run kind"))?,
        trigger: RunTrigger::parse(&trigger).ok_or_else(|| bad(3, "run trigger"))?,
        state: RunState::parse(&state).ok_or_else(|| bad(4, "run state"))?,
        target: r.get(5)?,
        source_target: r.get(6)?,
        snapshot: r.get(7)?,
        parent_run: r.get(8)?,
        queued_at: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        duration_secs: r.get(12)?,
        stats: RunStats {
            files_new: u(r, 13)?,
            files_changed: u(r, 14)?,
            files_unmodified: u(r, 15)?,
            bytes_read: u(r, 16)?,
            bytes_total: u(r, 17)?,
            bytes_added: u(r, 18)?,
            chunks_new: u(r, 19)?,
            chunks_total: u(r, 20)?,
            warnings: u(r, 21)?,
        },
        error: r.get(22)?,
        prune: r
            .get::<_, Option<String>>(23)?
            .and_then(|j| serde_json::from_str(&j).ok()),
        drill: r
            .get::<_, Option<String>>(24)?
            .and_then(|j| serde_json::from_str(&j).ok()),
    })
}

/// A new run to record.
pub struct NewRun<'a> {
    pub job: &'a str,
    pub kind: RunKind,
    pub trigger: RunTrigger,
    pub state: RunState,
    pub target: Option<&'a str>,
    pub source_target: Option<&'a str>,
    pub parent_run: Option<i64>,
    pub error: Option<&'a str>,
}

impl Catalog {
    pub fn insert_run(&mut self, new: &NewRun<'_>) -> Result<RunInfo, ApiError> {
        let now = now_rfc3339();
        let final_now = new.state.is_final().then(|| now.clone());
        self.conn
            .execute(
                "INSERT INTO runs(job, kind, trigger, state, target, source_target, parent_run, queued_at, \
                 finished_at, error) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                params![
                    new.job,
                    new.kind.as_str(),
                    new.trigger.as_str(),
                    new.state.as_str(),
                    new.target,
                    new.source_target,
                    new.parent_run,
                    now,
                    final_now,
                    new.error
                ],
            )
            .map_err(db_err)?;
        let id = self.conn.last_insert_rowid();
        self.get_run(id)
    }

    pub fn get_run(&self, id: i64) -> Result<RunInfo, ApiError> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                row_to_run,
            )
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| ApiError::not_found("run", &id.to_string()))
    }

    pub fn run_log(&self, id: i64) -> Result<Vec<String>, ApiError> {
        let text: String = self
            .conn
            .query_row("SELECT log FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .map_err(db_err)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    }

    pub fn list_runs(&self, job: Option<&str>, limit: u32) -> Result<Vec<RunInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE (?1 IS NULL OR job = ?1) ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, limit], row_to_run)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    pub fn runs_in_state(&self, state: RunState) -> Result<Vec<RunInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE state = ?1 ORDER BY id"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map([state.as_str()], row_to_run)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    pub fn start_run(&mut self, id: i64) -> Result<(), ApiError> {
        self.conn
            .execute(
                "UPDATE runs SET state = 'running', started_at = ?2 WHERE id = ?1",
                params![id, now_rfc3339()],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// Records the end of a run with its statistics, snapshot and log.
    pub fn finish_run(
        &mut self,
        id: i64,
        state: RunState,
        snapshot: Option<&str>,
        stats: &RunStats,
        error: Option<&str>,
        log: &[String],
    ) -> Result<RunInfo, ApiError> {
        let now = jiff::Timestamp::now();
        let started: Option<String> = self
            .conn
            .query_row("SELECT started_at FROM runs WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        let duration = started
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|s| (now.as_millisecond() - s.as_millisecond()).max(0) as f64 / 1000.0);
        let log = serde_json::to_string(log).unwrap_or_else(|_| "[]".into());
        let s = stats;
        self.conn
            .execute(
                "UPDATE runs SET state=?2, snapshot=coalesce(?3, snapshot), finished_at=?4, duration_secs=?5, \
                 files_new=?6, files_changed=?7, files_unmodified=?8, bytes_read=?9, bytes_total=?10, \
                 bytes_added=?11, chunks_new=?12, chunks_total=?13, warnings=?14, error=?15, log=?16 WHERE id=?1",
                params![
                    id,
                    state.as_str(),
                    snapshot,
                    now_rfc3339(),
                    duration,
                    s.files_new as i64,
                    s.files_changed as i64,
                    s.files_unmodified as i64,
                    s.bytes_read as i64,
                    s.bytes_total as i64,
                    s.bytes_added as i64,
                    s.chunks_new as i64,
                    s.chunks_total as i64,
                    s.warnings as i64,
                    error,
                    log
                ],
            )
            .map_err(db_err)?;
        self.get_run(id)
    }

    /// Records (or clears) the process group of the hook a run is running, with the identity
    /// of its leader (docs/operations.md, "Hooks").
    pub fn set_hook_group(&mut self, id: i64, group: Option<(i32, &str)>) -> Result<(), ApiError> {
        self.conn
            .execute(
                "UPDATE runs SET hook_group = ?2, hook_identity = ?3 WHERE id = ?1",
                params![id, group.map(|g| g.0), group.map(|g| g.1)],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// The hook process group recorded for a run, if any.
    pub fn hook_group(&self, id: i64) -> Result<Option<(i32, String)>, ApiError> {
        let row: (Option<i32>, Option<String>) = self
            .conn
            .query_row(
                "SELECT hook_group, hook_identity FROM runs WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(db_err)?;
        Ok(match row {
            (Some(g), Some(i)) => Some((g, i)),
            _ => None,
        })
    }

    /// Adds a line to a run's log.
    pub fn append_run_log(&mut self, id: i64, line: &str) -> Result<(), ApiError> {
        let mut log = self.run_log(id)?;
        log.push(line.to_owned());
        let text = serde_json::to_string(&log).unwrap_or_else(|_| "[]".into());
        self.conn
            .execute("UPDATE runs SET log = ?2 WHERE id = ?1", params![id, text])
            .map(|_| ())
            .map_err(db_err)
    }

    /// Marks runs left `running` or `queued` by a daemon that died as interrupted.
    pub fn interrupt_unfinished(&mut self) -> Result<Vec<i64>, ApiError> {
        let mut ids = Vec::new();
        for state in [RunState::Running, RunState::Queued] {
            let msg = match state {
                RunState::Queued => "bmsd stopped before this queued run started",
                _ => "bmsd stopped while this run was going; its repository lock is recovered",
            };
            for run in self.runs_in_state(state)? {
                self.conn
                    .execute(
                        "UPDATE runs SET state='interrupted', finished_at=?2, error=coalesce(error, ?3) WHERE id=?1",
                        params![run.id, now_rfc3339(), msg],
                    )
                    .map_err(db_err)?;
                ids.push(run.id);
            }
        }
        Ok(ids)
    }

    pub fn record_snapshot(&mut self, rec: &SnapshotRecord) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO snapshots(id, target, job, time, host, paths, partial, run_id, stats) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                params![
                    rec.id,
                    rec.target,
                    rec.job,
                    rec.time,
                    rec.host,
                    serde_json::to_string(&rec.paths).unwrap_or_default(),
                    rec.partial,
                    rec.run_id,
                    serde_json::to_string(&rec.stats).unwrap_or_default()
                ],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    pub fn list_snapshots(
        &self,
        job: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<SnapshotRecord>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, target, job, time, host, paths, partial, run_id, stats FROM snapshots \
                 WHERE (?1 IS NULL OR job = ?1) AND (?2 IS NULL OR target = ?2) ORDER BY time, target",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![job, target], |r| {
                let paths: String = r.get(5)?;
                let stats: String = r.get(8)?;
                Ok(SnapshotRecord {
                    id: r.get(0)?,
                    target: r.get(1)?,
                    job: r.get(2)?,
                    time: r.get(3)?,
                    host: r.get(4)?,
                    paths: serde_json::from_str(&paths).unwrap_or_default(),
                    partial: r.get(6)?,
                    run_id: r.get(7)?,
                    stats: serde_json::from_str(&stats).unwrap_or_default(),
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// The time up to which the scheduler has handled a job's elapse times.
    pub fn checked_until(&self, job: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT checked_until FROM schedule_state WHERE job = ?1",
                [job],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    pub fn set_checked_until(&mut self, job: &str, t: jiff::Timestamp) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT INTO schedule_state(job, checked_until) VALUES (?1, ?2) \
                 ON CONFLICT(job) DO UPDATE SET checked_until = ?2",
                params![job, t.to_string()],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    pub fn store_check(&mut self, check: &TargetCheck) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO target_checks(target, result) VALUES (?1, ?2)",
                params![check.name, serde_json::to_string(check).unwrap_or_default()],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    pub(super) fn last_check(
        conn: &rusqlite::Connection,
        target: &str,
    ) -> Result<Option<TargetCheck>, ApiError> {
        let v: Option<String> = conn
            .query_row(
                "SELECT result FROM target_checks WHERE target = ?1",
                [target],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        Ok(v.and_then(|s| serde_json::from_str(&s).ok()))
    }
}
