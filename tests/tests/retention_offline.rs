//! End-to-end tests of `bmsctl repo forget` and `bmsctl repo prune` on a repository path:
//! prune reclaims what its dry run said (within 1%) and the repository verifies with
//! --read-data; a prune killed with SIGKILL at any step leaves a repository that verifies and
//! the next prune completes the work; a backup overlapping a prune loses nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use bms_tests::{bin, clean_command, poll_until};

fn ctl(args: &[&OsStr]) -> Output {
    ctl_env(args, &[])
}

fn ctl_env(args: &[&OsStr], env: &[(&str, String)]) -> Output {
    let mut c = clean_command(bin("bmsctl"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bmsctl")
}

fn ctl_json(args: &[&OsStr]) -> serde_json::Value {
    let mut a: Vec<&OsStr> = vec![OsStr::new("--json")];
    a.extend_from_slice(args);
    let out = ctl(&a);
    assert!(
        out.status.success(),
        "bmsctl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

/// xorshift bytes, deterministic per seed (incompressible).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut seed = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) << 1) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Bytes of every file in the repository directory.
fn repo_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                repo_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

struct Setup {
    dir: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
}

/// A repository with `n` snapshots of a source whose files change between them.
fn setup(n: u64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    ctl_json(os!["repo", "init", repo, "--pack-size", "1M"]);
    for i in 0..n {
        change(&src, i);
        ctl_json(os!["repo", "backup", repo, src, "--job", "docs"]);
    }
    Setup { dir, repo, src }
}

/// Rewrites one of four files and keeps the others.
fn change(src: &Path, i: u64) {
    for f in 0..4u64 {
        let p = src.join(format!("f{f}"));
        if f == i % 4 || !p.exists() {
            std::fs::write(&p, noise(1_200_000 + f as usize * 1000, i * 10 + f)).unwrap();
        }
    }
}

fn verify_clean(repo: &Path) {
    let v = ctl_json(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
}

/// The latest snapshot restores exactly the source as it is now.
fn restores_exactly(s: &Setup, repo: &Path, tag: &str) {
    let out = s.dir.path().join(format!("restore-{tag}"));
    ctl_json(os!["repo", "restore", repo, "latest", "--to", out]);
    let inner = out.join(s.src.strip_prefix("/").unwrap());
    for f in 0..4 {
        let name = format!("f{f}");
        assert_eq!(
            std::fs::read(inner.join(&name)).unwrap(),
            std::fs::read(s.src.join(&name)).unwrap(),
            "{name} differs"
        );
    }
}

#[test]
fn prune_reclaims_what_the_dry_run_said_and_the_repository_verifies() {
    let s = setup(8);
    let forget = ctl_json(os![
        "repo",
        "forget",
        s.repo,
        "--keep-last",
        "3",
        "--dry-run"
    ]);
    assert_eq!(forget["removed"].as_array().unwrap().len(), 5);
    let kept: Vec<_> = forget["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == true)
        .map(|d| d["reasons"][0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kept, ["last 1", "last 2", "last 3"]);
    assert_eq!(
        ctl_json(os!["repo", "snapshots", s.repo])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        8,
        "a dry run removes nothing"
    );
    // The text form lists every snapshot with keep/remove and the rule.
    let text = ctl(os![
        "repo",
        "forget",
        s.repo,
        "--keep-last",
        "3",
        "--dry-run"
    ]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("remove")).count(),
        5,
        "{text}"
    );
    assert!(text.contains("last 3"), "{text}");

    ctl_json(os!["repo", "forget", s.repo, "--keep-last", "3"]);
    let before = repo_bytes(&s.repo);
    let dry = ctl_json(os!["repo", "prune", s.repo, "--dry-run"]);
    assert_eq!(repo_bytes(&s.repo), before, "a dry run changes nothing");
    let promised = dry["bytes_reclaimed"].as_u64().unwrap();
    assert!(promised > 3_000_000, "{dry}");
    let done = ctl_json(os!["repo", "prune", s.repo]);
    let after = repo_bytes(&s.repo);
    let reclaimed = before - after;
    assert!(
        (reclaimed as f64 - promised as f64).abs() <= reclaimed as f64 * 0.01,
        "the dry run said {promised} bytes, prune reclaimed {reclaimed}: {done}"
    );
    verify_clean(&s.repo);
    restores_exactly(&s, &s.repo, "after");
    let again = ctl_json(os!["repo", "prune", s.repo, "--dry-run"]);
    assert_eq!(again["packs_removed"], 0, "{again}");
    assert_eq!(again["packs_repacked"], 0, "{again}");
}

#[test]
fn forget_refuses_bad_input_with_a_reason() {
    let s = setup(1);
    let out = ctl(os!["repo", "forget", s.repo]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to forget"));
    let out = ctl(os!["repo", "forget", s.repo, "--keep-within", "7x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid duration"));
    // A policy that keeps nothing is refused and removes nothing.
    let out = ctl(os!["repo", "forget", s.repo, "--keep-tag", "nope"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("would remove all 1 snapshots"),
        "{out:?}"
    );
    let out = ctl(os!["repo", "forget", s.repo, "deadbeefdeadbeef"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        std::fs::read_dir(s.repo.join("snapshots")).unwrap().count(),
        1
    );
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_prune_killed_at_any_step_leaves_a_clean_repository_and_the_next_prune_completes() {
    let s = setup(8);
    ctl_json(os!["repo", "forget", s.repo, "--keep-last", "2"]);
    let dry = ctl_json(os!["repo", "prune", s.repo, "--dry-run"]);
    // Phase 1: new packs, their index file, the condemned list; phase 2 (the harness's grace
    // period is 0): the new index, each old index file, each pack, the condemned list.
    let steps = dry["changes"].as_u64().unwrap();
    assert_eq!(
        steps,
        dry["packs_written"].as_u64().unwrap()
            + dry["index_files_written"].as_u64().unwrap()
            + dry["index_files_removed"].as_u64().unwrap()
            + dry["packs_removed"].as_u64().unwrap()
            + 2,
        "{dry}"
    );
    assert!(steps >= 5, "{dry}");
    // Every step, and at least 10 seeds in all.
    let mut points: Vec<u64> = (0..steps).collect();
    let mut x = 0x2545_f491_u64;
    while points.len() < 12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        points.push(x % steps);
    }
    for (n, k) in points.iter().enumerate() {
        let repo = s.dir.path().join(format!("crash-{n}"));
        copy_dir(&s.repo, &repo);
        let out = ctl_env(
            os!["repo", "prune", repo],
            &[("BMS_TEST_PRUNE_KILL_AFTER", k.to_string())],
        );
        assert_eq!(
            out.status.signal(),
            Some(9),
            "prune should have been killed after step {k}: {out:?}"
        );
        verify_clean(&repo);
        let done = ctl_json(os!["repo", "prune", repo]);
        let after = ctl_json(os!["repo", "prune", repo, "--dry-run"]);
        assert_eq!(after["packs_removed"], 0, "step {k}: {done} then {after}");
        assert_eq!(after["packs_repacked"], 0, "step {k}: {after}");
        verify_clean(&repo);
        restores_exactly(&s, &repo, &n.to_string());
        std::fs::remove_dir_all(&repo).unwrap();
    }
}

#[test]
fn a_backup_overlapping_a_prune_loses_nothing() {
    let s = setup(6);
    ctl_json(os!["repo", "forget", s.repo, "--keep-last", "1"]);
    let gate = s.dir.path().join("gate");
    let prune = clean_command(bin("bmsctl"))
        .args(os!["--json", "repo", "prune", s.repo, "--lock-wait", "120"])
        .env("BMS_TEST_PRUNE_PAUSE", &gate)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = s.dir.path().join("gate.waiting");
    poll_until(Duration::from_secs(60), "prune holding its lock", || {
        waiting.exists().then_some(())
    });
    // While prune has marked and is about to condemn the data of the forgotten snapshots, a
    // backup runs to the end beside it (no lock wait): it writes new data and reuses a file
    // version that only a forgotten snapshot held, i.e. chunks in packs prune condemns.
    change(&s.src, 7);
    change(&s.src, 1);
    let b = ctl_json(os!["repo", "backup", s.repo, s.src, "--job", "docs"]);
    assert!(b["snapshot_id"].is_string(), "{b}");
    assert!(!gate.exists());
    std::fs::write(&gate, b"").unwrap();
    let p = prune.wait_with_output().unwrap();
    assert!(p.status.success(), "{p:?}");
    let p: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
    assert!(p["packs_removed"].as_u64().unwrap() > 0, "{p}");
    assert!(
        p["packs_rescued"].as_u64().unwrap() > 0,
        "the packs the backup reused are rescued: {p}"
    );
    verify_clean(&s.repo);
    restores_exactly(&s, &s.repo, "overlap");
    // The other way round: a prune after it finds the repository consistent.
    let again = ctl(os!["repo", "prune", s.repo]);
    assert!(again.status.success(), "{again:?}");
    verify_clean(&s.repo);
    restores_exactly(&s, &s.repo, "again");
}

/// `bmsctl repo prune` with the real grace period (without the harness's test hook).
fn prune_with_grace(repo: &Path, extra: &[&str]) -> Output {
    let mut c = clean_command(bin("bmsctl"));
    c.env_remove("BMS_TEST_PRUNE_GRACE")
        .args(os!["--json", "repo", "prune", repo])
        .args(extra);
    c.output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn packs_are_condemned_first_and_deleted_after_the_grace_period_as_the_dry_run_said() {
    let s = setup(8);
    ctl_json(os!["repo", "forget", s.repo, "--keep-last", "3"]);
    let before = repo_bytes(&s.repo);
    let dry = json_of(&prune_with_grace(&s.repo, &["--dry-run"]));
    assert_eq!(dry["grace_secs"], 86_400, "{dry}");
    assert_eq!(dry["packs_removed"], 0, "{dry}");
    let promised = dry["bytes_reclaimed_after_grace"].as_u64().unwrap();
    assert!(promised > 3_000_000, "{dry}");
    // The first prune condemns, deletes nothing, and leaves a repository that verifies.
    let first = json_of(&prune_with_grace(&s.repo, &[]));
    assert_eq!(first["packs_removed"], 0, "{first}");
    assert_eq!(first["packs_condemned"], dry["packs_condemned"], "{first}");
    assert!(repo_bytes(&s.repo) >= before);
    let list: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.repo.join("condemned")).unwrap()).unwrap();
    let condemned = list["packs"].as_object().unwrap().len() as u64;
    assert_eq!(condemned, first["packs_condemned"].as_u64().unwrap());
    verify_clean(&s.repo);
    restores_exactly(&s, &s.repo, "condemned");
    // The text form says what waits and what comes back after the grace period.
    let text = clean_command(bin("bmsctl"))
        .env_remove("BMS_TEST_PRUNE_GRACE")
        .args(os!["repo", "prune", s.repo, "--dry-run"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(text.contains("wait for the grace period of 24h"), "{text}");
    // A grace period below the lock lease is refused with the reason.
    let short = prune_with_grace(&s.repo, &["--grace", "1m"]);
    assert_eq!(short.status.code(), Some(2), "{short:?}");
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 300s"),
        "{short:?}"
    );
    // Two days later (the condemnation times moved back), a prune deletes them.
    let mut list = list;
    for (_, t) in list["packs"].as_object_mut().unwrap().iter_mut() {
        *t = (t.as_i64().unwrap() - 2 * 86_400).into();
    }
    std::fs::write(s.repo.join("condemned"), serde_json::to_vec(&list).unwrap()).unwrap();
    let done = json_of(&prune_with_grace(&s.repo, &[]));
    assert_eq!(done["packs_removed"].as_u64().unwrap(), condemned, "{done}");
    let reclaimed = before - repo_bytes(&s.repo);
    assert!(
        (reclaimed as f64 - promised as f64).abs() <= reclaimed as f64 * 0.01,
        "the dry run said {promised} bytes after the grace period, prune reclaimed {reclaimed}"
    );
    verify_clean(&s.repo);
    restores_exactly(&s, &s.repo, "after");
}
