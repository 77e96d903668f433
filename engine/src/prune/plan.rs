//! The mark phase of prune and the plan of what the sweep does: for every pack keep, remove,
//! repack or keep because sealed; the blobs to copy; the new index; the bytes before and after.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::id::{IdMap, IdSet, ObjectId};
use crate::index::{Index, IndexFile};
use crate::pack::{self, PackEntry, PACK_MAGIC, TRAILER_LEN};
use crate::repo::{list_ids, Repository};
use crate::snapshot::SnapshotInfo;
use crate::store::{Kind, Store};
use crate::tree::{ContentRef, Tree};

use super::{PruneOptions, SealedObject};

/// What the sweep does with one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackAction {
    Keep,
    /// No live blob: deleted.
    Remove,
    /// Live blobs copied into new packs, then deleted.
    Repack,
    /// Sealed (or named by a sealed index file): kept whatever it holds.
    Sealed,
}

pub(super) struct PackPlan {
    pub id: ObjectId,
    pub size: u64,
    pub indexed: bool,
    pub entries: Vec<PackEntry>,
    pub action: PackAction,
}

pub(super) struct Plan {
    pub snapshots: u64,
    pub packs: Vec<PackPlan>,
    /// Index files to delete once the new index is durable (the non-sealed ones).
    pub old_index: Vec<ObjectId>,
    /// Blobs to copy into new packs, grouped by the pack they are read from.
    pub copy: BTreeMap<ObjectId, Vec<PackEntry>>,
    pub sealed: Vec<SealedObject>,
    pub notes: Vec<String>,
    pub blobs_live: u64,
    pub bytes_before: u64,
    /// Estimated bytes of the new packs and index file.
    pub bytes_new: u64,
    pub bytes_kept: u64,
    pub new_packs_estimate: u64,
    /// Every blob the marked snapshots reference.
    pub used: IdSet,
    /// The ids of the snapshots marked.
    pub marked: std::collections::HashSet<String>,
    /// The index files and the number of packs listed (see `Mark::settled`).
    pub listed: super::condemned::Settled,
}

impl Plan {
    /// Whether the sweep changes anything: no pack to remove or repack, and no kept pack that
    /// no index names (those get indexed).
    pub fn is_noop(&self) -> bool {
        !self.packs.iter().any(|p| {
            matches!(p.action, PackAction::Remove | PackAction::Repack)
                || (p.action == PackAction::Keep && !p.indexed)
        })
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "a time that cannot be shown".into())
}

/// Size of a pack file holding `entries` (stored lengths as given), as [`pack::PackWriter`]
/// writes it: magic, blobs, table, trailer.
pub fn estimate_pack_size(entries: &[PackEntry]) -> u64 {
    let blobs: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
    PACK_MAGIC.len() as u64 + blobs + pack::encode_table(entries).len() as u64 + TRAILER_LEN
}

/// Blobs already marked, and the snapshots they were marked from: a second mark walks only
/// the snapshots that are not in the set.
pub(super) type Seed = (IdSet, std::collections::HashSet<String>);

/// What the mark walks.
pub(super) enum Marking {
    /// Every snapshot.
    Full,
    /// The snapshots not in the seed's set; the seed's blobs count as marked (phase 2 after
    /// phase 1 in the same run).
    Seeded(Seed),
    /// Phase 2 after a prune whose mark covered `snapshots` (the condemned list's
    /// [`super::condemned::Mark`]): every blob those need is in a pack that is not in
    /// `condemned`, so only the other snapshots are walked, and a condemned pack is needed
    /// only if it holds a blob of theirs that no pack outside `condemned` holds. Every pack
    /// not condemned is kept; nothing is repacked.
    Since {
        snapshots: std::collections::BTreeSet<String>,
        condemned: IdSet,
    },
}

