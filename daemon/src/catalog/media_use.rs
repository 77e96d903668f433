//! What tape copies and the media commands read from and write to the media records
//! (docs/tape.md, "Tape targets"): the media a pool offers for a copy, the next sequence number,
//! the archive volumes on a medium, the pools' counts, and locations set by a copy.

use super::media::{Location, MediaState};
use super::{db_err, Actor, Catalog};
use bms_proto::api::MediumArchive;
use bms_proto::ApiError;

/// A medium offered for a copy to a pool (in the order to use them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub barcode: String,
    pub scratch: bool,
    pub sequence: Option<u32>,
}

impl Catalog {
    /// The media a copy to `pool` may write to, in order: the pool's writable media (by
    /// sequence), then scratch media of the pool's media type (by barcode). Media in a vault
    /// are left out.
    pub fn pool_offers(&self, pool: &str) -> Result<Vec<Offered>, ApiError> {
        let p = self
            .pool(pool)?
            .ok_or_else(|| ApiError::not_found("pool", pool))?;
        let mut out = Vec::new();
        for m in self.media(Some(pool))? {
            if m.state == MediaState::Writable && !m.location.offsite() {
                out.push(Offered {
                    barcode: m.barcode,
                    scratch: false,
                    sequence: m.sequence,
                });
            }
        }
        out.sort_by_key(|o| (o.sequence.unwrap_or(u32::MAX), o.barcode.clone()));
        for m in self.media(None)? {
            if m.state == MediaState::Scratch
                && m.media_type == p.media_type
                && !m.location.offsite()
            {
                out.push(Offered {
                    barcode: m.barcode,
                    scratch: true,
                    sequence: None,
                });
            }
        }
        Ok(out)
    }

    /// The next free sequence number of `pool`'s media set.
    pub fn next_sequence(&self, pool: &str) -> Result<u32, ApiError> {
        let max: Option<u32> = self
            .conn
            .query_row(
                "SELECT max(sequence) FROM media WHERE pool = ?1",
                [pool],
                |r| r.get(0),
            )
            .map_err(db_err)?;
        Ok(max.unwrap_or(0) + 1)
    }

    /// Counts of the media of `pool` in the states scratch (never: scratch media have no
    /// pool), writable, full and expired.
    pub fn pool_counts(&self, pool: &str) -> Result<[u32; 4], ApiError> {
        let mut counts = [0u32; 4];
        for m in self.media(Some(pool))? {
            let i = match m.state {
                MediaState::Scratch => 0,
                MediaState::Writable => 1,
                MediaState::Full => 2,
                MediaState::Expired => 3,
                _ => continue,
            };
            counts[i] += 1;
        }
        Ok(counts)
    }

    /// The archive volumes on a medium, oldest first.
    pub fn medium_archives(&self, barcode: &str) -> Result<Vec<MediumArchive>, ApiError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT a.job, a.target, a.snapshot, a.state, v.volume, v.tape_file, v.bytes,
                        v.files, v.last
                 FROM tape_volumes v JOIN tape_archives a ON a.id = v.archive_id
                 WHERE v.barcode = ?1 ORDER BY a.id, v.volume",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map([barcode], |r| {
                Ok(MediumArchive {
                    job: r.get(0)?,
                    target: r.get(1)?,
                    snapshot: r.get(2)?,
                    state: r.get(3)?,
                    volume: r.get(4)?,
                    tape_file: r.get::<_, i64>(5)?.max(0) as u64,
                    bytes: r.get::<_, i64>(6)?.max(0) as u64,
                    files: r.get::<_, i64>(7)?.max(0) as u64,
                    last: r.get(8)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<_, _>>().map_err(db_err)
    }

    /// Records where a copy left a medium (a drive or a slot of the target's library); a move
    /// is recorded only when the place changed.
    pub fn place_medium(
        &mut self,
        barcode: &str,
        to: &Location,
        actor: Actor,
    ) -> Result<(), ApiError> {
        match self.medium(barcode)? {
            Some(m) if &m.location != to => self.move_medium(barcode, to, None, actor),
            _ => Ok(()),
        }
    }

    /// Applies the pools' retention at `now`: media whose retention ended expire; expired media
    /// that are not in a vault return to scratch. Returns (expired, returned to scratch).
    pub fn apply_media_retention(
        &mut self,
        now: &str,
    ) -> Result<(Vec<String>, Vec<String>), ApiError> {
        let expired = self.expire_media(now)?;
        let mut scratch = Vec::new();
        for m in self.media(None)? {
            if m.state == MediaState::Expired && !m.location.offsite() {
                self.recycle_medium(&m.barcode)?;
                scratch.push(m.barcode);
            }
        }
        Ok((expired, scratch))
    }
}
