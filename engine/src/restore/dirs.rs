//! Existing and new directories during a restore: the overwrite policy's decision for each
//! entry, directory creation, and the directories' metadata at the end (docs/operations.md,
//! "Restores").

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use super::{fsops, shown, Overwrite, Restorer, Slot};
use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind};

impl Restorer<'_> {
    /// Decides what to do with an existing entry of the same name. Only removes an entry (a
    /// non-directory in the way of a directory, with `always`) outside a dry run.
    pub(super) fn slot(&mut self, dir: &OwnedFd, node: &Node, shown: &str) -> Result<Slot> {
        let Some(st) = fsops::stat_at(dir.as_fd(), &node.name, shown)? else {
            return Ok(Slot::Create);
        };
        if node.kind == NodeKind::Dir {
            if fsops::is_dir(&st) {
                return Ok(Slot::UseDir);
            }
            if self.opts.overwrite == Overwrite::Always {
                if !self.opts.dry_run {
                    fsops::unlink_at(dir.as_fd(), &node.name, shown)?;
                }
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
        Ok(Slot::Replace)
    }

    /// Creates (or reuses) a directory and returns its descriptor: None in a dry run when it
    /// does not exist yet. A directory the restore creates gets the snapshot's metadata at the
    /// end; an existing one only when the policy is not `never` and it is not an `ancestor`
    /// of a selected path. A directory that cannot be used is reported as `Ok(Err(()))`.
    pub(super) fn enter_dir(
        &mut self,
        node: &Node,
        dir: Option<Arc<OwnedFd>>,
        comps: &[Vec<u8>],
        ancestor: bool,
    ) -> Result<std::result::Result<Option<Arc<OwnedFd>>, ()>> {
        let shown = shown(comps, &node.name);
        let mut path = comps.to_vec();
        path.push(node.name.clone());
        self.summary.dirs += 1;
        let Some(dir) = dir else { return Ok(Ok(None)) };
        let created = match self.slot(&dir, node, &shown)? {
            Slot::Skip => return Ok(Err(())),
            Slot::Create | Slot::Replace => {
                if self.opts.dry_run {
                    return Ok(Ok(None));
                }
                fsops::mkdir_at(dir.as_fd(), &node.name, &shown)?;
                true
            }
            Slot::UseDir => false,
        };
        let fd = fsops::open_dir_at(dir.as_fd(), &node.name, &shown)?;
        if self.opts.dry_run {
        } else if created || (!ancestor && self.opts.overwrite != Overwrite::Never) {
            self.dirs.push((path, node.clone()));
        } else {
            let st = nix::sys::stat::fstat(fd.as_fd())
                .map_err(|e| Error::io("checking", &shown, std::io::Error::from(e)))?;
            self.keep.push((path, (st.st_mtime, st.st_mtime_nsec)));
        }
        Ok(Ok(Some(Arc::new(fd))))
    }

    pub(super) fn dir_meta(
        &mut self,
        target: &OwnedFd,
        comps: &[Vec<u8>],
        node: &Node,
    ) -> Result<()> {
        let shown = shown(comps, b"");
        let mut fd = fsops::open_dir_at(target.as_fd(), b".", &shown)?;
        for c in comps {
            fd = fsops::open_dir_at(fd.as_fd(), c, &shown)?;
        }
        let f = File::from(fd);
        fsops::apply_meta_fd(&f, node, self.as_root, &shown, &mut self.summary.warnings)
    }
}

/// Sets an existing directory's mtime back to what it was before the restore added entries.
pub(super) fn keep_mtime(
    target: &OwnedFd,
    comps: &[Vec<u8>],
    (sec, nsec): (i64, i64),
) -> Result<()> {
    let shown = shown(comps, b"");
    let mut fd = fsops::open_dir_at(target.as_fd(), b".", &shown)?;
    for c in comps {
        fd = fsops::open_dir_at(fd.as_fd(), c, &shown)?;
    }
    let io =
        |e: nix::errno::Errno| Error::io("keeping the times of", &shown, std::io::Error::from(e));
    let st = nix::sys::stat::fstat(fd.as_fd()).map_err(io)?;
    if (st.st_mtime, st.st_mtime_nsec) == (sec, nsec) {
        return Ok(());
    }
    let m = nix::sys::time::TimeSpec::new(sec, nsec);
    nix::sys::stat::futimens(fd.as_fd(), &nix::sys::time::TimeSpec::UTIME_OMIT, &m).map_err(io)
}
