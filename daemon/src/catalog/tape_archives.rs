//! Tape archives in the catalog (docs/tape.md, "Media manager"): which snapshot of which job is
//! on which media, volume by volume and file by file, and the evidence compliance reads from it.
//!
//! An archive is recorded as `writing` when the copy starts and becomes `complete` only after
//! the catalog file of its last volume is on tape; a failed copy leaves it `failed`, so no medium
//! is ever recorded as holding an incomplete archive as complete.

use super::media::Location;
use super::{db_err, now_rfc3339, Catalog};
use bms_proto::ApiError;
use bms_tape::format::catalog::Catalog as TapeCatalog;
use rusqlite::OptionalExtension;

/// One medium holding (part of) a job's complete tape copy, with where it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEvidence {
    pub barcode: String,
    pub media_type: String,
    pub target: String,
    pub snapshot: String,
    /// RFC 3339: when the archive was completed.
    pub finished_at: String,
    pub location: Location,
    /// The medium is in a drive (online); otherwise it is offline.
    pub in_drive: bool,
    /// The medium is in an offsite vault.
    pub offsite: bool,
}

/// Where a path of a tape archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeFileLocation {
    pub barcode: String,
    pub volume: u32,
    pub tape_file: u64,
    pub offset: u64,
    pub size: u64,
    pub hash: String,
}

