//! Restored files are written under a temporary identity and get their real name only when they
//! are complete and verified (docs/operations.md, "Restores"): a file that cannot be restored
//! never appears half-written, and an existing file it would replace is kept as it was.
//!
//! Where the file system supports it the file is an unnamed `O_TMPFILE`, so nothing is left
//! behind even if the process is killed. Otherwise it is a named temporary file whose name starts
//! with a prefix that no entry of the snapshot directory starts with ([`temp_prefix`]), removed
//! again on any error or cancel.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use crate::error::{Error, Result};
use crate::tree::Node;

/// Whether the restored file takes a free name or replaces an existing non-directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    New,
    Replace,
}

const BASE: &str = ".bms-restore-";

/// A name prefix that no entry of this snapshot directory starts with, so temporary names can
/// never collide with an entry being restored.
pub fn temp_prefix(nodes: &[Node]) -> Vec<u8> {
    prefix_avoiding(nodes.iter().map(|n| n.name.as_slice()))
}

fn prefix_avoiding<'n>(names: impl Iterator<Item = &'n [u8]> + Clone) -> Vec<u8> {
    let mut k = 0u32;
    loop {
        let p = if k == 0 {
            BASE.as_bytes().to_vec()
        } else {
            format!("{BASE}{k}-").into_bytes()
        };
        if !names.clone().any(|n| n.starts_with(&p)) {
            return p;
        }
        k += 1;
    }
}

fn unique(prefix: &[u8]) -> Vec<u8> {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut v = prefix.to_vec();
    v.extend_from_slice(
        format!(
            "{}.{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
        .as_bytes(),
    );
    v
}

fn os(name: &[u8]) -> &OsStr {
    OsStr::from_bytes(name)
}

fn nix_err(op: &'static str, what: &str, e: Errno) -> Error {
    Error::io(op, what, std::io::Error::from_raw_os_error(e as i32))
}

/// A file being restored. Dropping it before [`Staged::commit`] removes every trace of it.
pub struct Staged<'a> {
    dir: BorrowedFd<'a>,
    pub file: File,
    prefix: &'a [u8],
    /// The temporary name, when the file has one (no `O_TMPFILE` support).
    temp: Option<Vec<u8>>,
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = nix::unistd::unlinkat(self.dir, os(&t), UnlinkatFlags::NoRemoveDir);
        }
    }
}

