//! Acceptance 1 (corruption is detected) and 7 (restore never escapes the target).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use bms_engine::index::IndexFile;
use bms_engine::pack::{BlobKind, PackWriter, COMP_NONE};
use bms_engine::tree::{ContentRef, Node, NodeKind, Tree};
use bms_engine::{
    ObjectId, Overwrite, Repository, RestoreOptions, Snapshot, SnapshotStats, VerifyOptions,
};
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
    let path = bms_engine::pack::pack_path(repo.path(), &pack);
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
    let path = bms_engine::pack::pack_path(repo.path(), &pack);
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

/// Writes blobs, an index and a snapshot naming `root` by hand.
fn craft(repo: &Repository, blobs: &[(BlobKind, Vec<u8>)], root: ObjectId) -> String {
    let mut w = PackWriter::new(&repo.path().join("tmp")).unwrap();
    for (k, b) in blobs {
        w.add(*k, ObjectId::hash(b), COMP_NONE, b.len() as u32, b)
            .unwrap();
    }
    let (pid, entries) = w.finish(repo.path()).unwrap();
    let idx = IndexFile {
        supersedes: vec![],
        packs: vec![(pid, entries)],
    }
    .encode();
    fs::write(
        repo.path()
            .join("index")
            .join(ObjectId::hash(&idx).to_hex()),
        &idx,
    )
    .unwrap();
    let snap = Snapshot {
        version: 1,
        time: "2026-01-01T00:00:00Z".into(),
        tree: root.to_hex(),
        job: "evil".into(),
        host: "h".into(),
        paths: vec!["/".into()],
        excludes: vec![],
        tags: vec![],
        parent: None,
        partial: false,
        program: "crafted".into(),
        stats: SnapshotStats::default(),
    };
    let data = serde_json::to_vec(&snap).unwrap();
    let id = ObjectId::hash(&data).to_hex();
    fs::write(repo.path().join("snapshots").join(&id), &data).unwrap();
    id
}

fn file_node(name: &[u8], content: &[u8]) -> Node {
    let mut n = Node::new(name.to_vec(), NodeKind::File);
    n.mode = 0o644;
    n.size = content.len() as u64;
    n.content = vec![ContentRef::Chunk {
        id: ObjectId::hash(content),
        len: content.len() as u32,
    }];
    n
}

#[test]
fn restore_refuses_to_escape_target() {
    let payload = b"owned".to_vec();
    for evil in [&b"../escaped"[..], b"a/../../escaped", b"..", b"/abs"] {
        let tmp = tempfile::tempdir().unwrap();
        let repo = small_repo(&tmp.path().join("repo"));
        let tree = Tree {
            nodes: vec![file_node(evil, &payload)],
        }
        .encode();
        let root = ObjectId::hash(&tree);
        let snap = craft(
            &repo,
            &[(BlobKind::Data, payload.clone()), (BlobKind::Tree, tree)],
            root,
        );
        let target = tmp.path().join("t/inner");
        let res = repo.restore(
            &RestoreOptions {
                snapshot: snap.clone(),
                target: target.clone(),
                ..Default::default()
            },
            &|_| {},
            &std::sync::atomic::AtomicBool::new(false),
        );
        assert!(
            res.is_err(),
            "restore of {:?} must fail",
            String::from_utf8_lossy(evil)
        );
        assert!(!tmp.path().join("t/escaped").exists() && !tmp.path().join("escaped").exists());
        let rep = repo.verify(&VerifyOptions::default(), &|_| {}).unwrap();
        assert!(
            rep.problems.iter().any(|p| p.kind == "tree"),
            "verify flags the unsafe tree: {:?}",
            rep.problems
        );
    }
}

#[test]
fn restore_does_not_follow_planted_symlinks() {
    let payload = b"owned".to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let repo = small_repo(&tmp.path().join("repo"));
    let sub = Tree {
        nodes: vec![file_node(b"x", &payload)],
    }
    .encode();
    let mut dir = Node::new(b"a".to_vec(), NodeKind::Dir);
    dir.mode = 0o755;
    dir.subtree = Some(ObjectId::hash(&sub));
    let mut link = Node::new(b"l".to_vec(), NodeKind::Symlink);
    link.target = outside.as_os_str().as_encoded_bytes().to_vec();
    let tree = Tree {
        nodes: vec![dir, link, file_node(b"y", &payload)],
    }
    .encode();
    let root = ObjectId::hash(&tree);
    let snap = craft(
        &repo,
        &[
            (BlobKind::Data, payload.clone()),
            (BlobKind::Tree, sub),
            (BlobKind::Tree, tree),
        ],
        root,
    );
    for overwrite in [Overwrite::Never, Overwrite::IfChanged, Overwrite::Always] {
        let target = tmp.path().join(format!("t-{overwrite:?}"));
        fs::create_dir(&target).unwrap();
        // An attacker planted symlinks where the restore will write.
        std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();
        std::os::unix::fs::symlink(outside.join("y"), target.join("y")).unwrap();
        let r = repo
            .restore(
                &RestoreOptions {
                    snapshot: snap.clone(),
                    target: target.clone(),
                    overwrite,
                    ..Default::default()
                },
                &|_| {},
                &std::sync::atomic::AtomicBool::new(false),
            )
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{overwrite:?} wrote outside the target"
        );
        if overwrite == Overwrite::Always {
            assert_eq!(fs::read(target.join("a/x")).unwrap(), payload);
            assert!(fs::symlink_metadata(target.join("a")).unwrap().is_dir());
        }
    }
}
