//! The run queue through the real bmsd and bmsctl: the global concurrency limit holds further
//! runs `queued`, a queued run can be cancelled before it starts, a run in its pre-hook is
//! cancelled at once (the hook is killed, the post-hook still runs), and SIGTERM records a
//! running run as interrupted. Runs are held in place by pre-hooks that wait for a gate file,
//! so nothing here depends on timing.

use bms_tests::runner_util::*;
use bms_tests::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NEVER: &str = "2099-01-01 00:00:00";

/// A daemon with a config file; the directory outlives the daemon (drop order).
fn start(max_concurrent: u32) -> (tempfile::TempDir, Daemon) {
    let dir = tempfile::Builder::new()
        .prefix("bms-queue-")
        .tempdir()
        .unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        &format!("version = 1\nmax_concurrent_runs = {max_concurrent}\n"),
    );
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        dir: Some(dir.path().to_owned()),
        ..Default::default()
    });
    (dir, d)
}

/// A disk target `t` and a small source; returns the source path.
fn setup(d: &Daemon) -> PathBuf {
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    src
}

/// Adds a job whose pre-hook waits for `gate` to exist (and records its PID in `gate.pid`).
fn gated_job(d: &Daemon, name: &str, src: &Path, gate: &Path, extra: &[&str]) {
    let pre = format!(
        "echo $$ > {g}.pid; while [ ! -e {g} ]; do sleep 0.05; done",
        g = gate.display()
    );
    let mut args = vec![
        "job",
        "add",
        name,
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "t",
        "--pre-hook",
        &pre,
    ];
    args.extend_from_slice(extra);
    args.extend(["--hook-timeout", "120"]);
    d.ctl_json(args);
}

fn state(d: &Daemon, id: i64) -> String {
    d.run_show(id)["run"]["state"].as_str().unwrap().to_owned()
}

fn wait_in_pre_hook(d: &Daemon, id: i64) {
    poll_until(
        Duration::from_secs(10),
        "the run to be in its pre-hook",
        || {
            let r = d.run_show(id);
            (r["run"]["state"] == "running" && r["progress"]["phase"] == "pre-hook").then_some(())
        },
    );
}

#[test]
fn concurrency_limit_queues_runs_and_a_queued_run_can_be_cancelled() {
    let (_dir, mut d) = start(1);
    let src = setup(&d);
    let gate = d.dir.join("gate");
    gated_job(&d, "a", &src, &gate, &[]);
    gated_job(&d, "b", &src, &d.dir.join("gate-b"), &[]);
    gated_job(&d, "c", &src, &d.dir.join("gate-c"), &[]);
    std::fs::write(d.dir.join("gate-b"), "").unwrap();
    std::fs::write(d.dir.join("gate-c"), "").unwrap();

    let a = d.start_run("a");
    wait_in_pre_hook(&d, a);
    // systemd sees what runs now.
    d.wait_for_notify(
        &format!("STATUS=running: a (run {a})"),
        Duration::from_secs(5),
    );
    let b = d.start_run("b");
    let c = d.start_run("c");
    // Only one slot: b and c wait.
    assert_eq!(state(&d, b), "queued");
    assert_eq!(state(&d, c), "queued");
    assert_eq!(d.run_show(b)["progress"]["phase"], "queued");

    // Cancel c while it waits: it never starts.
    let reply = d.ctl_json(["run", "cancel", &c.to_string()]);
    assert_eq!(reply["state"], "cancelled", "{reply}");
    let cd = d.run_show(c);
    assert!(cd["run"]["started_at"].is_null(), "{cd}");
    assert!(
        cd["run"]["error"]
            .as_str()
            .unwrap()
            .contains("before it started"),
        "{cd}"
    );
    assert_eq!(state(&d, b), "queued");

    // Open the gate: a finishes, then b runs.
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        d.wait_run_final(a, Duration::from_secs(30))["run"]["state"],
        "succeeded"
    );
    let bd = d.wait_run_final(b, Duration::from_secs(30));
    assert_eq!(bd["run"]["state"], "succeeded", "{bd}");
    let a_done: jiff::Timestamp = d.run_show(a)["run"]["finished_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let b_started: jiff::Timestamp = bd["run"]["started_at"].as_str().unwrap().parse().unwrap();
    assert!(
        b_started >= a_done,
        "b started at {b_started} before a ended at {a_done}"
    );
    assert_eq!(state(&d, c), "cancelled");
    assert!(d.snapshots("c", None).is_empty());
    d.wait_for_notify(
        &format!("STATUS=running: b (run {b})"),
        Duration::from_secs(5),
    );
    d.wait_for_notify("STATUS=ready: idle", Duration::from_secs(5));
}

