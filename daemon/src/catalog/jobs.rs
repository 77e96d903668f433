//! Jobs in the catalog. The definition is stored as JSON (`spec`); `job_targets` ties a job to its
//! targets in order, so that a target in use cannot be removed.

use super::targets::{self, Change, Upsert};
use super::{audit, db_err, now_rfc3339, Actor, Catalog};
use bms_proto::api::{Apply, ApplyReply, JobInfo, JobSpec};
use bms_proto::{ApiError, ErrorKind};
use rusqlite::{params, OptionalExtension, Transaction};

/// The derived fields of a schedule: its normalized form and its next three elapses.
type Derived = (String, Vec<String>);

/// Computes [`Derived`] once per distinct schedule of a listing (jobs often share one), in the
/// system time zone read once.
struct Schedules {
    tz: jiff::tz::TimeZone,
    now: jiff::Timestamp,
    seen: std::collections::HashMap<String, Derived>,
}

impl Schedules {
    fn new() -> Schedules {
        Schedules {
            tz: jiff::tz::TimeZone::system(),
            now: jiff::Timestamp::now(),
            seen: std::collections::HashMap::new(),
        }
    }

    fn derive(&mut self, schedule: &str) -> Derived {
        if let Some(d) = self.seen.get(schedule) {
            return d.clone();
        }
        let d = match bms_proto::calendar::CalendarSpec::parse(schedule) {
            Ok(cal) => {
                let next = cal
                    .upcoming_in(self.now, &self.tz, 3)
                    .into_iter()
                    .map(|t| {
                        t.to_zoned(self.tz.clone())
                            .strftime("%Y-%m-%dT%H:%M:%S%:z")
                            .to_string()
                    })
                    .collect();
                (cal.normalized(), next)
            }
            Err(_) => (schedule.to_string(), Vec::new()),
        };
        self.seen.insert(schedule.to_string(), d.clone());
        d
    }

    fn info(&mut self, spec: JobSpec, created_at: String, updated_at: String) -> JobInfo {
        let (schedule_normalized, next_runs) = self.derive(&spec.schedule);
        JobInfo {
            spec,
            schedule_normalized,
            next_runs,
            created_at,
            updated_at,
        }
    }
}

/// Adds the derived fields (normalized schedule, next runs) to a stored definition.
pub fn job_info(spec: JobSpec, created_at: String, updated_at: String) -> JobInfo {
    Schedules::new().info(spec, created_at, updated_at)
}

fn parse_spec(name: &str, spec: &str) -> Result<JobSpec, ApiError> {
    serde_json::from_str(spec)
        .map_err(|e| ApiError::internal(format!("stored job '{name}' cannot be read: {e}")))
}

fn find(conn: &rusqlite::Connection, name: &str) -> Result<Option<(i64, JobInfo)>, ApiError> {
    let row = conn
        .query_row(
            "SELECT id, spec, created_at, updated_at FROM jobs WHERE name = ?1",
            [name],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            },
        )
        .optional()
        .map_err(db_err)?;
    match row {
        None => Ok(None),
        Some((id, spec, created, updated)) => Ok(Some((
            id,
            job_info(parse_spec(name, &spec)?, created, updated),
        ))),
    }
}

fn store(tx: &Transaction<'_>, j: &JobSpec, existing: Option<i64>) -> Result<(), ApiError> {
    let mut target_ids = Vec::with_capacity(j.targets.len());
    for t in &j.targets {
        let id = targets::id_of(tx, t)?.ok_or_else(|| {
            ApiError::invalid(
                "targets",
                format!(
                    "target '{t}' does not exist: add it first with 'bmsctl target add {t} ...'"
                ),
            )
        })?;
        target_ids.push(id);
    }
    let spec = serde_json::to_string(j).map_err(|e| ApiError::internal(e.to_string()))?;
    let now = now_rfc3339();
    let id = match existing {
        None => {
            tx.execute(
                "INSERT INTO jobs(name, enabled, schedule, spec, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?5)",
                params![j.name, j.enabled, j.schedule, spec, now],
            )
            .map_err(db_err)?;
            tx.last_insert_rowid()
        }
        Some(id) => {
            tx.execute(
                "UPDATE jobs SET enabled=?2, schedule=?3, spec=?4, updated_at=?5 WHERE id=?1",
                params![id, j.enabled, j.schedule, spec, now],
            )
            .map_err(db_err)?;
            tx.execute("DELETE FROM job_targets WHERE job_id = ?1", [id])
                .map_err(db_err)?;
            id
        }
    };
    for (pos, tid) in target_ids.iter().enumerate() {
        tx.execute(
            "INSERT INTO job_targets(job_id, target_id, position) VALUES (?1, ?2, ?3)",
            params![id, tid, pos as i64],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

fn upsert(
    tx: &Transaction<'_>,
    actor: Actor,
    j: &JobSpec,
    mode: Upsert,
    action: &str,
) -> Result<Change, ApiError> {
    crate::validate::job(j)?;
    let existing = find(tx, &j.name)?;
    let (change, id) = match (&existing, mode) {
        (Some(_), Upsert::CreateOnly) => {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "job '{}' already exists: use 'bmsctl job edit' to change it",
                    j.name
                ),
            ))
        }
        (None, Upsert::UpdateOnly) => return Err(ApiError::not_found("job", &j.name)),
        (Some((_, info)), _) if info.spec == *j => return Ok(Change::Unchanged),
        (Some((id, _)), _) => (Change::Updated, Some(*id)),
        (None, _) => (Change::Created, None),
    };
    store(tx, j, id)?;
    let action = match (change, action) {
        (Change::Created, _) => "job.add",
        (_, a) => a,
    };
    audit::record(
        tx,
        actor,
        action,
        &j.name,
        Some(&serde_json::to_string(j).unwrap_or_default()),
    )?;
    Ok(change)
}

