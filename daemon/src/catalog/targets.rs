//! Targets in the catalog.

use super::{audit, db_err, now_rfc3339, Actor, Catalog};
use bms_proto::api::{Location, MediaType, TargetInfo, TargetKind, TargetSpec};
use bms_proto::{ApiError, ErrorKind};
use rusqlite::{params, OptionalExtension, Row, Transaction};

pub(super) const COLUMNS: &str =
    "id, name, kind, path, media_type, location, site, immutable_days, min_free_bytes, \
                       fs_type, fs_source, created_at, updated_at, retention, prune_schedule, prune_grace, \
                       encrypt, key_file, pool, drive, bucket, prefix, region, credentials_file, \
                       virtual_host, object_lock_mode, ca_file, s3_parallel, s3_part_size";

fn parse_enum<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(s.clone())).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(super) fn row_to_info(r: &Row<'_>) -> rusqlite::Result<(i64, TargetInfo)> {
    let kind: TargetKind = parse_enum(r.get(2)?)?;
    let media_type: Option<MediaType> =
        r.get::<_, Option<String>>(4)?.map(parse_enum).transpose()?;
    let location: Location = parse_enum(r.get(5)?)?;
    let spec = TargetSpec {
        name: r.get(1)?,
        kind,
        path: r.get(3)?,
        media_type,
        location,
        site: r.get(6)?,
        immutable_days: r.get(7)?,
        min_free_bytes: r.get::<_, i64>(8)?.max(0) as u64,
        fs_type: r.get(9)?,
        fs_source: r.get(10)?,
        retention: r
            .get::<_, Option<String>>(13)?
            .map(|j| {
                serde_json::from_str(&j).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        13,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })
            })
            .transpose()?,
        prune_schedule: r.get(14)?,
        prune_grace: r.get(15)?,
        encrypt: r.get(16)?,
        key_file: r.get(17)?,
        pool: r.get(18)?,
        drive: r.get(19)?,
        bucket: r.get(20)?,
        prefix: r.get(21)?,
        region: r.get(22)?,
        credentials_file: r.get(23)?,
        virtual_host: r.get(24)?,
        object_lock_mode: r
            .get::<_, Option<String>>(25)?
            .map(parse_enum)
            .transpose()?,
        ca_file: r.get(26)?,
        s3_parallel: r.get(27)?,
        s3_part_size: r
            .get::<_, Option<i64>>(28)?
            .map(|n| u64::try_from(n).unwrap_or(0)),
    };
    let caps = crate::targets::capabilities(kind);
    Ok((
        r.get(0)?,
        TargetInfo {
            media: spec.media(),
            supported: caps.writable(),
            note: caps.note(),
            supports: caps.supports(),
            used_by: Vec::new(),
            last_check: None,
            key_path: crate::targets::key_path(&spec).map(|p| p.display().to_string()),
            spec,
            created_at: r.get(11)?,
            updated_at: r.get(12)?,
        },
    ))
}

fn used_by(tx: &rusqlite::Connection, id: i64) -> Result<Vec<String>, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT DISTINCT j.name FROM job_targets jt JOIN jobs j ON j.id = jt.job_id \
             WHERE jt.target_id = ?1 ORDER BY j.name",
        )
        .map_err(db_err)?;
    let rows = stmt.query_map([id], |r| r.get(0)).map_err(db_err)?;
    rows.collect::<Result<Vec<String>, _>>().map_err(db_err)
}

/// The id of a target, without building its whole record (which lists the jobs using it).
pub(super) fn id_of(conn: &rusqlite::Connection, name: &str) -> Result<Option<i64>, ApiError> {
    conn.query_row("SELECT id FROM targets WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .map_err(db_err)
}

pub(super) fn find(
    conn: &rusqlite::Connection,
    name: &str,
) -> Result<Option<(i64, TargetInfo)>, ApiError> {
    let found = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM targets WHERE name = ?1"),
            [name],
            row_to_info,
        )
        .optional()
        .map_err(db_err)?;
    match found {
        Some((id, mut info)) => {
            info.used_by = used_by(conn, id)?;
            info.last_check = Catalog::last_check(conn, name)?;
            Ok(Some((id, info)))
        }
        None => Ok(None),
    }
}

