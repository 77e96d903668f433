//! A restore never writes outside its target directory, driven through the real bmsctl on
//! repositories crafted by hand: snapshots whose entry names try to climb out (`..`, `/`), and
//! targets where symlinks were planted on the paths the restore will write.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Output;

use bms_engine::index::IndexFile;
use bms_engine::pack::{BlobKind, PackWriter, COMP_NONE};
use bms_engine::tree::{ContentRef, Node, NodeKind, Tree};
use bms_engine::{InitOptions, ObjectId, Repository, Snapshot, SnapshotStats};
use bms_tests::{bin, clean_command};

fn ctl(args: &[&OsStr]) -> Output {
    clean_command(bin("bmsctl"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run bmsctl")
}

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

/// A repository holding the given blobs in one pack, an index, and a snapshot naming `root`;
/// returns the snapshot id.
fn craft(dir: &Path, blobs: &[(BlobKind, Vec<u8>)], root: ObjectId) -> String {
    let repo = Repository::init(dir, InitOptions::default()).unwrap();
    let mut w = PackWriter::new(&**repo.store()).unwrap();
    for (k, b) in blobs {
        w.add(*k, ObjectId::hash(b), COMP_NONE, b.len() as u32, b)
            .unwrap();
    }
    let (pid, entries) = w.finish().unwrap();
    let idx = IndexFile {
        supersedes: vec![],
        packs: vec![(pid, entries)],
    }
    .encode();
    let idx_name = ObjectId::hash(&idx).to_hex();
    fs::write(repo.path().join("index").join(idx_name), &idx).unwrap();
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
fn restore_refuses_names_that_climb_out_of_the_target() {
    let payload = b"owned".to_vec();
    for evil in [&b"../escaped"[..], b"a/../../escaped", b"..", b"/abs", b"."] {
        let tmp = tempfile::tempdir().unwrap();
        let tree = Tree {
            nodes: vec![file_node(evil, &payload)],
        }
        .encode();
        let root = ObjectId::hash(&tree);
        let repo = tmp.path().join("repo");
        let snap = craft(
            &repo,
            &[(BlobKind::Data, payload.clone()), (BlobKind::Tree, tree)],
            root,
        );
        let target = tmp.path().join("t/inner");
        let out = ctl(os!["repo", "restore", repo, &snap[..12], "--to", target]);
        let shown = String::from_utf8_lossy(evil);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "restore of {shown:?}: {err}");
        assert!(err.contains("refusing to restore"), "{shown:?}: {err}");
        assert!(!tmp.path().join("t/escaped").exists());
        assert!(!tmp.path().join("escaped").exists());
        assert!(!Path::new("/abs").exists());
        // verify flags the tree as damaged and exits 1.
        let v = ctl(os!["repo", "verify", repo]);
        assert_eq!(v.status.code(), Some(1), "verify of {shown:?}");
        let rep: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        let kinds: Vec<&str> = rep["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"tree"), "{shown:?}: {rep}");
    }
}

#[test]
fn restore_does_not_follow_symlinks_planted_in_the_target() {
    let payload = b"owned".to_vec();
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
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
    let repo = tmp.path().join("repo");
    let snap = craft(
        &repo,
        &[
            (BlobKind::Data, payload.clone()),
            (BlobKind::Tree, sub),
            (BlobKind::Tree, tree),
        ],
        root,
    );
    for overwrite in ["never", "if-changed", "always"] {
        let target = tmp.path().join(format!("t-{overwrite}"));
        fs::create_dir(&target).unwrap();
        // Symlinks planted where the restore will write: a directory and a file.
        std::os::unix::fs::symlink(&outside, target.join("a")).unwrap();
        std::os::unix::fs::symlink(outside.join("y"), target.join("y")).unwrap();
        let out = ctl(os![
            "repo",
            "restore",
            repo,
            &snap,
            "--to",
            target,
            "--overwrite",
            overwrite
        ]);
        assert!(
            out.status.success(),
            "{overwrite}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "--overwrite {overwrite} wrote outside the target"
        );
        if overwrite == "always" {
            assert_eq!(fs::read(target.join("a/x")).unwrap(), payload);
            assert!(fs::symlink_metadata(target.join("a")).unwrap().is_dir());
            assert_eq!(fs::read(target.join("y")).unwrap(), payload);
        } else {
            // The planted entries are kept as they are, and said so.
            assert!(fs::symlink_metadata(target.join("a"))
                .unwrap()
                .file_type()
                .is_symlink());
        }
    }
}
