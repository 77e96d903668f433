//! The engine through a FaultStore (docs/architecture.md "Storage seam"): a backup that hits
//! ENOSPC, EIO or a torn write at a pack, index or snapshot write fails cleanly (an error, no
//! snapshot), the repository then verifies clean, and the next run succeeds and reuses what
//! was written. Restore and verify report read faults instead of hiding them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bms_engine::store::{Fault, FaultStore, Kind, LocalStore, Op, Rule, Store, Trigger};
use bms_engine::{
    BackupOptions, BackupSummary, ErrorKind, Repository, RestoreOptions, VerifyOptions,
};
use common::*;

/// About 2.6 MB of incompressible data in several files: three packs of 1 MiB.
fn make_source(root: &Path) {
    fs::create_dir_all(root.join("d/e")).unwrap();
    for i in 0..4u64 {
        fs::write(root.join(format!("d/f{i}")), pseudo_random(600_000, 11 + i)).unwrap();
    }
    fs::write(root.join("d/e/g"), pseudo_random(200_000, 3)).unwrap();
    fs::write(root.join("small"), b"hello\n").unwrap();
}

fn opts(src: &Path) -> BackupOptions {
    BackupOptions {
        sources: vec![src.to_path_buf()],
        job: "faults".into(),
        host: "h".into(),
        ..Default::default()
    }
}

fn run_backup(repo: &Repository, src: &Path) -> bms_engine::Result<BackupSummary> {
    repo.backup(&opts(src), &|_| {}, &AtomicBool::new(false))
}

/// A new repository in `dir`, opened through a FaultStore over its LocalStore.
fn faulty_repo(dir: &Path) -> (FaultStore, Repository) {
    small_repo(dir);
    let fault = FaultStore::new(Arc::new(LocalStore::new(dir)));
    let repo = Repository::open_store(Arc::new(fault.clone())).unwrap();
    (fault, repo)
}

fn verify_clean(dir: &Path) {
    let repo = Repository::open(dir).unwrap();
    let rep = repo
        .verify(
            &VerifyOptions {
                read_data: true,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
    assert!(rep.ok, "{:?}", rep.problems);
}

/// The write operations a backup makes, as (kind, op) of the store.
const POINTS: [(Kind, Op); 3] = [
    (Kind::Packs, Op::Stream),
    (Kind::Index, Op::Put),
    (Kind::Snapshots, Op::Put),
];
const FAULTS: [Fault; 3] = [Fault::NoSpace, Fault::Eio, Fault::Torn];

/// How many calls of each write point a clean backup of the source makes.
fn calls_of_clean_run(tmp: &Path, src: &Path) -> (Vec<u64>, BackupSummary) {
    let (fault, repo) = faulty_repo(&tmp.join("probe"));
    let s = run_backup(&repo, src).unwrap();
    let calls = POINTS.iter().map(|(k, o)| fault.calls(*k, *o)).collect();
    (calls, s)
}

/// One injection at the `nth` call of `point`; checks the failure, the repository and the
/// next run. Returns whether the fault fired.
fn inject_and_recover(dir: &Path, src: &Path, point: (Kind, Op), nth: u64, f: Fault) -> bool {
    let (fault, repo) = faulty_repo(dir);
    fault.inject(Rule {
        kind: Some(point.0),
        op: point.1,
        trigger: Trigger::Nth(nth),
        fault: f,
    });
    let res = run_backup(&repo, src);
    let what = format!("{f:?} at call {nth} of {point:?}");
    if fault.fired() == 0 {
        // The run made fewer calls than `nth` (pack boundaries vary slightly): nothing failed.
        res.unwrap_or_else(|e| panic!("{what} did not fire, yet the backup failed: {e}"));
        return false;
    }
    let err = match res {
        Ok(s) => panic!("{what}: backup succeeded with snapshot {}", s.snapshot_id),
        Err(e) => e,
    };
    let want = if f == Fault::NoSpace {
        ErrorKind::NoSpace
    } else {
        ErrorKind::Io
    };
    assert_eq!(err.kind(), want, "{what}: {err}");
    assert!(err.to_string().contains("injected fault"), "{what}: {err}");
    let plain = Repository::open(dir).unwrap();
    assert!(
        plain.snapshots().unwrap().is_empty(),
        "{what}: a snapshot was written"
    );
    let packs_left = LocalStore::new(dir).list(Kind::Packs).unwrap().len();
    verify_clean(dir);

    // The next run, without faults, succeeds and reuses the packs that were made durable.
    let again = run_backup(&plain, src).unwrap_or_else(|e| panic!("{what}: next run: {e}"));
    assert!(!again.partial, "{what}: {:?}", again.warnings);
    if point.0 != Kind::Packs {
        // Every pack was written before the index and the snapshot: no file data is stored
        // again (only the trees of ancestor directories whose mtime changed meanwhile, such
        // as /tmp, may be new).
        assert!(
            again.bytes_added < 16_384,
            "{what}: {} bytes stored again",
            again.bytes_added
        );
    } else if packs_left > 0 {
        assert!(
            again.chunks_new < again.chunks_total,
            "{what}: {packs_left} durable pack(s) but nothing reused"
        );
    }
    assert_eq!(plain.snapshots().unwrap().len(), 1, "{what}");
    verify_clean(dir);
    true
}

#[test]
fn each_fault_at_each_write_point_fails_cleanly_and_the_next_run_reuses_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    let (calls, clean) = calls_of_clean_run(tmp.path(), &src);
    assert!(clean.packs_written >= 2, "{clean:?}");
    for (i, point) in POINTS.iter().enumerate() {
        for (j, f) in FAULTS.iter().enumerate() {
            // The last call: for packs the commit of the last pack (the others are durable
            // and must be reused), for index and snapshot their only write.
            let nth = calls[i];
            let dir = tmp.path().join(format!("r{i}{j}"));
            assert!(
                inject_and_recover(&dir, &src, *point, nth, *f),
                "{f:?} at {point:?} call {nth} did not fire"
            );
        }
    }
}

#[test]
fn random_injection_points_over_many_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    let (calls, _) = calls_of_clean_run(tmp.path(), &src);
    let mut seed = 0x5eed_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut fired = 0;
    for round in 0..64 {
        let p = (next() % POINTS.len() as u64) as usize;
        let f = FAULTS[(next() % FAULTS.len() as u64) as usize];
        let nth = 1 + next() % calls[p];
        let dir = tmp.path().join(format!("s{round}"));
        if inject_and_recover(&dir, &src, POINTS[p], nth, f) {
            fired += 1;
        }
        fs::remove_dir_all(&dir).unwrap();
    }
    assert!(fired >= 48, "only {fired} of 64 injections fired");
}