impl Catalog {
    /// Every job, by name, read in one query (a listing of 1,000 jobs is a D-Bus and
    /// metrics hot path: docs/performance.md "Daemon at scale").
    pub fn list_jobs(&self) -> Result<Vec<JobInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, spec, created_at, updated_at FROM jobs ORDER BY name")
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        let mut schedules = Schedules::new();
        rows.into_iter()
            .map(|(name, spec, created, updated)| {
                Ok(schedules.info(parse_spec(&name, &spec)?, created, updated))
            })
            .collect()
    }

    pub fn get_job(&self, name: &str) -> Result<JobInfo, ApiError> {
        find(&self.conn, name)?
            .map(|(_, info)| info)
            .ok_or_else(|| ApiError::not_found("job", name))
    }

    pub fn put_job(
        &mut self,
        actor: Actor,
        j: &JobSpec,
        mode: Upsert,
    ) -> Result<JobInfo, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        upsert(&tx, actor, j, mode, "job.edit")?;
        tx.commit().map_err(db_err)?;
        self.get_job(&j.name)
    }

    pub fn set_job_enabled(
        &mut self,
        actor: Actor,
        name: &str,
        enabled: bool,
    ) -> Result<JobInfo, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let (_, info) = find(&tx, name)?.ok_or_else(|| ApiError::not_found("job", name))?;
        let spec = JobSpec {
            enabled,
            ..info.spec
        };
        let action = if enabled { "job.enable" } else { "job.disable" };
        upsert(&tx, actor, &spec, Upsert::UpdateOnly, action)?;
        tx.commit().map_err(db_err)?;
        self.get_job(name)
    }

    pub fn remove_job(&mut self, actor: Actor, name: &str) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let (id, _) = find(&tx, name)?.ok_or_else(|| ApiError::not_found("job", name))?;
        tx.execute("DELETE FROM jobs WHERE id = ?1", [id])
            .map_err(db_err)?;
        audit::record(&tx, actor, "job.rm", name, None)?;
        tx.commit().map_err(db_err)
    }

    /// Creates or updates every target, then every job, in one transaction: all or nothing.
    pub fn apply(&mut self, actor: Actor, req: &Apply) -> Result<ApplyReply, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let mut reply = ApplyReply {
            dry_run: req.dry_run,
            ..Default::default()
        };
        let mut sort = |change: Change, entry: String| match change {
            Change::Created => reply.created.push(entry),
            Change::Updated => reply.updated.push(entry),
            Change::Unchanged => reply.unchanged.push(entry),
        };
        for (i, t) in req.targets.iter().enumerate() {
            let change = targets::upsert(&tx, actor, t, Upsert::Either)
                .map_err(|e| in_entry(e, "targets", i, &t.name))?;
            sort(change, format!("target:{}", t.name));
        }
        for (i, j) in req.jobs.iter().enumerate() {
            let change = upsert(&tx, actor, j, Upsert::Either, "job.edit")
                .map_err(|e| in_entry(e, "jobs", i, &j.name))?;
            sort(change, format!("job:{}", j.name));
        }
        if req.dry_run {
            tx.rollback().map_err(db_err)?;
        } else {
            tx.commit().map_err(db_err)?;
        }
        Ok(reply)
    }
}

/// Prefixes an error with the apply entry it came from (`jobs[2] 'home': ...`).
fn in_entry(mut e: ApiError, list: &str, i: usize, name: &str) -> ApiError {
    e.message = format!("{list}[{i}] '{name}': {}", e.message);
    e.field = e.field.map(|f| format!("{list}[{i}].{f}"));
    e
}
