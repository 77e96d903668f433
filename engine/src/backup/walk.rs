//! The directory walker: lists directories depth-first, decides which files must be read,
//! and assembles trees bottom-up as file results arrive.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::meta::{self, Meta};
use super::workers::{FileJob, FileOutcome, FileResult, RawBlob, Shared};
use super::{Excludes, Progress};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::BlobKind;
use crate::repo::BlobReader;
use crate::snapshot::SnapshotStats;
use crate::tree::{ContentRef, Node, NodeKind, Tree};

/// A directory entry that exists only because a source path lies below it.
pub enum VEntry {
    /// A source path: walked for real.
    Source(PathBuf),
    /// An intermediate directory with only these children.
    Dir(PathBuf, Vec<(Vec<u8>, VEntry)>),
}

/// Builds the virtual root listing of absolute, normalised source paths.
pub fn virtual_root(sources: &[PathBuf]) -> Vec<(Vec<u8>, VEntry)> {
    fn insert(list: &mut Vec<(Vec<u8>, VEntry)>, prefix: &Path, comps: &[Vec<u8>], full: &Path) {
        let Some((first, rest)) = comps.split_first() else {
            return;
        };
        let here = prefix.join(OsString::from_vec(first.clone()));
        let pos = list.iter().position(|(n, _)| n == first);
        if rest.is_empty() {
            match pos {
                Some(i) => list[i].1 = VEntry::Source(full.to_path_buf()),
                None => list.push((first.clone(), VEntry::Source(full.to_path_buf()))),
            }
            return;
        }
        let i = match pos {
            Some(i) => i,
            None => {
                list.push((first.clone(), VEntry::Dir(here.clone(), Vec::new())));
                list.len() - 1
            }
        };
        if let VEntry::Dir(_, children) = &mut list[i].1 {
            insert(children, &here, rest, full);
        }
        // A Source already covers everything below it.
    }
    fn sort(list: &mut [(Vec<u8>, VEntry)]) {
        list.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, e) in list.iter_mut() {
            if let VEntry::Dir(_, c) = e {
                sort(c);
            }
        }
    }
    let mut root = Vec::new();
    let mut sorted: Vec<&PathBuf> = sources.iter().collect();
    sorted.sort_by_key(|p| p.components().count());
    for s in sorted {
        let comps: Vec<Vec<u8>> = s.iter().skip(1).map(|c| c.as_bytes().to_vec()).collect();
        insert(&mut root, Path::new("/"), &comps, s);
    }
    sort(&mut root);
    root
}

/// What a directory visit lists: the real directory, or a virtual one.
pub enum Listing {
    Real,
    Virtual(Vec<(Vec<u8>, VEntry)>),
}

struct Visit {
    slot: usize,
    path: PathBuf,
    listing: Listing,
    parent_tree: Option<ObjectId>,
    dev: u64,
}

struct DirState {
    parent: Option<(usize, usize)>,
    nodes: Vec<Option<Node>>,
    pending: usize,
    walk_done: bool,
    old_tree: Option<ObjectId>,
}

/// What the walker needs from the backup.
pub struct WalkCtx<'a> {
    pub shared: &'a Shared,
    pub excludes: &'a Excludes,
    pub one_file_system: bool,
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Fn(&Progress),
    pub reader: BlobReader,
    pub jobs: Option<Sender<FileJob>>,
    pub blobs: Sender<RawBlob>,
    pub results: Receiver<FileResult>,
}

/// Walks and returns the root tree id plus statistics (file/dir counts and warnings).
pub fn walk(
    mut ctx: WalkCtx<'_>,
    root_listing: Listing,
    root_dev: u64,
    parent_root: Option<ObjectId>,
) -> Result<(ObjectId, SnapshotStats)> {
    let mut w = Walker {
        slots: Vec::new(),
        free: Vec::new(),
        stack: Vec::new(),
        root: None,
        stats: SnapshotStats::default(),
        meta: Meta::default(),
        last_progress: Instant::now(),
        files_seen: 0,
    };
    let slot = w.new_slot(None, parent_root);
    w.stack.push(Visit {
        slot,
        path: PathBuf::from("/"),
        listing: root_listing,
        parent_tree: parent_root,
        dev: root_dev,
    });
    while let Some(v) = w.stack.pop() {
        if ctx.shared.stopped(ctx.cancel) {
            return Err(Error::Cancelled);
        }
        while let Ok(r) = ctx.results.try_recv() {
            w.apply(&ctx, r)?;
        }
        w.visit(&mut ctx, v)?;
        w.maybe_progress(&ctx);
    }
    ctx.jobs = None;
    while w.root.is_none() {
        if ctx.shared.stopped(ctx.cancel) {
            return Err(Error::Cancelled);
        }
        match ctx.results.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => w.apply(&ctx, r)?,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::InvalidArgument(
                    "internal error: file readers stopped early".into(),
                ));
            }
        }
        w.maybe_progress(&ctx);
    }
    (ctx.progress)(&w.progress(&ctx));
    let root = w.root.ok_or(Error::Cancelled)?;
    Ok((root, w.stats))
}

