//! Controlling big runs through the real bmsd and bmsctl: `run watch` streams growing progress
//! and `run cancel` stops a multi-GB run quickly; a job timeout fails a run as "timed out";
//! kill -9 of bmsd mid-run leaves an `interrupted` run, the next run recovers the repository lock
//! and succeeds, and the offline `bmsctl repo verify` finds the repository clean; the same for
//! an encrypted target, whose lock files are sealed.
//! The data is incompressible and unique (no dedup), generated fast and removed afterwards.

use bms_tests::runner_util::*;
use bms_tests::*;
use serde_json::Value;
use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const NEVER: &str = "2099-01-01 00:00:00";
const MIB: u64 = 1 << 20;

/// A daemon with a disk target `t` and a job `big` over `files` x `file_mib` MiB of noise.
fn setup(files: usize, file_mib: usize, extra: &[&str]) -> (Daemon, std::path::PathBuf, u64) {
    setup_target(files, file_mib, extra, &[])
}

/// [`setup`] with more `target add` arguments.
fn setup_target(
    files: usize,
    file_mib: usize,
    extra: &[&str],
    target: &[&str],
) -> (Daemon, std::path::PathBuf, u64) {
    let d = Daemon::start();
    let src = d.dir.join("src");
    let total = write_noise_tree(&src, files, file_mib, files as u64 * 31 + file_mib as u64);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let mut add = vec!["target", "add", "t", "--path", repo.to_str().unwrap()];
    add.extend_from_slice(target);
    d.ctl_json(add);
    let mut args = vec![
        "job",
        "add",
        "big",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "t",
    ];
    args.extend_from_slice(extra);
    d.ctl_json(args);
    (d, repo, total)
}