/// Marks and plans. The caller holds the `prune` lock (phase 1) or the `exclusive` lock
/// (phase 2, with the `seed` of phase 1 or the record of the last mark).
pub(super) fn make(
    repo: &Repository,
    opts: &PruneOptions,
    now: SystemTime,
    assume_removed: &std::collections::HashSet<String>,
    marking: Marking,
    cancel: &AtomicBool,
) -> Result<Plan> {
    let store = &**repo.store();
    let (mut snaps, damaged) = repo.snapshots_checked()?;
    snaps.retain(|s| !assume_removed.contains(&s.id));
    if let Some(d) = damaged.first() {
        return Err(Error::InvalidArgument(format!(
            "prune refused: snapshot file {} cannot be read ({}), so prune cannot know which data \
             it needs; run `bmsctl repo verify` and remove or restore that file first",
            d.id, d.reason
        )));
    }
    let mut notes = Vec::new();
    let mut sealed = Vec::new();
    let mut bytes_before = 0u64;
    let mut bytes_kept = 0u64;
    // Index files: all must load, or the mark could miss where live blobs are.
    let mut by_pack: BTreeMap<ObjectId, Vec<PackEntry>> = BTreeMap::new();
    let mut pinned: IdMap<String> = IdMap::default();
    let mut old_index = Vec::new();
    let mut listed = super::condemned::Settled::default();
    for id in list_ids(store, Kind::Index)? {
        listed.index.insert(id.to_hex());
        let f = IndexFile::load(store, &id)?;
        let size = store.stat(Kind::Index, &id.to_hex())?.map_or(0, |s| s.size);
        bytes_before += size;
        let until = store
            .sealed_until(Kind::Index, &id.to_hex())?
            .filter(|u| *u > now);
        for (p, entries) in f.packs {
            if let Some(u) = until {
                pinned.entry(p).or_insert_with(|| rfc3339(u));
            }
            let v = by_pack.entry(p).or_default();
            if v.is_empty() {
                v.extend(entries);
            } else {
                // The same pack in two index files (a prune or backup interrupted between
                // writing the new index and removing the old one): each blob once.
                let have: IdSet = v.iter().map(|x| x.id).collect();
                v.extend(entries.into_iter().filter(|e| !have.contains(&e.id)));
            }
        }
        match until {
            Some(u) => {
                bytes_kept += size;
                sealed.push(SealedObject {
                    kind: "index file",
                    id: id.to_hex(),
                    until: rfc3339(u),
                });
            }
            None => old_index.push(id),
        }
    }
    let indexed: IdSet = by_pack.keys().copied().collect();
    let mut index = Index::default();
    for (p, entries) in &by_pack {
        index.add_pack(*p, entries);
    }
    // Packs no index names (an interrupted backup or prune left them).
    for id in list_ids(store, Kind::Packs)? {
        listed.packs += 1;
        if indexed.contains(&id) {
            continue;
        }
        match pack::read_table(store, &id) {
            Ok(entries) => {
                index.add_pack(id, &entries);
                by_pack.insert(id, entries);
            }
            Err(e) => notes.push(format!(
                "left alone a damaged pack that no index names, {}: {e}",
                store.locate(Kind::Packs, &id.to_hex()).display()
            )),
        }
    }
    let marked: std::collections::HashSet<String> = snaps.iter().map(|s| s.id.clone()).collect();
    let (seed, since) = match marking {
        Marking::Full => (None, None),
        Marking::Seeded(seed) => (Some(seed), None),
        Marking::Since {
            snapshots,
            condemned,
        } => {
            // The blobs of every pack that stays whatever this mark finds.
            let covered: IdSet = by_pack
                .iter()
                .filter(|(p, _)| !condemned.contains(*p))
                .flat_map(|(_, v)| v.iter().map(|e| e.id))
                .collect();
            let done = snapshots.into_iter().collect();
            (Some((IdSet::default(), done)), Some((condemned, covered)))
        }
    };
    let (mut seeded, done) = seed.unwrap_or_default();
    // A blob of the seed that no index names any more was removed by another prune between
    // the phases, which found no snapshot needing it.
    seeded.retain(|id| index.contains(id));
    let todo: Vec<SnapshotInfo> = snaps
        .into_iter()
        .filter(|s| !done.contains(&s.id))
        .collect();
    let used = mark(repo, Arc::new(index), &todo, seeded, cancel)?;

    let mut packs = Vec::with_capacity(by_pack.len());
    for (id, entries) in by_pack {
        let name = id.to_hex();
        let Some(stat) = store.stat(Kind::Packs, &name)? else {
            notes.push(format!(
                "pack {name} is named by an index but missing; dropped from the new index"
            ));
            packs.push(PackPlan {
                id,
                size: 0,
                indexed: true,
                entries,
                action: PackAction::Remove,
            });
            continue;
        };
        bytes_before += stat.size;
        let seal = store.sealed_until(Kind::Packs, &name)?.filter(|u| *u > now);
        let total: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let live: u64 = entries
            .iter()
            .filter(|e| used.contains(&e.id))
            .map(|e| u64::from(e.stored_len))
            .sum();
        let action = if let Some(u) = seal.map(rfc3339).or_else(|| pinned.get(&id).cloned()) {
            sealed.push(SealedObject {
                kind: "pack",
                id: name,
                until: u,
            });
            PackAction::Sealed
        } else if let Some((condemned, covered)) = &since {
            let needed = condemned.contains(&id)
                && entries
                    .iter()
                    .any(|e| used.contains(&e.id) && !covered.contains(&e.id));
            if !condemned.contains(&id) || needed {
                PackAction::Keep
            } else {
                PackAction::Remove
            }
        } else if live == 0 {
            PackAction::Remove
        } else if u128::from(live) * 100 < u128::from(total) * u128::from(opts.repack_below_percent)
        {
            PackAction::Repack
        } else {
            PackAction::Keep
        };
        if matches!(action, PackAction::Keep | PackAction::Sealed) {
            bytes_kept += stat.size;
        }
        packs.push(PackPlan {
            id,
            size: stat.size,
            indexed: indexed.contains(&id),
            entries,
            action,
        });
    }

    // Live blobs that only repacked packs hold are copied, once each.
    let mut covered: IdSet = packs
        .iter()
        .filter(|p| matches!(p.action, PackAction::Keep | PackAction::Sealed))
        .flat_map(|p| p.entries.iter().map(|e| e.id))
        .collect();
    let mut copy: BTreeMap<ObjectId, Vec<PackEntry>> = BTreeMap::new();
    for p in packs.iter().filter(|p| p.action == PackAction::Repack) {
        let mut entries: Vec<PackEntry> = p
            .entries
            .iter()
            .filter(|e| used.contains(&e.id) && covered.insert(e.id))
            .cloned()
            .collect();
        entries.sort_by_key(|e| e.offset);
        if !entries.is_empty() {
            copy.insert(p.id, entries);
        }
    }
    if let Some(missing) = used.iter().find(|id| !covered.contains(id)) {
        return Err(Error::InvalidArgument(format!(
            "prune refused: blob {missing} that a snapshot needs is in no readable pack; the \
             repository is damaged: run `bmsctl repo verify --read-data`"
        )));
    }

    // The new packs and index, as the sweep will write them.
    let pack_size = repo.config().pack_size.max(1 << 20);
    // Trees and data in packs of their own, as the sweep writes them.
    let mut new_packs: Vec<Vec<PackEntry>> = Vec::new();
    let mut cur: [(Vec<PackEntry>, u64); 2] = [
        (Vec::new(), PACK_MAGIC.len() as u64),
        (Vec::new(), PACK_MAGIC.len() as u64),
    ];
    for entries in copy.values() {
        for e in entries {
            let (open, size) = &mut cur[usize::from(e.kind == pack::BlobKind::Tree)];
            let mut e = *e;
            e.offset = *size;
            *size += u64::from(e.stored_len);
            open.push(e);
            if *size >= pack_size {
                new_packs.push(std::mem::take(open));
                *size = PACK_MAGIC.len() as u64;
            }
        }
    }
    new_packs.extend(cur.into_iter().map(|(p, _)| p).filter(|p| !p.is_empty()));
    let mut bytes_new: u64 = new_packs.iter().map(|p| estimate_pack_size(p)).sum();
    let mut plan = Plan {
        snapshots: marked.len() as u64,
        packs,
        old_index,
        copy,
        sealed,
        notes,
        blobs_live: used.len() as u64,
        bytes_before,
        bytes_new: 0,
        bytes_kept,
        new_packs_estimate: new_packs.len() as u64,
        used,
        marked,
        listed,
    };
    if !plan.is_noop() {
        let mut f = new_index(&plan, Vec::new());
        for (i, entries) in new_packs.into_iter().enumerate() {
            let mut fake = [0u8; 32];
            fake[..8].copy_from_slice(&(i as u64).to_le_bytes());
            f.packs.push((ObjectId(fake), entries));
        }
        bytes_new += f.encode().len() as u64;
    }
    plan.bytes_new = bytes_new;
    Ok(plan)
}

