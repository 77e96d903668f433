//! The walker: hands directories to the scanners (depth first, a bounded number at a time),
//! sends the files they find to the readers, and assembles trees bottom-up as directory scans
//! and file results arrive.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::scan::{Action, Listing, ScanJob, ScannedDir};
use super::workers::{FileJob, FileOutcome, FileResult, RawBlob, Shared};
use super::Progress;
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::pack::BlobKind;
use crate::snapshot::SnapshotStats;
use crate::tree::{Node, Tree};

/// Directories handed to the scanners and not yet taken in by the walker. Bounds the memory
/// of scans running ahead of a walker that waits for the file readers.
pub(crate) const MAX_SCANS_IN_FLIGHT: usize = 64;

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
    pub cancel: &'a AtomicBool,
    pub progress: &'a dyn Fn(&Progress),
    /// Directories to the scanners.
    pub scans: Sender<ScanJob>,
    pub scanned: Receiver<ScannedDir>,
    /// Files to the readers; dropped once every directory is scanned.
    pub jobs: Option<Sender<FileJob>>,
    pub blobs: Sender<RawBlob>,
    pub results: Receiver<FileResult>,
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("{what} stopped early"))
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
        todo: Vec::new(),
        root: None,
        stats: SnapshotStats::default(),
        last_progress: Instant::now(),
        files_seen: 0,
    };
    let slot = w.new_slot(None, parent_root);
    w.todo.push(ScanJob {
        slot,
        path: PathBuf::from("/"),
        listing: root_listing,
        parent_tree: parent_root,
        dev: root_dev,
    });
    let mut in_flight = 0usize;
    while w.root.is_none() {
        if ctx.shared.stopped(ctx.cancel) {
            return Err(Error::Cancelled);
        }
        while in_flight < MAX_SCANS_IN_FLIGHT {
            let Some(job) = w.todo.pop() else { break };
            ctx.scans
                .send(job)
                .map_err(|_| internal("directory scanners"))?;
            in_flight += 1;
        }
        if in_flight == 0 {
            // Every directory is scanned: the readers finish once their queue is empty.
            ctx.jobs = None;
        }
        crossbeam_channel::select! {
            recv(ctx.scanned) -> d => {
                let d = d.map_err(|_| internal("directory scanners"))?;
                in_flight -= 1;
                w.process(&mut ctx, d)?;
            }
            recv(ctx.results) -> r => {
                let r = r.map_err(|_| internal("file readers"))?;
                w.apply(&mut ctx, r)?;
            }
            default(Duration::from_millis(200)) => {}
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
    /// Directories not yet handed to the scanners, next one last.
    todo: Vec<ScanJob>,
    root: Option<ObjectId>,
    stats: SnapshotStats,
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

    fn apply(&mut self, ctx: &mut WalkCtx<'_>, r: FileResult) -> Result<()> {
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
    fn done_one(&mut self, ctx: &mut WalkCtx<'_>, slot: usize) -> Result<()> {
        if let Some(Some(st)) = self.slots.get_mut(slot) {
            st.pending -= 1;
        }
        self.try_finalize(ctx, slot)
    }

    fn try_finalize(&mut self, ctx: &mut WalkCtx<'_>, mut slot: usize) -> Result<()> {
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

    /// Takes in one scanned directory: queues its files and subdirectories.
    fn process(&mut self, ctx: &mut WalkCtx<'_>, d: ScannedDir) -> Result<()> {
        for msg in d.warnings {
            self.warn(msg);
        }
        let mut children = Vec::new();
        for e in d.entries {
            self.files_seen += 1;
            let Some(Some(st)) = self.slots.get_mut(d.slot) else {
                return Ok(());
            };
            let idx = st.nodes.len();
            let mut node: Node = e.node;
            match e.action {
                Action::Keep => {}
                Action::Reused => {
                    self.stats.files_unmodified += 1;
                    self.stats.bytes_total += node.size;
                }
                Action::Read { changed } => {
                    if changed {
                        self.stats.files_changed += 1;
                    } else {
                        self.stats.files_new += 1;
                    }
                    st.pending += 1;
                    ctx.jobs
                        .as_ref()
                        .ok_or(Error::Cancelled)?
                        .send(FileJob {
                            slot: d.slot,
                            idx,
                            path: e.path,
                        })
                        .map_err(|_| Error::Cancelled)?;
                }
                Action::MountPoint => {
                    node.subtree = Some(ctx.shared.store(
                        &ctx.blobs,
                        BlobKind::Tree,
                        &Tree::default().encode(),
                    )?);
                }
                Action::Descend {
                    listing,
                    old_tree,
                    dev,
                } => {
                    st.pending += 1;
                    children.push((idx, e.path, listing, old_tree, dev));
                }
            }
            st.nodes.push(Some(node));
        }
        let mut jobs = Vec::with_capacity(children.len());
        for (idx, path, listing, old_tree, dev) in children {
            let slot = self.new_slot(Some((d.slot, idx)), old_tree);
            jobs.push(ScanJob {
                slot,
                path,
                listing,
                parent_tree: old_tree,
                dev,
            });
        }
        self.todo.extend(jobs.into_iter().rev());
        if let Some(Some(st)) = self.slots.get_mut(d.slot) {
            st.walk_done = true;
        }
        self.try_finalize(ctx, d.slot)
    }
}
