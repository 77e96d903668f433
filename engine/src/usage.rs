//! How much a repository holds and how well it deduplicates and compresses (docs/metrics.md,
//! "Targets"). Read from the index and the snapshot files; nothing is decoded.

use crate::error::Result;
use crate::pack::BlobKind;
use crate::repo::Repository;
use crate::store::Kind;

/// The figures of one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Bytes of the pack, index and snapshot files: what the repository occupies.
    pub stored_bytes: u64,
    /// Pack files.
    pub packs: u64,
    /// Snapshots.
    pub snapshots: u64,
    /// Uncompressed bytes of the distinct file-content blobs the index names (data stored
    /// once; directory trees are left out, so that the ratios speak of file contents).
    pub unique_bytes: u64,
    /// Compressed bytes of those blobs as stored in the packs.
    pub blob_bytes: u64,
    /// The sum of every snapshot's source size: what restoring them all would write.
    pub logical_bytes: u64,
}

impl Usage {
    /// Logical bytes per unique byte (1 when nothing is stored yet).
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// Unique bytes per stored blob byte (1 when nothing is stored yet).
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.blob_bytes)
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if a == 0 || b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

impl Repository {
    /// The repository's figures. Unreadable index or snapshot files are left out (verify
    /// reports them).
    pub fn usage(&self) -> Result<Usage> {
        let (index, _bad) = self.load_index()?;
        let mut u = Usage {
            packs: index.packs.len() as u64,
            ..Usage::default()
        };
        for loc in index
            .blobs
            .values()
            .filter(|l| l.entry.kind == BlobKind::Data)
        {
            u.unique_bytes += u64::from(loc.entry.raw_len);
            u.blob_bytes += u64::from(loc.entry.stored_len);
        }
        let store = self.store();
        for kind in [Kind::Packs, Kind::Index, Kind::Snapshots] {
            for name in store.list(kind)? {
                if let Some(st) = store.stat(kind, &name)? {
                    u.stored_bytes += st.size;
                }
            }
        }
        for s in self.snapshots()? {
            u.snapshots += 1;
            u.logical_bytes += s.snapshot.stats.bytes_total;
        }
        Ok(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackupOptions, InitOptions};
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_second_identical_backup_doubles_the_dedup_ratio_and_adds_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        // Compressible and incompressible data.
        std::fs::write(src.join("text"), "bms ".repeat(100_000)).unwrap();
        let noise: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(src.join("noise"), noise).unwrap();
        let repo = Repository::init(dir.path().join("repo"), InitOptions::default()).unwrap();
        assert_eq!(repo.usage().unwrap().snapshots, 0);
        assert_eq!(repo.usage().unwrap().dedup_ratio(), 1.0);

        let opts = || BackupOptions {
            job: "t".into(),
            sources: vec![src.clone()],
            ..BackupOptions::default()
        };
        repo.backup(&opts(), &|_| {}, &AtomicBool::new(false))
            .unwrap();
        let one = repo.usage().unwrap();
        assert_eq!(one.snapshots, 1);
        assert_eq!(one.logical_bytes, 700_000);
        assert!(one.unique_bytes >= 700_000, "{one:?}");
        assert!(one.compression_ratio() > 1.5, "{one:?}");
        assert!(one.stored_bytes >= one.blob_bytes, "{one:?}");

        repo.backup(&opts(), &|_| {}, &AtomicBool::new(false))
            .unwrap();
        let two = repo.usage().unwrap();
        assert_eq!(two.snapshots, 2);
        assert_eq!(two.logical_bytes, 1_400_000);
        assert_eq!(two.unique_bytes, one.unique_bytes, "no new data");
        let r = two.dedup_ratio() / one.dedup_ratio();
        assert!((r - 2.0).abs() < 1e-9, "{one:?} {two:?}");
    }
}
