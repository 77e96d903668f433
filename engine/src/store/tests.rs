use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::error::ErrorKind;

fn store() -> (tempfile::TempDir, LocalStore) {
    let d = tempfile::tempdir().unwrap();
    let s = LocalStore::create_layout(d.path(), false).unwrap();
    (d, s)
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

const ID: &str = "ab00000000000000000000000000000000000000000000000000000000000001";

#[test]
fn objects_are_written_once_privately_and_listed_by_kind() {
    let (d, s) = store();
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o002));
    assert!(s.put(Kind::Snapshots, ID, b"one", Put::New).unwrap());
    assert!(!s.put(Kind::Snapshots, ID, b"two", Put::New).unwrap());
    let mut w = s.create(Kind::Packs).unwrap();
    w.write_all(b"pack data").unwrap();
    w.commit(ID).unwrap();
    nix::sys::stat::umask(old);
    assert_eq!(s.read(Kind::Snapshots, ID).unwrap(), b"one");
    let pack = d.path().join("packs/ab").join(ID);
    assert_eq!(std::fs::read(&pack).unwrap(), b"pack data");
    assert_eq!(mode(&pack), 0o600);
    assert_eq!(mode(&d.path().join("snapshots").join(ID)), 0o600);
    assert_eq!(mode(&d.path().join("packs/ab")), 0o700);
    assert_eq!(s.list(Kind::Packs).unwrap(), [ID]);
    assert_eq!(s.list(Kind::Snapshots).unwrap(), [ID]);
    assert!(s.list(Kind::Index).unwrap().is_empty());
    // Replace keeps one object; nothing is left in tmp/.
    assert!(s.put(Kind::Snapshots, ID, b"three", Put::Replace).unwrap());
    assert_eq!(s.read(Kind::Snapshots, ID).unwrap(), b"three");
    assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
    let r = s.open(Kind::Packs, ID).unwrap();
    let mut buf = [0u8; 4];
    r.read_exact_at(&mut buf, 5).unwrap();
    assert_eq!(&buf, b"data");
    assert_eq!(r.size().unwrap(), 9);
    assert!(r.read_exact_at(&mut buf, 7).is_err());
    assert_eq!(s.stat(Kind::Packs, ID).unwrap().unwrap().size, 9);
    assert!(s.delete(Kind::Packs, ID).unwrap());
    assert!(!s.delete(Kind::Packs, ID).unwrap());
    assert_eq!(s.stat(Kind::Packs, ID).unwrap(), None);
    let e = s.read(Kind::Packs, ID).unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

