//! Restore worker threads: write file contents and metadata in parallel.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::fsops::{self, Dest};
use super::place::Placement;
use super::FailedEntry;
use crate::error::Error;
use crate::repo::BlobReader;
use crate::tree::Node;

/// One regular file to restore inside an open directory.
pub struct FileTask {
    pub dir: Arc<OwnedFd>,
    pub node: Node,
    pub shown: String,
    /// Prefix of temporary names in `dir`.
    pub prefix: Arc<[u8]>,
    pub placement: Placement,
}

/// Counters and outcomes shared by the workers and the walker.
#[derive(Default)]
pub struct Shared {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub warnings: Mutex<Vec<String>>,
    pub errors: Mutex<Vec<String>>,
    pub failed: Mutex<Vec<FailedEntry>>,
    pub fatal: Mutex<Option<Error>>,
    pub stop: AtomicBool,
}

impl Shared {
    /// Records a file that could not be restored.
    pub fn fail(&self, shown: &str, e: &Error) {
        Shared::push(&self.errors, e.to_string());
        if let Ok(mut g) = self.failed.lock() {
            if g.len() < 1000 {
                g.push(FailedEntry {
                    path: shown.to_owned(),
                    error: e.to_string(),
                });
            }
        }
    }

    pub fn push(v: &Mutex<Vec<String>>, m: String) {
        if let Ok(mut g) = v.lock() {
            if g.len() < 1000 {
                g.push(m);
            }
        }
    }
}

pub fn is_fatal(e: &Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EIO) | Some(libc::EROFS)
    )
}

/// Worker thread body.
pub fn file_worker(
    rx: crossbeam_channel::Receiver<FileTask>,
    shared: &Shared,
    reader: &mut BlobReader,
    as_root: bool,
    cancel: &AtomicBool,
) {
    let stop = || shared.stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed);
    for t in rx {
        if stop() {
            continue;
        }
        let mut warnings = Vec::new();
        let dest = Dest {
            dir: t.dir.as_fd(),
            prefix: &t.prefix,
            placement: t.placement,
            shown: &t.shown,
        };
        let res = fsops::write_file(&dest, &t.node, reader, &stop, as_root, &mut warnings);
        for w in warnings {
            Shared::push(&shared.warnings, w);
        }
        match res {
            Ok(n) => {
                shared.files.fetch_add(1, Ordering::Relaxed);
                shared.bytes.fetch_add(n, Ordering::Relaxed);
            }
            Err(Error::Cancelled) => {}
            Err(e) if is_fatal(&e) => {
                shared.stop.store(true, Ordering::Relaxed);
                if let Ok(mut g) = shared.fatal.lock() {
                    g.get_or_insert(e);
                }
            }
            Err(e) => shared.fail(&t.shown, &e),
        }
    }
}
