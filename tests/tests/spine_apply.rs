//! Configuration as files: `bmsctl job export` output applied with `bmsctl apply` on fresh daemons
//! (TOML and JSON), idempotence, --dry-run, partial updates and standard input.

use bms_tests::*;
use serde_json::{json, Value};

/// Sets up a job with two of its own targets and returns the job's JSON.
fn make_job(d: &Daemon) -> Value {
    // The sources must exist for every daemon that applies the export: use system paths.
    d.ctl_json([
        "target",
        "add",
        "primary",
        "--path",
        "/srv/bms-test/primary",
    ]);
    d.ctl_json([
        "target",
        "add",
        "offsite",
        "--kind",
        "nas",
        "--path",
        "/mnt/offsite",
        "--location",
        "offsite",
        "--fs-type",
        "nfs4",
    ]);
    d.ctl_json([
        "job",
        "add",
        "etc",
        "--source",
        "/etc",
        "--source",
        "/usr",
        "--exclude",
        "*.bak",
        "--schedule",
        "*-*-* 03:30:00",
        "--target",
        "primary",
        "--target",
        "offsite",
        "--keep-weekly",
        "4",
        "--pre-hook",
        "/bin/true",
        "--verify-schedule",
        "Sun 05:00",
        "--read-data-percent",
        "10",
    ])
}

fn apply_file(d: &Daemon, file: &std::path::Path, dry_run: bool) -> Value {
    let f = file.display().to_string();
    if dry_run {
        d.ctl_json(["apply", "--dry-run", &f])
    } else {
        d.ctl_json(["apply", &f])
    }
}

fn sorted(v: &Value) -> Vec<String> {
    let mut x: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    x.sort();
    x
}

#[test]
fn export_then_apply_recreates_the_job_idempotently() {
    let a = Daemon::start();
    let job = make_job(&a);
    let toml_out = a.ctl(["job", "export", "etc"]);
    assert_ok(&toml_out);
    let toml_text = stdout(&toml_out);
    assert!(
        toml_text.contains("[[jobs]]") && toml_text.contains("[[targets]]"),
        "{toml_text}"
    );
    let json_doc = a.ctl_json(["job", "export", "etc"]);
    assert_eq!(json_doc["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(json_doc["targets"].as_array().unwrap().len(), 2);

    let b = Daemon::start();
    let toml_file = write_file(&b.dir, "etc.toml", &toml_text);
    let json_file = write_file(&b.dir, "etc.json", &json_doc.to_string());

    // Dry run: reports, stores nothing, audits nothing.
    let audit_before = b.ctl_json(["audit"]);
    let dry = apply_file(&b, &toml_file, true);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        sorted(&dry["created"]),
        ["job:etc", "target:offsite", "target:primary"]
    );
    let s = b.status_json();
    assert_eq!(
        (s["targets"].as_u64(), s["jobs"].as_u64()),
        (Some(1), Some(0)),
        "dry run stored something"
    );
    assert_eq!(b.ctl_json(["audit"]), audit_before);
    assert!(
        stdout(&b.ctl(["apply", "--dry-run", &toml_file.display().to_string()]))
            .contains("dry run")
    );

    // Apply: the same job and targets as on the first daemon.
    let r = apply_file(&b, &toml_file, false);
    assert_eq!(r["dry_run"], false);
    assert_eq!(
        sorted(&r["created"]),
        ["job:etc", "target:offsite", "target:primary"]
    );
    assert_eq!(r["updated"], json!([]));
    let got = b.ctl_json(["job", "show", "etc"]);
    assert_eq!(spec_of(&got), spec_of(&job));
    assert_eq!(got["schedule_normalized"], job["schedule_normalized"]);
    for t in ["primary", "offsite"] {
        let mut x = a.ctl_json(["target", "show", t]);
        let mut y = b.ctl_json(["target", "show", t]);
        for v in [&mut x, &mut y] {
            v.as_object_mut().unwrap().remove("created_at");
            v.as_object_mut().unwrap().remove("updated_at");
        }
        assert_eq!(x, y, "target {t} differs");
    }
    let audit_after_first = b.ctl_json(["audit"]);

    // Twice: unchanged, in TOML and in JSON, and nothing new in the audit trail.
    for f in [&toml_file, &json_file] {
        let again = apply_file(&b, f, false);
        assert_eq!(again["created"], json!([]), "{}: {again}", f.display());
        assert_eq!(again["updated"], json!([]), "{}: {again}", f.display());
        assert_eq!(
            sorted(&again["unchanged"]),
            ["job:etc", "target:offsite", "target:primary"]
        );
    }
    assert_eq!(b.ctl_json(["audit"]), audit_after_first);

    // JSON on a fresh daemon creates the same, then is idempotent.
    let c = Daemon::start();
    let r = apply_file(&c, &json_file, false);
    assert_eq!(
        sorted(&r["created"]),
        ["job:etc", "target:offsite", "target:primary"]
    );
    assert_eq!(spec_of(&c.ctl_json(["job", "show", "etc"])), spec_of(&job));
    let again = apply_file(&c, &json_file, false);
    assert_eq!(
        sorted(&again["unchanged"]),
        ["job:etc", "target:offsite", "target:primary"]
    );

    // A changed file updates only what changed.
    let changed = toml_text.replace("*-*-* 03:30:00", "daily");
    assert_ne!(changed, toml_text);
    let f = write_file(&c.dir, "changed.toml", &changed);
    let r = apply_file(&c, &f, false);
    assert_eq!(r["updated"], json!(["job:etc"]));
    assert_eq!(
        sorted(&r["unchanged"]),
        ["target:offsite", "target:primary"]
    );
    assert_eq!(c.ctl_json(["job", "show", "etc"])["schedule"], "daily");
    let actions = audit_actions(&c);
    assert_eq!(
        actions.last().unwrap(),
        &("job.edit".to_owned(), "etc".to_owned())
    );
}

#[test]
fn apply_reads_standard_input() {
    let d = Daemon::start();
    let doc = r#"
[[targets]]
name = "t1"
path = "/srv/t1"
"#;
    let mut child = d
        .ctl_cmd()
        .args(["--json", "apply", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["created"], json!(["target:t1"]));
    assert_eq!(d.ctl_json(["target", "show", "t1"])["kind"], "disk");
}