#[test]
fn an_aborted_or_uncommitted_stream_leaves_no_object() {
    let (d, s) = store();
    let mut w = s.create(Kind::Packs).unwrap();
    w.write_all(b"partial").unwrap();
    w.abort();
    assert!(s.list(Kind::Packs).unwrap().is_empty());
    assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn lock_writes_are_staged_in_locks_and_listing_ignores_them() {
    let (d, s) = store();
    assert!(s.put(Kind::Locks, "write-1.json", b"{}", Put::New).unwrap());
    assert!(!s.put(Kind::Locks, "write-1.json", b"{}", Put::New).unwrap());
    assert!(s
        .put(Kind::Locks, "write-1.json", b"{ }", Put::Replace)
        .unwrap());
    let (_f, staged) =
        crate::fsutil::create_temp(&d.path().join("locks"), LOCK_STAGE_PREFIX).unwrap();
    assert_eq!(s.list(Kind::Locks).unwrap(), ["write-1.json"]);
    // A live writer's staged file is never cleaned up.
    assert_eq!(s.clean_lock_staging(Duration::ZERO), 0);
    assert!(staged.exists());
    assert_eq!(std::fs::read_dir(d.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn names_that_leave_the_layout_are_refused() {
    let (_d, s) = store();
    for bad in ["", ".", "..", "a/b", "../config"] {
        let e = s.put(Kind::Index, bad, b"x", Put::New).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Internal, "{bad:?}: {e}");
    }
    assert!(s.read(Kind::Config, "other").is_err());
}

/// Sealing needs root (CAP_LINUX_IMMUTABLE) on a filesystem with the attribute (the test's
/// temp dir); not root, only the refusals are checked.
#[test]
fn seal_blocks_removal_until_unsealed_and_reports_the_date() {
    let (_d, s) = store();
    s.put(Kind::Snapshots, ID, b"x", Put::New).unwrap();
    assert_eq!(s.sealed_until(Kind::Snapshots, ID).unwrap(), None);
    assert!(s.seal(Kind::Locks, "l.json", SystemTime::now()).is_err());
    assert!(s.seal(Kind::Config, CONFIG, SystemTime::now()).is_err());
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let until = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    assert_eq!(s.seal(Kind::Snapshots, ID, until).unwrap(), Seal::Sealed);
    assert_eq!(s.sealed_until(Kind::Snapshots, ID).unwrap(), Some(until));
    assert_eq!(s.seal_intact(Kind::Snapshots, ID).unwrap(), Some(true));
    let e = s.delete(Kind::Snapshots, ID).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Immutable, "{e}");
    assert!(e.to_string().contains("2033-05-18T03:33:20Z"), "{e}");
    assert!(s.put(Kind::Snapshots, ID, b"y", Put::Replace).is_err());
    assert!(s.unseal(Kind::Snapshots, ID).unwrap());
    assert_eq!(s.seal_intact(Kind::Snapshots, ID).unwrap(), Some(false));
    assert_eq!(s.sealed_until(Kind::Snapshots, ID).unwrap(), None);
    assert!(s.delete(Kind::Snapshots, ID).unwrap());
}

#[test]
fn check_finds_a_missing_directory() {
    let (d, s) = store();
    s.check().unwrap();
    std::fs::remove_dir(d.path().join("keys")).unwrap();
    assert_eq!(s.check().unwrap_err().kind(), ErrorKind::Corrupt);
}

#[test]
fn fault_store_triggers_count_per_rule() {
    let (_d, s) = store();
    let f = FaultStore::new(Arc::new(s));
    f.inject(Rule {
        kind: Some(Kind::Index),
        op: Op::Put,
        trigger: Trigger::Nth(2),
        fault: Fault::NoSpace,
    });
    let put = |n: &str| f.put(Kind::Index, n, b"x", Put::New);
    assert!(put(ID).is_ok());
    let e = put("cd00000000000000000000000000000000000000000000000000000000000002").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoSpace);
    assert!(put("ef00000000000000000000000000000000000000000000000000000000000003").is_ok());
    // Other kinds are not affected, and calls are counted.
    assert!(f.put(Kind::Snapshots, ID, b"x", Put::New).is_ok());
    assert_eq!(f.calls(Kind::Index, Op::Put), 3);
    assert_eq!(f.fired(), 1);
    assert_eq!(f.list(Kind::Index).unwrap().len(), 2);
}

#[test]
fn a_torn_put_leaves_only_a_temp_file() {
    let (d, s) = store();
    let f = FaultStore::new(Arc::new(s));
    f.inject(Rule {
        kind: None,
        op: Op::Put,
        trigger: Trigger::Always,
        fault: Fault::Torn,
    });
    let e = f
        .put(Kind::Snapshots, ID, b"0123456789", Put::New)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(f.list(Kind::Snapshots).unwrap().is_empty());
    let tmp: Vec<_> = std::fs::read_dir(d.path().join("tmp")).unwrap().collect();
    assert_eq!(tmp.len(), 1);
    let data = std::fs::read(tmp[0].as_ref().unwrap().path()).unwrap();
    assert_eq!(data, b"01234");
}

#[test]
fn random_triggers_repeat_with_their_seed() {
    let pattern = |seed| {
        let (_d, s) = store();
        let f = FaultStore::new(Arc::new(s));
        f.inject(Rule {
            kind: Some(Kind::Index),
            op: Op::Stat,
            trigger: Trigger::Random { seed, one_in: 3 },
            fault: Fault::Eio,
        });
        (0..64)
            .map(|_| f.stat(Kind::Index, ID).is_err())
            .collect::<Vec<_>>()
    };
    assert_eq!(pattern(1), pattern(1));
    assert_ne!(pattern(1), pattern(2));
    let hits = pattern(1).iter().filter(|h| **h).count();
    assert!((5..=40).contains(&hits), "{hits}");
}
