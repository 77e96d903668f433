//! Repository locks: lease files under `locks/` with holder host/pid, heartbeat and expiry.
//! Protocol in docs/repository-format.md §"Locks".

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::store::{Kind, LocalStore, Put, Store};

/// How long a lock stays valid without a heartbeat.
pub const LEASE: Duration = Duration::from_secs(300);
/// How often the holder renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(60);

/// What the holder does; decides which locks conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockKind {
    /// Reads (restore, verify): conflicts only with `exclusive`.
    Read,
    /// Adds data (backup): conflicts with `write` and `exclusive`.
    Write,
    /// Marks and condemns (phase 1 of prune): conflicts only with `prune` and `exclusive`, so
    /// backups, copies and restores run beside it.
    Prune,
    /// Removes data (phase 2 of prune, forget): conflicts with everything.
    Exclusive,
}

impl LockKind {
    fn conflicts(self, other: LockKind) -> bool {
        !matches!(
            (self, other),
            (LockKind::Read, LockKind::Read)
                | (LockKind::Read, LockKind::Write)
                | (LockKind::Write, LockKind::Read)
                | (LockKind::Read, LockKind::Prune)
                | (LockKind::Prune, LockKind::Read)
                | (LockKind::Write, LockKind::Prune)
                | (LockKind::Prune, LockKind::Write)
        )
    }
}

/// Content of a lock file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub kind: LockKind,
    pub host: String,
    pub pid: u32,
    /// Start time of the holder process (clock ticks since boot, from /proc), to detect pid reuse.
    pub process_start: Option<u64>,
    pub purpose: String,
    /// Unix seconds.
    pub created: i64,
    pub heartbeat: i64,
    pub expires: i64,
}

impl LockInfo {
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {} on host {}, {} lock, last heartbeat {}s ago)",
            self.purpose,
            self.pid,
            self.host,
            kind_name(self.kind),
            now().saturating_sub(self.heartbeat)
        )
    }
}

