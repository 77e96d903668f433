//! Backup → restore → compare, incremental reuse, verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use bms_engine::{Overwrite, RestoreOptions, VerifyOptions};
use common::*;

#[test]
fn backup_restore_round_trip_and_incremental() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = small_repo(&tmp.path().join("repo"));
    let s1 = backup(&repo, &src);
    assert!(!s1.partial, "{:?}", s1.warnings);
    assert_eq!(s1.files_new, 6);
    assert!(s1.bytes_added > 0);

    let target = tmp.path().join("restore");
    let r = repo
        .restore(
            &RestoreOptions {
                snapshot: s1.snapshot_id[..10].into(),
                target: target.clone(),
                ..Default::default()
            },
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    compare_trees(&src, &target.join(src.strip_prefix("/").unwrap()));

    // Unchanged: nothing read, nearly nothing added.
    let s2 = backup(&repo, &src);
    assert_eq!(s2.parent.as_deref(), Some(s1.snapshot_id.as_str()));
    assert_eq!(s2.files_unmodified, 6);
    assert_eq!(s2.bytes_read, 0);
    assert_eq!(s2.chunks_new, 0);
    assert!(s2.bytes_added < 2000, "{}", s2.bytes_added); // only ancestor trees (the restore touched tmp/)

    // One file changed.
    fs::write(src.join("a/b/c/deep"), pseudo_random(70_000, 10)).unwrap();
    let s3 = backup(&repo, &src);
    assert_eq!(s3.files_changed, 1);
    assert_eq!(s3.bytes_read, 70_000);

    let rep = repo
        .verify(
            &VerifyOptions {
                read_data: true,
                read_data_percent: None,
            },
            &|_| {},
        )
        .unwrap();
    assert!(rep.ok, "{:?}", rep.problems);
    assert_eq!(repo.snapshots().unwrap().len(), 3);

    // Selected path restore + overwrite policies.
    let t2 = tmp.path().join("sel");
    let sel = src.join("a/b");
    let opts = RestoreOptions {
        snapshot: "latest".into(),
        target: t2.clone(),
        paths: vec![sel.clone()],
        dry_run: false,
        overwrite: Overwrite::Never,
    };
    let r = repo
        .restore(&opts, &|_| {}, &AtomicBool::new(false))
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let restored = t2.join(sel.strip_prefix("/").unwrap());
    compare_trees_links(&sel, &restored, false);
    let again = repo
        .restore(&opts, &|_| {}, &AtomicBool::new(false))
        .unwrap();
    assert_eq!(again.files, 0);
    assert!(again.skipped >= 3);
    fs::write(restored.join("dup"), b"changed").unwrap();
    let r = repo
        .restore(
            &RestoreOptions {
                overwrite: Overwrite::IfChanged,
                ..opts.clone()
            },
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(r.files, 1, "{r:?}");
    compare_trees_links(&sel, &restored, false);

    // ls
    let entries = repo.ls("latest", &src.join("a").to_string_lossy()).unwrap();
    let names: Vec<String> = entries
        .iter()
        .map(|e| e.path.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(names, ["b", "big.bin", "link"]);

    // Dry run writes nothing.
    let t3 = tmp.path().join("dry");
    let r = repo
        .restore(
            &RestoreOptions {
                dry_run: true,
                target: t3.clone(),
                paths: vec![],
                ..opts
            },
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert_eq!(r.files, 6);
    assert!(!t3.exists());
}

#[test]
fn excludes_and_cancel() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = small_repo(&tmp.path().join("repo"));
    let opts = bms_engine::BackupOptions {
        sources: vec![src.clone()],
        excludes: vec!["*.bin".into(), format!("{}/a/b/c", src.display())],
        job: "x".into(),
        ..Default::default()
    };
    let s = repo
        .backup(&opts, &|_| {}, &AtomicBool::new(false))
        .unwrap();
    let all = repo
        .ls_with("latest", src.as_os_str().as_encoded_bytes(), true)
        .unwrap();
    let paths: Vec<PathBuf> = all.iter().map(|e| PathBuf::from(&e.path)).collect();
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("big.bin") || p.ends_with("c")),
        "{paths:?}"
    );
    assert!(paths.iter().any(|p| p.ends_with("dup")));
    assert_eq!(s.files_new, 4);
    let err = repo
        .backup(&opts, &|_| {}, &AtomicBool::new(true))
        .unwrap_err();
    assert!(matches!(err, bms_engine::Error::Cancelled), "{err}");
    assert_eq!(repo.snapshots().unwrap().len(), 1);

    // A cancelled restore says so and writes no file.
    let target = tmp.path().join("restore");
    let ropts = RestoreOptions {
        snapshot: "latest".into(),
        target: target.clone(),
        paths: vec![],
        dry_run: false,
        overwrite: Overwrite::Never,
    };
    let err = repo
        .restore(&ropts, &|_| {}, &AtomicBool::new(true))
        .unwrap_err();
    assert!(matches!(err, bms_engine::Error::Cancelled), "{err}");
    let written = fs::read_dir(&target)
        .map(|rd| rd.count())
        .unwrap_or_default();
    assert_eq!(written, 0, "nothing restored into {}", target.display());
}
