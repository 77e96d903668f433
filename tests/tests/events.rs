//! The event stream through the real binaries (`bmsctl --json events`): a run's events arrive
//! as RunQueued → RunStarted → RunProgress… → RunFinished, in order, for a manual run, a run
//! failed by its pre-hook, a cancelled run and the copy run of a job with two targets; `--job`
//! leaves other jobs out; a target check reports the target's state when it changes; and
//! WatchEvents on the wire starts with an empty reply and needs `"more"`.

use bms_tests::events_util::{kinds, run_of, EventStream};
use bms_tests::runner_util::*;
use bms_tests::*;
use serde_json::Value;
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";
const T: Duration = Duration::from_secs(60);

fn setup(targets: &[&str]) -> (Daemon, std::path::PathBuf) {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    for t in targets {
        let p = d.dir.join(t);
        std::fs::create_dir_all(&p).unwrap();
        d.ctl_json(["target", "add", t, "--path", p.to_str().unwrap()]);
    }
    (d, src)
}

fn add_job(d: &Daemon, name: &str, src: &std::path::Path, extra: &[&str]) {
    let mut args = vec![
        "job",
        "add",
        name,
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
    ];
    args.extend_from_slice(extra);
    d.ctl_json(args);
}

/// The events of one run: queued, started, some progress, finished in `state`.
fn assert_run_sequence(events: &[Value], state: &str) {
    assert_eq!(
        kinds(events),
        ["RunQueued", "RunStarted", "RunProgress", "RunFinished"],
        "{events:#?}"
    );
    let end = events.last().unwrap();
    assert_eq!(end["state"], state, "{end}");
    assert_eq!(end["run"]["state"], state, "{end}");
}

#[test]
fn a_manual_run_is_queued_started_progresses_and_finishes_in_order() {
    let (d, src) = setup(&["t"]);
    add_job(&d, "m", &src, &["--target", "t"]);
    let mut events = EventStream::start(&d, None);
    let id = d.start_run("m");
    let seen = events.run_events(id, T);
    assert_run_sequence(&seen, "succeeded");
    let end = seen.last().unwrap();
    assert!(end["stats"]["files_new"].as_u64().unwrap() > 0, "{end}");
    assert!(end["error"].is_null(), "{end}");
    assert_eq!(seen[0]["run"]["job"], "m");
    assert_eq!(seen[0]["run"]["state"], "queued");
    // What the event said is what the catalog has.
    let shown = d.run_show(id);
    assert_eq!(shown["run"]["state"], "succeeded");
    assert_eq!(shown["run"]["stats"], end["stats"]);
}

#[test]
fn a_run_failed_by_its_pre_hook_ends_with_the_reason() {
    let (d, src) = setup(&["t"]);
    add_job(&d, "f", &src, &["--target", "t", "--pre-hook", "exit 3"]);
    let mut events = EventStream::start(&d, Some("f"));
    let id = d.start_run("f");
    let seen = events.run_events(id, T);
    assert_run_sequence(&seen, "failed");
    let err = seen.last().unwrap()["error"].as_str().unwrap().to_owned();
    assert!(err.contains("pre-hook failed"), "{err}");
}

#[test]
fn a_cancelled_run_ends_cancelled() {
    let (d, src) = setup(&["t"]);
    add_job(
        &d,
        "c",
        &src,
        &[
            "--target",
            "t",
            "--pre-hook",
            "sleep 60",
            "--hook-timeout",
            "120",
        ],
    );
    let mut events = EventStream::start(&d, Some("c"));
    let id = d.start_run("c");
    events.wait(T, "start of the run", |seen| {
        seen.iter()
            .any(|e| e["type"] == "RunStarted" && run_of(e) == Some(id))
    });
    assert_ok(&d.ctl(["run", "cancel", &id.to_string()]));
    let seen = events.run_events(id, T);
    assert_run_sequence(&seen, "cancelled");
}

