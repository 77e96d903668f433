//! Restore safety, offline (`bmsctl repo restore`) and through bmsd (`bmsctl restore`):
//! existing directories are left exactly as they are, a file that cannot be restored is absent
//! (or the existing one kept) and named with exit status 1, no temporary files stay behind,
//! `--dry-run` applies the overwrite policy. The daemon tests are in `safety_restore_daemon.rs`.
//! These tests need root (ownership of the existing directories).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bms_tests::restore_util::*;
use bms_tests::runner_util::*;
use bms_tests::users::{require_root, NOBODY};
use bms_tests::*;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", all_output(out)))
}

/// A repository with one snapshot of a small tree at `src`.
struct Offline {
    tmp: tempfile::TempDir,
    src: PathBuf,
    repo: PathBuf,
}

fn offline_fixture() -> Offline {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_small_tree(&src);
    let repo = tmp.path().join("repo");
    assert_ok(&offline(os!["repo", "init", repo, "--pack-size", "1M"]));
    assert_ok(&offline(os!["repo", "backup", repo, src]));
    Offline { tmp, src, repo }
}

#[test]
fn one_file_restored_offline_leaves_existing_directories_alone_under_every_policy() {
    let f = offline_fixture();
    let file = f.src.join("sub/deeper/c.txt");
    for policy in ["never", "if-changed", "always"] {
        let to = f.tmp.path().join(format!("to-{policy}"));
        foreign_dirs(&to, &f.src);
        let before = dir_metas(&to);
        let out = offline(os![
            "repo",
            "restore",
            f.repo,
            "latest",
            "--to",
            to,
            "--path",
            file,
            "--overwrite",
            policy
        ]);
        assert_ok(&out);
        assert_eq!(
            dir_metas(&to),
            before,
            "{policy}: an existing directory changed"
        );
        let got = under(&to, &file);
        assert_eq!(fs::read(&got).unwrap(), fs::read(&file).unwrap());
        assert_eq!(meta(&got), meta(&file), "{policy}: the file's own metadata");
    }
}

#[test]
fn several_paths_below_one_existing_directory_leave_it_alone() {
    let f = offline_fixture();
    let to = f.tmp.path().join("to");
    foreign_dirs(&to, &f.src);
    let before = dir_metas(&to);
    let (one, two) = (f.src.join("sub/b.dat"), f.src.join("sub/deeper/c.txt"));
    assert_ok(&offline(os![
        "repo", "restore", f.repo, "latest", "--to", to, "--path", one, "--path", two
    ]));
    assert_eq!(dir_metas(&to), before);
    assert!(under(&to, &one).is_file() && under(&to, &two).is_file());
}

#[test]
fn directories_the_restore_creates_get_the_snapshot_metadata() {
    let f = offline_fixture();
    let to = f.tmp.path().join("to");
    // Only the top of the chain exists; `sub` and `deeper` are created by the restore.
    let top = under(&to, &f.src);
    fs::create_dir_all(&top).unwrap();
    chown(&top, NOBODY, NOBODY);
    set_mtime(&top, 1_400_000_000, 7);
    let before = dir_metas(&to);
    let file = f.src.join("sub/deeper/c.txt");
    assert_ok(&offline(os![
        "repo", "restore", f.repo, "latest", "--to", to, "--path", file
    ]));
    let after = dir_metas(&to);
    for (p, m) in &before {
        assert_eq!(after.get(p), Some(m), "{} changed", p.display());
    }
    for d in ["sub", "sub/deeper"] {
        assert_eq!(
            meta(&under(&to, &f.src.join(d))),
            meta(&f.src.join(d)),
            "{d}"
        );
    }
}

