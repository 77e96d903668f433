//! Invalid input: every case exits 2 (invalid) or 1 (conflict) with a message naming the field,
//! and nothing is stored — the lists, the counts and the audit trail are unchanged afterwards.

use bms_tests::*;
use serde_json::Value;

/// What the catalog holds, to compare before and after a failed command.
fn snapshot(d: &Daemon) -> (Value, Value, Value) {
    (
        d.ctl_json(["target", "list"]),
        d.ctl_json(["job", "list"]),
        d.ctl_json(["audit", "--limit", "1000"]),
    )
}

#[test]
fn invalid_jobs_are_refused_and_nothing_is_stored() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let src = src.display().to_string();
    d.ctl_json([
        "job",
        "add",
        "ok",
        "--source",
        &src,
        "--schedule",
        "daily",
        "--target",
        "local",
    ]);
    let before = snapshot(&d);

    let job = |name: &str, source: &str, schedule: &str, target: &str| {
        d.ctl([
            "job",
            "add",
            name,
            "--source",
            source,
            "--schedule",
            schedule,
            "--target",
            target,
        ])
    };
    // Unknown target.
    assert_fails(
        &job("j1", &src, "daily", "nope"),
        2,
        "target 'nope' does not exist",
    );
    // Relative source path.
    assert_fails(
        &job("j1", "rel/path", "daily", "local"),
        2,
        "source 'rel/path' is a relative path",
    );
    // Source that does not exist.
    assert_fails(
        &job("j1", "/nonexistent/bms-e2e", "daily", "local"),
        2,
        "source '/nonexistent/bms-e2e' does not exist",
    );
    // Bad schedules name the field.
    for bad in ["Mon..Fu 02:00", "25:00", "02:61", ""] {
        let out = job("j1", &src, bad, "local");
        assert_fails(&out, 2, "schedule");
    }
    // Duplicate job name: exit 1.
    assert_fails(
        &job("ok", &src, "daily", "local"),
        1,
        "job 'ok' already exists",
    );
    // Invalid names: space, slash, 65 characters, empty, dot-dot.
    let long = "x".repeat(65);
    for bad in ["a b", "a/b", long.as_str(), "", ".."] {
        let out = job(bad, &src, "daily", "local");
        assert_fails(&out, 2, "is not a valid name");
        assert_fails(&out, 2, "name");
    }
    // 64 characters is fine (and removed again below).
    let max = "y".repeat(64);
    assert_ok(&job(&max, &src, "daily", "local"));
    assert_ok(&d.ctl(["job", "rm", &max]));
    let after_max = snapshot(&d);
    assert_eq!((&after_max.0, &after_max.1), (&before.0, &before.1));

    // Invalid edits leave the job as it was.
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--schedule", "Mon..Fu 02:00"]),
        2,
        "schedule",
    );
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--source", "relative"]),
        2,
        "relative",
    );
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--target", "ghost"]),
        2,
        "target 'ghost'",
    );
    assert_fails(
        &d.ctl(["job", "edit", "ok", "--read-data-percent", "101"]),
        2,
        "read_data_percent",
    );
    assert_fails(
        &d.ctl(["job", "edit", "missing", "--schedule", "daily"]),
        1,
        "job 'missing' does not exist",
    );
    // Usage errors caught by bmsctl itself.
    assert_fails(
        &d.ctl([
            "job",
            "add",
            "j2",
            "--schedule",
            "daily",
            "--target",
            "local",
        ]),
        2,
        "--source",
    );
    assert_fails(
        &d.ctl(["job", "add", "j2", "--source", &src, "--target", "local"]),
        2,
        "--schedule",
    );
    assert_fails(
        &d.ctl(["job", "add", "j2", "--source", &src, "--schedule", "daily"]),
        2,
        "--target",
    );
    assert_fails(
        &d.ctl([
            "job",
            "add",
            "j2",
            "--source",
            &src,
            "--schedule",
            "daily",
            "--target",
            "local",
            "--missed",
            "later",
        ]),
        2,
        "later",
    );

    let after = snapshot(&d);
    assert_eq!(after.0, before.0, "targets changed");
    assert_eq!(after.1, before.1, "jobs changed");
    // Only the 64-character job's add and rm were audited.
    let n = |a: &Value| a["entries"].as_array().unwrap().len();
    assert_eq!(n(&after.2), n(&before.2) + 2, "{}", after.2);
    let s = d.status_json();
    assert_eq!(
        (s["targets"].as_u64(), s["jobs"].as_u64()),
        (Some(1), Some(1))
    );
}