#[test]
fn a_copy_run_has_its_own_events_inside_its_backup_run() {
    let (d, src) = setup(&["first", "second"]);
    add_job(
        &d,
        "two",
        &src,
        &["--target", "first", "--target", "second"],
    );
    let mut events = EventStream::start(&d, Some("two"));
    let id = d.start_run("two");
    let backup = events.run_events(id, T);
    assert_run_sequence(&backup, "succeeded");
    let copy_id = events
        .seen
        .iter()
        .find(|e| e["type"] == "RunQueued" && e["run"]["kind"] == "copy")
        .and_then(run_of)
        .unwrap_or_else(|| panic!("no copy run queued: {:#?}", events.seen));
    let copy = events.run_events(copy_id, T);
    assert_run_sequence(&copy, "succeeded");
    assert_eq!(copy[0]["run"]["parent_run"].as_i64(), Some(id));
    assert_eq!(copy[0]["run"]["target"], "second");
    // The copy ends before its backup run does.
    let pos = |want: i64| {
        events
            .seen
            .iter()
            .position(|e| e["type"] == "RunFinished" && run_of(e) == Some(want))
            .unwrap()
    };
    assert!(pos(copy_id) < pos(id), "{:#?}", events.seen);
}

#[test]
fn job_filter_leaves_other_jobs_out_and_target_checks_report_state_changes() {
    let (d, src) = setup(&["t"]);
    add_job(&d, "a", &src, &["--target", "t"]);
    add_job(&d, "b", &src, &["--target", "t"]);
    let mut only_b = EventStream::start(&d, Some("b"));
    let mut all = EventStream::start(&d, None);
    let a = d.start_run("a");
    all.run_events(a, T);
    let b = d.start_run("b");
    only_b.run_events(b, T);
    assert!(
        only_b
            .seen
            .iter()
            .all(|e| e["run"]["job"] == "b" || e["job"] == "b"),
        "{:#?}",
        only_b.seen
    );
    // The runs' pre-flight checks found `t` fine: one TargetStateChanged (ok), not one a run.
    all.run_events(b, T);
    let changes: Vec<&Value> = all
        .seen
        .iter()
        .filter(|e| e["type"] == "TargetStateChanged")
        .collect();
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert_eq!(changes[0]["target"], "t");
    assert_eq!(changes[0]["state"], "ok");
    // The target goes away: the next check says so.
    std::fs::remove_dir_all(d.dir.join("t")).unwrap();
    let _ = d.ctl(["target", "check", "t"]);
    all.wait(T, "TargetStateChanged to error", |seen| {
        seen.iter()
            .any(|e| e["type"] == "TargetStateChanged" && e["state"] == "error")
    });
}

#[test]
fn watch_events_on_the_wire_streams_with_more_and_is_refused_without() {
    let (d, src) = setup(&["t"]);
    add_job(&d, "w", &src, &["--target", "t"]);
    let mut conn = bms_tests::raw::RawConn::connect(&d.socket());
    let reply = conn.call(&serde_json::json!({"method": "org.bms.Manager.WatchEvents"}));
    assert_eq!(
        bms_tests::raw::error_name(&reply),
        Some("org.bms.Manager.InvalidArgument"),
        "{reply}"
    );
    let hello = conn.call(&serde_json::json!({
        "method": "org.bms.Manager.WatchEvents",
        "parameters": {"job": "w"},
        "more": true,
    }));
    assert_eq!(hello["continues"], true, "{hello}");
    assert!(hello["parameters"]["event"].is_null(), "{hello}");
    let id = d.start_run("w");
    loop {
        let m = conn.read_message().expect("the stream goes on");
        assert_eq!(m["continues"], true, "{m}");
        let e = &m["parameters"]["event"];
        if e["type"] == "RunFinished" && run_of(e) == Some(id) {
            assert_eq!(e["state"], "succeeded", "{e}");
            break;
        }
    }
}