#[test]
fn restoring_a_directory_over_an_existing_one_follows_the_policy() {
    let f = offline_fixture();
    let sub = f.src.join("sub");
    for policy in ["never", "if-changed", "always"] {
        let to = f.tmp.path().join(format!("to-{policy}"));
        foreign_dirs(&to, &f.src);
        let before = dir_metas(&to);
        assert_ok(&offline(os![
            "repo",
            "restore",
            f.repo,
            "latest",
            "--to",
            to,
            "--path",
            sub,
            "--overwrite",
            policy
        ]));
        let after = dir_metas(&to);
        // Above the selected path nothing changes, whatever the policy.
        for (p, m) in &before {
            if !p.starts_with(under(&to, &sub)) {
                assert_eq!(after.get(p), Some(m), "{policy}: {} changed", p.display());
            }
        }
        // The selected directory and the one inside it: kept with never, the snapshot's
        // otherwise.
        for d in ["sub", "sub/deeper"] {
            let got = meta(&under(&to, &f.src.join(d)));
            if policy == "never" {
                assert_eq!(Some(&got), before.get(&under(&to, &f.src.join(d))), "{d}");
            } else {
                assert_eq!(got, meta(&f.src.join(d)), "{policy}: {d}");
            }
        }
    }
}

/// A repository whose second snapshot adds `big.bin`, whose data is in packs of its own.
struct Damaged {
    fx: Offline,
    big: PathBuf,
    /// Packs of the second backup that hold only data of big.bin.
    data_packs: Vec<PathBuf>,
}

fn damaged_fixture() -> Damaged {
    let fx = offline_fixture();
    let before = packs(&fx.repo);
    let big = fx.src.join("big.bin");
    let mut data = vec![0u8; 6 << 20];
    xorshift_fill(&mut data, 77);
    fs::write(&big, &data).unwrap();
    assert_ok(&offline(os!["repo", "backup", fx.repo, fx.src]));
    let data_packs = new_data_packs(&fx.repo, &before);
    assert!(!data_packs.is_empty(), "no data-only pack was written");
    Damaged {
        fx,
        big,
        data_packs,
    }
}

/// Restores the latest snapshot into `to` and checks that only big.bin failed: it is absent
/// (or `kept` is its unchanged old content), named in the text output, exit status 1, no
/// temporary files; the other files are restored.
fn assert_big_not_restored(d: &Damaged, to: &Path, kept: Option<&[u8]>, extra: &[&str]) {
    let mut args: Vec<&OsStr> = vec![
        "repo".as_ref(),
        "restore".as_ref(),
        d.fx.repo.as_ref(),
        "latest".as_ref(),
        "--to".as_ref(),
        to.as_ref(),
    ];
    args.extend(extra.iter().map(|a| OsStr::new(*a)));
    let out = offline(&args);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let dest = under(to, &d.big);
    assert!(
        text.contains(&format!("not restored: {}", dest.display())),
        "the failed file is not named: {text}"
    );
    match kept {
        None => assert!(!dest.exists(), "a damaged {} was left", dest.display()),
        Some(old) => assert_eq!(fs::read(&dest).unwrap(), old, "the existing file changed"),
    }
    assert_eq!(temp_leftovers(to), Vec::<PathBuf>::new());
    for name in ["a.txt", "sub/b.dat", "sub/deeper/c.txt", "empty"] {
        let p = d.fx.src.join(name);
        assert_eq!(
            fs::read(under(to, &p)).unwrap(),
            fs::read(&p).unwrap(),
            "{name}"
        );
    }
    // --json names it too.
    let mut args = args.clone();
    args.insert(0, "--json".as_ref());
    let out = offline(&args);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let s = json_of(&out);
    let failed = s["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{s}");
    assert_eq!(failed[0]["path"], d.big.to_str().unwrap(), "{s}");
}

#[test]
fn a_missing_pack_leaves_no_damaged_file_offline() {
    let d = damaged_fixture();
    let pack = d.data_packs[0].clone();
    let saved = fs::read(&pack).unwrap();
    fs::remove_file(&pack).unwrap();
    assert_big_not_restored(&d, &d.fx.tmp.path().join("fresh"), None, &[]);
    // An existing file of that name is kept as it was, even with --overwrite always.
    let to = d.fx.tmp.path().join("existing");
    let dest = under(&to, &d.big);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::write(&dest, b"the old content").unwrap();
    assert_big_not_restored(
        &d,
        &to,
        Some(b"the old content"),
        &["--overwrite", "always"],
    );

    // A corrupt pack (one flipped byte) is caught the same way.
    fs::write(&pack, &saved).unwrap();
    corrupt_pack(&pack);
    assert_big_not_restored(&d, &d.fx.tmp.path().join("corrupt"), None, &[]);
    assert_big_not_restored(
        &d,
        &to,
        Some(b"the old content"),
        &["--overwrite", "if-changed"],
    );
}

