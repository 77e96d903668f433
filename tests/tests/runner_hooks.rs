//! Pre- and post-backup hooks and the one-run-per-job rule, through the real bmsd and bmsctl:
//! a failing pre-hook stops the run before any data is written and its output lands in the run
//! log; the post-hook always runs and gets BMS_RESULT; a hook past its timeout is killed; a second
//! `job run` while the job is going becomes a skipped run with a reason.

use bms_tests::runner_util::*;
use bms_tests::*;
use std::path::Path;
use std::time::Duration;

/// A schedule that never fires during a test.
const NEVER: &str = "2099-01-01 00:00:00";

/// A daemon with a disk target `t` (a directory under the test dir) and a small source tree.
fn setup() -> (Daemon, std::path::PathBuf, std::path::PathBuf) {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    (d, src, repo)
}

fn add_job(d: &Daemon, name: &str, src: &Path, extra: &[&str]) {
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
    ];
    args.extend_from_slice(extra);
    d.ctl_json(args);
}

fn log_text(detail: &serde_json::Value) -> String {
    detail["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn failing_pre_hook_fails_the_run_before_any_data_and_post_hook_still_runs() {
    let (d, src, repo) = setup();
    let result = d.dir.join("result");
    let pre = "echo 'database dump failed: disk quota' ; echo 'on stderr too' >&2 ; exit 1";
    let post = format!(
        "printf '%s|%s|%s' \"$BMS_RESULT\" \"$BMS_PHASE\" \"$BMS_JOB\" > {}",
        result.display()
    );
    add_job(&d, "pre", &src, &["--pre-hook", pre, "--post-hook", &post]);

    let id = d.start_run("pre");
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    let run = &detail["run"];
    assert_eq!(run["state"], "failed", "{detail}");
    assert_eq!(run["trigger"], "manual");
    let err = run["error"].as_str().unwrap();
    assert!(
        err.contains("pre-hook failed") && err.contains("exit 1"),
        "{err}"
    );
    assert!(run["snapshot"].is_null(), "{detail}");
    assert_eq!(run["stats"]["bytes_read"], 0, "{detail}");
    let log = log_text(&detail);
    assert!(log.contains("pre-hook: exit 1"), "{log}");
    assert!(
        log.contains("database dump failed: disk quota") && log.contains("on stderr too"),
        "{log}"
    );
    assert!(log.contains("post-hook: exit 0"), "{log}");
    // Nothing was written: no snapshot in the catalog, and no repository on the target.
    assert!(d.snapshots("pre", None).is_empty());
    let entries: Vec<_> = std::fs::read_dir(&repo).unwrap().collect();
    assert!(entries.is_empty(), "the target was written to: {entries:?}");
    // The post-hook ran with the result.
    assert_eq!(std::fs::read_to_string(&result).unwrap(), "failed|post|pre");

    // The human form of `run show` shows the hook output too.
    let out = d.ctl(["run", "show", &id.to_string()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("database dump failed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn post_hook_receives_the_result_of_a_successful_run() {
    let (d, src, _repo) = setup();
    let result = d.dir.join("result");
    let pre_marker = d.dir.join("pre-ran");
    let pre = format!(
        "echo \"$BMS_PHASE $BMS_JOB $BMS_TARGET\" > {}",
        pre_marker.display()
    );
    let post = format!(
        "printf '%s|%s|%s' \"$BMS_RESULT\" \"$BMS_SNAPSHOT\" \"$BMS_RUN_ID\" > {}; echo post-output",
        result.display()
    );
    add_job(&d, "ok", &src, &["--pre-hook", &pre, "--post-hook", &post]);
    let id = d.start_run("ok");
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    let snap = detail["run"]["snapshot"].as_str().unwrap().to_owned();
    assert_eq!(std::fs::read_to_string(&pre_marker).unwrap(), "pre ok t\n");
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        format!("succeeded|{snap}|{id}")
    );
    let log = log_text(&detail);
    assert!(
        log.contains("pre-hook: exit 0")
            && log.contains("post-hook: exit 0")
            && log.contains("post-output"),
        "{log}"
    );
    assert_eq!(d.snapshots("ok", None).len(), 1);
}

#[test]
fn hook_past_its_timeout_is_killed_and_fails_the_run() {
    let (d, src, repo) = setup();
    let pidfile = d.dir.join("sleeper.pid");
    // The sleeper is a grandchild of bmsd: killing only the shell would leave it running.
    let pre = format!("sleep 60 & echo $! > {} ; wait", pidfile.display());
    add_job(
        &d,
        "slow",
        &src,
        &["--pre-hook", &pre, "--hook-timeout", "1"],
    );
    let started = std::time::Instant::now();
    let id = d.start_run("slow");
    let detail = d.wait_run_final(id, Duration::from_secs(20));
    let took = started.elapsed();
    assert_eq!(detail["run"]["state"], "failed", "{detail}");
    let err = detail["run"]["error"].as_str().unwrap();
    assert!(err.contains("timed out after 1 s"), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "the hook was not stopped at its timeout: {took:?}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    poll_until(
        Duration::from_secs(5),
        "the hook's child to be killed",
        || process_gone(pid).then_some(()),
    );
    assert!(d.snapshots("slow", None).is_empty());
    assert_eq!(
        std::fs::read_dir(&repo).unwrap().count(),
        0,
        "the target was written to"
    );
}

#[test]
fn second_run_while_one_is_going_is_skipped_with_a_reason() {
    let (d, src, _repo) = setup();
    let gate = d.dir.join("gate");
    // The first run waits in its pre-hook until the test opens the gate.
    let pre = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    add_job(
        &d,
        "busy",
        &src,
        &["--pre-hook", &pre, "--hook-timeout", "60"],
    );
    let first = d.start_run("busy");
    poll_until(
        Duration::from_secs(10),
        "the first run to be in its pre-hook",
        || {
            let r = d.run_show(first);
            (r["run"]["state"] == "running" && r["progress"]["phase"] == "pre-hook").then_some(())
        },
    );

    let out = d.ctl(["job", "run", "busy"]);
    assert_fails(&out, 1, "already running");
    assert!(
        stderr(&out).contains(&format!("run {first}")),
        "{}",
        stderr(&out)
    );
    let runs = d.runs(Some("busy"));
    assert_eq!(runs.len(), 2, "{runs:#?}");
    let skipped = &runs[1];
    assert_eq!(skipped["state"], "skipped", "{skipped}");
    assert_eq!(skipped["trigger"], "manual");
    assert!(
        skipped["error"]
            .as_str()
            .unwrap()
            .contains("already running"),
        "{skipped}"
    );
    assert!(
        skipped["finished_at"].is_string(),
        "a skipped run is final: {skipped}"
    );
    assert_eq!(d.run_show(first)["run"]["state"], "running");

    std::fs::write(&gate, "").unwrap();
    let detail = d.wait_run_final(first, Duration::from_secs(30));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    // With the job idle again, a new run is accepted.
    let third = d.start_run("busy");
    assert_eq!(
        d.wait_run_final(third, Duration::from_secs(30))["run"]["state"],
        "succeeded"
    );
    assert_eq!(d.snapshots("busy", None).len(), 2);
}

#[test]
fn post_hook_runs_when_the_target_fails_its_preflight() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    let missing = d.dir.join("not-there");
    d.ctl_json(["target", "add", "gone", "--path", missing.to_str().unwrap()]);
    let pre_marker = d.dir.join("pre-ran");
    let result = d.dir.join("result");
    let pre = format!("touch {}", pre_marker.display());
    let post = format!(
        "printf '%s|%s' \"$BMS_RESULT\" \"$BMS_ERROR\" > {}",
        result.display()
    );
    d.ctl_json([
        "job",
        "add",
        "p",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "gone",
        "--pre-hook",
        &pre,
        "--post-hook",
        &post,
    ]);
    let id = d.start_run("p");
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(detail["run"]["state"], "failed", "{detail}");
    let err = detail["run"]["error"].as_str().unwrap();
    assert!(
        err.contains("pre-flight") && err.contains("does not exist"),
        "{err}"
    );
    assert!(
        !pre_marker.exists(),
        "the pre-hook ran although the target was not usable"
    );
    assert_eq!(
        std::fs::read_to_string(&result).unwrap(),
        format!("failed|{err}")
    );
    assert!(log_text(&detail).contains("post-hook: exit 0"), "{detail}");
    assert!(
        !missing.exists(),
        "the run created the missing target directory"
    );
}

/// A hook that leaves a process in the background holding its output open ends when its shell
/// ends, and a chatty hook's output is cut at 64 KiB instead of filling bmsd's memory.
#[test]
fn hook_with_background_child_and_huge_output_is_bounded() {
    let d = bms_tests::Daemon::start();
    let src = d.dir.join("bgsrc");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let out = d.ctl([
        "job",
        "add",
        "bg",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
        "--pre-hook",
        "sleep 30 & echo started-in-background; head -c 20000000 /dev/zero | tr '\\0' 'y'; exit 0",
        "--hook-timeout",
        "20",
    ]);
    bms_tests::assert_ok(&out);
    let started = std::time::Instant::now();
    bms_tests::assert_ok(&d.ctl(["job", "run", "bg", "--wait"]));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "waited for the background child"
    );
    let runs = d.ctl_json(["run", "list", "--job", "bg"]);
    let id = runs["runs"][0]["id"].as_i64().unwrap();
    let detail = d.ctl_json(["run", "show", &id.to_string()]);
    let log = detail["log"].as_array().unwrap();
    let output = log
        .iter()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("pre-hook output"))
        .unwrap();
    assert!(
        output.contains("started-in-background"),
        "{}",
        &output[..200.min(output.len())]
    );
    assert!(output.contains("[output cut at 64 KiB]"), "output not cut");
    assert!(
        output.len() < 70_000,
        "kept {} bytes of hook output",
        output.len()
    );
}
