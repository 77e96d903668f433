//! Directory scanners: threads that list directories and read the metadata of their entries,
//! so that on a cold cache many metadata reads are in flight at once. A scanner opens each
//! directory once and `lstat`s its entries relative to that descriptor (no path walk per entry),
//! loads the parent snapshot's tree of the directory, and decides per entry what the walker must
//! do: reuse an unchanged file, read a file, or descend into a directory.

use std::ffi::{CStr, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use nix::dir::Dir;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};

use super::meta::{self, Meta};
use super::Excludes;
use crate::id::ObjectId;
use crate::index::Index;
use crate::repo::BlobReader;
use crate::store::Store;
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

/// What a directory scan lists: the real directory, or a virtual one.
pub enum Listing {
    Real,
    Virtual(Vec<(Vec<u8>, VEntry)>),
    /// A source given as a symbolic link: the real directory at this resolved path, stored
    /// under the path as given.
    Resolved(PathBuf),
}

/// A directory to scan.
pub struct ScanJob {
    /// The walker's slot for the directory's tree.
    pub slot: usize,
    pub path: PathBuf,
    pub listing: Listing,
    /// The directory's tree in the parent snapshot.
    pub parent_tree: Option<ObjectId>,
    /// Device of the source this directory belongs to (0 above the sources).
    pub dev: u64,
}

/// What the walker does with a scanned entry.
pub enum Action {
    /// Nothing more (symlinks, devices, FIFOs, sockets).
    Keep,
    /// An unchanged file whose content was taken from the parent snapshot.
    Reused,
    /// A file to read; `changed` when the parent snapshot had an entry of that name.
    Read { changed: bool },
    /// A directory on another filesystem with one-file-system: stored as an empty directory.
    MountPoint,
    /// A directory to scan in turn.
    Descend {
        listing: Listing,
        old_tree: Option<ObjectId>,
        dev: u64,
    },
}

pub struct ScannedEntry {
    pub node: Node,
    pub path: PathBuf,
    pub action: Action,
}

/// The result of scanning one directory, entries sorted by name.
pub struct ScannedDir {
    pub slot: usize,
    pub entries: Vec<ScannedEntry>,
    /// Problems that become snapshot warnings (unreadable entries are left out).
    pub warnings: Vec<String>,
}

/// What every scanner shares.
pub struct ScanCtx<'a> {
    pub store: &'a Arc<dyn Store>,
    pub index: &'a Arc<Index>,
    pub excludes: &'a Excludes,
    pub one_file_system: bool,
    /// (device, inode) of the repository directory: left out where a source contains it.
    pub repo_id: Option<(u64, u64)>,
}

/// Scanner thread body: scans directories until the job channel closes.
pub fn scanner(ctx: &ScanCtx<'_>, jobs: Receiver<ScanJob>, out: Sender<ScannedDir>) {
    let mut reader = BlobReader::new(ctx.store.clone(), ctx.index.clone());
    let mut meta = Meta::default();
    for job in jobs {
        let dir = scan(ctx, &mut reader, &mut meta, job);
        if out.send(dir).is_err() {
            return;
        }
    }
}

fn scan(ctx: &ScanCtx<'_>, reader: &mut BlobReader, meta: &mut Meta, job: ScanJob) -> ScannedDir {
    let old = job.parent_tree.and_then(|id| match reader.load_tree(&id) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(
                "parent tree of {} unreadable, reading all files: {e}",
                job.path.display()
            );
            None
        }
    });
    let mut out = ScannedDir {
        slot: job.slot,
        entries: Vec::new(),
        warnings: Vec::new(),
    };
    let mut scan = DirScan {
        ctx,
        meta,
        old: old.as_ref(),
        dev: job.dev,
        out: &mut out,
    };
    match job.listing {
        Listing::Virtual(list) => scan.virtual_entries(list),
        Listing::Real => scan.real_entries(&job.path, &job.path),
        Listing::Resolved(real) => scan.real_entries(&job.path, &real),
    }
    out
}

struct DirScan<'a, 'b> {
    ctx: &'a ScanCtx<'b>,
    meta: &'a mut Meta,
    old: Option<&'a Tree>,
    dev: u64,
    out: &'a mut ScannedDir,
}

impl DirScan<'_, '_> {
    fn warn(&mut self, msg: String) {
        self.out.warnings.push(msg);
    }

