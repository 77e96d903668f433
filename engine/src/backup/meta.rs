//! Reading source metadata into tree nodes.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::tree::{Node, NodeKind, Time};

/// Caches uid/gid → name look-ups.
#[derive(Default)]
pub struct Meta {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Meta {
    fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }
    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Builds a node from `lstat` metadata; reads the symlink target and xattrs.
    /// Problems reading those are appended to `warnings`. The xattrs of an entry whose inode and
    /// ctime equal those of `old` (the parent snapshot's node) are taken from `old`: changing an
    /// xattr changes the ctime, so they cannot differ, and listing them costs a syscall per entry.
    pub fn node(
        &mut self,
        name: &[u8],
        path: &Path,
        md: &Metadata,
        old: Option<&Node>,
        warnings: &mut Vec<String>,
    ) -> Option<Node> {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            NodeKind::File
        } else if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_char_device() {
            NodeKind::CharDev
        } else if ft.is_block_device() {
            NodeKind::BlockDev
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_socket() {
            NodeKind::Socket
        } else {
            warnings.push(format!("{}: unknown file type, skipped", path.display()));
            return None;
        };
        let mut n = Node::new(name.to_vec(), kind);
        n.mode = md.mode() & 0o7777;
        n.uid = md.uid();
        n.gid = md.gid();
        n.user = self.user(n.uid);
        n.group = self.group(n.gid);
        n.mtime = Time {
            sec: md.mtime(),
            nsec: md.mtime_nsec() as u32,
        };
        n.ctime = Time {
            sec: md.ctime(),
            nsec: md.ctime_nsec() as u32,
        };
        n.inode = md.ino();
        n.dev = md.dev();
        n.nlink = md.nlink();
        n.size = if kind == NodeKind::File { md.size() } else { 0 };
        if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
            n.rdev = md.rdev();
        }
        if kind == NodeKind::Symlink {
            match std::fs::read_link(path) {
                Ok(t) => n.target = t.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    warnings.push(format!("{}: cannot read symlink: {e}", path.display()));
                    return None;
                }
            }
        }
        n.xattrs = match old {
            Some(o)
                if o.kind == kind && o.inode == n.inode && o.ctime == n.ctime && o.dev == n.dev =>
            {
                o.xattrs.clone()
            }
            _ => read_xattrs(path, warnings),
        };
        Some(n)
    }
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path, warnings: &mut Vec<String>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::ENOENT)) => {
            return Vec::new()
        }
        Err(e) => {
            warnings.push(format!(
                "{}: cannot list extended attributes: {e}",
                path.display()
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(v)) => out.push((name.as_bytes().to_vec(), v)),
            Ok(None) => {}
            Err(e) => warnings.push(format!(
                "{}: cannot read extended attribute {:?}: {e}",
                path.display(),
                name
            )),
        }
    }
    out.sort();
    out
}

/// True when a file can be taken from the parent snapshot without reading it.
pub fn unchanged(old: &Node, new: &Node) -> bool {
    old.kind == NodeKind::File
        && new.kind == NodeKind::File
        && old.size == new.size
        && old.mtime == new.mtime
        && old.ctime == new.ctime
        && old.inode == new.inode
}
