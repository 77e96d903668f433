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

#[cfg(test)]
mod tests {
    use super::super::media::Pool;
    use super::*;

    fn open() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        (dir, c)
    }

    #[test]
    fn a_pool_offers_writable_media_then_scratch_of_its_type_and_never_vaulted_ones() {
        let (_d, mut c) = open();
        c.add_pool(&Pool {
            name: "weekly".into(),
            media_type: "lto8".into(),
            retention_days: 0,
            vault: None,
            vault_days: 0,
        })
        .unwrap();
        let slot = Location::Slot("vtl/slot-1".into());
        for b in ["S2", "S1", "W2", "W1", "OTHER", "VAULTED"] {
            let t = if b == "OTHER" { "lto6" } else { "lto8" };
            c.add_medium(b, t, &slot).unwrap();
        }
        c.allocate_medium("W2", "weekly", "weekly", 2).unwrap();
        c.allocate_medium("W1", "weekly", "weekly", 1).unwrap();
        c.move_medium(
            "VAULTED",
            &Location::Vault("iron".into()),
            None,
            Actor { uid: 0 },
        )
        .unwrap();
        let offers: Vec<(String, bool)> = c
            .pool_offers("weekly")
            .unwrap()
            .into_iter()
            .map(|o| (o.barcode, o.scratch))
            .collect();
        let want = [("W1", false), ("W2", false), ("S1", true), ("S2", true)];
        assert_eq!(
            offers,
            want.map(|(b, s)| (b.to_string(), s)).to_vec(),
            "writable by sequence, then scratch lto8 by barcode"
        );
        assert_eq!(c.next_sequence("weekly").unwrap(), 3);
        assert!(c.pool_offers("nope").is_err());

        // Retention 0: written media expire at once; expired media in a vault stay expired.
        let now = super::super::now_rfc3339();
        c.record_media_write("W1", 10, true, &now).unwrap();
        c.record_media_write("W2", 10, false, &now).unwrap();
        c.move_medium(
            "W2",
            &Location::Vault("iron".into()),
            None,
            Actor { uid: 0 },
        )
        .unwrap();
        let later = "9999-01-01T00:00:00.000Z";
        let (expired, scratch) = c.apply_media_retention(later).unwrap();
        assert_eq!(expired, ["W1", "W2"]);
        assert_eq!(scratch, ["W1"]);
        assert_eq!(c.medium("W2").unwrap().unwrap().state, MediaState::Expired);
        assert_eq!(c.pool_counts("weekly").unwrap(), [1, 0, 0, 1]);
    }

    #[test]
    fn locations_parse_and_print_alike() {
        for s in [
            "vault:iron",
            "shelf",
            "shelf:b2",
            "slot:vtl/slot-3",
            "drive:vtl/drive-0",
        ] {
            assert_eq!(Location::parse(s).unwrap().wire(), s);
        }
        for bad in ["vault", "vault:", "cloud:x", "slot:", ""] {
            let e = Location::parse(bad).unwrap_err();
            assert!(e.message.contains("vault:NAME"), "{bad}: {}", e.message);
        }
    }
}
