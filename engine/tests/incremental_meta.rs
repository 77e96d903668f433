#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Incremental backups reuse unchanged entries' metadata from the parent snapshot; a changed
//! xattr (which changes the ctime) must still be picked up.

mod common;

use bms_engine::restore::RestoreOptions;
use common::*;

#[test]
fn xattr_change_on_unchanged_file_is_seen_by_the_next_backup() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    make_tree(&src);
    let f = src.join("small.txt");
    xattr::set(&f, "user.bms.test", b"one").unwrap();
    let repo = small_repo(&d.path().join("repo"));
    backup(&repo, &src);
    // Same content, size and mtime; only the xattr (and so the ctime) changes.
    xattr::set(&f, "user.bms.test", b"two").unwrap();
    let second = backup(&repo, &src);
    let out = d.path().join("out");
    let sum = repo
        .restore(
            &RestoreOptions {
                snapshot: second.snapshot_id.clone(),
                target: out.clone(),
                ..Default::default()
            },
            &|_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
    assert!(sum.errors.is_empty(), "{:?}", sum.errors);
    let restored = out.join(f.strip_prefix("/").unwrap());
    assert_eq!(
        xattr::get(&restored, "user.bms.test").unwrap().as_deref(),
        Some(&b"two"[..])
    );
    // A third backup with nothing changed keeps it.
    let third = backup(&repo, &src);
    assert_eq!(third.bytes_read, 0, "nothing changed, nothing read");
}