/// The index file the sweep writes: every kept pack with its entries, then `new_packs`.
pub(super) fn new_index(plan: &Plan, new_packs: Vec<(ObjectId, Vec<PackEntry>)>) -> IndexFile {
    let mut packs: Vec<(ObjectId, Vec<PackEntry>)> = plan
        .packs
        .iter()
        .filter(|p| matches!(p.action, PackAction::Keep | PackAction::Sealed))
        .map(|p| (p.id, p.entries.clone()))
        .collect();
    packs.extend(new_packs);
    IndexFile {
        supersedes: plan.old_index.clone(),
        packs,
    }
}

/// Every blob (trees and chunks) the snapshots reference, added to `used` (whose trees are
/// not walked again).
fn mark(
    repo: &Repository,
    index: Arc<Index>,
    snaps: &[SnapshotInfo],
    mut used: IdSet,
    cancel: &AtomicBool,
) -> Result<IdSet> {
    // Breadth first; each level in pack and offset order, a batch's trees read with few large
    // reads on MARK_READERS threads (with a cold cache the walk waits on the disk, which
    // serves many reads at once, more than there are cores). Each tree is walked once, from
    // the first snapshot that reaches it.
    let store = repo.store().clone();
    let mut frontier: Vec<(ObjectId, usize)> = Vec::new();
    for (i, s) in snaps.iter().enumerate() {
        let root = s.snapshot.root_tree()?;
        if used.insert(root) {
            frontier.push((root, i));
        }
    }
    while !frontier.is_empty() {
        frontier.sort_by_key(|(id, _)| index.lookup(id).map(|(p, e)| (p, e.offset)));
        let mut next = Vec::new();
        for batch in frontier.chunks(MARK_BATCH) {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            for ((_, si), tree) in batch.iter().zip(load_trees(&store, &index, batch)?) {
                let s = &snaps[*si];
                let tree = tree.map_err(|e| {
                    Error::InvalidArgument(format!(
                        "prune refused: snapshot {} cannot be walked ({e}); run `bmsctl repo \
                         verify`",
                        s.short_id
                    ))
                })?;
                for node in &tree.nodes {
                    if let Some(sub) = node.subtree {
                        if used.insert(sub) {
                            next.push((sub, *si));
                        }
                    }
                    for c in &node.content {
                        if let ContentRef::Chunk { id, .. } = c {
                            if used.insert(*id) && !index.contains(id) {
                                return Err(Error::InvalidArgument(format!(
                                    "prune refused: chunk {id} of snapshot {} is in no pack; \
                                     the repository is damaged: run `bmsctl repo verify`",
                                    s.short_id
                                )));
                            }
                        }
                    }
                }
            }
        }
        frontier = next;
    }
    Ok(used)
}

