//! The structural check of the trees, and the attribution of bad blobs to snapshots and files.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{problem, Bad, Problem, VerifyProgress};
use crate::id::{IdMap, IdSet, ObjectId};
use crate::pack::BlobKind;
use crate::repo::BlobReader;
use crate::snapshot::SnapshotInfo;
use crate::tree::NodeKind;

/// What the tree check found.
#[derive(Default)]
pub(super) struct TreeCheck {
    pub blobs: u64,
    pub bad: IdMap<Bad>,
    pub problems: Vec<Problem>,
}

/// Loads every tree of every snapshot once and checks that it decodes, is well formed, and
/// that every chunk it names is in the index. Trees already in `known_bad` are skipped.
pub(super) fn check(
    reader: &mut BlobReader,
    snaps: &[SnapshotInfo],
    known_bad: &IdMap<Bad>,
    progress: &dyn Fn(&VerifyProgress),
    cancel: &AtomicBool,
) -> TreeCheck {
    let mut out = TreeCheck::default();
    let index = reader.index.clone();
    let mut seen = IdSet::default();
    for (n, s) in snaps.iter().enumerate() {
        progress(&VerifyProgress {
            phase: "snapshots",
            done: n as u64,
            total: snaps.len() as u64,
        });
        let root = match s.snapshot.root_tree() {
            Ok(r) => r,
            Err(e) => {
                out.problems
                    .push(problem("snapshot_file", format!("snapshot {}: {e}", s.id)));
                continue;
            }
        };
        let mut stack = vec![root];
        while let Some(t) = stack.pop() {
            if cancel.load(Ordering::Relaxed) {
                return out;
            }
            if !seen.insert(t) || known_bad.contains_key(&t) || out.bad.contains_key(&t) {
                continue;
            }
            out.blobs += 1;
            let tree = match reader.load_tree(&t) {
                Ok(tree) => tree,
                Err(e) => {
                    let pack = index.lookup(&t).map(|(p, _)| p);
                    out.bad.insert(
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
                out.bad.insert(
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
                            out.bad.insert(
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
    out
}

/// For each bad blob: the snapshots and the files ("SHORT:/path") that need it.
pub(super) fn attribute(
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