impl<'a> Staged<'a> {
    /// Creates the file (mode 0600) in `dir`.
    pub fn create(dir: BorrowedFd<'a>, prefix: &'a [u8], shown: &str) -> Result<Staged<'a>> {
        let mode = Mode::from_bits_truncate(0o600);
        match nix::fcntl::openat(
            dir,
            ".",
            OFlag::O_TMPFILE | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            mode,
        ) {
            Ok(fd) => {
                return Ok(Staged {
                    dir,
                    file: File::from(fd),
                    prefix,
                    temp: None,
                });
            }
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL | Errno::ENOENT) => {}
            Err(e) => return Err(nix_err("creating file", shown, e)),
        }
        Staged::create_named(dir, prefix, shown)
    }

    /// Creates a named temporary file (where `O_TMPFILE` is not supported).
    fn create_named(dir: BorrowedFd<'a>, prefix: &'a [u8], shown: &str) -> Result<Staged<'a>> {
        let mode = Mode::from_bits_truncate(0o600);
        for _ in 0..100 {
            let name = unique(prefix);
            match nix::fcntl::openat(
                dir,
                os(&name),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                mode,
            ) {
                Ok(fd) => {
                    return Ok(Staged {
                        dir,
                        file: File::from(fd),
                        prefix,
                        temp: Some(name),
                    });
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(nix_err("creating file", shown, e)),
            }
        }
        Err(Error::io(
            "creating file",
            shown,
            std::io::Error::from_raw_os_error(libc::EEXIST),
        ))
    }

    /// Gives an unnamed file the name `name` (fails with EEXIST when it is taken).
    fn link_unnamed(&self, name: &[u8]) -> std::result::Result<(), Errno> {
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        match nix::unistd::linkat(
            self.dir,
            proc_path.as_str(),
            self.dir,
            os(name),
            AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Err(Errno::ENOENT) => nix::unistd::linkat(
                self.file.as_fd(),
                "",
                self.dir,
                os(name),
                AtFlags::AT_EMPTY_PATH,
            ),
            r => r,
        }
    }

    /// Puts the complete file in place under `name`.
    pub fn commit(mut self, name: &[u8], placement: Placement, shown: &str) -> Result<()> {
        let taken = || {
            Error::io(
                "placing restored file",
                shown,
                std::io::Error::other(
                    "an entry of that name appeared in the target during the restore; it was kept",
                ),
            )
        };
        if self.temp.is_none() {
            if placement == Placement::New {
                return match self.link_unnamed(name) {
                    Ok(()) => Ok(()),
                    Err(Errno::EEXIST) => Err(taken()),
                    Err(e) => Err(nix_err("placing restored file", shown, e)),
                };
            }
            // Replacing: name it, then rename it over the old entry in one step.
            let mut named = None;
            for _ in 0..100 {
                let t = unique(self.prefix);
                match self.link_unnamed(&t) {
                    Ok(()) => {
                        named = Some(t);
                        break;
                    }
                    Err(Errno::EEXIST) => continue,
                    Err(e) => return Err(nix_err("placing restored file", shown, e)),
                }
            }
            self.temp = Some(named.ok_or_else(taken)?);
        }
        let Some(t) = self.temp.clone() else {
            return Err(taken());
        };
        let flags = match placement {
            Placement::New => RenameFlags::RENAME_NOREPLACE,
            Placement::Replace => RenameFlags::empty(),
        };
        match nix::fcntl::renameat2(self.dir, os(&t), self.dir, os(name), flags) {
            Ok(()) => {
                self.temp = None;
                Ok(())
            }
            Err(Errno::EEXIST) => Err(taken()),
            Err(Errno::EINVAL) if placement == Placement::New => {
                // No RENAME_NOREPLACE on this file system: a hard link refuses a taken name.
                match nix::unistd::linkat(self.dir, os(&t), self.dir, os(name), AtFlags::empty()) {
                    Ok(()) => Ok(()),
                    Err(Errno::EEXIST) => Err(taken()),
                    Err(e) => Err(nix_err("placing restored file", shown, e)),
                }
            }
            Err(e) => Err(nix_err("placing restored file", shown, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;
    use std::os::fd::OwnedFd;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn named_temporary_files_are_placed_or_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OwnedFd::from(File::open(tmp.path()).unwrap());
        let prefix = BASE.as_bytes();
        // Dropped before commit (an error or a cancel): nothing is left.
        let mut s = Staged::create_named(dir.as_fd(), prefix, "/x").unwrap();
        s.file.write_all(b"partial").unwrap();
        assert_eq!(names(tmp.path()).len(), 1);
        drop(s);
        assert!(names(tmp.path()).is_empty());
        // New: placed under its name; a taken name is refused and the entry kept.
        let mut s = Staged::create_named(dir.as_fd(), prefix, "/x").unwrap();
        s.file.write_all(b"one").unwrap();
        s.commit(b"x", Placement::New, "/x").unwrap();
        let mut s = Staged::create_named(dir.as_fd(), prefix, "/x").unwrap();
        s.file.write_all(b"two").unwrap();
        assert!(s.commit(b"x", Placement::New, "/x").is_err());
        assert_eq!(std::fs::read(tmp.path().join("x")).unwrap(), b"one");
        assert_eq!(names(tmp.path()), ["x"]);
        // Replace: renamed over the old entry.
        let mut s = Staged::create_named(dir.as_fd(), prefix, "/x").unwrap();
        s.file.write_all(b"three").unwrap();
        s.commit(b"x", Placement::Replace, "/x").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("x")).unwrap(), b"three");
        assert_eq!(names(tmp.path()), ["x"]);
    }

    #[test]
    fn unnamed_files_get_their_name_only_on_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OwnedFd::from(File::open(tmp.path()).unwrap());
        let mut s = Staged::create(dir.as_fd(), BASE.as_bytes(), "/y").unwrap();
        s.file.write_all(b"data").unwrap();
        drop(s);
        assert!(names(tmp.path()).is_empty());
        std::fs::write(tmp.path().join("y"), b"old").unwrap();
        let mut s = Staged::create(dir.as_fd(), BASE.as_bytes(), "/y").unwrap();
        s.file.write_all(b"new").unwrap();
        s.commit(b"y", Placement::Replace, "/y").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("y")).unwrap(), b"new");
        assert_eq!(names(tmp.path()), ["y"]);
    }

    #[test]
    fn the_temporary_prefix_is_no_prefix_of_an_entry() {
        let one: [&[u8]; 1] = [b"a"];
        assert_eq!(prefix_avoiding(one.into_iter()), BASE.as_bytes());
        let names: [&[u8]; 3] = [b".bms-restore-1.2", b".bms-restore-1-", b".bms-restore-2-x"];
        let p = prefix_avoiding(names.into_iter());
        assert!(names.iter().all(|n| !n.starts_with(&p)), "{p:?}");
    }
}
