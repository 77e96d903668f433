//! Verify: structural checks of every file and reference, and optionally a full read that
//! decompresses and re-hashes every blob. Problems name packs, chunks, snapshots and files.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

mod read;
mod trees;

use crate::error::{Error, Result};
use crate::id::{IdMap, ObjectId};
use crate::index::{Index, IndexFile};
use crate::lock::{self, LockKind};
use crate::pack::{self, BlobKind, PackEntry};
use crate::repo::{list_ids, BlobReader, Repository};
use crate::snapshot::{self, SnapshotInfo};
use crate::store::Kind;

/// How thorough the check is.
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Read, decompress and re-hash every blob of every pack.
    pub read_data: bool,
    /// Read only this percentage of packs (a different random subset on each run).
    pub read_data_percent: Option<u8>,
}

/// Progress of a verify run.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyProgress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

/// One thing that is wrong, with everything it affects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// index_file, snapshot_file, pack_missing, pack_table, pack_content, tree, chunk, seal
    pub kind: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pack: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<String>,
    /// Affected snapshot ids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
    /// Affected paths, as "SNAPSHOT_SHORT_ID:/path".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// The outcome of verify. Non-empty `problems` means the repository failed verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub snapshots: u64,
    pub index_files: u64,
    pub packs: u64,
    pub packs_read: u64,
    pub blobs_checked: u64,
    pub bytes_read: u64,
    pub problems: Vec<Problem>,
    pub notes: Vec<String>,
    #[serde(rename = "duration_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub duration: Duration,
}

fn problem(kind: &'static str, message: String) -> Problem {
    Problem {
        kind,
        message,
        pack: None,
        chunks: vec![],
        snapshots: vec![],
        files: vec![],
    }
}

/// A blob found bad: why, and in which pack.
pub(crate) struct Bad {
    kind: BlobKind,
    why: String,
    pack: Option<ObjectId>,
}

impl Repository {
    /// Checks the repository. `Err` means it could not be checked at all.
    pub fn verify(
        &self,
        opts: &VerifyOptions,
        progress: &dyn Fn(&VerifyProgress),
    ) -> Result<VerifyReport> {
        self.verify_cancellable(opts, progress, &AtomicBool::new(false))
    }

    /// [`Repository::verify`] that stops with [`Error::Cancelled`] soon after `cancel` is set
    /// (between trees and between packs).
    pub fn verify_cancellable(
        &self,
        opts: &VerifyOptions,
        progress: &dyn Fn(&VerifyProgress),
        cancel: &AtomicBool,
    ) -> Result<VerifyReport> {
        let started = Instant::now();
        let _lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Read,
            "verify",
            self.lock_wait(),
            cancel,
        )?;
        let mut rep = VerifyReport::default();
        let mut bad: IdMap<Bad> = IdMap::default();

        // 1. Index files.
        let mut index = Index::default();
        let mut by_pack: BTreeMap<ObjectId, Vec<PackEntry>> = BTreeMap::new();
        let store = &**self.store();
        for id in list_ids(store, Kind::Index)? {
            rep.index_files += 1;
            match IndexFile::load(store, &id) {
                Ok(f) => {
                    for (p, entries) in f.packs {
                        index.add_pack(p, &entries);
                        let v = by_pack.entry(p).or_default();
                        for e in entries {
                            if !v.contains(&e) {
                                v.push(e);
                            }
                        }
                    }
                }
                Err(e) => rep
                    .problems
                    .push(problem("index_file", format!("index file {id}: {e}"))),
            }
        }
        let index = Arc::new(index);

        // 2. Packs: present, tables readable and matching the index.
        let on_disk: HashSet<ObjectId> = list_ids(store, Kind::Packs)?.into_iter().collect();
        rep.packs = by_pack.len() as u64;
        for (n, (pid, entries)) in by_pack.iter().enumerate() {
            progress(&VerifyProgress {
                phase: "packs",
                done: n as u64,
                total: rep.packs,
            });
            if !on_disk.contains(pid) {
                for e in entries {
                    bad.insert(
                        e.id,
                        Bad {
                            kind: e.kind,
                            why: "its pack is missing".into(),
                            pack: Some(*pid),
                        },
                    );
                }
                continue;
            }
            match pack::read_table(store, pid) {
                Ok(table) => {
                    for e in entries {
                        if !table.contains(e) {
                            bad.insert(
                                e.id,
                                Bad {
                                    kind: e.kind,
                                    why: "the index entry does not match the pack's table".into(),
                                    pack: Some(*pid),
                                },
                            );
                        }
                    }
                }
                Err(e) => {
                    let mut p = problem("pack_table", format!("pack {pid}: {e}"));
                    p.pack = Some(pid.to_hex());
                    rep.problems.push(p);
                }
            }
        }
        let unindexed = on_disk.iter().filter(|p| !by_pack.contains_key(*p)).count();
        if unindexed > 0 {
            rep.notes.push(format!("{unindexed} pack(s) are not in any index (left by an interrupted backup; the next backup indexes and reuses them)"));
        }