/// Groups `entries` (sorted by offset) into runs that one read each fetches: blobs whose gap
/// is at most `gap` bytes, up to `max` bytes a run. Returns index ranges into `entries`.
pub(super) fn read_runs(entries: &[PackEntry], gap: u64, max: u64) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=entries.len() {
        let split = i == entries.len() || {
            let (first, prev, e) = (&entries[start], &entries[i - 1], &entries[i]);
            let prev_end = prev.offset + u64::from(prev.stored_len);
            e.offset < prev_end
                || e.offset - prev_end > gap
                || e.offset + u64::from(e.stored_len) - first.offset > max
        };
        if split {
            if i > start {
                runs.push(start..i);
            }
            start = i;
        }
    }
    runs
}

/// The byte range of the pack that the run `entries` covers.
pub(super) fn run_span(entries: &[PackEntry]) -> (u64, u64) {
    let start = entries.first().map_or(0, |e| e.offset);
    let end = entries
        .iter()
        .map(|e| e.offset + u64::from(e.stored_len))
        .max()
        .unwrap_or(start);
    (start, end)
}

/// Largest gap between two blobs that repacking reads over, and its largest read.
pub(super) const REPACK_GAP: u64 = 256 << 10;
pub(super) const REPACK_RUN: u64 = 8 << 20;
/// The same for the mark's tree reads (many threads at once: smaller).
const MARK_GAP: u64 = 64 << 10;
const MARK_RUN: u64 = 2 << 20;