fn store(tx: &Transaction<'_>, t: &TargetSpec, existing: Option<i64>) -> Result<(), ApiError> {
    let now = now_rfc3339();
    let media = t.media_type.map(|m| m.as_str());
    let retention = t
        .retention
        .as_ref()
        .filter(|r| !r.is_empty())
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("encoding retention: {e}")))?;
    let id = match existing {
        None => tx.execute(
            "INSERT INTO targets(name, kind, path, media_type, location, site, immutable_days, min_free_bytes, \
             fs_type, fs_source, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?11)",
            params![
                t.name, t.kind.as_str(), t.path, media, t.location.as_str(), t.site, t.immutable_days,
                t.min_free_bytes as i64, t.fs_type, t.fs_source, now
            ],
        ).map(|_| tx.last_insert_rowid()),
        Some(id) => tx.execute(
            "UPDATE targets SET kind=?2, path=?3, media_type=?4, location=?5, site=?6, immutable_days=?7, \
             min_free_bytes=?8, fs_type=?9, fs_source=?10, updated_at=?11 WHERE id=?1",
            params![
                id, t.kind.as_str(), t.path, media, t.location.as_str(), t.site, t.immutable_days,
                t.min_free_bytes as i64, t.fs_type, t.fs_source, now
            ],
        ).map(|_| id),
    }
    .map_err(db_err)?;
    tx.execute(
        "UPDATE targets SET retention=?2, prune_schedule=?3, prune_grace=?4, encrypt=?5, \
         key_file=?6, pool=?7, drive=?8 WHERE id=?1",
        params![
            id,
            retention,
            t.prune_schedule,
            t.prune_grace,
            t.encrypt,
            t.key_file,
            t.pool,
            t.drive
        ],
    )
    .map_err(db_err)?;
    tx.execute(
        "UPDATE targets SET bucket=?2, prefix=?3, region=?4, credentials_file=?5, \
         virtual_host=?6, object_lock_mode=?7, ca_file=?8, s3_parallel=?9, s3_part_size=?10 WHERE id=?1",
        params![
            id,
            t.bucket,
            t.prefix,
            t.region,
            t.credentials_file,
            t.virtual_host,
            t.object_lock_mode.map(|m| m.as_str()),
            t.ca_file,
            t.s3_parallel,
            t.s3_part_size.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        ],
    )
    .map(|_| ())
    .map_err(db_err)
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Unchanged,
}

/// Creates or updates a target inside a transaction, with an audit record when something changed.
pub(super) fn upsert(
    tx: &Transaction<'_>,
    actor: Actor,
    t: &TargetSpec,
    mode: Upsert,
) -> Result<Change, ApiError> {
    crate::targets::Target::from_spec(t)?;
    crate::validate::target_retention(t)?;
    // No rule is no override: stored as none, so that an empty table applies unchanged.
    let mut normalized = t.clone();
    if normalized.retention.as_ref().is_some_and(|r| r.is_empty()) {
        normalized.retention = None;
    }
    let t = &normalized;
    let existing = find(tx, &t.name)?;
    let (change, id) = match (&existing, mode) {
        (Some(_), Upsert::CreateOnly) => {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "target '{}' already exists: use 'bmsctl target edit' to change it",
                    t.name
                ),
            ))
        }
        (None, Upsert::UpdateOnly) => return Err(ApiError::not_found("target", &t.name)),
        (Some((_, info)), _) if info.spec == *t => return Ok(Change::Unchanged),
        (Some((id, _)), _) => (Change::Updated, Some(*id)),
        (None, _) => (Change::Created, None),
    };
    store(tx, t, id)?;
    let action = if change == Change::Created {
        "target.add"
    } else {
        "target.edit"
    };
    audit::record(
        tx,
        actor,
        action,
        &t.name,
        Some(&serde_json::to_string(t).unwrap_or_default()),
    )?;
    Ok(change)
}

/// Whether an upsert may create, update or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    CreateOnly,
    UpdateOnly,
    Either,
}

impl Catalog {
    pub fn list_targets(&self) -> Result<Vec<TargetInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM targets ORDER BY name"))
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], row_to_info)
            .map_err(db_err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_err)?;
        rows.into_iter()
            .map(|(id, mut info)| {
                info.used_by = used_by(&self.conn, id)?;
                info.last_check = Catalog::last_check(&self.conn, &info.spec.name)?;
                Ok(info)
            })
            .collect()
    }

    pub fn get_target(&self, name: &str) -> Result<TargetInfo, ApiError> {
        find(&self.conn, name)?
            .map(|(_, info)| info)
            .ok_or_else(|| ApiError::not_found("target", name))
    }

    pub fn put_target(
        &mut self,
        actor: Actor,
        t: &TargetSpec,
        mode: Upsert,
    ) -> Result<TargetInfo, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        upsert(&tx, actor, t, mode)?;
        tx.commit().map_err(db_err)?;
        self.get_target(&t.name)
    }

    pub fn remove_target(&mut self, actor: Actor, name: &str) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let (id, info) = find(&tx, name)?.ok_or_else(|| ApiError::not_found("target", name))?;
        if !info.used_by.is_empty() {
            return Err(ApiError::new(
                ErrorKind::InUse,
                format!(
                    "target '{name}' is used by job(s) {}: remove it from those jobs first",
                    info.used_by.join(", ")
                ),
            ));
        }
        tx.execute("DELETE FROM targets WHERE id = ?1", [id])
            .map_err(db_err)?;
        audit::record(&tx, actor, "target.rm", name, None)?;
        tx.commit().map_err(db_err)
    }

    /// On a new catalog, creates the default local disk target `local` under the state dir.
    pub fn ensure_default_target(&mut self, repo_dir: &std::path::Path) -> Result<bool, ApiError> {
        if self.meta("default_target_created")?.is_some() {
            return Ok(false);
        }
        let spec = TargetSpec::disk("local", repo_dir.to_string_lossy());
        let tx = self.conn.transaction().map_err(db_err)?;
        if find(&tx, "local")?.is_none() {
            upsert(
                &tx,
                Actor {
                    uid: nix::unistd::geteuid().as_raw(),
                },
                &spec,
                Upsert::CreateOnly,
            )?;
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('default_target_created', ?1)",
            [now_rfc3339()],
        )
        .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(true)
    }
}
