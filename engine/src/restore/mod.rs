//! Restore a snapshot (or selected paths) into a target directory.
//!
//! Safety: every entry name is checked (no `/`, `.`, `..`, NUL) and every file-system call is
//! made relative to a directory descriptor opened with `O_NOFOLLOW`, so a crafted snapshot or
//! symlinks planted in the target cannot make a restore write outside the target.

mod dirs;
mod fsops;
mod place;
mod worker;

use dirs::keep_mtime;
use fsops::Dest;
use place::{temp_prefix, Placement};
use worker::{file_worker, is_fatal, FileTask, Shared};

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::lock::{self, LockKind};
use crate::repo::{lookup_path, split_path, BlobReader, Repository};
use crate::tree::{Node, NodeKind, Tree};

/// What to do with entries that already exist in the target (docs/operations.md, "Restores").
/// Existing directories are never replaced, only merged into; existing directories *above* a
/// selected `--path` are never changed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Keep existing entries exactly as they are, directories included (default).
    #[default]
    Never,
    /// Replace files whose size or mtime differ; existing directories of the restored tree get
    /// the snapshot's metadata.
    IfChanged,
    /// Replace all non-directory entries; existing directories of the restored tree get the
    /// snapshot's metadata.
    Always,
}

impl Overwrite {
    /// The policy's name as the command line and the protocol spell it.
    pub fn name(self) -> &'static str {
        match self {
            Overwrite::Never => "never",
            Overwrite::IfChanged => "if-changed",
            Overwrite::Always => "always",
        }
    }
}

/// An entry that could not be restored: it is absent from the target, or an existing entry of
/// that name was kept as it was.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailedEntry {
    /// The path inside the snapshot (and, below the restore directory, in the target).
    pub path: String,
    pub error: String,
}

/// What to restore where.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Snapshot id, unique prefix, or `latest`.
    pub snapshot: String,
    pub target: PathBuf,
    /// Absolute paths inside the snapshot; empty = everything.
    pub paths: Vec<PathBuf>,
    pub dry_run: bool,
    pub overwrite: Overwrite,
}

/// Progress of a restore.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreProgress {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    pub skipped: u64,
}

/// Result of a restore. A non-empty `errors` means some entries could not be restored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    pub snapshot_id: String,
    pub dry_run: bool,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub special: u64,
    pub bytes: u64,
    /// Existing entries kept because of the overwrite policy.
    pub skipped: u64,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
    /// Files that could not be restored (each also has a line in `errors`).
    pub failed: Vec<FailedEntry>,
    #[serde(rename = "duration_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub duration: Duration,
}

