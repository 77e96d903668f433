//! Restore safety through bmsd (`bmsctl restore`): existing directories are left alone, a file
//! that cannot be restored is absent or kept and named with exit status 1, `--dry-run` applies
//! the policy, every restore is audited and logged (a refused one is logged), and a snapshot
//! asked for on the wrong target is said to be elsewhere. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bms_tests::restore_util::*;
use bms_tests::runner_util::*;
use bms_tests::users::{as_user, ensure_group, require_root, NOBODY};
use bms_tests::*;
use serde_json::Value;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";

struct Fx {
    d: Daemon,
    src: PathBuf,
    repo: PathBuf,
    snapshot: String,
}

/// A daemon with target `main` (1 MiB packs) and job `j` backing up a small tree once.
fn fixture() -> Fx {
    require_root();
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    assert_ok(&offline(&[
        OsStr::new("repo"),
        OsStr::new("init"),
        repo.as_os_str(),
        OsStr::new("--pack-size"),
        OsStr::new("1M"),
    ]));
    d.ctl_json(["target", "add", "main", "--path", repo.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "main",
    ]);
    let snapshot = backup(&d);
    Fx {
        d,
        src,
        repo,
        snapshot,
    }
}

fn backup(d: &Daemon) -> String {
    let id = d.start_run("j");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    detail["run"]["snapshot"].as_str().unwrap().to_owned()
}

