//! Parallel writers on one repository: every writer waits for the lock and succeeds, offline
//! (`bmsctl repo backup --lock-wait`) and through bmsd (several jobs on one target at once).
//! Lock files are staged in `locks/`, and the winner's cleanup of `tmp/` removes only
//! abandoned temp files, so no contender loses a file it is about to rename
//! (docs/repository-format.md "Locks", "Temporary files").

use bms_tests::runner_util::write_small_tree;
use bms_tests::storage::{bmsctl, drain_notifications};
use bms_tests::*;
use std::path::Path;
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;
const WRITERS: usize = 4;
const NEVER: &str = "2099-01-01 00:00:00";

fn snapshot_count(repo: &Path) -> usize {
    let out = bmsctl(["--json", "repo", "snapshots", repo.to_str().unwrap()]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["snapshots"].as_array().unwrap().len()
}

fn assert_verifies(repo: &Path) {
    let out = bmsctl(["repo", "verify", repo.to_str().unwrap()]);
    assert_ok(&out);
}

#[test]
fn parallel_offline_backups_all_wait_for_the_lock() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let src = t.path().join("src");
    write_small_tree(&src);
    assert_ok(&bmsctl(["repo", "init", repo.to_str().unwrap()]));
    let started = Instant::now();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let children: Vec<_> = (0..WRITERS)
            .map(|w| {
                clean_command(bin("bmsctl"))
                    .args(["repo", "backup", "--lock-wait", "30", "--job"])
                    .arg(format!("w{w}"))
                    .arg(&repo)
                    .arg(&src)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn bmsctl")
            })
            .collect();
        for (w, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().expect("wait bmsctl");
            if !out.status.success() {
                failures.push(format!(
                    "round {round} writer {w}: {}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "failed backups: {failures:#?}");
    assert_eq!(snapshot_count(&repo), ROUNDS * WRITERS);
    assert_verifies(&repo);
    let left: Vec<_> = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .chain(std::fs::read_dir(repo.join("tmp")).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    eprintln!("{} backups in {:?}", ROUNDS * WRITERS, started.elapsed());
}

#[test]
fn parallel_daemon_jobs_on_one_new_target_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        &format!("version = 1\nmax_concurrent_runs = {WRITERS}\n"),
    );
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        dir: Some(dir.path().to_owned()),
        ..Default::default()
    });
    drain_notifications(&d);
    let src = d.dir.join("src");
    write_small_tree(&src);
    // A new, empty directory: the first runs create the repository at the same time.
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    let jobs: Vec<String> = (0..WRITERS).map(|i| format!("j{i}")).collect();
    for j in &jobs {
        d.ctl_json([
            "job",
            "add",
            j,
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            NEVER,
            "--target",
            "t",
        ]);
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let ids: Vec<i64> = std::thread::scope(|s| {
            let hs: Vec<_> = jobs.iter().map(|j| s.spawn(|| d.start_run(j))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for id in ids {
            let r = d.wait_run_final(id, Duration::from_secs(60));
            if r["run"]["state"] != "succeeded" {
                failures.push(format!("round {round}: {r}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "failed runs: {failures:#?}\nlog:\n{}",
        d.log()
    );
    for j in &jobs {
        assert_eq!(d.snapshots(j, Some("t")).len(), ROUNDS, "job {j}");
    }
    assert_eq!(snapshot_count(&repo), ROUNDS * WRITERS);
    assert_verifies(&repo);
    eprintln!("{} runs in {:?}", ROUNDS * WRITERS, started.elapsed());
}
