//! Immutability at the repository level (docs/repository-format.md "Immutability"): sealing a
//! snapshot together with every pack and index file it needs, lifting seals whose time has
//! passed, and finding seals that were lifted behind bms's back. The store does the sealing
//! ([`crate::store::Store::seal`]); the caller says what "now" is (bmsd uses its trusted clock).

use crate::error::Result;
use crate::id::ObjectId;
use crate::index::IndexFile;
use crate::repo::{list_ids, BlobReader, Repository};
use crate::store::{seal::rfc3339, Kind, Seal};
use crate::tree::ContentRef;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::SystemTime;

/// The objects a snapshot needs: its file, the packs holding its trees and chunks, and the
/// index files that list those packs.
#[derive(Debug, Clone, Default)]
pub struct SnapshotObjects {
    pub snapshot: String,
    pub packs: BTreeSet<ObjectId>,
    pub index: BTreeSet<ObjectId>,
}

/// What [`seal_snapshot`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SealSummary {
    pub snapshot: String,
    /// RFC 3339.
    pub until: String,
    pub packs: u64,
    pub index_files: u64,
    /// Objects the store could not seal (a store or filesystem without immutability).
    pub not_supported: u64,
}

impl SealSummary {
    /// Sealed objects, snapshot file included.
    pub fn objects(&self) -> u64 {
        self.packs + self.index_files + 1
    }
}

/// Collects the objects snapshot `id` (full hex id) needs.
pub fn snapshot_objects(repo: &Repository, id: &str) -> Result<SnapshotObjects> {
    let info = repo.find_snapshot(id)?;
    let (index, _) = repo.load_index()?;
    let index = Arc::new(index);
    let mut reader = BlobReader::new(repo.store().clone(), index.clone());
    let mut packs = BTreeSet::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut stack = vec![info.snapshot.root_tree()?];
    let pack_of = |id: &ObjectId, packs: &mut BTreeSet<ObjectId>| {
        if let Some((p, _)) = index.lookup(id) {
            packs.insert(p);
        }
    };
    while let Some(tree_id) = stack.pop() {
        if !seen.insert(tree_id) {
            continue;
        }
        pack_of(&tree_id, &mut packs);
        let tree = reader.load_tree(&tree_id)?;
        for node in &tree.nodes {
            if let Some(sub) = node.subtree {
                stack.push(sub);
            }
            for c in &node.content {
                if let ContentRef::Chunk { id, .. } = c {
                    if seen.insert(*id) {
                        pack_of(id, &mut packs);
                    }
                }
            }
        }
    }
    let store = &**repo.store();
    let mut files = BTreeSet::new();
    for f in list_ids(store, Kind::Index)? {
        // Unreadable index files were skipped by load_index and are verify's business.
        if let Ok(file) = IndexFile::load(store, &f) {
            if file.packs.iter().any(|(p, _)| packs.contains(p)) {
                files.insert(f);
            }
        }
    }
    Ok(SnapshotObjects {
        snapshot: info.id,
        packs,
        index: files,
    })
}

/// Seals snapshot `id` and everything it needs until `until` (a seal already longer is kept):
/// packs first, then index files, then the snapshot file, so that a sealed snapshot file means
/// its data is sealed too. The first error stops it.
pub fn seal_snapshot(repo: &Repository, id: &str, until: SystemTime) -> Result<SealSummary> {
    let objs = snapshot_objects(repo, id)?;
    let store = repo.store();
    let mut s = SealSummary {
        snapshot: objs.snapshot.clone(),
        until: rfc3339(until),
        ..Default::default()
    };
    let seal = |kind: Kind, name: &str| -> Result<bool> {
        Ok(store.seal(kind, name, until)? == Seal::Sealed)
    };
    for p in &objs.packs {
        if seal(Kind::Packs, &p.to_hex())? {
            s.packs += 1;
        } else {
            s.not_supported += 1;
        }
    }
    for f in &objs.index {
        if seal(Kind::Index, &f.to_hex())? {
            s.index_files += 1;
        } else {
            s.not_supported += 1;
        }
    }
    if !seal(Kind::Snapshots, &objs.snapshot)? {
        s.not_supported += 1;
    }
    Ok(s)
}

/// What [`expire`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExpireSummary {
    /// "pack ID", "snapshot ID"... whose seal was lifted.
    pub unsealed: Vec<String>,
    /// Objects still sealed.
    pub still_sealed: u64,
    /// The earliest time a remaining seal ends (RFC 3339).
    pub next: Option<String>,
    /// Objects whose seal could not be read or lifted, with the reason.
    pub errors: Vec<String>,
}

const SEALABLE: [Kind; 3] = [Kind::Snapshots, Kind::Index, Kind::Packs];