fn restore(d: &Daemon, snap: &str, to: &Path, extra: &[&str]) -> std::process::Output {
    d.ctl_cmd()
        .args(["restore", snap, "--to", to.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

/// The restore entries of the audit trail, oldest first, with their detail parsed.
fn restore_audit(d: &Daemon) -> Vec<Value> {
    let a = d.ctl_json(["audit", "--limit", "1000"]);
    let mut v: Vec<Value> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap().starts_with("restore"))
        .map(|e| {
            let mut e = e.clone();
            let detail: Value = serde_json::from_str(e["detail"].as_str().unwrap()).unwrap();
            e["detail"] = detail;
            e
        })
        .collect();
    v.reverse();
    v
}

#[test]
fn one_file_restored_through_bmsd_leaves_existing_directories_alone() {
    let f = fixture();
    let file = f.src.join("sub/deeper/c.txt");
    for policy in ["never", "always"] {
        let to = f.d.dir.join(format!("to-{policy}"));
        foreign_dirs(&to, &f.src);
        let before = dir_metas(&to);
        let out = restore(
            &f.d,
            &f.snapshot,
            &to,
            &["--path", file.to_str().unwrap(), "--overwrite", policy],
        );
        assert_ok(&out);
        assert_eq!(
            dir_metas(&to),
            before,
            "{policy}: an existing directory changed"
        );
        let got = under(&to, &file);
        assert_eq!(fs::read(&got).unwrap(), fs::read(&file).unwrap());
        assert_eq!(meta(&got), meta(&file));
    }
}

#[test]
fn a_missing_or_corrupt_pack_fails_the_restore_by_name_and_is_audited_as_failed() {
    let f = fixture();
    let before = packs(&f.repo);
    let big = f.src.join("big.bin");
    let mut data = vec![0u8; 6 << 20];
    xorshift_fill(&mut data, 78);
    fs::write(&big, &data).unwrap();
    let snap = backup(&f.d);
    let pack = new_data_packs(&f.repo, &before)
        .into_iter()
        .next()
        .expect("a data-only pack");
    let saved = fs::read(&pack).unwrap();
    let existing = f.d.dir.join("existing");
    let old = under(&existing, &big);
    fs::create_dir_all(old.parent().unwrap()).unwrap();
    fs::write(&old, b"old").unwrap();
    for (case, damage) in [("missing", 0), ("corrupt", 1)] {
        if damage == 0 {
            fs::remove_file(&pack).unwrap();
        } else {
            fs::write(&pack, &saved).unwrap();
            corrupt_pack(&pack);
        }
        let to = f.d.dir.join(case);
        for (dir, extra, kept) in [
            (&to, &[][..], None),
            (&existing, &["--overwrite", "always"][..], Some(&b"old"[..])),
        ] {
            let out = restore(&f.d, &snap, dir, extra);
            let text = all_output(&out);
            assert_eq!(out.status.code(), Some(1), "{case}: {text}");
            let dest = under(dir, &big);
            assert!(
                text.contains(&format!("not restored: {}", dest.display())),
                "{case}: the file is not named: {text}"
            );
            match kept {
                None => assert!(!dest.exists(), "{case}: a damaged file was left"),
                Some(k) => assert_eq!(fs::read(&dest).unwrap(), k, "{case}: existing changed"),
            }
            assert_eq!(temp_leftovers(dir), Vec::<PathBuf>::new(), "{case}");
            for name in ["a.txt", "sub/deeper/c.txt"] {
                let p = f.src.join(name);
                assert_eq!(fs::read(under(dir, &p)).unwrap(), fs::read(&p).unwrap());
            }
        }
    }
    let audit = restore_audit(&f.d);
    let last = audit.last().unwrap();
    assert_eq!(last["action"], "restore.failed", "{last}");
    assert_eq!(last["detail"]["outcome"], "failed", "{last}");
    assert_eq!(last["detail"]["failed"][0], big.to_str().unwrap(), "{last}");
    assert!(f.d.log().contains("restore failed"), "{}", f.d.log());
}

#[test]
fn restores_are_audited_with_who_what_where_how_and_outcome() {
    let f = fixture();
    let to = f.d.dir.join("to");
    let path = f.src.join("sub");
    let out = restore(
        &f.d,
        &f.snapshot[..12],
        &to,
        &[
            "--path",
            path.to_str().unwrap(),
            "--overwrite",
            "if-changed",
        ],
    );
    assert_ok(&out);
    let audit = restore_audit(&f.d);
    assert_eq!(audit.len(), 2, "{audit:?}");
    let (start, end) = (&audit[0], &audit[1]);
    assert_eq!(start["action"], "restore.start", "{start}");
    assert_eq!(end["action"], "restore.succeeded", "{end}");
    for e in [start, end] {
        assert_eq!(e["uid"], 0, "{e}");
        assert_eq!(e["object"], f.snapshot.as_str(), "{e}");
        let d = &e["detail"];
        assert_eq!(d["snapshot"], f.snapshot.as_str(), "{e}");
        assert_eq!(d["target"], "main", "{e}");
        assert_eq!(
            d["paths"],
            serde_json::json!([path.to_str().unwrap()]),
            "{e}"
        );
        assert_eq!(d["to"], to.to_str().unwrap(), "{e}");
        assert_eq!(d["overwrite"], "if-changed", "{e}");
        assert_eq!(d["dry_run"], false, "{e}");
    }
    assert_eq!(end["detail"]["outcome"], "succeeded", "{end}");
    assert_eq!(end["detail"]["files"], 2, "{end}");
    let log = f.d.log();
    assert!(
        log.contains("restore started") && log.contains("restore succeeded"),
        "{log}"
    );
}

#[test]
fn a_restore_refused_for_permission_is_logged_not_audited() {
    let f = fixture();
    let bms = ensure_group("bms");
    let to = f.d.dir.join("to");
    let out = as_user(NOBODY, &[bms], bin("bmsctl"))
        .arg("--socket")
        .arg(f.d.socket())
        .args(["restore", &f.snapshot, "--to", to.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", all_output(&out));
    assert!(stderr(&out).contains("bms-admin"), "{}", all_output(&out));
    assert!(!to.exists());
    let log = poll_until(Duration::from_secs(10), "the refusal in the log", || {
        let l = f.d.log();
        l.contains("restore refused").then_some(l)
    });
    let line = log.lines().find(|l| l.contains("restore refused")).unwrap();
    assert!(
        line.contains("uid=65534") && line.contains(to.to_str().unwrap()),
        "{line}"
    );
    assert!(restore_audit(&f.d).is_empty());
}

#[test]
fn dry_run_through_bmsd_applies_the_overwrite_policy() {
    let f = fixture();
    let to = f.d.dir.join("to");
    assert_ok(&restore(&f.d, &f.snapshot, &to, &[]));
    fs::write(under(&to, &f.src.join("a.txt")), b"edited\n").unwrap();
    fs::remove_file(under(&to, &f.src.join("sub/b.dat"))).unwrap();
    let before = dir_metas(&to);
    for (policy, files) in [("never", 1), ("if-changed", 2), ("always", 5)] {
        let out = f.d.ctl_json([
            "restore",
            &f.snapshot,
            "--to",
            to.to_str().unwrap(),
            "--dry-run",
            "--overwrite",
            policy,
        ]);
        assert_eq!(out["files"], files, "{policy}: {out}");
        assert_eq!(out["summary"]["dry_run"], true);
    }
    assert_eq!(dir_metas(&to), before);
    assert_eq!(
        fs::read(under(&to, &f.src.join("a.txt"))).unwrap(),
        b"edited\n"
    );
}

#[test]
fn a_snapshot_asked_for_on_the_wrong_target_is_said_to_be_elsewhere() {
    let f = fixture();
    let other = f.d.dir.join("other");
    fs::create_dir_all(&other).unwrap();
    f.d.ctl_json(["target", "add", "other", "--path", other.to_str().unwrap()]);
    let to = f.d.dir.join("to");
    let out = restore(&f.d, &f.snapshot, &to, &["--target", "other"]);
    assert_fails(&out, 1, "is not on target 'other'");
    let err = stderr(&out);
    assert!(
        err.contains("it is on 'main'") && !err.contains("does not exist"),
        "{err}"
    );
    let out = restore(&f.d, &f.snapshot, &to, &["--target", "nope"]);
    assert_fails(&out, 1, "target 'nope' does not exist");
    assert!(!to.exists());
}
