//! Restore a snapshot (or selected paths) into a target directory.
//!
//! Safety: every entry name is checked (no `/`, `.`, `..`, NUL) and every file-system call is
//! made relative to a directory descriptor opened with `O_NOFOLLOW`, so a crafted snapshot or
//! symlinks planted in the target cannot make a restore write outside the target.

mod fsops;
mod worker;

use worker::{file_worker, FileTask, Shared};

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::lock::{self, LockKind};
use crate::repo::{lookup_path, split_path, BlobReader, Repository};
use crate::tree::{Node, NodeKind, Tree};

/// What to do with entries that already exist in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overwrite {
    /// Keep existing entries (default).
    #[default]
    Never,
    /// Replace files whose size or mtime differ.
    IfChanged,
    /// Replace all non-directory entries.
    Always,
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
        let _lock = lock::acquire_cancellable(
            self.path(),
            LockKind::Read,
            "restore",
            self.lock_wait(),
            cancel,
        )?;
        let (index, _) = self.load_index()?;
        let index = Arc::new(index);
        let mut reader = BlobReader::new(self.path().to_path_buf(), index.clone());
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
            links: HashMap::new(),
            tx: None,
            shared: Arc::new(Shared::default()),
            cancel,
            progress,
            last: Instant::now(),
        };

        let target_fd = if opts.dry_run {
            None
        } else {
            std::fs::create_dir_all(&opts.target).ctx("creating restore target", &opts.target)?;
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
                let mut reader = BlobReader::new(self.path().to_path_buf(), index.clone());
                s.spawn(move || file_worker(rx, &shared, &mut reader, as_root, cancel));
            }
            drop(rx);
            r.tx = Some(tx);
            let res = r.run(&root, target_fd.clone(), &info.id);
            r.tx = None;
            res
        });
        let shared = r.shared.clone();
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
        if let Some(fd) = &target_fd {
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

struct Restorer<'a> {
    opts: &'a RestoreOptions,
    reader: BlobReader,
    as_root: bool,
    summary: RestoreSummary,
    /// Directories whose metadata is applied at the end (path components, node).
    dirs: Vec<(Vec<Vec<u8>>, Node)>,
    /// First restored path of each hard-linked inode.
    links: HashMap<(u64, u64), Vec<Vec<u8>>>,
    tx: Option<crossbeam_channel::Sender<FileTask>>,
    shared: Arc<Shared>,
    cancel: &'a AtomicBool,
    progress: &'a dyn Fn(&RestoreProgress),
    last: Instant,
}

enum Slot {
    Create,
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
                    self.restore_node(&node, dir_fd.clone(), &comps[..i])?;
                } else {
                    let sub = node.subtree.ok_or_else(|| Error::PathNotFound {
                        snapshot: snap.into(),
                        path: String::from_utf8_lossy(path).into_owned(),
                    })?;
                    dir_fd = match self.enter_dir(&node, dir_fd.clone(), &comps[..i])? {
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
        for node in &tree.nodes {
            if self.cancel.load(Ordering::Relaxed) {
                self.shared.stop.store(true, Ordering::Relaxed);
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            self.restore_node(node, dir.clone(), comps)?;
            self.tick();
        }
        Ok(())
    }

    /// Decides what to do with an existing entry of the same name.
    fn slot(&mut self, dir: &OwnedFd, node: &Node, shown: &str) -> Result<Slot> {
        let Some(st) = fsops::stat_at(dir.as_fd(), &node.name, shown)? else {
            return Ok(Slot::Create);
        };
        if node.kind == NodeKind::Dir {
            if fsops::is_dir(&st) {
                return Ok(Slot::UseDir);
            }
            if self.opts.overwrite == Overwrite::Always {
                fsops::unlink_at(dir.as_fd(), &node.name, shown)?;
                return Ok(Slot::Create);
            }
            self.summary
                .warnings
                .push(format!("{shown}: exists and is not a directory; kept"));
            self.summary.skipped += 1;
            return Ok(Slot::Skip);
        }
        let replace = match self.opts.overwrite {
            Overwrite::Never => false,
            Overwrite::Always => true,
            Overwrite::IfChanged => {
                !(node.kind == NodeKind::File
                    && fsops::is_file(&st)
                    && st.st_size as u64 == node.size
                    && st.st_mtime == node.mtime.sec
                    && st.st_mtime_nsec as u32 == node.mtime.nsec)
            }
        };
        if !replace {
            self.summary.skipped += 1;
            return Ok(Slot::Skip);
        }
        if fsops::is_dir(&st) {
            self.summary.warnings.push(format!(
                "{shown}: is a directory in the target; not replaced"
            ));
            self.summary.skipped += 1;
            return Ok(Slot::Skip);
        }
        fsops::unlink_at(dir.as_fd(), &node.name, shown)?;
        Ok(Slot::Create)
    }

    /// Creates (or reuses) a directory and returns its descriptor (None in a dry run);
    /// records it for metadata. `Err(None)`-like skips are reported as `Ok(Err(()))`.
    fn enter_dir(
        &mut self,
        node: &Node,
        dir: Option<Arc<OwnedFd>>,
        comps: &[Vec<u8>],
    ) -> Result<std::result::Result<Option<Arc<OwnedFd>>, ()>> {
        let shown = shown(comps, &node.name);
        let mut path = comps.to_vec();
        path.push(node.name.clone());
        self.summary.dirs += 1;
        let Some(dir) = dir else { return Ok(Ok(None)) };
        match self.slot(&dir, node, &shown)? {
            Slot::Skip => return Ok(Err(())),
            Slot::Create => fsops::mkdir_at(dir.as_fd(), &node.name, &shown)?,
            Slot::UseDir => {}
        }
        let fd = fsops::open_dir_at(dir.as_fd(), &node.name, &shown)?;
        self.dirs.push((path, node.clone()));
        Ok(Ok(Some(Arc::new(fd))))
    }

    fn restore_node(
        &mut self,
        node: &Node,
        dir: Option<Arc<OwnedFd>>,
        comps: &[Vec<u8>],
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
            let Ok(child) = self.enter_dir(node, dir, comps)? else {
                return Ok(());
            };
            let tree = self.reader.load_tree(&sub)?;
            let mut path = comps.to_vec();
            path.push(node.name.clone());
            return self.restore_tree(&tree, child, &path);
        }
        let Some(dir) = dir else {
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
        };
        match self.slot(&dir, node, &shown)? {
            Slot::Skip | Slot::UseDir => return Ok(()),
            Slot::Create => {}
        }
        let key = (node.dev, node.inode);
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
                let (f, n) = fsops::write_file(dir.as_fd(), node, &mut self.reader, &shown, &stop)?;
                fsops::apply_meta_fd(&f, node, self.as_root, &shown, &mut self.summary.warnings)?;
                self.summary.files += 1;
                self.summary.bytes += n;
            }
            NodeKind::File => {
                let task = FileTask {
                    dir,
                    node: node.clone(),
                    shown,
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

    fn dir_meta(&mut self, target: &OwnedFd, comps: &[Vec<u8>], node: &Node) -> Result<()> {
        let shown = shown(comps, b"");
        let mut fd = fsops::open_dir_at(target.as_fd(), b".", &shown)?;
        for c in comps {
            fd = fsops::open_dir_at(fd.as_fd(), c, &shown)?;
        }
        let f = File::from(fd);
        fsops::apply_meta_fd(&f, node, self.as_root, &shown, &mut self.summary.warnings)
    }
}