/// `files` of a dry-run restore of everything into `to` with `policy`.
fn dry_run_files(repo: &Path, to: &Path, policy: &str) -> u64 {
    let out = offline(os![
        "--json",
        "repo",
        "restore",
        repo,
        "latest",
        "--to",
        to,
        "--dry-run",
        "--overwrite",
        policy
    ]);
    assert_ok(&out);
    json_of(&out)["files"].as_u64().unwrap()
}

#[test]
fn dry_run_applies_the_overwrite_policy_offline() {
    let f = offline_fixture();
    let to = f.tmp.path().join("to");
    assert_eq!(
        dry_run_files(&f.repo, &to, "never"),
        5,
        "into a missing directory"
    );
    assert_ok(&offline(os![
        "repo", "restore", f.repo, "latest", "--to", to
    ]));
    assert_eq!(
        meta(&to).0,
        0o700,
        "a restore directory it creates is private"
    );
    // One file changed since the restore, one removed.
    let changed = under(&to, &f.src.join("a.txt"));
    fs::write(&changed, b"edited\n").unwrap();
    fs::remove_file(under(&to, &f.src.join("sub/b.dat"))).unwrap();
    let before = dir_metas(&to);
    let edited = fs::read(&changed).unwrap();
    assert_eq!(
        dry_run_files(&f.repo, &to, "never"),
        1,
        "never: only the missing file"
    );
    assert_eq!(dry_run_files(&f.repo, &to, "if-changed"), 2, "if-changed");
    assert_eq!(dry_run_files(&f.repo, &to, "always"), 5, "always");
    assert_eq!(dir_metas(&to), before, "a dry run changed a directory");
    assert_eq!(
        fs::read(&changed).unwrap(),
        edited,
        "a dry run changed a file"
    );
    // The real restores do what the dry runs said.
    let out = offline(os![
        "--json", "repo", "restore", f.repo, "latest", "--to", to
    ]);
    assert_eq!(json_of(&out)["files"], 1);
    let out = offline(os![
        "--json",
        "repo",
        "restore",
        f.repo,
        "latest",
        "--to",
        to,
        "--overwrite",
        "if-changed"
    ]);
    assert_eq!(json_of(&out)["files"], 1);
}

#[test]
fn temporary_names_never_take_the_place_of_snapshot_entries() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // Entries named like the temporary files the restore would use otherwise.
    let names = [
        ".bms-restore-1.0",
        &format!(".bms-restore-{}.0", std::process::id()),
        ".bms-restore-",
        ".bms-restore-1-x",
        "plain",
    ];
    for (i, n) in names.iter().enumerate() {
        fs::write(src.join(n), format!("content {i}")).unwrap();
    }
    let repo = tmp.path().join("repo");
    assert_ok(&offline(os!["repo", "init", repo]));
    assert_ok(&offline(os!["repo", "backup", repo, src]));
    // First into an empty directory, then replacing everything (through temporary names).
    let to = tmp.path().join("to");
    for policy in ["never", "always"] {
        let out = offline(os![
            "--json",
            "repo",
            "restore",
            repo,
            "latest",
            "--to",
            to,
            "--overwrite",
            policy
        ]);
        assert_ok(&out);
        assert_eq!(json_of(&out)["files"], names.len() as u64);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(
                fs::read_to_string(under(&to, &src.join(n))).unwrap(),
                format!("content {i}")
            );
        }
        let count = fs::read_dir(under(&to, &src)).unwrap().count();
        assert_eq!(count, names.len(), "{policy}: extra entries left");
    }
}