        // 3. Snapshots and their trees.
        let mut snaps: Vec<SnapshotInfo> = Vec::new();
        for id in list_ids(store, Kind::Snapshots)? {
            match snapshot::load(store, &id) {
                Ok(s) => snaps.push(SnapshotInfo {
                    id: id.to_hex(),
                    short_id: id.short(),
                    snapshot: s,
                }),
                Err(e) => rep
                    .problems
                    .push(problem("snapshot_file", format!("snapshot {id}: {e}"))),
            }
        }
        rep.snapshots = snaps.len() as u64;
        // 4. Full read of (a subset of) the packs, while this thread checks the trees.
        let mut reader = BlobReader::new(self.store().clone(), index.clone());
        let mut trees = trees::TreeCheck::default();
        let mut check = || trees = trees::check(&mut reader, &snaps, &bad, progress, cancel);
        if opts.read_data || opts.read_data_percent.is_some() {
            let pct = u64::from(opts.read_data_percent.unwrap_or(100).min(100));
            let seed = crate::fsutil::random_bytes()?;
            let selected: Vec<(ObjectId, &Vec<PackEntry>)> = by_pack
                .iter()
                .filter(|(p, _)| on_disk.contains(*p))
                .filter(|(p, _)| {
                    pct >= 100 || {
                        let mut h = blake3::Hasher::new_keyed(&seed);
                        h.update(&p.0);
                        u64::from(h.finalize().as_bytes()[0]) * 100 < pct * 256
                    }
                })
                .map(|(p, e)| (*p, e))
                .collect();
            let read = read::read_packs(&selected, store, &on_disk, progress, &mut check, cancel);
            rep.packs_read = read.packs;
            rep.bytes_read = read.bytes;
            rep.blobs_checked += read.blobs;
            rep.problems.extend(read.problems);
            for (id, b) in read.bad {
                bad.entry(id).or_insert(b);
            }
        } else {
            check();
        }
        rep.blobs_checked += trees.blobs;
        rep.problems.extend(trees.problems);
        for (id, b) in trees.bad {
            bad.entry(id).or_insert(b);
        }

        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }

        // 5. Attribute bad blobs to snapshots and files.
        if !bad.is_empty() {
            let affected = trees::attribute(&mut reader, &snaps, &bad);
            let mut groups: BTreeMap<(Option<ObjectId>, String), Vec<ObjectId>> = BTreeMap::new();
            for (id, b) in &bad {
                groups
                    .entry((b.pack, format!("{} {}", b.kind.name(), b.why)))
                    .or_default()
                    .push(*id);
            }
            for ((pack, why), mut ids) in groups {
                ids.sort();
                let mut p = problem(
                    if why.starts_with("tree") {
                        "tree"
                    } else {
                        "chunk"
                    },
                    String::new(),
                );
                p.pack = pack.map(|p| p.to_hex());
                let mut snaps_hit = std::collections::BTreeSet::new();
                let mut files = Vec::new();
                for id in &ids {
                    if let Some((s, f)) = affected.get(id) {
                        snaps_hit.extend(s.iter().cloned());
                        files.extend(f.iter().cloned());
                    }
                }
                files.sort();
                files.dedup();
                files.truncate(200);
                p.message = match &pack {
                    Some(pk) => format!(
                        "{} blob(s) in pack {pk}: {why}; affects {} snapshot(s)",
                        ids.len(),
                        snaps_hit.len()
                    ),
                    None => format!(
                        "{} blob(s): {why}; affects {} snapshot(s)",
                        ids.len(),
                        snaps_hit.len()
                    ),
                };
                p.chunks = ids.iter().map(ObjectId::to_hex).collect();
                p.snapshots = snaps_hit.into_iter().collect();
                p.files = files;
                rep.problems.push(p);
            }
        }
        // 6. Seals: objects recorded as immutable beyond now must still have the attribute
        // (docs/repository-format.md "Immutability").
        for b in crate::immutable::broken_seals(self, std::time::SystemTime::now())? {
            let mut p = problem("seal", b.to_string());
            if b.kind == Kind::Packs.name() {
                p.pack = Some(b.name.clone());
            }
            if b.kind == Kind::Snapshots.name() {
                p.snapshots = vec![b.name.clone()];
            }
            rep.problems.push(p);
        }
        rep.ok = rep.problems.is_empty();
        rep.duration = started.elapsed();
        Ok(rep)
    }
}
