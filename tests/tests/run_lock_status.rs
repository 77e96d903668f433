//! A run that waits for a repository lock says so, and names the holder, in `run show`,
//! `run show --json` (progress.phase) and `run watch`, instead of a bare `running`.

use bms_tests::runner_util::*;
use bms_tests::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_run_waiting_for_a_lock_names_its_holder() {
    let (d, _src, repo) = daemon_with_job("a", &[]);
    let first = d.start_run("a");
    assert_eq!(
        d.wait_run_final(first, Duration::from_secs(30))["run"]["state"],
        "succeeded"
    );

    // Another writer holds the repository (here: this test, through the engine).
    let held = bms_engine::lock::acquire(
        &repo,
        bms_engine::lock::LockKind::Write,
        "nightly offsite sync",
        Duration::ZERO,
    )
    .unwrap();
    let id = d.start_run("a");
    let detail = poll_until(
        Duration::from_secs(20),
        "the run to wait for the lock",
        || {
            let r = d.run_show(id);
            r["progress"]["phase"]
                .as_str()
                .is_some_and(|p| p.starts_with("waiting for lock held by"))
                .then_some(r)
        },
    );
    let phase = detail["progress"]["phase"].as_str().unwrap();
    assert!(phase.contains("nightly offsite sync"), "{phase}");
    assert!(
        phase.contains(&format!("pid {}", std::process::id())),
        "{phase}"
    );
    assert_eq!(detail["run"]["state"], "running");
    let text = stdout(&d.ctl(["run", "show", &id.to_string()]));
    assert!(
        text.contains("waiting for lock held by nightly offsite sync"),
        "{text}"
    );

    // `run watch` without a terminal prints the wait in its progress lines.
    let mut watch = d
        .ctl_cmd()
        .args(["run", "watch", &id.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "no wait in the watch: {seen:?}");
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("watch ended early: {seen:?}"))
            .unwrap();
        if line.contains("waiting for lock held by nightly offsite sync") {
            break;
        }
        seen.push(line);
    }

    // Once the holder lets go, the run takes the lock and goes on to finish.
    drop(held);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let done = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert_eq!(d.snapshots("a", None).len(), 2);
}