    fn virtual_entries(&mut self, list: Vec<(Vec<u8>, VEntry)>) {
        for (name, e) in list {
            let path = match &e {
                VEntry::Source(p) | VEntry::Dir(p, _) => p.clone(),
            };
            let st = match nix::sys::stat::lstat(&path) {
                Ok(st) => st,
                Err(e) => {
                    self.stat_failed(&path, e);
                    continue;
                }
            };
            // A source, or a directory above one, that is a symbolic link is followed (like
            // `cp -H`): the data is stored under the path as given (docs/operations.md).
            // Entries inside a source's tree stay symbolic links.
            let (st, resolved) = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                match follow(&path) {
                    Ok((st, real)) => (st, Some(real)),
                    Err(e) => {
                        self.warn(format!(
                            "{}: cannot follow symbolic link: {e}",
                            path.display()
                        ));
                        continue;
                    }
                }
            } else {
                (st, None)
            };
            let link = || std::fs::read_link(&path).map(|t| t.into_os_string().into_vec());
            self.entry(name, &path, &st, &link, Some(e), resolved);
        }
    }

    /// Lists the directory at `open` (the resolved path of a source given as a symbolic link,
    /// else `path`), naming its entries under `path`.
    fn real_entries(&mut self, path: &Path, open: &Path) {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut dir = match Dir::open(open, flags, Mode::empty()) {
            Ok(d) => d,
            Err(e) => {
                let e = std::io::Error::from(e);
                self.warn(format!("{}: cannot list directory: {e}", path.display()));
                return;
            }
        };
        let mut names = Vec::new();
        for e in dir.iter() {
            match e {
                Ok(e) => {
                    let n = e.file_name();
                    if !matches!(n.to_bytes(), b"." | b"..") {
                        names.push(n.to_owned());
                    }
                }
                Err(e) => {
                    let e = std::io::Error::from(e);
                    self.warn(format!("{}: error listing directory: {e}", path.display()));
                    break;
                }
            }
        }
        names.sort_by(|a, b| a.to_bytes().cmp(b.to_bytes()));
        for name in names {
            let bytes = name.to_bytes();
            let child = path.join(OsStr::from_bytes(bytes));
            if self.ctx.excludes.matches(&child, bytes) {
                continue;
            }
            let st = match nix::sys::stat::fstatat(
                &dir,
                name.as_c_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(e) => {
                    self.stat_failed(&child, e);
                    continue;
                }
            };
            let link = || read_link_at(&dir, &name);
            self.entry(bytes.to_vec(), &child, &st, &link, None, None);
        }
    }

    fn stat_failed(&mut self, path: &Path, e: nix::errno::Errno) {
        if e == nix::errno::Errno::ENOENT {
            self.warn(format!("{}: vanished during backup", path.display()));
        } else {
            let e = std::io::Error::from(e);
            self.warn(format!("{}: cannot stat: {e}", path.display()));
        }
    }

    /// Builds the node of one entry and decides what happens to it.
    fn entry(
        &mut self,
        name: Vec<u8>,
        path: &Path,
        st: &FileStat,
        link: &dyn Fn() -> std::io::Result<Vec<u8>>,
        ventry: Option<VEntry>,
        resolved: Option<PathBuf>,
    ) {
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR
            && self.ctx.repo_id == Some((st.st_dev, st.st_ino))
        {
            self.warn(format!(
                "{}: the target repository itself, left out of the backup",
                path.display()
            ));
            return;
        }
        let old_node = self.old.and_then(|t| t.find(&name));
        let mut warnings = Vec::new();
        let node = self.meta.node(
            &name,
            resolved.as_deref().unwrap_or(path),
            st,
            link,
            old_node,
            &mut warnings,
        );
        self.out.warnings.append(&mut warnings);
        let Some(mut node) = node else { return };
        let mut resolved = resolved;
        let action = match node.kind {
            NodeKind::Dir => {
                let is_source = matches!(ventry, Some(VEntry::Source(_)));
                let dev = if is_source || self.dev == 0 {
                    node.dev
                } else {
                    self.dev
                };
                let crosses = self.ctx.one_file_system
                    && !is_source
                    && ventry.is_none()
                    && node.dev != self.dev;
                if crosses {
                    Action::MountPoint
                } else {
                    Action::Descend {
                        listing: match (ventry, resolved.take()) {
                            (Some(VEntry::Dir(_, c)), _) => Listing::Virtual(c),
                            (_, Some(real)) => Listing::Resolved(real),
                            _ => Listing::Real,
                        },
                        old_tree: old_node
                            .filter(|n| n.kind == NodeKind::Dir)
                            .and_then(|n| n.subtree),
                        dev,
                    }
                }
            }
            NodeKind::File => {
                let reuse = old_node.filter(|o| meta::unchanged(o, &node)).filter(|o| {
                    o.content.iter().all(|c| match c {
                        ContentRef::Chunk { id, .. } => self.ctx.index.contains(id),
                        ContentRef::Hole { .. } => true,
                    })
                });
                match reuse {
                    Some(o) => {
                        node.content = o.content.clone();
                        node.size = o.size;
                        Action::Reused
                    }
                    None => Action::Read {
                        changed: old_node.is_some(),
                    },
                }
            }
            _ => Action::Keep,
        };
        self.out.entries.push(ScannedEntry {
            node,
            // A file source given as a symbolic link is read at its resolved path.
            path: resolved.unwrap_or_else(|| path.to_path_buf()),
            action,
        });
    }
}

/// Resolves a symbolic link to its real path and that path's metadata.
fn follow(path: &Path) -> std::io::Result<(FileStat, PathBuf)> {
    let real = std::fs::canonicalize(path)?;
    let st = nix::sys::stat::lstat(&real).map_err(std::io::Error::from)?;
    Ok((st, real))
}

fn read_link_at(dir: &Dir, name: &CStr) -> std::io::Result<Vec<u8>> {
    nix::fcntl::readlinkat(dir, name)
        .map(|t| t.into_vec())
        .map_err(std::io::Error::from)
}