/// Lifts every seal that ended at or before `now`; the caller vouches for `now`.
pub fn expire(repo: &Repository, now: SystemTime) -> Result<ExpireSummary> {
    let store = repo.store();
    let mut s = ExpireSummary::default();
    let mut next: Option<SystemTime> = None;
    for kind in SEALABLE {
        for name in store.list(kind)? {
            let until = match store.sealed_until(kind, &name) {
                Ok(Some(u)) => u,
                Ok(None) => continue,
                Err(e) => {
                    s.errors.push(e.to_string());
                    continue;
                }
            };
            if until > now {
                s.still_sealed += 1;
                next = Some(next.map_or(until, |n| n.min(until)));
                continue;
            }
            match store.unseal(kind, &name) {
                Ok(_) => s.unsealed.push(format!("{} {name}", kind.name())),
                Err(e) => s.errors.push(e.to_string()),
            }
        }
    }
    s.next = next.map(rfc3339);
    Ok(s)
}

/// An object that should be sealed at `now` but whose immutability is not in force.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenSeal {
    pub kind: &'static str,
    pub name: String,
    /// RFC 3339.
    pub until: String,
}

impl std::fmt::Display for BrokenSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} should be immutable until {} but its immutable attribute was removed \
             (tampering, or a manual `chattr -i`): check who did it; the next backup or copy \
             to this target seals what it needs again",
            self.kind, self.name, self.until
        )
    }
}

/// Objects recorded as sealed beyond `now` whose seal is not in force (for verify).
pub fn broken_seals(repo: &Repository, now: SystemTime) -> Result<Vec<BrokenSeal>> {
    let store = repo.store();
    let mut out = Vec::new();
    for kind in SEALABLE {
        for name in store.list(kind)? {
            let Some(until) = store.sealed_until(kind, &name)? else {
                continue;
            };
            if until <= now {
                continue;
            }
            if store.seal_intact(kind, &name)? == Some(false) {
                out.push(BrokenSeal {
                    kind: kind.name(),
                    name,
                    until: rfc3339(until),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BackupOptions, InitOptions};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A repository with one snapshot of a small tree; root only (sealing needs
    /// CAP_LINUX_IMMUTABLE), the test's temp dir being on a filesystem with the attribute.
    fn repo_with_snapshot(dir: &std::path::Path) -> (Repository, String) {
        let src = dir.join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("a"), vec![7u8; 300_000]).unwrap();
        std::fs::write(src.join("sub/b"), b"bee").unwrap();
        let repo = Repository::init(dir.join("repo"), InitOptions::default()).unwrap();
        let opts = BackupOptions {
            sources: vec![src],
            excludes: vec![],
            one_file_system: false,
            job: "j".into(),
            host: "h".into(),
            tags: vec![],
            parent: None,
            force_full: false,
        };
        let s = repo
            .backup(&opts, &|_| {}, &AtomicBool::new(false))
            .unwrap();
        (repo, s.snapshot_id)
    }

    #[test]
    fn a_snapshot_is_sealed_with_what_it_needs_and_expires_at_its_time() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (repo, id) = repo_with_snapshot(d.path());
        let objs = snapshot_objects(&repo, &id).unwrap();
        assert!(!objs.packs.is_empty() && !objs.index.is_empty());
        let until = SystemTime::now() + Duration::from_secs(3600);
        let s = seal_snapshot(&repo, &id, until).unwrap();
        assert_eq!(s.not_supported, 0);
        assert_eq!(
            s.objects(),
            (objs.packs.len() + objs.index.len() + 1) as u64
        );
        let store = repo.store();
        assert_eq!(store.seal_intact(Kind::Snapshots, &id).unwrap(), Some(true));
        for p in &objs.packs {
            assert_eq!(
                store.seal_intact(Kind::Packs, &p.to_hex()).unwrap(),
                Some(true)
            );
        }
        assert!(broken_seals(&repo, SystemTime::now()).unwrap().is_empty());
        // Not yet: nothing is lifted.
        let e = expire(&repo, SystemTime::now()).unwrap();
        assert!(e.unsealed.is_empty() && e.errors.is_empty(), "{e:?}");
        assert_eq!(e.still_sealed, s.objects());
        // A seal lifted by hand is found.
        store.unseal(Kind::Snapshots, &id).unwrap();
        assert!(broken_seals(&repo, SystemTime::now()).unwrap().is_empty());
        seal_snapshot(&repo, &id, until).unwrap();
        let path = store.locate(Kind::Snapshots, &id);
        let f = std::fs::File::open(&path).unwrap();
        let flags = crate::store::seal::get_flags(&f).unwrap();
        crate::store::seal::set_flags(&f, flags & !crate::store::seal::FS_IMMUTABLE_FL).unwrap();
        let b = broken_seals(&repo, SystemTime::now()).unwrap();
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].name, id);
        assert!(b[0].to_string().contains("immutable attribute was removed"));
        let rep = repo.verify(&Default::default(), &|_| {}).unwrap();
        assert!(rep.problems.iter().any(|p| p.kind == "seal"), "{rep:?}");
        // At its time everything is lifted and may be removed.
        let e = expire(&repo, until).unwrap();
        assert_eq!(e.unsealed.len() as u64, s.objects(), "{e:?}");
        assert!(store.delete(Kind::Snapshots, &id).unwrap());
    }
}