/// Trees read at once by the mark: bounds the memory of one step of a wide level.
const MARK_BATCH: usize = 1024;

/// Threads reading trees in the mark (docs/performance.md "Prune": cold-cache reads in
/// flight at once, not cores).
const MARK_READERS: usize = 16;

/// Reads and decodes `batch`'s trees in the batch's order, one result per tree, or an error
/// when a part was lost. The trees are read pack by pack in offset order, neighbours with one
/// read ([`read_runs`]), the runs split over [`MARK_READERS`] threads.
fn load_trees(
    store: &Arc<dyn Store>,
    index: &Index,
    batch: &[(ObjectId, usize)],
) -> Result<Vec<Result<Tree>>> {
    let mut out: Vec<Option<Result<Tree>>> = (0..batch.len()).map(|_| None).collect();
    let mut located: Vec<(ObjectId, PackEntry, usize)> = Vec::with_capacity(batch.len());
    for (i, (id, _)) in batch.iter().enumerate() {
        match index.lookup(id) {
            Some((p, e)) => located.push((p, e, i)),
            None => {
                out[i] = Some(Err(Error::MissingObject {
                    what: "tree",
                    id: id.to_hex(),
                }))
            }
        }
    }
    located.sort_by_key(|(p, e, _)| (*p, e.offset));
    // Jobs: (pack, entries of one run, their places in the batch).
    let mut jobs: Vec<(ObjectId, Vec<PackEntry>, Vec<usize>)> = Vec::new();
    for group in located.chunk_by(|a, b| a.0 == b.0) {
        let entries: Vec<PackEntry> = group.iter().map(|(_, e, _)| *e).collect();
        for r in read_runs(&entries, MARK_GAP, MARK_RUN) {
            jobs.push((
                group[0].0,
                entries[r.clone()].to_vec(),
                group[r].iter().map(|(_, _, i)| *i).collect(),
            ));
        }
    }
    let threads = MARK_READERS.min(jobs.len()).max(1);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let jobs = &jobs;
                scope.spawn(move || {
                    let mut decoder = pack::BlobDecoder::default();
                    let mut got: Vec<(usize, Result<Tree>)> = Vec::new();
                    for (pack_id, entries, places) in jobs.iter().skip(t).step_by(threads) {
                        read_run(store, *pack_id, entries, places, &mut decoder, &mut got);
                    }
                    got
                })
            })
            .collect();
        let mut all = Vec::with_capacity(batch.len());
        for h in handles {
            // A lost part would leave trees unmarked and their data condemned: fail instead.
            all.extend(
                h.join()
                    .map_err(|_| Error::Internal("a tree reader thread panicked".into()))?,
            );
        }
        Ok::<_, Error>(all)
    })?;
    for (i, r) in results {
        out[i] = Some(r);
    }
    out.into_iter()
        .map(|r| r.ok_or_else(|| Error::Internal("the mark lost trees of a batch".into())))
        .collect()
}

/// Reads one run of trees of a pack with one read and decodes each.
fn read_run(
    store: &Arc<dyn Store>,
    pack_id: ObjectId,
    entries: &[PackEntry],
    places: &[usize],
    decoder: &mut pack::BlobDecoder,
    got: &mut Vec<(usize, Result<Tree>)>,
) {
    let name = pack_id.to_hex();
    let (start, end) = run_span(entries);
    let mut buf = vec![0u8; (end - start) as usize];
    let read = store
        .open(Kind::Packs, &name)
        .and_then(|f| f.read_exact_at(&mut buf, start));
    if let Err(e) = read {
        let detail = format!("reading pack {name}: {e}");
        for (e, i) in entries.iter().zip(places) {
            got.push((*i, Err(Error::corrupt(format!("tree {}", e.id), &detail))));
        }
        return;
    }
    let locate = || store.locate(Kind::Packs, &name).display().to_string();
    for (e, i) in entries.iter().zip(places) {
        let at = (e.offset - start) as usize;
        let mut data = Vec::new();
        let tree = decoder
            .decode_into(&buf[at..at + e.stored_len as usize], e, &locate, &mut data)
            .and_then(|()| Tree::decode(&data))
            .map_err(|err| match err {
                Error::Corrupt { detail, .. } => Error::corrupt(format!("tree {}", e.id), detail),
                other => other,
            });
        got.push((*i, tree));
    }
}
