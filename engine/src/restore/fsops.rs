//! File-system operations for restore, all relative to directory descriptors and never
//! following symlinks, so that nothing is written outside the target directory.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::error::{Error, Result};
use crate::pack::BlobKind;
use crate::repo::BlobReader;
use crate::tree::{ContentRef, Node, NodeKind};

use super::place::{Placement, Staged};

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn nix_err(op: &'static str, what: &str, e: nix::errno::Errno) -> Error {
    Error::io(op, what, std::io::Error::from_raw_os_error(e as i32))
}

/// Opens the directory `name` inside `dir`, refusing symlinks.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        os(name),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| nix_err("opening restored directory", shown, e))
}

/// `lstat` of `name` inside `dir`; None when it does not exist.
pub fn stat_at(dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(dir, os(name), AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(nix_err("checking", shown, e)),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}
pub fn is_file(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

/// Removes a non-directory entry.
pub fn unlink_at(dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<()> {
    nix::unistd::unlinkat(dir, os(name), nix::unistd::UnlinkatFlags::NoRemoveDir)
        .map_err(|e| nix_err("replacing", shown, e))
}

pub fn mkdir_at(dir: BorrowedFd<'_>, name: &[u8], shown: &str) -> Result<()> {
    nix::sys::stat::mkdirat(dir, os(name), Mode::from_bits_truncate(0o700))
        .map_err(|e| nix_err("creating directory", shown, e))
}

pub fn symlink_at(dir: BorrowedFd<'_>, name: &[u8], target: &[u8], shown: &str) -> Result<()> {
    nix::unistd::symlinkat(os(target), dir, os(name))
        .map_err(|e| nix_err("creating symlink", shown, e))
}

pub fn link_at(
    from_dir: BorrowedFd<'_>,
    from: &[u8],
    dir: BorrowedFd<'_>,
    name: &[u8],
    shown: &str,
) -> Result<()> {
    nix::unistd::linkat(from_dir, os(from), dir, os(name), AtFlags::empty())
        .map_err(|e| nix_err("creating hard link", shown, e))
}

/// Creates a FIFO or device node.
pub fn mknod_at(dir: BorrowedFd<'_>, name: &[u8], node: &Node, shown: &str) -> Result<()> {
    let kind = match node.kind {
        NodeKind::Fifo => SFlag::S_IFIFO,
        NodeKind::CharDev => SFlag::S_IFCHR,
        NodeKind::BlockDev => SFlag::S_IFBLK,
        _ => return Ok(()),
    };
    nix::sys::stat::mknodat(
        dir,
        os(name),
        kind,
        Mode::from_bits_truncate(0o600),
        node.rdev as libc::dev_t,
    )
    .map_err(|e| nix_err("creating special file", shown, e))
}

fn times(node: &Node) -> (TimeSpec, TimeSpec) {
    let m = TimeSpec::new(node.mtime.sec, i64::from(node.mtime.nsec));
    (TimeSpec::UTIME_OMIT, m)
}

/// Applies xattrs, ownership (when root), mode and mtime to an open file or directory.
pub fn apply_meta_fd(
    fd: &File,
    node: &Node,
    as_root: bool,
    shown: &str,
    warnings: &mut Vec<String>,
) -> Result<()> {
    for (k, v) in &node.xattrs {
        if let Err(e) = xattr::FileExt::set_xattr(fd, os(k), v) {
            warnings.push(format!(
                "{shown}: cannot set extended attribute {:?}: {e}",
                String::from_utf8_lossy(k)
            ));
        }
    }
    if as_root {
        nix::unistd::fchown(
            fd.as_fd(),
            Some(Uid::from_raw(node.uid)),
            Some(Gid::from_raw(node.gid)),
        )
        .map_err(|e| nix_err("setting owner of", shown, e))?;
    }
    nix::sys::stat::fchmod(
        fd.as_fd(),
        Mode::from_bits_truncate(node.mode as libc::mode_t),
    )
    .map_err(|e| nix_err("setting mode of", shown, e))?;
    let (a, m) = times(node);
    nix::sys::stat::futimens(fd.as_fd(), &a, &m).map_err(|e| nix_err("setting times of", shown, e))
}

/// Applies ownership (when root), mode (not for symlinks) and mtime by name.
pub fn apply_meta_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    node: &Node,
    as_root: bool,
    shown: &str,
) -> Result<()> {
    if as_root {
        nix::unistd::fchownat(
            dir,
            os(name),
            Some(Uid::from_raw(node.uid)),
            Some(Gid::from_raw(node.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| nix_err("setting owner of", shown, e))?;
    }
    if node.kind != NodeKind::Symlink {
        // The entry was just created by us and is not a symlink, so following is harmless;
        // Linux does not implement AT_SYMLINK_NOFOLLOW for fchmodat.
        nix::sys::stat::fchmodat(
            dir,
            os(name),
            Mode::from_bits_truncate(node.mode as libc::mode_t),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| nix_err("setting mode of", shown, e))?;
    }
    let (a, m) = times(node);
    nix::sys::stat::utimensat(
        dir,
        os(name),
        &a,
        &m,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| nix_err("setting times of", shown, e))
}

/// Where a restored file goes.
pub struct Dest<'a> {
    pub dir: BorrowedFd<'a>,
    /// Prefix of temporary names in `dir` (see `place::temp_prefix`).
    pub prefix: &'a [u8],
    pub placement: Placement,
    pub shown: &'a str,
}

/// Writes a regular file's content (holes stay holes) and metadata under a temporary identity,
/// then puts the complete file in place under its name. On any error, or when `stop` says so,
/// nothing is left and an existing entry of that name is untouched. Returns the bytes written.
pub fn write_file(
    dest: &Dest<'_>,
    node: &Node,
    reader: &mut BlobReader,
    stop: &dyn Fn() -> bool,
    as_root: bool,
    warnings: &mut Vec<String>,
) -> Result<u64> {
    let shown = dest.shown;
    let staged = Staged::create(dest.dir, dest.prefix, shown)?;
    let f = &staged.file;
    f.set_len(node.size)
        .map_err(|e| Error::io("writing", shown, e))?;
    let mut off = 0u64;
    let mut written = 0u64;
    for c in &node.content {
        if stop() {
            return Err(Error::Cancelled);
        }
        match c {
            ContentRef::Chunk { id, len } => {
                let data = reader.read(id, BlobKind::Data).map_err(|e| match e {
                    Error::MissingObject { id, .. } => Error::corrupt(
                        format!("file {shown}"),
                        format!("chunk {id} is missing from the repository"),
                    ),
                    Error::Corrupt { what, detail } => {
                        Error::corrupt(format!("file {shown}"), format!("{what}: {detail}"))
                    }
                    Error::Io {
                        op: "opening pack",
                        path,
                        source,
                    } if source.kind() == std::io::ErrorKind::NotFound => Error::corrupt(
                        format!("file {shown}"),
                        format!(
                            "its data is in pack {}, which is missing from the repository",
                            path.display()
                        ),
                    ),
                    other => other,
                })?;
                if data.len() != *len as usize {
                    return Err(Error::corrupt(
                        format!("file {shown}"),
                        format!("chunk {id} has {} bytes, tree says {len}", data.len()),
                    ));
                }
                f.write_all_at(&data, off)
                    .map_err(|e| Error::io("writing", shown, e))?;
                written += data.len() as u64;
            }
            ContentRef::Hole { .. } => {}
        }
        off += c.len();
    }
    if off != node.size {
        return Err(Error::corrupt(
            format!("file {shown}"),
            format!(
                "its content adds up to {off} bytes, the tree says {}",
                node.size
            ),
        ));
    }
    apply_meta_fd(f, node, as_root, shown, warnings)?;
    if stop() {
        return Err(Error::Cancelled);
    }
    staged.commit(&node.name, dest.placement, shown)?;
    Ok(written)
}
