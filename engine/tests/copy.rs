#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Copying snapshots between repositories: only missing blobs move, the copy verifies clean and
//! restores identically, a corrupted source blob is not propagated, and cancellation leaves no
//! snapshot behind.

mod common;

use bms_engine::copy::copy_snapshot;
use bms_engine::verify::VerifyOptions;
use bms_engine::Repository;
use common::*;
use std::sync::atomic::AtomicBool;

fn read_data() -> VerifyOptions {
    VerifyOptions {
        read_data: true,
        ..Default::default()
    }
}

#[test]
fn copy_moves_only_missing_blobs_and_verifies_clean() {
    let d = tempfile::tempdir().unwrap();
    let src_dir = d.path().join("src");
    make_tree(&src_dir);
    let a = small_repo(&d.path().join("a"));
    let b = small_repo(&d.path().join("b"));
    let first = backup(&a, &src_dir);

    let no = AtomicBool::new(false);
    let c1 = copy_snapshot(&a, &b, &first.snapshot_id, &|_| {}, &no).unwrap();
    assert_eq!(
        c1.snapshot_id, first.snapshot_id,
        "the copy keeps the snapshot id"
    );
    assert!(
        c1.chunks_copied > 0 && c1.chunks_copied == c1.chunks_total,
        "{c1:?}"
    );
    let rep = b.verify(&read_data(), &|_| {}).unwrap();
    assert!(rep.ok, "{:?}", rep.problems);
    assert_eq!(b.snapshots().unwrap().len(), 1);

    // Copying again is a no-op.
    let again = copy_snapshot(&a, &b, &first.snapshot_id, &|_| {}, &no).unwrap();
    assert!(again.already_present && again.chunks_copied == 0);

    // A second snapshot with one new file: only the new blobs (and changed trees) move.
    std::fs::write(src_dir.join("new.bin"), pseudo_random(200_000, 42)).unwrap();
    let second = backup(&a, &src_dir);
    let c2 = copy_snapshot(&a, &b, &second.snapshot_id, &|_| {}, &no).unwrap();
    assert!(
        c2.chunks_copied > 0 && c2.chunks_copied < c2.chunks_total / 2 + 8,
        "{c2:?}"
    );
    assert!(
        c2.bytes_copied < 260_000,
        "copied {} bytes for a 200 kB change",
        c2.bytes_copied
    );

    // The copy restores byte-identically.
    let out = d.path().join("out");
    let b = Repository::open(d.path().join("b")).unwrap();
    let sum = b
        .restore(
            &bms_engine::restore::RestoreOptions {
                snapshot: second.snapshot_id.clone(),
                target: out.clone(),
                ..Default::default()
            },
            &|_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    let restored = out.join(src_dir.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("new.bin")).unwrap(),
        pseudo_random(200_000, 42)
    );
    assert_eq!(
        std::fs::read(restored.join("a/big.bin")).unwrap(),
        pseudo_random(300_000, 7)
    );
}

#[test]
fn corrupt_source_blob_is_not_copied() {
    let d = tempfile::tempdir().unwrap();
    let src_dir = d.path().join("src");
    make_tree(&src_dir);
    let a = small_repo(&d.path().join("a"));
    let b = small_repo(&d.path().join("b"));
    let snap = backup(&a, &src_dir);
    // Flip a byte in the middle of every pack of the source.
    for entry in walk(&d.path().join("a/packs")) {
        let mut bytes = std::fs::read(&entry).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        std::fs::write(&entry, bytes).unwrap();
    }
    let err =
        copy_snapshot(&a, &b, &snap.snapshot_id, &|_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert!(
        b.snapshots().unwrap().is_empty(),
        "no snapshot may appear after a failed copy"
    );
    let rep = b.verify(&read_data(), &|_| {}).unwrap();
    assert!(
        rep.ok,
        "destination must stay consistent: {:?}",
        rep.problems
    );
}

#[test]
fn cancelled_copy_leaves_no_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let src_dir = d.path().join("src");
    make_tree(&src_dir);
    let a = small_repo(&d.path().join("a"));
    let b = small_repo(&d.path().join("b"));
    let snap = backup(&a, &src_dir);
    let err =
        copy_snapshot(&a, &b, &snap.snapshot_id, &|_| {}, &AtomicBool::new(true)).unwrap_err();
    assert!(matches!(err, bms_engine::Error::Cancelled), "{err}");
    assert!(b.snapshots().unwrap().is_empty());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