#[test]
fn watch_streams_progress_of_a_multi_gb_run_and_cancel_stops_it() {
    let (d, _repo, total) = setup(64, 32, &[]);
    assert_eq!(total, 2048 * MIB);
    let id = d.start_run("big");

    let mut watch = d
        .ctl_cmd()
        .args(["--json", "run", "watch", &id.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = watch.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Progress lines until bytes_read has grown twice.
    let mut lines: Vec<Value> = Vec::new();
    let mut growth = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while growth < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no growing progress from run watch: {lines:#?}"));
        let v: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert_eq!(v["run"]["id"].as_i64(), Some(id), "{v}");
        assert!(!v["run"]["state"].is_null(), "{v}");
        let state = v["run"]["state"].as_str().unwrap();
        assert!(
            matches!(state, "queued" | "running"),
            "the run ended before it was cancelled: {v}"
        );
        let read = v["progress"]["bytes_read"].as_u64().unwrap_or(0);
        if let Some(prev) = lines
            .last()
            .and_then(|p| p["progress"]["bytes_read"].as_u64())
        {
            assert!(read >= prev, "bytes_read went back from {prev} to {read}");
            if read > prev && prev > 0 {
                growth += 1;
            }
        }
        lines.push(v);
    }
    let last = lines.last().unwrap()["progress"].clone();
    assert_eq!(last["phase"], "backup", "{last}");
    assert!(last["bytes_read"].as_u64().unwrap() < total, "{last}");
    assert!(last["files"].as_u64().is_some(), "{last}");
    assert!(last["bytes_per_sec"].as_f64().unwrap() > 0.0, "{last}");

    // Cancel: the run stops within a few seconds.
    let cancelled_at = Instant::now();
    let reply = d.ctl_json(["run", "cancel", &id.to_string()]);
    assert_eq!(reply["id"].as_i64(), Some(id), "{reply}");
    let detail = d.wait_run_final(id, Duration::from_secs(10));
    let took = cancelled_at.elapsed();
    assert_eq!(detail["run"]["state"], "cancelled", "{detail}");
    assert!(took < Duration::from_secs(5), "cancel took {took:?}");
    assert!(detail["run"]["snapshot"].is_null(), "{detail}");
    assert!(
        detail["run"]["error"].as_str().unwrap().contains("cancel"),
        "{detail}"
    );

    // The watch ends with the final state and exit status 1 (the run did not succeed).
    let status = poll_until(Duration::from_secs(10), "run watch to exit", || {
        watch.try_wait().unwrap()
    });
    reader.join().unwrap();
    let rest: Vec<Value> = rx
        .try_iter()
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let final_line = rest
        .last()
        .unwrap_or_else(|| panic!("watch printed no final line"));
    assert_eq!(final_line["run"]["state"], "cancelled", "{final_line}");
    assert_eq!(status.code(), Some(1), "run watch of a cancelled run");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("cancelled"), "{err}");
    assert!(d.snapshots("big", None).is_empty());

    // Cancelling a finished run is refused as a failure, not as a usage error.
    assert_fails(
        &d.ctl(["run", "cancel", &id.to_string()]),
        1,
        "not queued or running",
    );

    // The next run of the job succeeds.
    let out = d.ctl(["job", "run", "big", "--wait"]);
    assert_ok(&out);
    let runs = d.runs(Some("big"));
    let next = runs.last().unwrap();
    assert_eq!(next["state"], "succeeded", "{next}");
    assert_eq!(next["stats"]["bytes_total"].as_u64(), Some(total), "{next}");
    assert_eq!(d.snapshots("big", None).len(), 1);
    std::fs::remove_dir_all(d.dir.join("src")).unwrap();
}

#[test]
fn job_timeout_stops_a_big_run_as_failed() {
    let (d, _repo, _total) = setup(48, 32, &["--timeout", "2"]);
    let started = Instant::now();
    let id = d.start_run("big");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    let took = started.elapsed();
    let run = &detail["run"];
    assert_eq!(run["state"], "failed", "{detail}");
    let err = run["error"].as_str().unwrap();
    assert!(err.contains("timed out"), "{err}");
    assert!(run["snapshot"].is_null(), "{detail}");
    assert!(
        took >= Duration::from_secs(2),
        "stopped before its timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "not stopped at its timeout: {took:?}"
    );
    assert!(d.snapshots("big", None).is_empty());
    std::fs::remove_dir_all(d.dir.join("src")).unwrap();
}

#[test]
fn kill_9_mid_run_is_interrupted_and_the_next_run_recovers_the_lock() {
    kill_9_mid_run(false);
}

#[test]
fn kill_9_mid_run_into_an_encrypted_target_recovers_its_sealed_lock() {
    kill_9_mid_run(true);
}

fn kill_9_mid_run(encrypted: bool) {
    let key = tempfile::tempdir().unwrap();
    let key_file = key.path().join("t.key");
    let key_arg = key_file.to_str().unwrap();
    let target: &[&str] = if encrypted {
        &["--encrypt", "--key-file", key_arg]
    } else {
        &[]
    };
    let (mut d, repo, total) = setup_target(32, 32, &[], target);
    let id = d.start_run("big");
    d.wait_run_progress(id, 16 * MIB, Duration::from_secs(60));
    d.signal(nix::sys::signal::Signal::SIGKILL);
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(!status.success(), "{status}");
    let locks: Vec<_> = std::fs::read_dir(repo.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        !locks.is_empty(),
        "the killed run left no repository lock to recover"
    );
    if encrypted {
        // The lock names its holder (host, pid, job) only inside the seal.
        for l in &locks {
            let bytes = std::fs::read(l).unwrap();
            assert!(
                serde_json::from_slice::<Value>(&bytes).is_err(),
                "{} is readable JSON in an encrypted repository",
                l.display()
            );
            assert!(
                !String::from_utf8_lossy(&bytes).contains("big"),
                "{}",
                l.display()
            );
        }
    }

    d.spawn(&DaemonOpts::default());
    let detail = d.run_show(id);
    assert_eq!(detail["run"]["state"], "interrupted", "{detail}");
    assert!(detail["run"]["finished_at"].is_string(), "{detail}");
    assert!(
        detail["run"]["error"]
            .as_str()
            .unwrap()
            .contains("bmsd stopped"),
        "{detail}"
    );
    assert!(d.snapshots("big", None).is_empty());

    let next = d.start_run("big");
    let detail = d.wait_run_final(next, Duration::from_secs(120));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    assert_eq!(
        detail["run"]["stats"]["bytes_total"].as_u64(),
        Some(total),
        "{detail}"
    );
    // The killed run's lock was recovered, at start-up or by this run, and none is left over.
    let log = detail["log"].to_string();
    assert!(
        log.contains("stale lock") || d.log().contains("recovered stale lock"),
        "the stale lock was not recovered: run log {log}\ndaemon log:\n{}",
        d.log()
    );
    assert_eq!(
        std::fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "locks left behind"
    );
    assert_eq!(d.snapshots("big", None).len(), 1);

    let mut verify = clean_command(bin("bmsctl"));
    verify.args(["repo", "verify"]).arg(&repo);
    if encrypted {
        verify.args(["--key-file", key_arg]);
    }
    let out = verify.output().unwrap();
    assert_ok(&out);
    assert!(
        stdout(&out).contains("no problems found"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir_all(d.dir.join("src")).unwrap();
}