#[test]
fn latency_slows_but_does_not_break_a_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    let (fault, repo) = faulty_repo(&tmp.path().join("repo"));
    fault.inject(Rule {
        kind: None,
        op: Op::Put,
        trigger: Trigger::Always,
        fault: Fault::Latency(Duration::from_millis(20)),
    });
    let s = run_backup(&repo, &src).unwrap();
    assert!(!s.partial);
    // Lock files, index and snapshot were all delayed.
    assert!(fault.fired() >= 2, "{}", fault.fired());
    verify_clean(&tmp.path().join("repo"));
}

#[test]
fn restore_and_verify_run_through_the_store_and_report_read_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    let dir = tmp.path().join("repo");
    let (fault, repo) = faulty_repo(&dir);
    let s = run_backup(&repo, &src).unwrap();

    // Restore with every pack read delayed: complete and identical.
    fault.inject(Rule {
        kind: Some(Kind::Packs),
        op: Op::ReadAt,
        trigger: Trigger::Random { seed: 7, one_in: 4 },
        fault: Fault::Latency(Duration::from_millis(1)),
    });
    let target = tmp.path().join("restore");
    let restore = |target: &Path| {
        repo.restore(
            &RestoreOptions {
                snapshot: s.snapshot_id.clone(),
                target: target.to_path_buf(),
                ..Default::default()
            },
            &|_| {},
            &AtomicBool::new(false),
        )
    };
    let r = restore(&target).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    compare_trees(&src, &target.join(src.strip_prefix("/").unwrap()));
    assert!(fault.calls(Kind::Packs, Op::ReadAt) > 0);

    // EIO on every pack read: the restore says what failed.
    fault.clear();
    fault.inject(Rule {
        kind: Some(Kind::Packs),
        op: Op::ReadAt,
        trigger: Trigger::Always,
        fault: Fault::Eio,
    });
    match restore(&tmp.path().join("restore2")) {
        Ok(r) => assert!(
            r.errors.iter().any(|e| e.contains("injected fault")),
            "{:?}",
            r.errors
        ),
        Err(e) => assert_eq!(e.kind(), ErrorKind::Io, "{e}"),
    }

    // Verify through the store: a whole-pack read that fails is a problem of that pack.
    fault.clear();
    fault.inject(Rule {
        kind: Some(Kind::Packs),
        op: Op::Read,
        trigger: Trigger::Nth(1),
        fault: Fault::Eio,
    });
    let rep = repo
        .verify(
            &VerifyOptions {
                read_data: true,
                ..Default::default()
            },
            &|_| {},
        )
        .unwrap();
    assert!(!rep.ok);
    assert_eq!(rep.problems.len(), 1, "{:?}", rep.problems);
    assert_eq!(rep.problems[0].kind, "pack_content", "{:?}", rep.problems);
    // Without the fault the same repository is clean.
    fault.clear();
    verify_clean(&dir);
}
