//! The scheduler through the real bmsd and bmsctl: a job due every five seconds runs on time and
//! records its statistics; elapses missed while bmsd was down are caught up exactly once for
//! `--missed run-once` and not at all for `--missed skip`; and `job show` predicts the same next
//! runs as `systemd-analyze calendar`. Every daemon here runs with TZ=UTC.

use bms_tests::runner_util::*;
use bms_tests::*;
use jiff::Timestamp;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn utc() -> DaemonOpts {
    DaemonOpts {
        env: vec![("TZ".into(), "UTC".into())],
        ..Default::default()
    }
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn disk_target(d: &Daemon, name: &str) {
    let repo = d.dir.join(name);
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", name, "--path", repo.to_str().unwrap()]);
}

#[test]
fn job_every_five_seconds_runs_on_time_twice_with_statistics() {
    let d = Daemon::start_with(utc());
    let src = d.dir.join("src");
    let files = write_small_tree(&src);
    disk_target(&d, "t");
    let added = Timestamp::now();
    d.ctl_json([
        "job",
        "add",
        "tick",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "*:*:0/5",
        "--target",
        "t",
    ]);

    let runs = d.wait_final_runs("tick", 2, Duration::from_secs(20));
    // Stop further runs before counting.
    d.ctl_json(["job", "disable", "tick"]);
    let (first, second) = (&runs[0], &runs[1]);
    for r in [first, second] {
        assert_eq!(r["kind"], "backup", "{r}");
        assert_eq!(r["trigger"], "schedule", "{r}");
        assert_eq!(r["state"], "succeeded", "{r}");
        assert!(r["snapshot"].is_string(), "{r}");
        let started = ts(&r["started_at"]);
        assert!(started > added, "a run from before the job existed: {r}");
        // On time: at most ~2 s after a multiple of five seconds (started_at has whole seconds).
        let late = started.as_second().rem_euclid(5);
        assert!(late <= 2, "run started {late} s after its elapse: {r}");
        assert!(ts(&r["finished_at"]) >= started, "{r}");
        assert!(r["duration_secs"].as_f64().unwrap() >= 0.0, "{r}");
    }
    let gap = ts(&second["started_at"]).as_second() - ts(&first["started_at"]).as_second();
    assert!(
        (3..=7).contains(&gap),
        "two runs {gap} s apart, not one elapse: {runs:#?}"
    );
    // Statistics: everything new the first time, nothing changed the second.
    let (s1, s2) = (&first["stats"], &second["stats"]);
    assert_eq!(s1["files_new"].as_u64(), Some(files), "{s1}");
    assert_eq!(s1["files_changed"], 0, "{s1}");
    let total = s1["bytes_total"].as_u64().unwrap();
    assert_eq!(total, 6 + 18 + 6 + 24, "{s1}");
    assert_eq!(s1["bytes_read"].as_u64(), Some(total), "{s1}");
    assert!(
        s1["bytes_added"].as_u64().unwrap() > 0 && s1["chunks_new"].as_u64().unwrap() > 0,
        "{s1}"
    );
    assert_eq!(s2["files_new"], 0, "{s2}");
    assert_eq!(s2["files_unmodified"].as_u64(), Some(files), "{s2}");
    assert_eq!(s2["bytes_total"].as_u64(), Some(total), "{s2}");
    assert_eq!(s2["bytes_read"], 0, "unchanged files were read again: {s2}");

    let snaps = d.snapshots("tick", None);
    let final_runs = d
        .runs(Some("tick"))
        .into_iter()
        .filter(|r| r["state"] == "succeeded")
        .count();
    assert!(snaps.len() >= 2, "{snaps:#?}");
    assert_eq!(
        snaps.len(),
        final_runs,
        "one snapshot per successful run: {snaps:#?}"
    );
    assert_eq!(snaps[0]["id"], first["snapshot"]);
    assert_eq!(snaps[1]["id"], second["snapshot"]);
    assert_eq!(snaps[0]["run_id"], first["id"]);
    assert_eq!(snaps[0]["target"], "t");
    assert_eq!(snaps[0]["stats"]["files_new"].as_u64(), Some(files));
}

/// A calendar expression for the wall-clock second `t` (UTC) of every day.
fn daily_at(t: Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("*-*-* %H:%M:%S")
        .to_string()
}

/// Waits until the scheduler has done at least one pass after now: a sentinel job due every
/// second has run from the schedule. Returns with the sentinel disabled.
fn scheduler_barrier(d: &Daemon, src: &str) {
    d.ctl_json([
        "job",
        "add",
        "zz-sentinel",
        "--source",
        src,
        "--schedule",
        "*:*:*",
        "--target",
        "t",
    ]);
    d.wait_final_runs("zz-sentinel", 1, Duration::from_secs(15));
    d.ctl_json(["job", "disable", "zz-sentinel"]);
}

#[test]
fn missed_elapse_catches_up_once_for_run_once_and_never_for_skip() {
    let mut d = Daemon::start_with(utc());
    let src = d.dir.join("src");
    write_small_tree(&src);
    let src = src.to_str().unwrap().to_owned();
    disk_target(&d, "t");
    // Due in a few seconds, then not again for a day. Names sort the skip job first, so the
    // start-up pass has handled it by the time the run-once job's catch-up is queued.
    let due = Timestamp::now() + jiff::SignedDuration::from_secs(4);
    let sched = daily_at(due);
    for (name, policy) in [("a-skip", "skip"), ("b-once", "run-once")] {
        d.ctl_json([
            "job",
            "add",
            name,
            "--source",
            &src,
            "--schedule",
            &sched,
            "--target",
            "t",
            "--missed",
            policy,
        ]);
    }
    let show = d.ctl_json(["job", "show", "b-once"]);
    assert_eq!(show["missed"], "run-once", "{show}");
    assert_eq!(
        ts(&show["next_runs"][0]).as_second(),
        due.as_second(),
        "{show}"
    );

    assert!(d.stop().success());
    wait_for_clock(due + jiff::SignedDuration::from_millis(1500));
    d.spawn(&utc());

    let runs = d.wait_final_runs("b-once", 1, Duration::from_secs(20));
    scheduler_barrier(&d, &src);
    let runs_after = d.runs(Some("b-once"));
    assert_eq!(
        runs_after.len(),
        1,
        "exactly one catch-up run: {runs_after:#?}"
    );
    let r = &runs[0];
    assert_eq!(r["trigger"], "catch-up", "{r}");
    assert_eq!(r["state"], "succeeded", "{r}");
    assert!(ts(&r["started_at"]) > due, "{r}");
    assert_eq!(d.snapshots("b-once", None).len(), 1);

    let skipped = d.runs(Some("a-skip"));
    assert!(skipped.is_empty(), "the skip job ran: {skipped:#?}");
    assert!(d.snapshots("a-skip", None).is_empty());
    let log = d.log();
    assert!(
        log.lines()
            .any(|l| l.contains("a-skip") && l.contains("policy skip")),
        "the skipped elapse is not logged:\n{log}"
    );
    // Both jobs now wait for tomorrow's elapse.
    for name in ["a-skip", "b-once"] {
        let next = ts(&d.ctl_json(["job", "show", name])["next_runs"][0]);
        assert_eq!(
            next.as_second(),
            (due + jiff::SignedDuration::from_hours(24)).as_second(),
            "{name}"
        );
    }
}

/// The elapse times `systemd-analyze calendar --iterations=3` prints, in UTC.
fn systemd_analyze(expr: &str) -> Vec<Timestamp> {
    let out = Command::new("systemd-analyze")
        .env("TZ", "UTC")
        .args(["calendar", "--iterations=3", expr])
        .output()
        .expect("run systemd-analyze");
    assert!(
        out.status.success(),
        "systemd-analyze: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut times: Vec<Timestamp> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let key = key.trim();
        if !(key == "Next elapse" || key.starts_with("Iter. #") || key == "(in UTC)") {
            continue;
        }
        // "Mon 2026-11-30 02:00:00 UTC": a "(in UTC)" line replaces the local line before it.
        let parts: Vec<&str> = value.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "unexpected line {line:?}");
        assert_eq!(parts[3], "UTC", "TZ=UTC was not honoured: {line:?}");
        let t: Timestamp = format!("{}T{}Z", parts[1], parts[2]).parse().unwrap();
        if key == "(in UTC)" {
            times.pop();
        }
        times.push(t);
    }
    assert_eq!(times.len(), 3, "{text}");
    times
}

