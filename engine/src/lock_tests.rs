//! Tests of the repository locks (lock.rs).

use super::*;
const STAGE_PREFIX: &str = crate::store::LOCK_STAGE_PREFIX;

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("locks")).unwrap();
    std::fs::create_dir(d.path().join("tmp")).unwrap();
    d
}

#[test]
fn conflicts_and_release() {
    let d = repo();
    let a = acquire(d.path(), LockKind::Write, "backup A", Duration::ZERO).unwrap();
    let r = acquire(d.path(), LockKind::Read, "restore", Duration::ZERO).unwrap();
    let err = acquire(
        d.path(),
        LockKind::Write,
        "backup B",
        Duration::from_millis(200),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("backup A"), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    drop(a);
    drop(r);
    let _b = acquire(d.path(), LockKind::Exclusive, "prune", Duration::ZERO).unwrap();
}

#[test]
fn lock_files_are_staged_in_locks_not_tmp() {
    // No tmp/ at all: a writer emptying tmp/ cannot touch a contender's staged lock file.
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("locks")).unwrap();
    let host = fsutil::hostname();
    // A staged file of a dead writer is removed; one of a live writer is kept (and ignored).
    let (_f, live) = fsutil::create_temp(&d.path().join("locks"), STAGE_PREFIX).unwrap();
    let name = live.file_name().unwrap().to_str().unwrap().to_owned();
    let (head, _) = name.split_once('.').unwrap();
    let dead = d
        .path()
        .join("locks")
        .join(format!("{head}.{}.1.00000000000000ff", 0x7fff_fff0u32));
    std::fs::write(&dead, b"{").unwrap();
    let l = acquire(d.path(), LockKind::Write, "backup", Duration::ZERO).unwrap();
    assert!(
        !dead.exists(),
        "abandoned staged file of a dead writer on {host}"
    );
    assert!(live.exists());
    assert!(!d.path().join("tmp").exists());
    let locks: Vec<_> = std::fs::read_dir(d.path().join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    drop(l);
}

#[test]
fn stale_locks_are_recovered() {
    let d = repo();
    let t = now();
    // A dead process on this host.
    let dead = LockInfo {
        kind: LockKind::Write,
        host: fsutil::hostname(),
        pid: 0x7fff_fff0,
        process_start: Some(1),
        purpose: "old".into(),
        created: t,
        heartbeat: t,
        expires: t + 300,
    };
    std::fs::write(
        d.path().join("locks/write-dead.json"),
        serde_json::to_vec(&dead).unwrap(),
    )
    .unwrap();
    // An expired lease on another host.
    let expired = LockInfo {
        host: "elsewhere".into(),
        pid: 1,
        expires: t - 10,
        ..dead.clone()
    };
    std::fs::write(
        d.path().join("locks/write-exp.json"),
        serde_json::to_vec(&expired).unwrap(),
    )
    .unwrap();
    let l = acquire(d.path(), LockKind::Write, "new", Duration::ZERO).unwrap();
    assert_eq!(l.recovered.len(), 2, "{:?}", l.recovered);
    drop(l);
    // A live lease on another host blocks.
    let live = LockInfo {
        host: "elsewhere".into(),
        pid: 1,
        expires: t + 300,
        ..dead
    };
    std::fs::write(
        d.path().join("locks/write-live.json"),
        serde_json::to_vec(&live).unwrap(),
    )
    .unwrap();
    let err = acquire(d.path(), LockKind::Write, "new", Duration::ZERO)
        .err()
        .unwrap();
    assert!(err.to_string().contains("elsewhere"), "{err}");
}

/// A directory store whose deletes fail while `gone` is set (an endpoint that went away).
#[derive(Debug)]
struct Flaky {
    inner: LocalStore,
    gone: AtomicBool,
}

impl Store for Flaky {
    fn location(&self) -> &Path {
        self.inner.location()
    }
    fn locate(&self, k: Kind, n: &str) -> std::path::PathBuf {
        self.inner.locate(k, n)
    }
    fn check(&self) -> Result<()> {
        self.inner.check()
    }
    fn list(&self, k: Kind) -> Result<Vec<String>> {
        self.inner.list(k)
    }
    fn read(&self, k: Kind, n: &str) -> Result<Vec<u8>> {
        self.inner.read(k, n)
    }
    fn open(&self, k: Kind, n: &str) -> Result<Box<dyn crate::store::ObjectReader>> {
        self.inner.open(k, n)
    }
    fn stat(&self, k: Kind, n: &str) -> Result<Option<crate::store::ObjectStat>> {
        self.inner.stat(k, n)
    }
    fn put(&self, k: Kind, n: &str, d: &[u8], m: Put) -> Result<bool> {
        self.inner.put(k, n, d, m)
    }
    fn create(&self, k: Kind) -> Result<Box<dyn crate::store::ObjectWriter>> {
        self.inner.create(k)
    }
    fn delete(&self, k: Kind, n: &str) -> Result<bool> {
        if self.gone.load(Ordering::SeqCst) {
            let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "gone");
            return Err(Error::io("removing", self.locate(k, n), e));
        }
        self.inner.delete(k, n)
    }
    fn seal(&self, k: Kind, n: &str, u: SystemTime) -> Result<crate::store::Seal> {
        self.inner.seal(k, n, u)
    }
    fn clean_tmp(&self, a: Duration) -> usize {
        self.inner.clean_tmp(a)
    }
    fn clean_lock_staging(&self, a: Duration) -> usize {
        self.inner.clean_lock_staging(a)
    }
}

#[test]
fn a_lock_released_but_not_removed_is_stale_for_its_own_process() {
    let d = repo();
    let store = Arc::new(Flaky {
        inner: LocalStore::new(d.path()),
        gone: AtomicBool::new(false),
    });
    let no = AtomicBool::new(false);
    let a = acquire_in(store.clone(), LockKind::Write, "A", Duration::ZERO, &no).unwrap();
    store.gone.store(true, Ordering::SeqCst);
    drop(a);
    store.gone.store(false, Ordering::SeqCst);
    assert_eq!(
        store.list(Kind::Locks).unwrap().len(),
        1,
        "the lock file stayed"
    );
    let b = acquire_in(store.clone(), LockKind::Write, "B", Duration::ZERO, &no).unwrap();
    assert!(
        b.recovered.iter().any(|r| r.contains("could not remove")),
        "{:?}",
        b.recovered
    );
    drop(b);
    assert!(store.list(Kind::Locks).unwrap().is_empty());
}