impl Catalog {
    /// Starts recording a tape copy of `snapshot` of `job` to `target`; returns its id.
    pub fn begin_tape_archive(
        &mut self,
        job: &str,
        target: &str,
        snapshot: &str,
    ) -> Result<i64, ApiError> {
        self.conn
            .execute(
                "INSERT INTO tape_archives(job, target, snapshot, state, started_at) VALUES (?1, ?2, ?3, 'writing', ?4)",
                rusqlite::params![job, target, snapshot, now_rfc3339()],
            )
            .map_err(db_err)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records one volume that is complete on tape (its catalog file was written).
    pub fn record_tape_volume(&mut self, archive: i64, c: &TapeCatalog) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT OR REPLACE INTO tape_volumes(archive_id, volume, barcode, tape_file, bytes, files, last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                archive,
                c.volume,
                c.barcode,
                i64::try_from(c.archive_file).unwrap_or(i64::MAX),
                i64::try_from(c.archive_bytes).unwrap_or(i64::MAX),
                c.entries.len() as i64,
                c.last
            ],
        )
        .map_err(db_err)?;
        tx.execute(
            "DELETE FROM tape_files WHERE archive_id = ?1 AND volume = ?2",
            rusqlite::params![archive, c.volume],
        )
        .map_err(db_err)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO tape_files(archive_id, volume, path, kind, offset, size, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(db_err)?;
            for e in &c.entries {
                st.execute(rusqlite::params![
                    archive,
                    c.volume,
                    e.path,
                    e.kind.letter().to_string(),
                    i64::try_from(e.offset).unwrap_or(i64::MAX),
                    i64::try_from(e.size).unwrap_or(i64::MAX),
                    e.hash
                ])
                .map_err(db_err)?;
            }
        }
        tx.commit().map_err(db_err)
    }

    /// Ends a tape copy: `complete` only when volumes 1..=n are recorded and n is the last;
    /// otherwise (or with an error) `failed` with the reason. Returns the state written.
    pub fn finish_tape_archive(
        &mut self,
        archive: i64,
        error: Option<&str>,
    ) -> Result<&'static str, ApiError> {
        let whole = self.archive_is_whole(archive)?;
        let (state, reason) = match (error, whole) {
            (None, true) => ("complete", None),
            (None, false) => ("failed", Some("the archive's last volume is not on tape")),
            (Some(e), _) => ("failed", Some(e)),
        };
        self.conn
            .execute(
                "UPDATE tape_archives SET state = ?2, finished_at = ?3, error = ?4 WHERE id = ?1",
                rusqlite::params![archive, state, now_rfc3339(), reason],
            )
            .map_err(db_err)?;
        Ok(state)
    }

    fn archive_is_whole(&self, archive: i64) -> Result<bool, ApiError> {
        let mut st = self
            .conn
            .prepare("SELECT volume, last FROM tape_volumes WHERE archive_id = ?1 ORDER BY volume")
            .map_err(db_err)?;
        let vols: Vec<(u32, bool)> = st
            .query_map([archive], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        let contiguous = vols
            .iter()
            .enumerate()
            .all(|(i, (v, _))| *v as usize == i + 1);
        Ok(contiguous && vols.last().is_some_and(|(_, last)| *last))
    }

    /// Rebuilds the records of archives from catalog files read off a tape (`tape scan`):
    /// volumes already recorded are replaced, missing ones added; an archive becomes complete
    /// once all its volumes are known. Returns the archive ids touched.
    pub fn import_tape_catalogs(
        &mut self,
        target: &str,
        catalogs: &[TapeCatalog],
    ) -> Result<Vec<i64>, ApiError> {
        let mut ids = Vec::new();
        for c in catalogs {
            let existing: Option<i64> = self
                .conn
                .query_row(
                    "SELECT id FROM tape_archives WHERE target = ?1 AND snapshot = ?2 ORDER BY id DESC LIMIT 1",
                    rusqlite::params![target, c.snapshot],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            let id = match existing {
                Some(id) => id,
                None => self.begin_tape_archive(&c.job, target, &c.snapshot)?,
            };
            self.record_tape_volume(id, c)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        for &id in &ids {
            let state = if self.archive_is_whole(id)? {
                "complete"
            } else {
                "partial"
            };
            self.conn
                .execute(
                    "UPDATE tape_archives SET state = ?2, finished_at = coalesce(finished_at, ?3), error = NULL WHERE id = ?1",
                    rusqlite::params![id, state, now_rfc3339()],
                )
                .map_err(db_err)?;
        }
        Ok(ids)
    }

    /// The state of a tape archive (`writing`, `complete`, `failed`, `partial`, `overwritten`).
    pub fn tape_archive_state(&self, archive: i64) -> Result<Option<String>, ApiError> {
        self.conn
            .query_row(
                "SELECT state FROM tape_archives WHERE id = ?1",
                [archive],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
    }

    /// Where `path` of the latest complete tape archive of `snapshot` is (for a restore that
    /// positions straight to it).
    pub fn tape_file_location(
        &self,
        snapshot: &str,
        path: &[u8],
    ) -> Result<Option<TapeFileLocation>, ApiError> {
        self.conn
            .query_row(
                "SELECT v.barcode, f.volume, v.tape_file, f.offset, f.size, f.hash
                 FROM tape_archives a
                 JOIN tape_files f ON f.archive_id = a.id
                 JOIN tape_volumes v ON v.archive_id = a.id AND v.volume = f.volume
                 WHERE a.snapshot = ?1 AND a.state = 'complete' AND f.path = ?2 AND f.kind = 'f'
                 ORDER BY a.id DESC LIMIT 1",
                rusqlite::params![snapshot, path],
                |r| {
                    Ok(TapeFileLocation {
                        barcode: r.get(0)?,
                        volume: r.get(1)?,
                        tape_file: r.get::<_, i64>(2)?.max(0) as u64,
                        offset: r.get::<_, i64>(3)?.max(0) as u64,
                        size: r.get::<_, i64>(4)?.max(0) as u64,
                        hash: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(db_err)
    }

    /// The snapshot of the latest complete archive of `job` on tape target `target` (what a
    /// verification of the target reads back), if there is one.
    pub fn latest_tape_archive(&self, job: &str, target: &str) -> Result<Option<String>, ApiError> {
        self.conn
            .query_row(
                "SELECT snapshot FROM tape_archives WHERE job = ?1 AND target = ?2
                 AND state = 'complete' ORDER BY id DESC LIMIT 1",
                rusqlite::params![job, target],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)
    }

    /// The volumes of the latest complete archive of `snapshot` on tape target `target`, each
    /// with its members as the catalog recorded them (for a restore that positions straight
    /// to each volume's tape file); empty when there is none.
    pub fn tape_restore_plan(
        &self,
        target: &str,
        snapshot: &str,
    ) -> Result<Vec<TapeCatalog>, ApiError> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT id, job FROM tape_archives WHERE target = ?1 AND snapshot = ?2
                 AND state = 'complete' ORDER BY id DESC LIMIT 1",
                rusqlite::params![target, snapshot],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db_err)?;
        let Some((archive, job)) = found else {
            return Ok(Vec::new());
        };
        let mut st = self
            .conn
            .prepare(
                "SELECT volume, barcode, tape_file, bytes, last FROM tape_volumes
                 WHERE archive_id = ?1 ORDER BY volume",
            )
            .map_err(db_err)?;
        let vols: Vec<(u32, String, i64, i64, bool)> = st
            .query_map([archive], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        let mut out = Vec::new();
        for (volume, barcode, tape_file, bytes, last) in vols {
            let mut st = self
                .conn
                .prepare(
                    "SELECT path, kind, offset, size, hash FROM tape_files
                     WHERE archive_id = ?1 AND volume = ?2 ORDER BY offset",
                )
                .map_err(db_err)?;
            let entries = st
                .query_map(rusqlite::params![archive, volume], |r| {
                    let kind: String = r.get(1)?;
                    Ok(bms_tape::format::catalog::CatalogEntry {
                        path: r.get(0)?,
                        kind: bms_tape::format::pax::Kind::from_letter(&kind)
                            .unwrap_or(bms_tape::format::pax::Kind::File),
                        offset: r.get::<_, i64>(2)?.max(0) as u64,
                        size: r.get::<_, i64>(3)?.max(0) as u64,
                        hash: r.get(4)?,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<_, _>>()
                .map_err(db_err)?;
            out.push(TapeCatalog {
                snapshot: snapshot.to_owned(),
                job: job.clone(),
                barcode,
                media_set: String::new(),
                volume,
                last,
                archive_file: tape_file.max(0) as u64,
                archive_bytes: bytes.max(0) as u64,
                entries,
            });
        }
        Ok(out)
    }

    /// The evidence for compliance (docs/tape.md, "Media manager"): for every complete tape
    /// copy of `job`, newest first, each medium holding it with its media type, location, and
    /// whether it is in a drive (online) and offsite (in a vault).
    pub fn media_evidence(&self, job: &str) -> Result<Vec<MediaEvidence>, ApiError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT m.barcode, m.media_type, a.target, a.snapshot, a.finished_at, m.location_kind, m.location_name
                 FROM tape_archives a
                 JOIN tape_volumes v ON v.archive_id = a.id
                 JOIN media m ON m.barcode = v.barcode
                 WHERE a.job = ?1 AND a.state = 'complete'
                 ORDER BY a.finished_at DESC, a.id DESC, v.volume",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([job], |r| {
                let kind: String = r.get(5)?;
                let location = match kind.as_str() {
                    "drive" => Location::Drive(r.get(6)?),
                    "slot" => Location::Slot(r.get(6)?),
                    "vault" => Location::Vault(r.get(6)?),
                    _ => Location::Shelf(r.get(6)?),
                };
                Ok(MediaEvidence {
                    barcode: r.get(0)?,
                    media_type: r.get(1)?,
                    target: r.get(2)?,
                    snapshot: r.get(3)?,
                    finished_at: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    in_drive: location.in_drive(),
                    offsite: location.offsite(),
                    location,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }
}
