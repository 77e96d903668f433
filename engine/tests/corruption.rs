//! Acceptance 1: corruption is detected. (Acceptance 7, restores that never escape the target,
//! is tested through bmsctl in tests/tests/repo_crafted.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bms_engine::pack::BlobKind;
use bms_engine::{ObjectId, VerifyOptions};
use common::*;
use proptest::prelude::*;

fn repo_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in ["index", "snapshots"] {
        for e in fs::read_dir(repo.join(d)).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    for sub in fs::read_dir(repo.join("packs")).unwrap() {
        for e in fs::read_dir(sub.unwrap().path()).unwrap() {
            out.push(e.unwrap().path());
        }
    }
    out.sort();
    out
}

fn read_all() -> VerifyOptions {
    VerifyOptions {
        read_data: true,
        read_data_percent: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    /// A flipped byte anywhere in any pack, index or snapshot file is detected.
    #[test]
    fn flipped_byte_is_detected(file_pick in any::<prop::sample::Index>(), pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src);
        let repo = small_repo(&tmp.path().join("repo"));
        backup(&repo, &src);
        let clean = repo.verify(&read_all(), &|_| {}).unwrap().ok;
        prop_assert!(clean);
        let files = repo_files(repo.path());
        let f = file_pick.get(&files);
        let mut data = fs::read(f).unwrap();
        let i = pos.index(data.len());
        data[i] ^= xor;
        fs::write(f, &data).unwrap();
        let rep = repo.verify(&read_all(), &|_| {}).unwrap();
        prop_assert!(!rep.ok, "flip at {} of {} not detected", i, f.display());
    }
}

#[test]
fn corrupt_tree_is_found_without_reading_data_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = small_repo(&tmp.path().join("repo"));
    let s = backup(&repo, &src);
    let (index, _) = repo.load_index().unwrap();
    let (pack, entry) = index
        .blobs
        .keys()
        .filter_map(|id| index.lookup(id))
        .find(|(_, e)| e.kind == BlobKind::Tree)
        .unwrap();
    let path = repo
        .store()
        .locate(bms_engine::store::Kind::Packs, &pack.to_hex());
    let mut data = fs::read(&path).unwrap();
    data[entry.offset as usize + 1] ^= 0x40;
    fs::write(&path, &data).unwrap();
    let rep = repo.verify(&VerifyOptions::default(), &|_| {}).unwrap();
    assert!(!rep.ok);
    let p = rep
        .problems
        .iter()
        .find(|p| p.kind == "tree")
        .expect("tree problem");
    assert_eq!(p.pack.as_deref(), Some(pack.to_hex().as_str()));
    assert_eq!(p.snapshots, vec![s.snapshot_id.clone()]);
}

#[test]
fn bit_rot_names_snapshot_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = small_repo(&tmp.path().join("repo"));
    let s = backup(&repo, &src);
    let (index, _) = repo.load_index().unwrap();
    // The chunk holding the start of a/b/c/deep.
    let first = pseudo_random(70_000, 9);
    let (pack, entry) = index
        .blobs
        .keys()
        .filter_map(|id| index.lookup(id))
        .find(|(_, e)| {
            e.kind == BlobKind::Data
                && e.raw_len as usize <= first.len()
                && ObjectId::hash(&first[..e.raw_len as usize]) == e.id
        })
        .unwrap();
    let path = repo
        .store()
        .locate(bms_engine::store::Kind::Packs, &pack.to_hex());
    let mut data = fs::read(&path).unwrap();
    data[entry.offset as usize + entry.stored_len as usize / 2] ^= 1;
    fs::write(&path, &data).unwrap();
    assert!(
        repo.verify(&VerifyOptions::default(), &|_| {}).unwrap().ok,
        "structure alone is fine"
    );
    let rep = repo.verify(&read_all(), &|_| {}).unwrap();
    assert!(!rep.ok);
    let p = rep
        .problems
        .iter()
        .find(|p| p.kind == "chunk")
        .expect("chunk problem");
    assert_eq!(p.chunks, vec![entry.id.to_hex()]);
    assert_eq!(p.snapshots, vec![s.snapshot_id.clone()]);
    assert!(
        p.files.iter().any(|f| f.ends_with("/a/b/c/deep")),
        "{:?}",
        p.files
    );
}