#[test]
fn next_runs_equal_systemd_analyze() {
    let d = Daemon::start_with(utc());
    let src = d.dir.display().to_string();
    disk_target(&d, "t");
    let exprs = [
        "*-*-* *:*:0/3",
        "Tue..Sat 07:15",
        "Mon,Wed *-*-1..7 23:59:30",
        "Fri *-2-29 12:00",
    ];
    for (i, expr) in exprs.iter().enumerate() {
        let name = format!("j{i}");
        // Disabled: the every-3-seconds job must not run while this test reads it.
        d.ctl_json([
            "job",
            "add",
            &name,
            "--source",
            &src,
            "--schedule",
            expr,
            "--target",
            "t",
            "--disabled",
        ]);
        // The daemon and systemd-analyze ask at slightly different moments: the daemon's answer
        // must equal what systemd-analyze says just before or just after.
        let before = systemd_analyze(expr);
        let job = d.ctl_json(["job", "show", &name]);
        let after = systemd_analyze(expr);
        let ours: Vec<Timestamp> = job["next_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(ts)
            .collect();
        assert!(
            ours == before || ours == after,
            "{expr}: bmsd says {ours:?}, systemd-analyze {before:?} / {after:?}"
        );
        for s in job["next_runs"].as_array().unwrap() {
            assert!(s.as_str().unwrap().ends_with("+00:00"), "not UTC: {job}");
        }
    }
}

#[test]
fn re_added_job_does_not_inherit_the_schedule_state_of_a_removed_one() {
    let d = Daemon::start_with(utc());
    let src = d.dir.join("src");
    write_small_tree(&src);
    let src = src.to_str().unwrap().to_owned();
    disk_target(&d, "t");
    let first_add = Timestamp::now();
    d.ctl_json([
        "job",
        "add",
        "re",
        "--source",
        &src,
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
    ]);
    // Let the scheduler record the job (a pass happens for the sentinel), then remove it.
    scheduler_barrier(&d, &src);
    d.ctl_json(["job", "rm", "re"]);
    // Re-add it with a daily time that passed after the first job was seen, before this one existed.
    wait_for_clock(first_add + jiff::SignedDuration::from_secs(3));
    let passed = Timestamp::from_second(Timestamp::now().as_second() - 1).unwrap();
    assert!(passed > first_add + jiff::SignedDuration::from_secs(1));
    d.ctl_json([
        "job",
        "add",
        "re",
        "--source",
        &src,
        "--schedule",
        &daily_at(passed),
        "--target",
        "t",
    ]);
    // Another scheduler pass after the re-add.
    d.ctl_json(["job", "rm", "zz-sentinel"]);
    scheduler_barrier(&d, &src);
    let runs = d.runs(Some("re"));
    assert!(
        runs.is_empty(),
        "an elapse from before the job existed ran: {runs:#?}"
    );
    let next = ts(&d.ctl_json(["job", "show", "re"])["next_runs"][0]);
    assert_eq!(next.as_second(), passed.as_second() + 86_400);
}

#[test]
fn elapse_while_the_job_is_still_running_becomes_a_skipped_run() {
    let d = Daemon::start_with(utc());
    let src = d.dir.join("src");
    write_small_tree(&src);
    disk_target(&d, "t");
    let gate = d.dir.join("gate");
    let pre = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    d.ctl_json([
        "job",
        "add",
        "slow",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "*:*:*",
        "--target",
        "t",
        "--pre-hook",
        &pre,
        "--hook-timeout",
        "60",
    ]);
    // The first scheduled run waits in its pre-hook; the next elapses find it running.
    let skipped = poll_every(
        Duration::from_secs(10),
        Duration::from_millis(100),
        "a skipped run",
        || {
            d.runs(Some("slow"))
                .into_iter()
                .find(|r| r["state"] == "skipped")
        },
    );
    d.ctl_json(["job", "disable", "slow"]);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(skipped["trigger"], "schedule", "{skipped}");
    let reason = skipped["error"].as_str().unwrap();
    assert!(
        reason.contains("already running") && reason.contains("schedule run was skipped"),
        "{reason}"
    );
    let runs = d.wait_final_runs("slow", d.runs(Some("slow")).len(), Duration::from_secs(30));
    let ok: Vec<_> = runs.iter().filter(|r| r["state"] == "succeeded").collect();
    assert_eq!(ok.len(), 1, "{runs:#?}");
    assert_eq!(ok[0]["trigger"], "schedule");
    assert!(ok[0]["id"].as_i64() < skipped["id"].as_i64(), "{runs:#?}");
    assert!(
        runs.iter()
            .all(|r| matches!(r["state"].as_str(), Some("succeeded" | "skipped"))),
        "{runs:#?}"
    );
}