fn kind_name(k: LockKind) -> &'static str {
    match k {
        LockKind::Read => "read",
        LockKind::Write => "write",
        LockKind::Prune => "prune",
        LockKind::Exclusive => "exclusive",
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub use crate::fsutil::process_start;

/// Why a lock is stale, or None if its holder may be alive.
fn stale_reason(info: &LockInfo, host: &str) -> Option<String> {
    if info.host == host {
        let alive = match process_start(info.pid) {
            None => false,
            Some(start) => info.process_start.is_none_or(|s| s == start),
        };
        if !alive {
            return Some(format!(
                "its holder, pid {} on this host, no longer exists",
                info.pid
            ));
        }
        return None;
    }
    if now() > info.expires {
        return Some(format!("its lease expired {}s ago", now() - info.expires));
    }
    None
}

/// A held lock; released (file removed) on drop.
pub struct RepoLock {
    store: Arc<dyn Store>,
    name: String,
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    /// Stale locks that were removed while acquiring this one.
    pub recovered: Vec<String>,
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        {
            let (m, c) = &*self.stop;
            if let Ok(mut g) = m.lock() {
                *g = true;
            }
            c.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Err(e) = self.store.delete(Kind::Locks, &self.name) {
            tracing::warn!("cannot release lock {}: {e}", self.name);
            // The lock file stays (an object store that went away): this process knows that it
            // holds the lock no longer, and the next acquire here removes it.
            if let Ok(mut r) = RELEASED.lock() {
                r.insert(self.name.clone());
            }
        }
    }
}

/// Names of locks this process released but could not remove (docs/repository-format.md
/// "Locks"): their holder is alive, but they are stale.
static RELEASED: Mutex<std::collections::BTreeSet<String>> =
    Mutex::new(std::collections::BTreeSet::new());

fn released_here(info: &LockInfo, host: &str, name: &str) -> bool {
    info.host == host
        && info.pid == std::process::id()
        && RELEASED.lock().is_ok_and(|r| r.contains(name))
}

/// Writes a lock file: created exclusively ([`Put::New`]) or replaced by its owner. The store
/// stages it so that no cleanup of temporary files races it (docs/repository-format.md "Locks").
fn write_lock(store: &dyn Store, name: &str, info: &LockInfo, mode: Put) -> Result<bool> {
    let data =
        serde_json::to_vec_pretty(info).map_err(|e| Error::internal("encoding lock file", e))?;
    store.put(Kind::Locks, name, &data, mode)
}

/// What a lock waiter is told: `Some(holder)` when it starts to wait, `None` once it holds the
/// lock after waiting.
pub type WaitObserver = dyn Fn(Option<&LockInfo>);

thread_local! {
    static WAIT_OBSERVER: std::cell::RefCell<Option<Box<WaitObserver>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `observer` told whenever a lock taken on this thread inside `f` has to wait
/// for another holder, and when it is finally taken (the daemon shows "waiting for lock held
/// by …" on the run). Engine operations take their locks on the calling thread.
pub fn observe_waits<T>(observer: Box<WaitObserver>, f: impl FnOnce() -> T) -> T {
    /// Puts the previous observer back, also when `f` panics.
    struct Restore(Option<Box<WaitObserver>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            WAIT_OBSERVER.with(|o| *o.borrow_mut() = previous);
        }
    }
    let _restore = Restore(WAIT_OBSERVER.with(|o| o.replace(Some(observer))));
    f()
}

fn notify_waiting(holder: Option<&LockInfo>) {
    WAIT_OBSERVER.with(|o| {
        if let Some(f) = o.borrow().as_ref() {
            f(holder);
        }
    });
}

/// Acquires a lock of `kind` on the repository directory `repo`, waiting up to `wait` for
/// conflicting live holders.
pub fn acquire(repo: &Path, kind: LockKind, purpose: &str, wait: Duration) -> Result<RepoLock> {
    acquire_cancellable(repo, kind, purpose, wait, &AtomicBool::new(false))
}

/// [`acquire`] whose waiting stops with [`Error::Cancelled`] once `cancel` is set.
pub fn acquire_cancellable(
    repo: &Path,
    kind: LockKind,
    purpose: &str,
    wait: Duration,
    cancel: &AtomicBool,
) -> Result<RepoLock> {
    acquire_in(Arc::new(LocalStore::new(repo)), kind, purpose, wait, cancel)
}

/// Acquires a lock of `kind` in `store`, waiting up to `wait` for conflicting live holders;
/// stops with [`Error::Cancelled`] once `cancel` is set. The first time it has to wait, it
/// logs who holds the repository.
pub fn acquire_in(
    store: Arc<dyn Store>,
    kind: LockKind,
    purpose: &str,
    wait: Duration,
    cancel: &AtomicBool,
) -> Result<RepoLock> {
    let host = fsutil::hostname();
    let pid = std::process::id();
    let name = format!(
        "{}.json",
        fsutil::unique_name(&format!("{}-", kind_name(kind)))
    );
    let mut recovered = Vec::new();
    let removed = store.clean_lock_staging(LEASE);
    if removed > 0 {
        recovered.push(format!(
            "removed {removed} abandoned staged lock file(s) in {}",
            store.locate(Kind::Locks, "").display()
        ));
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut logged = false;
    loop {
        let t = now();
        let info = LockInfo {
            kind,
            host: host.clone(),
            pid,
            process_start: process_start(pid),
            purpose: purpose.to_string(),
            created: t,
            heartbeat: t,
            expires: t + LEASE.as_secs() as i64,
        };
        if !write_lock(&*store, &name, &info, Put::New)? {
            return Err(Error::Internal(format!("lock name {name} is in use")));
        }
        match find_conflict(&*store, &name, kind, &host, &mut recovered)? {
            None => {
                if logged {
                    notify_waiting(None);
                }
                let stop = Arc::new((Mutex::new(false), Condvar::new()));
                let thread = spawn_heartbeat(store.clone(), name.clone(), info, stop.clone());
                return Ok(RepoLock {
                    store,
                    name,
                    stop,
                    thread: Some(thread),
                    recovered,
                });
            }
            Some((other, other_name)) => {
                let _ = store.delete(Kind::Locks, &name);
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                if started.elapsed() >= wait {
                    return Err(Error::Locked {
                        repo: store.location().to_path_buf(),
                        holder: other.describe(),
                        lock_file: store.locate(Kind::Locks, &other_name),
                    });
                }
                // Randomised backoff so that two waiters do not retry in lock-step.
                let jitter = Duration::from_millis(
                    u64::from(fsutil::random_bytes().map(|b| b[0]).unwrap_or(7)) * 2,
                );
                if !logged {
                    logged = true;
                    notify_waiting(Some(&other));
                    tracing::info!(
                        "{purpose}: waiting up to {}s for the lock on {}, held by {}",
                        wait.as_secs(),
                        store.location().display(),
                        other.describe()
                    );
                }
                std::thread::sleep((backoff + jitter).min(wait.saturating_sub(started.elapsed())));
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Returns a live conflicting lock (and its name), removing stale ones on the way.
fn find_conflict(
    store: &dyn Store,
    own: &str,
    kind: LockKind,
    host: &str,
    recovered: &mut Vec<String>,
) -> Result<Option<(LockInfo, String)>> {
    for name in store.list(Kind::Locks)? {
        if name == own {
            continue;
        }
        let info: LockInfo = match store
            .read(Kind::Locks, &name)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
        {
            Some(i) => i,
            None => {
                // Vanished meanwhile (released) or unreadable: only an old unreadable file is removed.
                let old = store
                    .stat(Kind::Locks, &name)
                    .ok()
                    .flatten()
                    .and_then(|m| m.modified)
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > LEASE);
                if old && store.delete(Kind::Locks, &name).unwrap_or(false) {
                    recovered.push(format!(
                        "removed unreadable stale lock {}",
                        store.locate(Kind::Locks, &name).display()
                    ));
                }
                continue;
            }
        };
        if !kind.conflicts(info.kind) {
            continue;
        }
        let why = if released_here(&info, host, &name) {
            Some("this process released it but could not remove it then".to_owned())
        } else {
            stale_reason(&info, host)
        };
        if let Some(why) = why {
            let msg = format!(
                "recovered stale lock {} held by {}: {why}",
                store.locate(Kind::Locks, &name).display(),
                info.describe()
            );
            tracing::warn!("{msg}");
            if store.delete(Kind::Locks, &name).is_ok() {
                if let Ok(mut r) = RELEASED.lock() {
                    r.remove(&name);
                }
            }
            recovered.push(msg);
            continue;
        }
        return Ok(Some((info, name)));
    }
    Ok(None)
}

fn spawn_heartbeat(
    store: Arc<dyn Store>,
    name: String,
    mut info: LockInfo,
    stop: Arc<(Mutex<bool>, Condvar)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let (m, c) = &*stop;
        let Ok(mut stopped) = m.lock() else { return };
        loop {
            if *stopped {
                return;
            }
            let res = c.wait_timeout(stopped, HEARTBEAT);
            let Ok((g, _)) = res else { return };
            stopped = g;
            if *stopped {
                return;
            }
            info.heartbeat = now();
            info.expires = info.heartbeat + LEASE.as_secs() as i64;
            if !matches!(store.stat(Kind::Locks, &name), Ok(Some(_))) {
                tracing::error!("lock file {} was removed by another process; continuing, but a concurrent prune may now run", store.locate(Kind::Locks, &name).display());
            }
            if let Err(e) = write_lock(&*store, &name, &info, Put::Replace) {
                tracing::error!(
                    "cannot renew lock {}: {e}",
                    store.locate(Kind::Locks, &name).display()
                );
            }
        }
    })
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