fn shown(comps: &[Vec<u8>], name: &[u8]) -> String {
    let mut s = String::new();
    for c in comps
        .iter()
        .map(|c| c.as_slice())
        .chain(std::iter::once(name))
    {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}

impl Repository {
    /// Restores a snapshot or selected paths into `opts.target`. Setting `cancel` stops the
    /// restore soon (between chunks) with [`Error::Cancelled`]; what was restored until then
    /// stays in the target, without the directories' final metadata.
    pub fn restore(
        &self,
        opts: &RestoreOptions,
        progress: &dyn Fn(&RestoreProgress),
        cancel: &AtomicBool,
    ) -> Result<RestoreSummary> {
        let started = Instant::now();
        let info = self.find_snapshot(&opts.snapshot)?;
        let _lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Read,
            "restore",
            self.lock_wait(),
            cancel,
        )?;
        let (index, _) = self.load_index()?;
        let index = Arc::new(index);
        let mut reader = BlobReader::new(self.store().clone(), index.clone());
        let root = reader.load_tree(&info.snapshot.root_tree()?)?;
        let as_root = nix::unistd::geteuid().is_root();
        let mut r = Restorer {
            opts,
            reader,
            as_root,
            summary: RestoreSummary {
                snapshot_id: info.id.clone(),
                dry_run: opts.dry_run,
                ..Default::default()
            },
            dirs: Vec::new(),
            keep: Vec::new(),
            links: HashMap::new(),
            tx: None,
            shared: Arc::new(Shared::default()),
            cancel,
            progress,
            last: Instant::now(),
        };

        let target_fd = if opts.dry_run {
            // A dry run looks at what exists, to apply the overwrite policy, but writes nothing.
            match File::open(&opts.target) {
                Ok(f) => Some(Arc::new(OwnedFd::from(f))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(Error::io("opening restore target", &opts.target, e)),
            }
        } else {
            if let Ok(md) = std::fs::metadata(&opts.target) {
                use std::os::unix::fs::MetadataExt;
                r.keep.push((Vec::new(), (md.mtime(), md.mtime_nsec())));
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&opts.target)
                .ctx("creating restore target", &opts.target)?;
            let f = File::open(&opts.target).ctx("opening restore target", &opts.target)?;
            Some(Arc::new(OwnedFd::from(f)))
        };

        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16);
        let (tx, rx) = crossbeam_channel::bounded::<FileTask>(threads * 4);
        let walk_res = std::thread::scope(|s| {
            for _ in 0..threads {
                let rx = rx.clone();
                let shared = r.shared.clone();
                let mut reader = BlobReader::new(self.store().clone(), index.clone());
                s.spawn(move || file_worker(rx, &shared, &mut reader, as_root, cancel));
            }
            drop(rx);
            r.tx = Some(tx);
            let res = r.run(&root, target_fd.clone(), &info.id);
            r.tx = None;
            res
        });
        let shared = r.shared.clone();
        // Existing directories get their mtimes back however the restore ended; in reverse, so
        // that a directory entered twice (two --path below it) ends with its first, original one.
        if let Some(fd) = target_fd.as_ref().filter(|_| !opts.dry_run) {
            for (comps, mtime) in std::mem::take(&mut r.keep).into_iter().rev() {
                if let Err(e) = keep_mtime(fd, &comps, mtime) {
                    r.summary.errors.push(e.to_string());
                }
            }
        }
        if let Ok(mut g) = shared.fatal.lock() {
            if let Some(e) = g.take() {
                return Err(e);
            }
        }
        walk_res?;
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // Directory metadata last, deepest first, so that their mtimes stick.
        if let Some(fd) = target_fd.as_ref().filter(|_| !opts.dry_run) {
            let dirs = std::mem::take(&mut r.dirs);
            for (comps, node) in dirs.into_iter().rev() {
                if let Err(e) = r.dir_meta(fd, &comps, &node) {
                    r.summary.errors.push(e.to_string());
                }
            }
        }
        let mut s = r.summary;
        s.files += shared.files.load(Ordering::Relaxed);
        s.bytes += shared.bytes.load(Ordering::Relaxed);
        if let Ok(mut w) = shared.warnings.lock() {
            s.warnings.append(&mut w);
        }
        if let Ok(mut e) = shared.errors.lock() {
            s.errors.append(&mut e);
        }
        if let Ok(mut f) = shared.failed.lock() {
            s.failed.append(&mut f);
        }
        s.duration = started.elapsed();
        (progress)(&RestoreProgress {
            files: s.files,
            dirs: s.dirs,
            bytes: s.bytes,
            skipped: s.skipped,
        });
        Ok(s)
    }
}

/// Seconds and nanoseconds.
type Mtime = (i64, i64);

struct Restorer<'a> {
    opts: &'a RestoreOptions,
    reader: BlobReader,
    as_root: bool,
    summary: RestoreSummary,
    /// Directories whose metadata is applied at the end (path components, node).
    dirs: Vec<(Vec<Vec<u8>>, Node)>,
    /// Existing directories left as they are: their mtime (changed by adding entries) is set
    /// back at the end.
    keep: Vec<(Vec<Vec<u8>>, Mtime)>,
    /// First restored path of each hard-linked inode.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    tx: Option<crossbeam_channel::Sender<FileTask>>,
    shared: Arc<Shared>,
    cancel: &'a AtomicBool,
    progress: &'a dyn Fn(&RestoreProgress),
    last: Instant,
}

enum Slot {
    /// Nothing of that name exists.
    Create,
    /// A non-directory of that name exists and the policy replaces it.
    Replace,
    Skip,
    UseDir,
}