#[test]
fn cancel_during_the_pre_hook_kills_the_hook_and_runs_the_post_hook() {
    let (_dir, d) = start(2);
    let src = setup(&d);
    let gate = d.dir.join("gate");
    let result = d.dir.join("result");
    let post = format!("echo \"$BMS_RESULT\" > {}", result.display());
    gated_job(&d, "h", &src, &gate, &["--post-hook", &post]);
    let id = d.start_run("h");
    wait_in_pre_hook(&d, id);
    let pid: i32 = poll_until(Duration::from_secs(5), "the hook's pid", || {
        std::fs::read_to_string(gate.with_extension("pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });

    let t = Instant::now();
    d.ctl_json(["run", "cancel", &id.to_string()]);
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    let took = t.elapsed();
    assert_eq!(detail["run"]["state"], "cancelled", "{detail}");
    assert!(
        took < Duration::from_secs(5),
        "cancel waited for the hook: {took:?}"
    );
    poll_until(Duration::from_secs(5), "the hook to be killed", || {
        process_gone(pid).then_some(())
    });
    assert_eq!(std::fs::read_to_string(&result).unwrap(), "cancelled\n");
    assert!(d.snapshots("h", None).is_empty());
    assert_eq!(
        std::fs::read_dir(d.dir.join("repo")).unwrap().count(),
        0,
        "data was written"
    );
}

#[test]
fn sigterm_records_a_running_run_as_interrupted() {
    let (_dir, mut d) = start(2);
    let src = setup(&d);
    let gate = d.dir.join("gate");
    gated_job(&d, "s", &src, &gate, &[]);
    let id = d.start_run("s");
    wait_in_pre_hook(&d, id);
    let t = Instant::now();
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "shutdown waited for the hook: {:?}",
        t.elapsed()
    );
    d.spawn(&DaemonOpts {
        args: vec![
            "--config".into(),
            d.dir.join("bmsd.toml").display().to_string(),
        ],
        ..Default::default()
    });
    let detail = d.run_show(id);
    assert_eq!(detail["run"]["state"], "interrupted", "{detail}");
    assert!(
        detail["run"]["error"]
            .as_str()
            .unwrap()
            .contains("shut down"),
        "{detail}"
    );
    // The job runs again after the restart.
    std::fs::write(&gate, "").unwrap();
    let next = d.start_run("s");
    assert_eq!(
        d.wait_run_final(next, Duration::from_secs(30))["run"]["state"],
        "succeeded"
    );
}

/// Lock files of the repository at `repo`.
fn lock_files(repo: &Path) -> usize {
    std::fs::read_dir(repo.join("locks"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

#[test]
fn a_run_waits_for_a_repository_another_writer_holds() {
    let (_dir, d) = start(2);
    let src = setup(&d);
    let repo = d.dir.join("repo");
    for name in ["a", "b"] {
        d.ctl_json([
            "job",
            "add",
            name,
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            NEVER,
            "--target",
            "t",
        ]);
    }
    let first = d.start_run("a");
    assert_eq!(
        d.wait_run_final(first, Duration::from_secs(30))["run"]["state"],
        "succeeded"
    );

    // Another writer (here: this test, through the engine) holds the repository.
    let held = bms_engine::lock::acquire(
        &repo,
        bms_engine::lock::LockKind::Write,
        "test holder",
        Duration::ZERO,
    )
    .unwrap();
    let waiting = d.start_run("a");
    poll_until(
        Duration::from_secs(20),
        "run a to wait for the lock",
        || {
            d.log()
                .contains("backup of job a: waiting up to 86400s for the lock")
                .then_some(())
        },
    );
    assert_eq!(state(&d, waiting), "running");
    assert!(d.log().contains("test holder"), "the holder is named");
    // A waiting run can be cancelled.
    d.ctl_json(["run", "cancel", &waiting.to_string()]);
    let cancelled = d.wait_run_final(waiting, Duration::from_secs(10));
    assert_eq!(cancelled["run"]["state"], "cancelled", "{cancelled}");

    // Two jobs on one target while the lock is held: both wait, then both succeed in turn.
    let a = d.start_run("a");
    let b = d.start_run("b");
    poll_until(
        Duration::from_secs(20),
        "run b to wait for the lock",
        || {
            d.log()
                .contains("backup of job b: waiting up to 86400s for the lock")
                .then_some(())
        },
    );
    assert_eq!(state(&d, a), "running");
    assert_eq!(state(&d, b), "running");
    drop(held);
    for id in [a, b] {
        let r = d.wait_run_final(id, Duration::from_secs(30));
        assert_eq!(r["run"]["state"], "succeeded", "{r}");
    }
    assert_eq!(lock_files(&repo), 0, "every lock released");
    assert_eq!(d.snapshots("b", None).len(), 1);
}
