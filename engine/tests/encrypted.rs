//! Encrypted repositories (docs/repository-format.md, "Encryption"): no file name and no 16-byte
//! run of any file's content appears in the repository's bytes; verify --read-data is clean;
//! restore is exact; a wrong key is a clear error that writes nothing; a snapshot file replaced
//! by an older one, or pack bytes swapped between packs, is detected and named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bms_engine::keyslot::{self, KdfParams, Secret};
use bms_engine::{Repository, RestoreOptions, VerifyOptions};
use common::*;
use zeroize::Zeroizing;

const FAST: KdfParams = KdfParams {
    m_cost: 1024,
    t_cost: 1,
    p_cost: 1,
};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn distinctive_tree(src: &Path) -> Vec<(String, Vec<u8>)> {
    let mut made = Vec::new();
    fs::create_dir_all(src.join("Zanzibar-secret-plans")).unwrap();
    for (i, name) in [
        "Quetzalcoatl-ledger.txt",
        "Xylophone-payroll.csv",
        "Zanzibar-secret-plans/Obsidian-merger.doc",
    ]
    .iter()
    .enumerate()
    {
        let mut data = format!("The confidential text of {name}, line after line. ")
            .repeat(200)
            .into_bytes();
        data.extend(pseudo_random(150_000 + i * 1000, 40 + i as u64));
        fs::write(src.join(name), &data).unwrap();
        made.push((name.rsplit('/').next().unwrap().to_owned(), data));
    }
    made.push(("Zanzibar-secret-plans".into(), Vec::new()));
    made
}

fn verify(repo: &Repository) -> bms_engine::VerifyReport {
    repo.verify(
        &VerifyOptions {
            read_data: true,
            read_data_percent: None,
        },
        &|_| {},
    )
    .unwrap()
}

#[test]
fn an_encrypted_repository_hides_names_and_contents_and_restores_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let made = distinctive_tree(&src);
    let keyfile = tmp.path().join("keys/repo.key");
    let key = keyslot::create_key_file(&keyfile).unwrap();
    let path = tmp.path().join("repo");
    let repo = Repository::init_encrypted(
        &path,
        Default::default(),
        &Secret::KeyFile(key.clone()),
        FAST,
    )
    .unwrap();
    let s = backup(&repo, &src);
    assert!(!s.partial, "{:?}", s.warnings);

    // Not a name, not a 16-byte run of any content, not the key, in any byte of the repository.
    let mut runs: HashSet<Vec<u8>> = HashSet::new();
    for (_, data) in &made {
        for w in data.windows(16).step_by(1) {
            runs.insert(w.to_vec());
        }
    }
    let all = files(&path);
    assert!(all.len() > 3, "{all:?}");
    for f in &all {
        let bytes = fs::read(f).unwrap();
        for (name, _) in &made {
            assert!(
                !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
                "{} holds the name {name}",
                f.display()
            );
        }
        assert!(
            !bytes.windows(16).any(|w| runs.contains(w)),
            "{} holds file content",
            f.display()
        );
        assert!(
            !bytes.windows(32).any(|w| w == &key[..]),
            "{} holds the key",
            f.display()
        );
    }

    // Opened again with the key: verify clean, restore exact.
    let repo =
        Repository::open_with_key(&path, &keyslot::read_key_file(&keyfile).unwrap()).unwrap();
    let rep = verify(&repo);
    assert!(rep.ok, "{:?}", rep.problems);
    let target = tmp.path().join("restore");
    let r = repo
        .restore(
            &RestoreOptions {
                snapshot: "latest".into(),
                target: target.clone(),
                ..Default::default()
            },
            &|_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    compare_trees(&src, &target.join(src.strip_prefix("/").unwrap()));

    // A wrong key file or passphrase: the clear error, nothing written.
    let before: Vec<_> = files(&path)
        .into_iter()
        .map(|f| (fs::read(&f).unwrap(), f))
        .collect();
    let wrong = tmp.path().join("wrong.key");
    keyslot::create_key_file(&wrong).unwrap();
    let err =
        Repository::open_with_key(&path, &keyslot::read_key_file(&wrong).unwrap()).unwrap_err();
    assert_eq!(err.kind(), bms_engine::ErrorKind::InvalidArgument);
    assert!(
        err.to_string()
            .contains("the key file does not open this repository"),
        "{err}"
    );
    let err = Repository::open_with_key(&path, &Secret::Passphrase(Zeroizing::new("guess".into())))
        .unwrap_err();
    assert!(
        err.to_string().contains("passphrase does not open"),
        "{err}"
    );
    let err = Repository::open(&path).unwrap_err();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    let after: Vec<_> = files(&path)
        .into_iter()
        .map(|f| (fs::read(&f).unwrap(), f))
        .collect();
    assert!(before == after, "a failed open changed the repository");
}