impl Restorer<'_> {
    fn run(&mut self, root: &Tree, target: Option<Arc<OwnedFd>>, snap: &str) -> Result<()> {
        if self.opts.paths.is_empty() {
            return self.restore_tree(root, target, &[]);
        }
        let mut sel: Vec<Vec<u8>> = self
            .opts
            .paths
            .iter()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .collect();
        sel.sort();
        sel.dedup();
        for path in &sel {
            let comps: Vec<Vec<u8>> = split_path(path).into_iter().map(|c| c.to_vec()).collect();
            if comps.is_empty() {
                return self.restore_tree(root, target, &[]);
            }
            let refs: Vec<&[u8]> = comps.iter().map(|c| c.as_slice()).collect();
            // Ancestors: create them (with their metadata) and descend.
            let mut dir_fd = target.clone();
            let mut tree = root.clone();
            for i in 0..comps.len() {
                if let Err(msg) = tree.check() {
                    return Err(Error::corrupt(
                        format!("tree of {}", shown(&comps[..i], b"")),
                        format!("{msg}; refusing to restore it"),
                    ));
                }
                let (node, _) =
                    lookup_path(&mut self.reader, tree.clone(), &refs[i..=i], snap, path)?;
                let node = node.ok_or_else(|| Error::PathNotFound {
                    snapshot: snap.into(),
                    path: String::from_utf8_lossy(path).into_owned(),
                })?;
                if i + 1 == comps.len() {
                    let prefix: Arc<[u8]> = temp_prefix(&tree.nodes).into();
                    self.restore_node(&node, dir_fd.clone(), &comps[..i], &prefix)?;
                } else {
                    let sub = node.subtree.ok_or_else(|| Error::PathNotFound {
                        snapshot: snap.into(),
                        path: String::from_utf8_lossy(path).into_owned(),
                    })?;
                    dir_fd = match self.enter_dir(&node, dir_fd.clone(), &comps[..i], true)? {
                        Ok(fd) => fd,
                        Err(()) => return Err(Error::InvalidArgument(format!("cannot restore into {}: a non-directory is in the way (use --overwrite always)", shown(&comps[..i], &node.name)))),
                    };
                    tree = self.reader.load_tree(&sub)?;
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self) {
        if self.last.elapsed() >= Duration::from_millis(250) {
            self.last = Instant::now();
            let s = &self.summary;
            (self.progress)(&RestoreProgress {
                files: s.files + self.shared.files.load(Ordering::Relaxed),
                dirs: s.dirs,
                bytes: s.bytes + self.shared.bytes.load(Ordering::Relaxed),
                skipped: s.skipped,
            });
        }
    }

    fn restore_tree(
        &mut self,
        tree: &Tree,
        dir: Option<Arc<OwnedFd>>,
        comps: &[Vec<u8>],
    ) -> Result<()> {
        if let Err(msg) = tree.check() {
            return Err(Error::corrupt(
                format!("tree of {}", shown(comps, b"")),
                format!("{msg}; refusing to restore it"),
            ));
        }
        let prefix: Arc<[u8]> = temp_prefix(&tree.nodes).into();
        for node in &tree.nodes {
            if self.cancel.load(Ordering::Relaxed) {
                self.shared.stop.store(true, Ordering::Relaxed);
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.restore_node(node, dir.clone(), comps, &prefix)?;
            self.tick();
        }
        Ok(())
    }

    fn restore_node(
        &mut self,
        node: &Node,
        dir: Option<Arc<OwnedFd>>,
        comps: &[Vec<u8>],
        prefix: &Arc<[u8]>,
    ) -> Result<()> {
        let shown = shown(comps, &node.name);
        if !crate::tree::valid_name(&node.name) {
            return Err(Error::corrupt(
                format!("snapshot entry {shown:?}"),
                "unsafe name; refusing to restore it",
            ));
        }
        if node.kind == NodeKind::Dir {
            let sub = node
                .subtree
                .ok_or_else(|| Error::corrupt(format!("directory {shown}"), "no subtree"))?;
            let Ok(child) = self.enter_dir(node, dir, comps, false)? else {
                return Ok(());
            };
            let tree = self.reader.load_tree(&sub)?;
            let mut path = comps.to_vec();
            path.push(node.name.clone());
            return self.restore_tree(&tree, child, &path);
        }
        let placement = match &dir {
            // Only in a dry run: the directory would be created, so the name is free.
            None => Placement::New,
            Some(d) => match self.slot(d, node, &shown)? {
                Slot::Skip | Slot::UseDir => return Ok(()),
                Slot::Create => Placement::New,
                Slot::Replace => Placement::Replace,
            },
        };
        let dir = match dir {
            Some(d) if !self.opts.dry_run => d,
            _ => {
                // Dry run: count only.
                match node.kind {
                    NodeKind::File => {
                        self.summary.files += 1;
                        self.summary.bytes += node.size;
                    }
                    NodeKind::Symlink => self.summary.symlinks += 1,
                    _ => self.summary.special += 1,
                }
                return Ok(());
            }
        };
        // Files are renamed over the entry they replace once complete; other entries, and
        // further links to a file restored already, replace it now.
        let key = (node.dev, node.inode);
        let linked = node.nlink > 1 && self.links.contains_key(&key);
        if placement == Placement::Replace && (node.kind != NodeKind::File || linked) {
            fsops::unlink_at(dir.as_fd(), &node.name, &shown)?;
        }
        if node.kind != NodeKind::Dir && node.nlink > 1 {
            if let Some(first) = self.links.get(&key).cloned() {
                return self.hardlink(&dir, &first, node, &shown);
            }
            let mut p = comps.to_vec();
            p.push(node.name.clone());
            self.links.insert(key, p);
        }
        match node.kind {
            NodeKind::File if node.nlink > 1 => {
                // Written synchronously so that later links find it complete.
                let cancel = self.cancel;
                let stop = || cancel.load(Ordering::Relaxed);
                let dest = Dest {
                    dir: dir.as_fd(),
                    prefix,
                    placement,
                    shown: &shown,
                };
                let warnings = &mut self.summary.warnings;
                match fsops::write_file(
                    &dest,
                    node,
                    &mut self.reader,
                    &stop,
                    self.as_root,
                    warnings,
                ) {
                    Ok(n) => {
                        self.summary.files += 1;
                        self.summary.bytes += n;
                    }
                    Err(e) if matches!(e, Error::Cancelled) || is_fatal(&e) => return Err(e),
                    Err(e) => {
                        // The next link of this inode restores the content itself.
                        self.links.remove(&key);
                        self.shared.fail(&shown, &e);
                    }
                }
            }
            NodeKind::File => {
                let task = FileTask {
                    dir,
                    node: node.clone(),
                    shown,
                    prefix: prefix.clone(),
                    placement,
                };
                if let Some(tx) = &self.tx {
                    tx.send(task).map_err(|_| Error::Cancelled)?;
                }
            }
            NodeKind::Symlink => {
                fsops::symlink_at(dir.as_fd(), &node.name, &node.target, &shown)?;
                fsops::apply_meta_at(dir.as_fd(), &node.name, node, self.as_root, &shown)?;
                self.summary.symlinks += 1;
            }
            NodeKind::Socket => {
                self.summary
                    .warnings
                    .push(format!("{shown}: sockets are not restored"));
            }
            NodeKind::Fifo | NodeKind::CharDev | NodeKind::BlockDev => {
                match fsops::mknod_at(dir.as_fd(), &node.name, node, &shown) {
                    Ok(()) => {
                        fsops::apply_meta_at(dir.as_fd(), &node.name, node, self.as_root, &shown)?;
                        self.summary.special += 1;
                    }
                    Err(e) => self
                        .summary
                        .warnings
                        .push(format!("{e} (device files need root)")),
                }
            }
            NodeKind::Dir => {}
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        dir: &OwnedFd,
        first: &[Vec<u8>],
        node: &Node,
        shown: &str,
    ) -> Result<()> {
        let Some((name, parents)) = first.split_last() else {
            return Ok(());
        };
        let target = self.opts.target.clone();
        let root = File::open(&target).ctx("opening restore target", &target)?;
        let mut fd = OwnedFd::from(root);
        for c in parents {
            fd = fsops::open_dir_at(fd.as_fd(), c, shown)?;
        }
        fsops::link_at(fd.as_fd(), name, dir.as_fd(), &node.name, shown)?;
        self.summary.hardlinks += 1;
        Ok(())
    }
}
