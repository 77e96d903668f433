//! The catalog side of a rebuild (docs/operations.md "Recovering the catalog"): merging the
//! snapshots read from a target's repository into the snapshot and seal records. Records the
//! catalog has are kept as they are; missing ones are added, so a second merge changes nothing.

use super::{db_err, Catalog, SealRecord};
use bms_proto::api::{SnapshotRecord, TargetRebuild, CATALOG_JOB};
use bms_proto::ApiError;
use rusqlite::{params, OptionalExtension};
use std::collections::BTreeSet;

/// A snapshot read from a repository: its record (without a run) and its seal, if its file
/// carries one (RFC 3339 end, objects sealed).
#[derive(Debug, Clone)]
pub struct Found {
    pub record: SnapshotRecord,
    pub seal: Option<(String, u64)>,
}

impl Catalog {
    /// Adds the snapshots of `target` the catalog lacks, and their seals. A snapshot's run is the
    /// run the catalog has that wrote it there (none after the catalog was lost). Returns the
    /// counts and the names of the jobs the catalog does not know.
    pub fn merge_rebuilt(
        &mut self,
        target: &str,
        found: &[Found],
    ) -> Result<(TargetRebuild, BTreeSet<String>), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let mut out = TargetRebuild {
            target: target.to_owned(),
            ..Default::default()
        };
        let mut unknown = BTreeSet::new();
        for f in found {
            let rec = &f.record;
            let job_known = rec.job == CATALOG_JOB
                || tx
                    .query_row("SELECT 1 FROM jobs WHERE name = ?1", [&rec.job], |_| Ok(()))
                    .optional()
                    .map_err(db_err)?
                    .is_some();
            if !job_known {
                out.unknown_job += 1;
                unknown.insert(rec.job.clone());
            }
            let exists = tx
                .query_row(
                    "SELECT 1 FROM snapshots WHERE target = ?1 AND id = ?2",
                    params![target, rec.id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db_err)?
                .is_some();
            if exists {
                out.kept += 1;
            } else {
                let run: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM runs WHERE snapshot = ?1 AND target = ?2 \
                         ORDER BY id DESC LIMIT 1",
                        params![rec.id, target],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(db_err)?;
                tx.execute(
                    "INSERT INTO snapshots(id, target, job, time, host, paths, partial, run_id, stats) \
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
                    params![
                        rec.id,
                        target,
                        rec.job,
                        rec.time,
                        rec.host,
                        serde_json::to_string(&rec.paths).unwrap_or_default(),
                        rec.partial,
                        run,
                        serde_json::to_string(&rec.stats).unwrap_or_default()
                    ],
                )
                .map_err(db_err)?;
                out.added += 1;
            }
            if let Some((until, objects)) = &f.seal {
                let added = tx
                    .execute(
                        "INSERT OR IGNORE INTO seals(target, snapshot, until, sealed_at, objects) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![
                            target,
                            rec.id,
                            until,
                            super::now_rfc3339(),
                            i64::try_from(*objects).unwrap_or(i64::MAX)
                        ],
                    )
                    .map_err(db_err)?;
                out.seals += added as u64;
            }
        }
        tx.commit().map_err(db_err)?;
        Ok((out, unknown))
    }

    /// Writes a consistent copy of the catalog to `dest` (an existing empty file, or none) with
    /// SQLite's online backup, while bmsd goes on using it.
    pub fn copy_to(&self, dest: &std::path::Path) -> Result<(), ApiError> {
        self.conn
            .backup(
                rusqlite::MAIN_DB,
                dest,
                None::<fn(rusqlite::backup::Progress)>,
            )
            .map_err(|e| {
                ApiError::internal(format!(
                    "cannot copy the catalog to {}: {e}",
                    dest.display()
                ))
            })
    }

    /// The seal recorded for a snapshot on a target, if any.
    pub fn seal_of(&self, target: &str, snapshot: &str) -> Result<Option<SealRecord>, ApiError> {
        self.conn
            .query_row(
                "SELECT target, snapshot, until, objects FROM seals \
                 WHERE target = ?1 AND snapshot = ?2",
                params![target, snapshot],
                |r| {
                    Ok(SealRecord {
                        target: r.get(0)?,
                        snapshot: r.get(1)?,
                        until: r.get(2)?,
                        objects: r.get::<_, i64>(3)?.max(0) as u64,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bms_proto::api::RunStats;

    fn found(id: &str, job: &str, seal: Option<&str>) -> Found {
        Found {
            record: SnapshotRecord {
                id: id.into(),
                target: "t".into(),
                job: job.into(),
                time: "2026-01-02T03:04:05.678Z".into(),
                host: "h".into(),
                paths: vec!["/src".into()],
                partial: false,
                run_id: None,
                stats: RunStats {
                    files_new: 3,
                    bytes_total: 99,
                    ..Default::default()
                },
            },
            seal: seal.map(|u| (u.to_owned(), 4)),
        }
    }

    #[test]
    fn a_merge_adds_what_is_missing_and_a_second_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let list = vec![
            found("aa", "gone", None),
            found("bb", CATALOG_JOB, Some("2030-01-01T00:00:00Z")),
        ];
        let (r, unknown) = c.merge_rebuilt("t", &list).unwrap();
        assert_eq!((r.added, r.kept, r.seals, r.unknown_job), (2, 0, 1, 1));
        assert_eq!(unknown.into_iter().collect::<Vec<_>>(), vec!["gone"]);
        let before = c.list_snapshots(None, None).unwrap();
        assert_eq!(before.len(), 2);
        assert_eq!(before[0].stats.files_new, 3);
        let (r, _) = c.merge_rebuilt("t", &list).unwrap();
        assert_eq!((r.added, r.kept, r.seals), (0, 2, 0));
        let after = c.list_snapshots(None, None).unwrap();
        assert_eq!(format!("{before:?}"), format!("{after:?}"));
        let seal = c.seal_of("t", "bb").unwrap().unwrap();
        assert_eq!(seal.until, "2030-01-01T00:00:00Z");
    }
}