struct Walker {
    slots: Vec<Option<DirState>>,
    free: Vec<usize>,
    stack: Vec<Visit>,
    root: Option<ObjectId>,
    stats: SnapshotStats,
    meta: Meta,
    last_progress: Instant,
    files_seen: u64,
}

const MAX_WARNINGS: usize = 1000;

impl Walker {
    fn warn(&mut self, msg: String) {
        self.stats.warnings_count += 1;
        if self.stats.warnings.len() < MAX_WARNINGS {
            tracing::warn!("{msg}");
            self.stats.warnings.push(msg);
        }
    }

    fn new_slot(&mut self, parent: Option<(usize, usize)>, old_tree: Option<ObjectId>) -> usize {
        let st = DirState {
            parent,
            nodes: Vec::new(),
            pending: 0,
            walk_done: false,
            old_tree,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(st);
                i
            }
            None => {
                self.slots.push(Some(st));
                self.slots.len() - 1
            }
        }
    }

    fn progress(&self, ctx: &WalkCtx<'_>) -> Progress {
        let c = &ctx.shared.counters;
        Progress {
            files: self.files_seen,
            dirs: self.stats.dirs_new + self.stats.dirs_changed + self.stats.dirs_unmodified,
            bytes_read: c.bytes_read.load(Ordering::Relaxed),
            bytes_added: c.bytes_added.load(Ordering::Relaxed),
            chunks_new: c.chunks_new.load(Ordering::Relaxed),
            warnings: self.stats.warnings_count,
        }
    }

    fn maybe_progress(&mut self, ctx: &WalkCtx<'_>) {
        if self.last_progress.elapsed() >= Duration::from_millis(250) {
            self.last_progress = Instant::now();
            (ctx.progress)(&self.progress(ctx));
        }
    }

    fn apply(&mut self, ctx: &WalkCtx<'_>, r: FileResult) -> Result<()> {
        let Some(Some(st)) = self.slots.get_mut(r.slot) else {
            return Ok(());
        };
        match r.outcome {
            FileOutcome::Done { content, size } => {
                if let Some(Some(n)) = st.nodes.get_mut(r.idx) {
                    n.content = content;
                    n.size = size;
                    self.stats.bytes_total += size;
                }
            }
            FileOutcome::Warning(msg) => {
                st.nodes[r.idx] = None;
                self.warn(msg);
            }
            FileOutcome::Fatal(e) => return Err(e),
        }
        self.done_one(ctx, r.slot)
    }

    /// One pending child of `slot` completed.
    fn done_one(&mut self, ctx: &WalkCtx<'_>, slot: usize) -> Result<()> {
        if let Some(Some(st)) = self.slots.get_mut(slot) {
            st.pending -= 1;
        }
        self.try_finalize(ctx, slot)
    }

    fn try_finalize(&mut self, ctx: &WalkCtx<'_>, mut slot: usize) -> Result<()> {
        loop {
            let ready =
                matches!(self.slots.get(slot), Some(Some(st)) if st.walk_done && st.pending == 0);
            if !ready {
                return Ok(());
            }
            let Some(st) = self.slots[slot].take() else {
                return Ok(());
            };
            self.free.push(slot);
            let tree = Tree {
                nodes: st.nodes.into_iter().flatten().collect(),
            };
            let id = ctx
                .shared
                .store(&ctx.blobs, BlobKind::Tree, &tree.encode())?;
            match st.old_tree {
                None => self.stats.dirs_new += 1,
                Some(old) if old == id => self.stats.dirs_unmodified += 1,
                Some(_) => self.stats.dirs_changed += 1,
            }
            match st.parent {
                None => {
                    self.root = Some(id);
                    return Ok(());
                }
                Some((p, idx)) => {
                    if let Some(Some(pst)) = self.slots.get_mut(p) {
                        if let Some(Some(n)) = pst.nodes.get_mut(idx) {
                            n.subtree = Some(id);
                        }
                        pst.pending -= 1;
                    }
                    slot = p;
                }
            }
        }
    }

    fn excluded(ctx: &WalkCtx<'_>, path: &Path, name: &[u8]) -> bool {
        ctx.excludes.matches(path, name)
    }

    fn visit(&mut self, ctx: &mut WalkCtx<'_>, v: Visit) -> Result<()> {
        let old = match v.parent_tree {
            Some(id) => match ctx.reader.load_tree(&id) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(
                        "parent tree of {} unreadable, reading all files: {e}",
                        v.path.display()
                    );
                    None
                }
            },
            None => None,
        };
        let entries: Vec<(Vec<u8>, PathBuf, Option<VEntry>)> = match v.listing {
            Listing::Virtual(list) => list
                .into_iter()
                .map(|(name, e)| {
                    let p = match &e {
                        VEntry::Source(p) | VEntry::Dir(p, _) => p.clone(),
                    };
                    (name, p, Some(e))
                })
                .collect(),
            Listing::Real => match std::fs::read_dir(&v.path) {
                Ok(rd) => {
                    let mut names = Vec::new();
                    for e in rd {
                        match e {
                            Ok(e) => names.push(e.file_name().into_vec()),
                            Err(e) => self.warn(format!(
                                "{}: error listing directory: {e}",
                                v.path.display()
                            )),
                        }
                    }
                    names.sort();
                    names
                        .into_iter()
                        .map(|n| (n.clone(), v.path.join(OsString::from_vec(n)), None))
                        .collect()
                }
                Err(e) => {
                    self.warn(format!("{}: cannot list directory: {e}", v.path.display()));
                    Vec::new()
                }
            },
        };
        let mut children = Vec::new();
        for (name, path, ventry) in entries {
            let is_source = matches!(ventry, Some(VEntry::Source(_)));
            if ventry.is_none() && Self::excluded(ctx, &path, &name) {
                continue;
            }
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.warn(format!("{}: vanished during backup", path.display()));
                    continue;
                }
                Err(e) => {
                    self.warn(format!("{}: cannot stat: {e}", path.display()));
                    continue;
                }
            };
            let mut warnings = Vec::new();
            let old_node = old.as_ref().and_then(|t| t.find(&name));
            let node = self.meta.node(&name, &path, &md, old_node, &mut warnings);
            for w in warnings {
                self.warn(w);
            }
            let Some(mut node) = node else { continue };
            self.files_seen += 1;
            let Some(Some(st)) = self.slots.get_mut(v.slot) else {
                return Ok(());
            };
            let idx = st.nodes.len();
            match node.kind {
                NodeKind::Dir => {
                    let dev = if is_source || v.dev == 0 {
                        md.dev()
                    } else {
                        v.dev
                    };
                    let crosses =
                        ctx.one_file_system && !is_source && ventry.is_none() && md.dev() != v.dev;
                    if crosses {
                        node.subtree = Some(ctx.shared.store(
                            &ctx.blobs,
                            BlobKind::Tree,
                            &Tree::default().encode(),
                        )?);
                        st.nodes.push(Some(node));
                        continue;
                    }
                    st.pending += 1;
                    st.nodes.push(Some(node));
                    let old_sub = old_node
                        .filter(|n| n.kind == NodeKind::Dir)
                        .and_then(|n| n.subtree);
                    let listing = match ventry {
                        Some(VEntry::Dir(_, c)) => Listing::Virtual(c),
                        _ => Listing::Real,
                    };
                    children.push((idx, path, listing, old_sub, dev));
                }
                NodeKind::File => {
                    let reuse = old_node.filter(|o| meta::unchanged(o, &node)).filter(|o| {
                        o.content.iter().all(|c| match c {
                            ContentRef::Chunk { id, .. } => ctx.shared.index.contains(id),
                            ContentRef::Hole { .. } => true,
                        })
                    });
                    if let Some(o) = reuse {
                        node.content = o.content.clone();
                        node.size = o.size;
                        self.stats.files_unmodified += 1;
                        self.stats.bytes_total += o.size;
                        st.nodes.push(Some(node));
                    } else {
                        if old_node.is_some() {
                            self.stats.files_changed += 1;
                        } else {
                            self.stats.files_new += 1;
                        }
                        st.pending += 1;
                        st.nodes.push(Some(node));
                        ctx.jobs
                            .as_ref()
                            .ok_or(Error::Cancelled)?
                            .send(FileJob {
                                slot: v.slot,
                                idx,
                                path,
                            })
                            .map_err(|_| Error::Cancelled)?;
                    }
                }
                _ => st.nodes.push(Some(node)),
            }
        }
        let mut visits = Vec::new();
        for (idx, path, listing, old_sub, dev) in children {
            let slot = self.new_slot(Some((v.slot, idx)), old_sub);
            visits.push(Visit {
                slot,
                path,
                listing,
                parent_tree: old_sub,
                dev,
            });
        }
        self.stack.extend(visits.into_iter().rev());
        if let Some(Some(st)) = self.slots.get_mut(v.slot) {
            st.walk_done = true;
        }
        self.try_finalize(ctx, v.slot)
    }
}
