//! Verify: structural checks of every file and reference, and optionally a full read that
//! decompresses and re-hashes every blob. Problems name packs, chunks, snapshots and files.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::backup::list_packs;
use crate::error::{Error, Result};
use crate::id::{IdMap, IdSet, ObjectId};
use crate::index::{Index, IndexFile};
use crate::lock::{self, LockKind};
use crate::pack::{self, BlobKind, PackEntry};
use crate::repo::{BlobReader, Repository};
use crate::snapshot::{self, SnapshotInfo};
use crate::tree::NodeKind;

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
    /// index_file, snapshot_file, pack_missing, pack_table, pack_content, tree, chunk
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
struct Bad {
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
        let started = Instant::now();
        let _lock = lock::acquire(self.path(), LockKind::Read, "verify", self.lock_wait())?;
        let mut rep = VerifyReport::default();
        let mut bad: IdMap<Bad> = IdMap::default();

        // 1. Index files.
        let mut index = Index::default();
        let mut by_pack: BTreeMap<ObjectId, Vec<PackEntry>> = BTreeMap::new();
        let idx_dir = self.path().join("index");
        for id in snapshot::list_ids(&idx_dir)? {
            rep.index_files += 1;
            match IndexFile::load(&idx_dir.join(id.to_hex()), &id) {
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
        let on_disk: HashMap<ObjectId, std::path::PathBuf> =
            list_packs(self.path())?.into_iter().collect();
        rep.packs = by_pack.len() as u64;
        for (n, (pid, entries)) in by_pack.iter().enumerate() {
            progress(&VerifyProgress {
                phase: "packs",
                done: n as u64,
                total: rep.packs,
            });
            let Some(path) = on_disk.get(pid) else {
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
            };
            match pack::read_table(path) {
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
        let unindexed = on_disk.keys().filter(|p| !by_pack.contains_key(*p)).count();
        if unindexed > 0 {
            rep.notes.push(format!("{unindexed} pack(s) are not in any index (left by an interrupted backup; the next backup indexes and reuses them)"));
        }

        // 3. Snapshots and their trees.
        let snap_dir = self.path().join("snapshots");
        let mut snaps: Vec<SnapshotInfo> = Vec::new();
        for id in snapshot::list_ids(&snap_dir)? {
            match snapshot::load(&snap_dir.join(id.to_hex()), &id) {
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
        let mut reader = BlobReader::new(self.path().to_path_buf(), index.clone());
        let mut seen = IdSet::default();
        for (n, s) in snaps.iter().enumerate() {
            progress(&VerifyProgress {
                phase: "snapshots",
                done: n as u64,
                total: rep.snapshots,
            });
            let root = match s.snapshot.root_tree() {
                Ok(r) => r,
                Err(e) => {
                    rep.problems
                        .push(problem("snapshot_file", format!("snapshot {}: {e}", s.id)));
                    continue;
                }
            };
            let mut stack = vec![root];
            while let Some(t) = stack.pop() {
                if !seen.insert(t) || bad.contains_key(&t) {
                    continue;
                }
                rep.blobs_checked += 1;
                let tree = match reader.load_tree(&t) {
                    Ok(tree) => tree,
                    Err(e) => {
                        let pack = index.lookup(&t).map(|(p, _)| p);
                        bad.insert(
                            t,
                            Bad {
                                kind: BlobKind::Tree,
                                why: e.to_string(),
                                pack,
                            },
                        );
                        continue;
                    }
                };
                if let Err(msg) = tree.check() {
                    bad.insert(
                        t,
                        Bad {
                            kind: BlobKind::Tree,
                            why: format!("invalid tree: {msg}"),
                            pack: index.lookup(&t).map(|(p, _)| p),
                        },
                    );
                    continue;
                }
                for node in &tree.nodes {
                    if let Some(sub) = node.subtree {
                        stack.push(sub);
                    }
                    for c in &node.content {
                        if let crate::tree::ContentRef::Chunk { id, .. } = c {
                            if !index.contains(id) {
                                bad.insert(
                                    *id,
                                    Bad {
                                        kind: BlobKind::Data,
                                        why: "missing from the index".into(),
                                        pack: None,
                                    },
                                );
                            }
                        }
                    }
                }
            }
        }

        // 4. Full read of (a subset of) the packs.
        if opts.read_data || opts.read_data_percent.is_some() {
            let pct = u64::from(opts.read_data_percent.unwrap_or(100).min(100));
            let seed = crate::fsutil::random_bytes()?;
            let selected: Vec<(ObjectId, &Vec<PackEntry>)> = by_pack
                .iter()
                .filter(|(p, _)| on_disk.contains_key(*p))
                .filter(|(p, _)| {
                    pct >= 100 || {
                        let mut h = blake3::Hasher::new_keyed(&seed);
                        h.update(&p.0);
                        u64::from(h.finalize().as_bytes()[0]) * 100 < pct * 256
                    }
                })
                .map(|(p, e)| (*p, e))
                .collect();
            let found = self.read_packs(&selected, &on_disk, &mut rep, progress);
            for (id, b) in found {
                bad.entry(id).or_insert(b);
            }
        }

        // 5. Attribute bad blobs to snapshots and files.
        if !bad.is_empty() {
            let affected = attribute(&mut reader, &snaps, &bad);
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
        rep.ok = rep.problems.is_empty();
        rep.duration = started.elapsed();
        Ok(rep)
    }

    fn read_packs(
        &self,
        selected: &[(ObjectId, &Vec<PackEntry>)],
        on_disk: &HashMap<ObjectId, std::path::PathBuf>,
        rep: &mut VerifyReport,
        progress: &dyn Fn(&VerifyProgress),
    ) -> IdMap<Bad> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16);
        let next = AtomicU64::new(0);
        let bytes = AtomicU64::new(0);
        let blobs = AtomicU64::new(0);
        let found: Mutex<(IdMap<Bad>, Vec<Problem>)> = Mutex::new((IdMap::default(), Vec::new()));
        let total = selected.len() as u64;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((pid, entries)) = selected.get(i) else { return };
                    let Some(path) = on_disk.get(pid) else { continue };
                    let mut local = Vec::new();
                    let mut probs = Vec::new();
                    match std::fs::read(path) {
                        Err(e) => {
                            let mut p = problem("pack_content", format!("pack {pid}: cannot read {}: {e}", path.display()));
                            p.pack = Some(pid.to_hex());
                            probs.push(p);
                        }
                        Ok(data) => {
                            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                            let mut all_ok = true;
                            for e in entries.iter() {
                                blobs.fetch_add(1, Ordering::Relaxed);
                                let end = e.offset.saturating_add(u64::from(e.stored_len));
                                let res = if end as usize > data.len() {
                                    Err(Error::corrupt("blob", "extends past the end of the pack"))
                                } else {
                                    pack::decode_blob(&data[e.offset as usize..end as usize], e, &|| path.display().to_string()).map(|_| ())
                                };
                                if let Err(err) = res {
                                    all_ok = false;
                                    let why = match err {
                                        Error::Corrupt { detail, .. } => detail,
                                        other => other.to_string(),
                                    };
                                    local.push((e.id, Bad { kind: e.kind, why, pack: Some(*pid) }));
                                }
                            }
                            if ObjectId::hash(&data) != *pid && all_ok {
                                let mut p = problem("pack_content", format!("pack {pid}: content does not match its name (damage outside the blobs, e.g. in the table)"));
                                p.pack = Some(pid.to_hex());
                                probs.push(p);
                            }
                        }
                    }
                    if let Ok(mut g) = found.lock() {
                        g.0.extend(local);
                        g.1.extend(probs);
                    }
                });
            }
            let mut last = 0;
            loop {
                let done = next.load(Ordering::Relaxed).min(total);
                if done != last || done == 0 {
                    progress(&VerifyProgress {
                        phase: "read-data",
                        done,
                        total,
                    });
                    last = done;
                }
                if done >= total {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        rep.packs_read = total;
        rep.bytes_read = bytes.load(Ordering::Relaxed);
        rep.blobs_checked += blobs.load(Ordering::Relaxed);
        let (bad, probs) = found.into_inner().unwrap_or_default();
        rep.problems.extend(probs);
        bad
    }
}

/// For each bad blob: the snapshots and the files ("SHORT:/path") that need it.
fn attribute(
    reader: &mut BlobReader,
    snaps: &[SnapshotInfo],
    bad: &IdMap<Bad>,
) -> IdMap<(Vec<String>, Vec<String>)> {
    let mut out: IdMap<(Vec<String>, Vec<String>)> = IdMap::default();
    let hit = |id: &ObjectId,
               snap: &SnapshotInfo,
               path: &[u8],
               out: &mut IdMap<(Vec<String>, Vec<String>)>| {
        let e = out.entry(*id).or_default();
        if !e.0.contains(&snap.id) {
            e.0.push(snap.id.clone());
        }
        if e.1.len() < 200 {
            e.1.push(format!(
                "{}:{}",
                snap.short_id,
                String::from_utf8_lossy(path)
            ));
        }
    };
    for s in snaps {
        let Ok(root) = s.snapshot.root_tree() else {
            continue;
        };
        let mut stack: Vec<(ObjectId, Vec<u8>)> = vec![(root, b"/".to_vec())];
        while let Some((t, path)) = stack.pop() {
            if bad.contains_key(&t) {
                hit(&t, s, &path, &mut out);
                continue;
            }
            let Ok(tree) = reader.load_tree(&t) else {
                continue;
            };
            for n in &tree.nodes {
                let mut p = path.clone();
                if p.len() > 1 {
                    p.push(b'/');
                }
                p.extend_from_slice(&n.name);
                if let Some(sub) = n.subtree {
                    stack.push((sub, p.clone()));
                }
                if n.kind == NodeKind::File {
                    for c in &n.content {
                        if let crate::tree::ContentRef::Chunk { id, .. } = c {
                            if bad.contains_key(id) {
                                hit(id, s, &p, &mut out);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}
