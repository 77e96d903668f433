//! bmsctl and the protocol refuse what they cannot do and say what they do not do yet:
//! settings once stored but not enforced (retention, immutable_days) carry no note now that both are enforced, `apply` refuses a name defined twice, a closed
//! pipe ends bmsctl quietly, `--json` errors name the wire error, long names are cut in
//! messages, and schedules with an unknown time zone or no elapse are refused.

use bms_tests::cli_checks::{add_job, ctl_offline, head_1};
use bms_tests::raw::{error_name, RawConn};
use bms_tests::*;
use serde_json::{json, Value};
use std::os::unix::process::ExitStatusExt;

fn notes(v: &Value) -> Vec<String> {
    v["notes"]
        .as_array()
        .unwrap_or_else(|| panic!("no notes array: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn retention_and_immutability_are_enforced_and_carry_no_note() {
    let d = Daemon::start();
    // A job without retention has nothing to note.
    let out = add_job(&d, "plain", &[]);
    assert!(
        !stdout(&out).contains("not yet enforced"),
        "{}",
        stdout(&out)
    );
    assert!(notes(&d.ctl_json(["job", "show", "plain"])).is_empty());

    // Retention is enforced (forget, prune): job add, show and edit carry no note about it.
    let out = add_job(&d, "kept", &["--keep-daily", "7", "--keep-last", "3"]);
    let text = stdout(&out);
    assert!(!text.contains("not yet enforced"), "{text}");
    let text = stdout(&d.ctl(["job", "show", "kept"]));
    assert!(text.contains("last 3, daily 7"), "{text}");
    assert!(!text.contains("not yet enforced"), "{text}");
    let v = d.ctl_json(["job", "show", "kept"]);
    assert!(notes(&v).is_empty(), "{v}");
    let export = stdout(&d.ctl(["job", "export", "kept"]));
    assert!(!export.contains("retention (keep_*) is stored"), "{export}");
    let f = write_file(&d.dir, "kept.toml", &export);
    let v = d.ctl_json(["apply", &f.display().to_string()]);
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 2, "{v}");
    let out = d.ctl(["job", "edit", "plain", "--keep-weekly", "4"]);
    assert_ok(&out);
    assert!(
        !stdout(&out).contains("not yet enforced"),
        "{}",
        stdout(&out)
    );
    let v = d.ctl_json(["job", "edit", "plain", "--keep-weekly", "0"]);
    assert!(notes(&v).is_empty(), "{v}");

    // Targets: immutable_days is enforced (docs/operations.md "Immutability"): no note.
    let t = d.dir.join("t1");
    std::fs::create_dir(&t).unwrap();
    let out = d.ctl([
        "target",
        "add",
        "t1",
        "--path",
        &t.display().to_string(),
        "--immutable-days",
        "30",
    ]);
    assert_ok(&out);
    assert!(
        !stdout(&out).contains("not yet enforced"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("immutable days: 30"),
        "{}",
        stdout(&out)
    );
    assert!(notes(&d.ctl_json(["target", "show", "t1"])).is_empty());
    assert!(notes(&d.ctl_json(["target", "show", "local"])).is_empty());

    // apply: neither retention nor immutability needs a note, in text or in JSON.
    std::fs::create_dir(d.dir.join("t2")).unwrap();
    let src = d.dir.join("src").display().to_string();
    let doc = format!(
        r#"
[[targets]]
name = "t2"
path = "{t2}"
immutable_days = 14

[[jobs]]
name = "applied"
sources = ["{src}"]
schedule = "daily"
targets = ["t2"]
retention = {{ keep_monthly = 6 }}
"#,
        t2 = d.dir.join("t2").display()
    );
    let f = write_file(&d.dir, "notes.toml", &doc);
    let out = d.ctl(["apply", "--dry-run", &f.display().to_string()]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(!text.contains("immutable_days"), "{text}");
    assert!(!text.contains("note: job:applied: retention"), "{text}");
    assert!(!text.contains("not yet enforced"), "{text}");
    let v = d.ctl_json(["apply", &f.display().to_string()]);
    assert!(notes(&v).is_empty(), "{v}");
}

#[test]
fn apply_refuses_a_name_defined_twice_naming_both_lines() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let before = d.ctl_json(["audit", "--limit", "1000"]);
    let job = |name: &str, schedule: &str| {
        format!(
            "[[jobs]]\nname = \"{name}\"\nsources = [\"{}\"]\nschedule = \"{schedule}\"\ntargets = [\"local\"]\n\n",
            src.display()
        )
    };
    // Six lines a job: the name of "home" is on line 2, of "etc" on 8, of "home" again on 14.
    let doc = format!(
        "{}{}{}",
        job("home", "daily"),
        job("etc", "daily"),
        job("home", "weekly")
    );
    let f = write_file(&d.dir, "dup.toml", &doc);
    let out = d.ctl(["apply", &f.display().to_string()]);
    assert_fails(
        &out,
        2,
        "job 'home' is defined twice, at line 2 and at line 14",
    );
    assert!(d.ctl_json(["job", "list"])["jobs"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(d.ctl_json(["audit", "--limit", "1000"]), before);

    // Targets too.
    let t = |name: &str, dir: &str| {
        format!(
            "[[targets]]\nname = \"{name}\"\npath = \"{}\"\n\n",
            d.dir.join(dir).display()
        )
    };
    let doc = format!("{}{}", t("nas", "a"), t("nas", "b"));
    let f = write_file(&d.dir, "dupt.toml", &doc);
    assert_fails(
        &d.ctl(["apply", &f.display().to_string()]),
        2,
        "target 'nas' is defined twice, at line 2 and at line 6",
    );

    // JSON documents too.
    let spec = |name: &str| {
        json!({"name": name, "sources": [src.display().to_string()], "schedule": "daily",
               "targets": ["local"]})
    };
    let doc = json!({"jobs": [spec("a"), spec("b"), spec("a")]});
    let text = serde_json::to_string_pretty(&doc).unwrap();
    let lines: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"name\": \"a\""))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let f = write_file(&d.dir, "dup.json", &text);
    assert_fails(
        &d.ctl(["apply", &f.display().to_string()]),
        2,
        &format!(
            "job 'a' is defined twice, at line {} and at line {}",
            lines[0], lines[1]
        ),
    );

    // bmsd refuses it too, for clients other than bmsctl.
    let mut c = RawConn::connect(&d.socket());
    let r = c.call(&json!({"method": "org.bms.Manager.Apply", "parameters": doc}));
    assert_eq!(
        error_name(&r),
        Some("org.bms.Manager.InvalidArgument"),
        "{r}"
    );
    let msg = r["parameters"]["message"].as_str().unwrap();
    assert!(
        msg.contains("jobs[0] and jobs[2] both define job 'a'"),
        "{msg}"
    );
    assert_eq!(d.ctl_json(["audit", "--limit", "1000"]), before);

    // Once the duplicate is gone, applying twice changes nothing the second time.
    let doc = format!("{}{}", job("home", "daily"), job("etc", "daily"));
    let f = write_file(&d.dir, "ok.toml", &doc);
    d.ctl_json(["apply", &f.display().to_string()]);
    let v = d.ctl_json(["apply", &f.display().to_string()]);
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 2, "{v}");
}

fn assert_quiet_end(what: &str, p: &bms_tests::cli_checks::ClosedPipe) {
    assert!(!p.first_line.is_empty(), "{what}: printed nothing");
    assert_ne!(p.status.code(), Some(101), "{what}: {}", p.stderr);
    assert!(!p.stderr.contains("panicked"), "{what}: {}", p.stderr);
    assert!(!p.stderr.contains("Broken pipe"), "{what}: {}", p.stderr);
    // Ended by SIGPIPE (as `ls | head -1` is), or exited successfully.
    assert!(
        p.status.signal() == Some(libc::SIGPIPE) || p.status.success(),
        "{what}: {:?} {}",
        p.status,
        p.stderr
    );
}

#[test]
fn a_closed_pipe_ends_bmsctl_quietly() {
    // Offline: about 400 KB of elapse times, far more than a pipe holds.
    let mut cmd = clean_command(bin("bmsctl"));
    cmd.args(["calendar", "--iterations", "10000", "minutely"]);
    assert_quiet_end("calendar", &head_1(cmd));

    // Through the daemon: a long JSON job list.
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let jobs: Vec<Value> = (0..300)
        .map(|i| {
            json!({"name": format!("job-{i}"), "sources": [src.display().to_string()],
                   "schedule": "daily", "targets": ["local"]})
        })
        .collect();
    let f = write_file(&d.dir, "many.json", &json!({"jobs": jobs}).to_string());
    d.ctl_json(["apply", &f.display().to_string()]);
    let mut cmd = d.ctl_cmd();
    cmd.args(["--json", "job", "list"]);
    assert_quiet_end("job list --json", &head_1(cmd));
    let mut cmd = d.ctl_cmd();
    cmd.args(["job", "list"]);
    assert_quiet_end("job list", &head_1(cmd));
}

#[test]
fn json_errors_name_the_wire_error() {
    let d = Daemon::start();
    let out = d.ctl(["--json", "job", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "failure", "{e}");
    assert_eq!(e["error_name"], "org.bms.Manager.NotFound", "{e}");
    assert_eq!(e["message"], "job 'nope' does not exist", "{e}");

    let out = d.ctl(["--json", "target", "add", "bad", "--path", "relative"]);
    assert_eq!(out.status.code(), Some(2));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "usage", "{e}");
    assert_eq!(e["error_name"], "org.bms.Manager.InvalidArgument", "{e}");
    assert_eq!(e["field"], "path", "{e}");
    assert!(e["message"].as_str().unwrap().contains("absolute"), "{e}");
}

#[test]
fn cancelling_a_finished_run_is_a_failure_not_a_usage_error() {
    let d = Daemon::start();
    add_job(&d, "small", &[]);
    let id = d.start_run("small");
    let detail = d.wait_run_final(id, std::time::Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    assert_fails(
        &d.ctl(["run", "cancel", &id.to_string()]),
        1,
        "not queued or running",
    );
    let out = d.ctl(["--json", "run", "cancel", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "failure", "{e}");
    assert_eq!(e["error_name"], "org.bms.Manager.InvalidArgument", "{e}");
}

#[test]
fn audit_limit_zero_is_refused() {
    let d = Daemon::start();
    add_job(&d, "a", &[]);
    add_job(&d, "b", &[]);
    assert_fails(&d.ctl(["audit", "--limit", "0"]), 2, "--limit");
    let v = d.ctl_json(["audit", "--limit", "1"]);
    assert_eq!(v["entries"].as_array().unwrap().len(), 1, "{v}");
    // bmsd refuses 0 too, instead of answering one entry.
    let mut c = RawConn::connect(&d.socket());
    for limit in [0, 10_001] {
        let r = c.call(&json!({"method": "org.bms.Manager.ListAudit",
                               "parameters": {"limit": limit}}));
        assert_eq!(
            error_name(&r),
            Some("org.bms.Manager.InvalidArgument"),
            "{r}"
        );
        assert_eq!(r["parameters"]["field"], "limit", "{r}");
    }
}

#[test]
fn a_long_invalid_name_is_cut_in_the_error() {
    let d = Daemon::start();
    let long = "x".repeat(5000) + "/";
    let src = d.dir.display().to_string();
    for out in [
        d.ctl([
            "job",
            "add",
            &long,
            "--source",
            &src,
            "--schedule",
            "daily",
            "--target",
            "local",
        ]),
        d.ctl(["target", "add", &long, "--path", "/srv/x"]),
        d.ctl(["job", "show", &long]),
    ] {
        let err = stderr(&out);
        assert!(!out.status.success());
        assert!(err.len() < 400, "{} bytes of error: {err}", err.len());
        assert!(err.contains("(5001 characters)"), "{err}");
    }
}

#[test]
fn unknown_time_zones_and_schedules_that_never_elapse_are_refused() {
    // bmsctl calendar, offline.
    assert_fails(
        &ctl_offline(["calendar", "daily Europe/Nowhere"]),
        2,
        "unknown time zone 'Europe/Nowhere'",
    );
    for expr in ["*-02-30", "*-04-31 12:00", "2020-01-01"] {
        assert_fails(&ctl_offline(["calendar", expr]), 2, "never elapses");
    }
    assert_ok(&ctl_offline(["calendar", "*-02-29"]));

    // Jobs: add, edit, verify schedule and apply.
    let d = Daemon::start();
    let src = d.dir.display().to_string();
    let add = |schedule: &str| {
        d.ctl([
            "job",
            "add",
            "j",
            "--source",
            &src,
            "--schedule",
            schedule,
            "--target",
            "local",
        ])
    };
    assert_fails(
        &add("Mon..Fri 02:00 Europe/Nowhere"),
        2,
        "unknown time zone 'Europe/Nowhere'",
    );
    assert_fails(&add("*-02-30"), 2, "never elapses");
    add_job(&d, "ok", &[]);
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--schedule", "*-02-30"]),
        2,
        "never elapses",
    );
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--verify-schedule", "*-02-30 03:00"]),
        2,
        "verify.schedule",
    );
    let doc = format!(
        "[[jobs]]\nname = \"ap\"\nsources = [\"{src}\"]\nschedule = \"*-02-30\"\ntargets = [\"local\"]\n"
    );
    let f = write_file(&d.dir, "never.toml", &doc);
    assert_fails(
        &d.ctl(["apply", &f.display().to_string()]),
        2,
        "never elapses",
    );
    let jobs = d.ctl_json(["job", "list"]);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["jobs"][0]["schedule"], "daily", "{jobs}");
}
