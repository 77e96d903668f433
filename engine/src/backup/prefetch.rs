//! Warms the kernel's dentry and inode caches ahead of the walker. The walker visits entries one
//! at a time in order, so on a cold cache it waits for one metadata read after another; a few
//! threads listing and `lstat`ing the source trees in parallel keep the disk's queue full, and the
//! walker then finds its metadata cached. The prefetcher follows the walker's rules (excludes,
//! one filesystem), reads no file contents, and stops as soon as the walker is done.

use super::Excludes;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Directories left to list and how many threads are listing one now.
struct Queue {
    dirs: Vec<(PathBuf, u64)>,
    busy: usize,
}

/// Lists and stats the trees under `sources` with `threads` threads until done or `stop`.
pub fn run(
    sources: &[PathBuf],
    excludes: &Excludes,
    one_fs: bool,
    stop: &AtomicBool,
    threads: usize,
) {
    let dirs = sources
        .iter()
        .filter_map(|s| {
            std::fs::symlink_metadata(s)
                .ok()
                .filter(|m| m.is_dir())
                .map(|m| (s.clone(), m.dev()))
        })
        .collect();
    let queue = Mutex::new(Queue { dirs, busy: 0 });
    let cv = Condvar::new();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| worker(&queue, &cv, excludes, one_fs, stop));
        }
    });
}

fn next(queue: &Mutex<Queue>, cv: &Condvar, stop: &AtomicBool) -> Option<(PathBuf, u64)> {
    let mut q = queue.lock().ok()?;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(d) = q.dirs.pop() {
            q.busy += 1;
            return Some(d);
        }
        if q.busy == 0 {
            cv.notify_all();
            return None;
        }
        q = cv.wait_timeout(q, Duration::from_millis(50)).ok()?.0;
    }
}

fn worker(
    queue: &Mutex<Queue>,
    cv: &Condvar,
    excludes: &Excludes,
    one_fs: bool,
    stop: &AtomicBool,
) {
    while let Some((dir, dev)) = next(queue, cv, stop) {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let path = e.path();
                if excludes.matches(&path, e.file_name().as_bytes()) {
                    continue;
                }
                if let Ok(m) = std::fs::symlink_metadata(&path) {
                    if m.is_dir() && (!one_fs || m.dev() == dev) {
                        found.push((path, m.dev()));
                    }
                }
            }
        }
        let Ok(mut q) = queue.lock() else { return };
        q.busy -= 1;
        // Deeper directories last, so the walk order (depth first) is roughly followed.
        found.reverse();
        q.dirs.extend(found);
        cv.notify_all();
    }
}
