//! Reading source metadata into tree nodes.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::sys::stat::FileStat;

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

    /// Builds a node from `lstat` metadata; reads the symlink target (with `read_link`) and
    /// xattrs. Problems reading those are appended to `warnings`. The xattrs of an entry whose
    /// inode and ctime equal those of `old` (the parent snapshot's node) are taken from `old`:
    /// changing an xattr changes the ctime, so they cannot differ, and listing them costs a
    /// syscall per entry.
    pub fn node(
        &mut self,
        name: &[u8],
        path: &Path,
        md: &FileStat,
        read_link: &dyn Fn() -> std::io::Result<Vec<u8>>,
        old: Option<&Node>,
        warnings: &mut Vec<String>,
    ) -> Option<Node> {
        let kind = match md.st_mode & libc::S_IFMT {
            libc::S_IFREG => NodeKind::File,
            libc::S_IFDIR => NodeKind::Dir,
            libc::S_IFLNK => NodeKind::Symlink,
            libc::S_IFCHR => NodeKind::CharDev,
            libc::S_IFBLK => NodeKind::BlockDev,
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFSOCK => NodeKind::Socket,
            _ => {
                warnings.push(format!("{}: unknown file type, skipped", path.display()));
                return None;
            }
        };
        let mut n = Node::new(name.to_vec(), kind);
        n.mode = md.st_mode & 0o7777;
        n.uid = md.st_uid;
        n.gid = md.st_gid;
        n.user = self.user(n.uid);
        n.group = self.group(n.gid);
        n.mtime = Time {
            sec: md.st_mtime,
            nsec: md.st_mtime_nsec as u32,
        };
        n.ctime = Time {
            sec: md.st_ctime,
            nsec: md.st_ctime_nsec as u32,
        };
        n.inode = md.st_ino;
        #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
        {
            // nlink_t and dev_t differ in width between architectures.
            n.nlink = md.st_nlink as u64;
            n.dev = md.st_dev as u64;
        }
        n.size = if kind == NodeKind::File {
            u64::try_from(md.st_size).unwrap_or(0)
        } else {
            0
        };
        if matches!(kind, NodeKind::CharDev | NodeKind::BlockDev) {
            #[allow(clippy::unnecessary_cast)]
            {
                n.rdev = md.st_rdev as u64;
            }
        }
        if kind == NodeKind::Symlink {
            match read_link() {
                Ok(t) => n.target = t,
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
