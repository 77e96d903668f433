//! Snapshot files: JSON documents naming a root tree and describing one backup run.
//! A snapshot file is named by the BLAKE3 of its bytes and written last (see the commit order).

use crate::store::{Kind, Store};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;

pub const SNAPSHOT_VERSION: u32 = 1;

/// Statistics of the run that produced a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    /// Bytes read from source files.
    pub bytes_read: u64,
    /// Bytes of regular-file content in the snapshot (logical size).
    pub bytes_total: u64,
    /// Bytes added to the repository (compressed blob bytes).
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_total: u64,
    pub duration_ms: u64,
    /// Number of warnings; `warnings` keeps the first ones.
    pub warnings_count: u64,
    pub warnings: Vec<String>,
}

/// The content of a snapshot file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    /// RFC 3339 start time of the run.
    pub time: String,
    /// Hex id of the root tree.
    pub tree: String,
    pub job: String,
    pub host: String,
    /// Absolute source paths (lossy UTF-8 for display; the trees hold the exact bytes).
    pub paths: Vec<String>,
    pub excludes: Vec<String>,
    pub tags: Vec<String>,
    /// Hex id of the snapshot used for change detection, if any.
    pub parent: Option<String>,
    /// True when some files could not be read (see `stats.warnings`).
    pub partial: bool,
    /// "bms <version>".
    pub program: String,
    pub stats: SnapshotStats,
}

impl Snapshot {
    pub fn root_tree(&self) -> Result<ObjectId> {
        ObjectId::from_hex(&self.tree)
            .map_err(|_| Error::corrupt("snapshot", format!("bad tree id {:?}", self.tree)))
    }

    /// Unix time in nanoseconds (0 when the time cannot be parsed).
    pub fn unix_nanos(&self) -> i128 {
        self.time
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_nanosecond())
            .unwrap_or(0)
    }
}

/// A snapshot together with its id.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub id: String,
    pub short_id: String,
    #[serde(flatten)]
    pub snapshot: Snapshot,
}

impl SnapshotInfo {
    pub fn object_id(&self) -> Result<ObjectId> {
        ObjectId::from_hex(&self.id)
    }
}

/// Reads and checks one snapshot file.
pub fn load(store: &dyn Store, id: &ObjectId) -> Result<Snapshot> {
    let name = id.to_hex();
    let data = store.read(Kind::Snapshots, &name)?;
    let what = || {
        format!(
            "snapshot {}",
            store.locate(Kind::Snapshots, &name).display()
        )
    };
    if ObjectId::hash(&data) != *id {
        return Err(Error::corrupt(what(), "content does not match its name"));
    }
    let s: Snapshot =
        serde_json::from_slice(&data).map_err(|e| Error::corrupt(what(), e.to_string()))?;
    if s.version != SNAPSHOT_VERSION {
        return Err(Error::corrupt(
            what(),
            format!("unknown snapshot version {}", s.version),
        ));
    }
    Ok(s)
}

/// Picks a snapshot by full id, unique prefix (at least 8 hex characters) or `latest`.
pub fn resolve<'a>(list: &'a [SnapshotInfo], spec: &str) -> Result<&'a SnapshotInfo> {
    if spec == "latest" {
        return list
            .iter()
            .max_by_key(|s| (s.snapshot.unix_nanos(), s.id.clone()))
            .ok_or_else(|| Error::SnapshotNotFound(spec.into()));
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.len() < 8 || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidArgument(format!(
            "{spec:?} is not a snapshot id: give `latest` or at least 8 hex characters of an id"
        )));
    }
    let matches: Vec<&SnapshotInfo> = list.iter().filter(|s| s.id.starts_with(&spec_l)).collect();
    match matches.len() {
        0 => Err(Error::SnapshotNotFound(spec.into())),
        1 => Ok(matches[0]),
        n => Err(Error::AmbiguousSnapshot {
            prefix: spec.into(),
            count: n,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            time: "2026-03-01T02:03:04.5Z".into(),
            tree: ObjectId::hash(b"t").to_hex(),
            job: "j".into(),
            host: "h".into(),
            paths: vec!["/a".into()],
            excludes: vec![],
            tags: vec!["x".into()],
            parent: None,
            partial: false,
            program: "bms".into(),
            stats: SnapshotStats::default(),
        }
    }

    #[test]
    fn round_trip_and_resolve() {
        let s = sample();
        let bytes = serde_json::to_vec(&s).unwrap();
        let back: Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, s);
        let mk = |id: &str, t: &str| SnapshotInfo {
            id: id.into(),
            short_id: id[..8].into(),
            snapshot: Snapshot {
                time: t.into(),
                ..sample()
            },
        };
        let list = vec![
            mk(&"ab".repeat(32), "2026-01-01T00:00:00Z"),
            mk(
                &format!("abababab{}", "cd".repeat(28)),
                "2026-02-01T00:00:00Z",
            ),
        ];
        assert_eq!(
            resolve(&list, "latest").unwrap().snapshot.time,
            "2026-02-01T00:00:00Z"
        );
        assert!(matches!(
            resolve(&list, "abababab"),
            Err(Error::AmbiguousSnapshot { .. })
        ));
        assert!(resolve(&list, "ababababab").is_ok());
        assert!(matches!(
            resolve(&list, "ffffffff"),
            Err(Error::SnapshotNotFound(_))
        ));
        assert!(resolve(&list, "abc").is_err());
    }
}