#[test]
fn invalid_targets_are_refused_and_nothing_is_stored() {
    let d = Daemon::start();
    let src = d.dir.display().to_string();
    d.ctl_json(["target", "add", "t1", "--path", "/srv/t1"]);
    d.ctl_json([
        "job",
        "add",
        "uses-t1",
        "--source",
        &src,
        "--schedule",
        "daily",
        "--target",
        "t1",
    ]);
    let before = snapshot(&d);

    // Duplicate target name: exit 1.
    assert_fails(
        &d.ctl(["target", "add", "t1", "--path", "/srv/other"]),
        1,
        "target 't1' already exists",
    );
    assert_fails(
        &d.ctl(["target", "add", "local", "--path", "/srv/other"]),
        1,
        "already exists",
    );
    // Invalid names.
    let long = "n".repeat(65);
    for bad in ["a b", "a/b", long.as_str(), ""] {
        assert_fails(
            &d.ctl(["target", "add", bad, "--path", "/srv/x"]),
            2,
            "is not a valid name",
        );
    }
    // Invalid paths and options name the field.
    assert_fails(
        &d.ctl(["target", "add", "t2", "--path", "relative/dir"]),
        2,
        "path 'relative/dir' must be absolute",
    );
    assert_fails(&d.ctl(["target", "add", "t2", "--path", "/"]), 2, "path");
    assert_fails(
        &d.ctl(["target", "add", "t2", "--kind", "s3", "--path", "/srv/x"]),
        2,
        "s3://",
    );
    assert_fails(
        &d.ctl([
            "target",
            "add",
            "t2",
            "--path",
            "/srv/x",
            "--fs-type",
            "nfs4",
        ]),
        2,
        "fs_type",
    );
    assert_fails(
        &d.ctl([
            "target",
            "add",
            "t2",
            "--path",
            "/srv/x",
            "--immutable-days",
            "40000",
        ]),
        2,
        "immutable_days",
    );
    assert_fails(
        &d.ctl([
            "target", "add", "t2", "--path", "/srv/x", "--kind", "floppy",
        ]),
        2,
        "floppy",
    );
    assert_fails(
        &d.ctl([
            "target",
            "add",
            "t2",
            "--path",
            "/srv/x",
            "--min-free",
            "5 parsecs",
        ]),
        2,
        "parsecs",
    );
    assert_fails(&d.ctl(["target", "add", "t2"]), 2, "--path");
    // A target still used by a job cannot be removed: exit 1, naming the job.
    assert_fails(&d.ctl(["target", "rm", "t1"]), 1, "uses-t1");
    assert_fails(
        &d.ctl(["target", "edit", "t1", "--path", "rel"]),
        2,
        "must be absolute",
    );
    assert_fails(
        &d.ctl(["target", "show", "nope"]),
        1,
        "target 'nope' does not exist",
    );

    let after = snapshot(&d);
    assert_eq!(after, before);
    assert_eq!(
        d.ctl_json(["target", "show", "t1"])["used_by"],
        serde_json::json!(["uses-t1"])
    );
}

#[test]
fn apply_is_all_or_nothing_and_strict() {
    let d = Daemon::start();
    let src = d.dir.display().to_string();
    let before = snapshot(&d);

    // One bad job among good ones: nothing of the file is stored.
    let doc = format!(
        r#"
[[targets]]
name = "nas1"
kind = "nas"
path = "/mnt/nas1"

[[jobs]]
name = "good1"
sources = ["{src}"]
schedule = "daily"
targets = ["nas1"]

[[jobs]]
name = "bad"
sources = ["{src}"]
schedule = "Mon..Fu 02:00"
targets = ["nas1"]

[[jobs]]
name = "good2"
sources = ["{src}"]
schedule = "weekly"
targets = ["local"]
"#
    );
    let f = write_file(&d.dir, "mixed.toml", &doc);
    let out = d.ctl(["apply", &f.display().to_string()]);
    assert_fails(&out, 2, "jobs[1] 'bad'");
    assert_fails(&out, 2, "schedule");
    assert_eq!(snapshot(&d), before, "a failed apply stored something");
    // --json: the error is JSON on stderr with kind usage.
    let out = d.ctl(["--json", "apply", &f.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error"], "usage");
    assert!(
        e["message"].as_str().unwrap().contains("jobs[1] 'bad'"),
        "{e}"
    );

    // A job naming a target that the same file does not define.
    let doc2 = doc
        .replace("Mon..Fu 02:00", "daily")
        .replace(r#"targets = ["local"]"#, r#"targets = ["ghost"]"#);
    let f2 = write_file(&d.dir, "ghost.toml", &doc2);
    assert_fails(
        &d.ctl(["apply", &f2.display().to_string()]),
        2,
        "target 'ghost' does not exist",
    );
    assert_eq!(snapshot(&d), before);

    // Unknown fields are refused before anything is sent, naming the field (TOML and JSON).
    let f3 = write_file(
        &d.dir,
        "unknown.toml",
        "[[targets]]\nname = \"x\"\npath = \"/srv/x\"\ncolour = \"red\"\n",
    );
    assert_fails(&d.ctl(["apply", &f3.display().to_string()]), 2, "colour");
    let f4 = write_file(
        &d.dir,
        "unknown.json",
        &format!(
            r#"{{"jobs": [{{"name": "j", "sources": ["{src}"], "schedule": "daily", "targets": ["local"], "retention": {{"keep_forever": 1}}}}]}}"#
        ),
    );
    assert_fails(
        &d.ctl(["apply", &f4.display().to_string()]),
        2,
        "keep_forever",
    );
    let f5 = write_file(&d.dir, "toplevel.toml", "[[tragets]]\nname = \"x\"\n");
    assert_fails(&d.ctl(["apply", &f5.display().to_string()]), 2, "tragets");
    let f6 = write_file(&d.dir, "broken.toml", "[[targets]\nname = \n");
    assert_fails(
        &d.ctl(["apply", &f6.display().to_string()]),
        2,
        "broken.toml",
    );
    assert_fails(
        &d.ctl(["apply", "/nonexistent/bms.toml"]),
        2,
        "/nonexistent/bms.toml",
    );
    assert_eq!(snapshot(&d), before);

    // The corrected file applies fully.
    let fixed = write_file(
        &d.dir,
        "fixed.toml",
        &doc.replace("Mon..Fu 02:00", "Mon..Fri 02:00"),
    );
    let r = d.ctl_json(["apply", &fixed.display().to_string()]);
    assert_eq!(r["created"].as_array().unwrap().len(), 4, "{r}");
    assert_eq!(d.status_json()["jobs"], 3);
}