#[test]
fn swapped_packs_and_a_replayed_snapshot_are_detected_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let pass = || Secret::Passphrase(Zeroizing::new("a long passphrase".into()));
    let path = tmp.path().join("repo");
    let repo = Repository::init_encrypted(&path, Default::default(), &pass(), FAST).unwrap();
    let first = backup(&repo, &src);
    fs::write(src.join("a/b/c/deep"), pseudo_random(70_000, 99)).unwrap();
    let second = backup(&repo, &src);
    let repo = Repository::open_with_key(&path, &pass()).unwrap();
    assert!(verify(&repo).ok);

    // The newer snapshot file replaced by the older one's bytes.
    let snaps = path.join("snapshots");
    let old = fs::read(snaps.join(&first.snapshot_id)).unwrap();
    let newer = snaps.join(&second.snapshot_id);
    let saved = fs::read(&newer).unwrap();
    fs::write(&newer, &old).unwrap();
    let rep = verify(&repo);
    assert!(!rep.ok);
    let text = format!("{:?}", rep.problems);
    assert!(text.contains(&second.snapshot_id), "{text}");
    fs::write(&newer, saved).unwrap();
    assert!(verify(&repo).ok);

    // Two packs' bytes swapped (each now under the other's name).
    let packs: Vec<PathBuf> = files(&path.join("packs"));
    assert!(packs.len() >= 2, "{packs:?}");
    let (a, b) = (fs::read(&packs[0]).unwrap(), fs::read(&packs[1]).unwrap());
    fs::write(&packs[0], &b).unwrap();
    fs::write(&packs[1], &a).unwrap();
    let rep = verify(&repo);
    assert!(!rep.ok);
    let text = format!("{:?}", rep.problems);
    let name = packs[0].file_name().unwrap().to_str().unwrap();
    assert!(text.contains(name), "{text}");
}

#[test]
fn copies_between_plain_and_encrypted_repositories_restore_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let plain = small_repo(&tmp.path().join("plain"));
    let s = backup(&plain, &src);
    let key = || Secret::KeyFile(Zeroizing::new([9u8; 32]));
    let enc_path = tmp.path().join("offsite");
    Repository::init_encrypted(&enc_path, Default::default(), &key(), FAST).unwrap();
    let enc = Repository::open_with_key(&enc_path, &key()).unwrap();
    let no = AtomicBool::new(false);
    bms_engine::copy::copy_snapshot(&plain, &enc, &s.snapshot_id, &|_| {}, &no).unwrap();
    assert!(verify(&enc).ok);
    // Back from the encrypted copy into a second plain repository, then restore.
    let back = small_repo(&tmp.path().join("back"));
    bms_engine::copy::copy_snapshot(&enc, &back, &s.snapshot_id, &|_| {}, &no).unwrap();
    for repo in [&enc, &back] {
        let to = tmp.path().join(format!("r-{}", repo.config().id));
        let r = repo
            .restore(
                &RestoreOptions {
                    snapshot: s.snapshot_id.clone(),
                    target: to.clone(),
                    ..Default::default()
                },
                &|_| {},
                &no,
            )
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        compare_trees(&src, &to.join(src.strip_prefix("/").unwrap()));
    }
    // The encrypted copy holds no name of the tree.
    for f in files(&enc_path) {
        let bytes = fs::read(&f).unwrap();
        assert!(
            !bytes.windows(9).any(|w| w == b"small.txt"),
            "{}",
            f.display()
        );
    }
}
