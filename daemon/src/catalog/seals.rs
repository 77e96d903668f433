//! Seals bmsd made (docs/operations.md "Immutability"): which snapshot is sealed on which
//! target until when. The repository holds the authoritative record on each file; this copy
//! lets verify notice a sealed snapshot whose file lost both its attribute and its record, or
//! vanished.

use super::{db_err, now_rfc3339, Catalog};
use bms_proto::ApiError;

/// A seal of a snapshot on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealRecord {
    pub target: String,
    pub snapshot: String,
    /// RFC 3339.
    pub until: String,
    /// Objects sealed (the snapshot file, its packs and index files).
    pub objects: u64,
}

impl Catalog {
    /// Records a seal; a later end replaces an earlier one, never the reverse.
    pub fn record_seal(&mut self, s: &SealRecord) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT INTO seals(target, snapshot, until, sealed_at, objects)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(target, snapshot) DO UPDATE SET
                   until = max(until, excluded.until),
                   sealed_at = excluded.sealed_at,
                   objects = excluded.objects",
                rusqlite::params![
                    s.target,
                    s.snapshot,
                    s.until,
                    now_rfc3339(),
                    i64::try_from(s.objects).unwrap_or(i64::MAX)
                ],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// The seals on `target` that end after `now` (RFC 3339, UTC, whole seconds as the seals
    /// are written), oldest end first.
    pub fn seals_after(&self, target: &str, now: &str) -> Result<Vec<SealRecord>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT target, snapshot, until, objects FROM seals
                 WHERE target = ?1 AND until > ?2 ORDER BY until, snapshot",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map(rusqlite::params![target, now], |r| {
                Ok(SealRecord {
                    target: r.get(0)?,
                    snapshot: r.get(1)?,
                    until: r.get(2)?,
                    objects: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_is_extended_never_shortened() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let mut s = SealRecord {
            target: "t".into(),
            snapshot: "s1".into(),
            until: "2030-01-02T00:00:00Z".into(),
            objects: 3,
        };
        c.record_seal(&s).unwrap();
        s.until = "2030-01-01T00:00:00Z".into();
        c.record_seal(&s).unwrap();
        let got = c.seals_after("t", "2029-01-01T00:00:00Z").unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].until, "2030-01-02T00:00:00Z");
        assert!(c
            .seals_after("t", "2030-01-02T00:00:00Z")
            .unwrap()
            .is_empty());
        assert!(c
            .seals_after("u", "2000-01-01T00:00:00Z")
            .unwrap()
            .is_empty());
    }
}
