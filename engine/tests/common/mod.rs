#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]
//! Helpers shared by the engine's integration tests.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use bms_engine::{BackupOptions, BackupSummary, Repository};

pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    seed |= 1;
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn small_repo(dir: &Path) -> Repository {
    let opts = bms_engine::InitOptions {
        chunker: bms_engine::ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            ..Default::default()
        },
        pack_size: 1 << 20,
        ..Default::default()
    };
    Repository::init(dir, opts).unwrap()
}

pub fn backup(repo: &Repository, src: &Path) -> BackupSummary {
    let opts = BackupOptions {
        sources: vec![src.to_path_buf()],
        job: "test".into(),
        host: "h".into(),
        ..Default::default()
    };
    repo.backup(&opts, &|_| {}, &AtomicBool::new(false))
        .unwrap()
}

/// A tree with files of several sizes, a symlink, a hard link and nested dirs.
pub fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("a/b/c")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("small.txt"), b"hello world\n").unwrap();
    fs::write(root.join("a/big.bin"), pseudo_random(300_000, 7)).unwrap();
    fs::write(root.join("a/b/c/deep"), pseudo_random(70_000, 9)).unwrap();
    fs::write(root.join("a/b/dup"), pseudo_random(300_000, 7)).unwrap();
    std::os::unix::fs::symlink("../small.txt", root.join("a/link")).unwrap();
    fs::hard_link(root.join("small.txt"), root.join("a/b/hard")).unwrap();
    fs::set_permissions(root.join("a/b/c/deep"), fs::Permissions::from_mode(0o640)).unwrap();
}

/// Compares two trees: types, contents, modes, mtimes, symlink targets, link counts.
pub fn compare_trees(a: &Path, b: &Path) {
    compare_trees_links(a, b, true)
}

/// [`compare_trees`], optionally without comparing link counts (for partial restores).
pub fn compare_trees_links(a: &Path, b: &Path, links: bool) {
    let ma = fs::symlink_metadata(a).unwrap();
    let mb = fs::symlink_metadata(b).unwrap();
    assert_eq!(ma.file_type(), mb.file_type(), "type of {}", b.display());
    if !ma.file_type().is_symlink() {
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", b.display());
    }
    assert_eq!(
        (ma.mtime(), ma.mtime_nsec()),
        (mb.mtime(), mb.mtime_nsec()),
        "mtime of {}",
        b.display()
    );
    if ma.is_file() {
        assert_eq!(
            fs::read(a).unwrap(),
            fs::read(b).unwrap(),
            "content of {}",
            b.display()
        );
        if links {
            assert_eq!(ma.nlink(), mb.nlink(), "links of {}", b.display());
        }
    } else if ma.file_type().is_symlink() {
        assert_eq!(fs::read_link(a).unwrap(), fs::read_link(b).unwrap());
    } else if ma.is_dir() {
        let mut na: Vec<_> = fs::read_dir(a)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut nb: Vec<_> = fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        na.sort();
        nb.sort();
        assert_eq!(na, nb, "entries of {}", b.display());
        for n in na {
            compare_trees_links(&a.join(&n), &b.join(&n), links);
        }
    }
}
