//! Targets and jobs through bmsctl: add/list/show/edit/rm with --json, persistence across a
//! restart, next runs, enable/disable, the audit trail and unsupported kinds.

use bms_tests::*;
use serde_json::{json, Value};

fn names(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} list in {list}"))
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn target_and_job_round_trip_and_survive_a_restart() {
    let mut d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let src = src.display().to_string();

    let t = d.ctl_json([
        "target",
        "add",
        "nas1",
        "--kind",
        "nas",
        "--path",
        "/mnt/nas1",
        "--location",
        "offsite",
        "--site",
        "dc-2",
        "--fs-type",
        "nfs4",
        "--fs-source",
        "srv:/export",
        "--min-free",
        "5GiB",
    ]);
    assert_eq!(t["name"], "nas1");
    assert_eq!(t["kind"], "nas");
    assert_eq!(t["media"], "disk", "a NAS is disk media");
    assert_eq!(t["location"], "offsite");
    assert_eq!(t["site"], "dc-2");
    assert_eq!(t["fs_type"], "nfs4");
    assert_eq!(t["fs_source"], "srv:/export");
    assert_eq!(t["min_free_bytes"], 5u64 << 30);
    assert_eq!(t["immutable_days"], 0);
    assert_eq!(t["supported"], true);
    assert_eq!(t["used_by"], json!([]));

    let list = d.ctl_json(["target", "list"]);
    assert_eq!(names(&list, "targets"), ["local", "nas1"]);
    let shown = d.ctl_json(["target", "show", "nas1"]);
    assert_eq!(shown, t);

    // Edit changes only what is given.
    let e = d.ctl_json([
        "target",
        "edit",
        "nas1",
        "--site",
        "vault",
        "--location",
        "onsite",
    ]);
    assert_eq!(e["site"], "vault");
    assert_eq!(e["location"], "onsite");
    assert_eq!(e["fs_type"], "nfs4");
    assert_eq!(e["min_free_bytes"], 5u64 << 30);
    assert_eq!(e["created_at"], t["created_at"]);
    let e = d.ctl_json(["target", "edit", "nas1", "--site", ""]);
    assert!(e.get("site").is_none(), "site not cleared: {e}");

    let j = d.ctl_json([
        "job",
        "add",
        "home",
        "--source",
        &src,
        "--exclude",
        "*.tmp",
        "--exclude",
        "cache/**",
        "--schedule",
        "Mon..Fri 02:00",
        "--target",
        "local",
        "--target",
        "nas1",
        "--keep-daily",
        "7",
        "--keep-last",
        "3",
        "--missed",
        "skip",
        "--timeout",
        "3600",
        "--one-file-system",
    ]);
    assert_eq!(j["name"], "home");
    assert_eq!(j["sources"], json!([src]));
    assert_eq!(j["excludes"], json!(["*.tmp", "cache/**"]));
    assert_eq!(j["schedule"], "Mon..Fri 02:00");
    assert_eq!(j["schedule_normalized"], "Mon..Fri *-*-* 02:00:00");
    assert_eq!(j["targets"], json!(["local", "nas1"]));
    assert_eq!(j["retention"]["keep_daily"], 7);
    assert_eq!(j["retention"]["keep_last"], 3);
    assert_eq!(j["retention"]["keep_weekly"], 0);
    assert_eq!(j["missed"], "skip");
    assert_eq!(j["timeout_secs"], 3600);
    assert_eq!(j["one_file_system"], true);
    assert_eq!(j["enabled"], true);
    assert_eq!(
        j["verify"]["after_backup"], false,
        "verification after backup is opt-in"
    );
    assert_eq!(j["hooks"]["timeout_secs"], 300);

    // Targets know who uses them.
    assert_eq!(
        d.ctl_json(["target", "show", "nas1"])["used_by"],
        json!(["home"])
    );
    let s = d.status_json();
    assert_eq!(
        (
            s["targets"].as_u64(),
            s["jobs"].as_u64(),
            s["jobs_enabled"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );

    // Edit: list options replace the list; other fields stay.
    let j2 = d.ctl_json([
        "job",
        "edit",
        "home",
        "--schedule",
        "daily",
        "--target",
        "nas1",
        "--clear-excludes",
    ]);
    assert_eq!(j2["schedule"], "daily");
    assert_eq!(j2["schedule_normalized"], "*-*-* 00:00:00");
    assert_eq!(j2["targets"], json!(["nas1"]));
    assert_eq!(j2["excludes"], json!([]));
    assert_eq!(j2["retention"]["keep_daily"], 7);
    assert_eq!(j2["sources"], json!([src]));
    assert_eq!(
        d.ctl_json(["target", "show", "local"])["used_by"],
        json!([])
    );

    // Disable / enable.
    let dis = d.ctl_json(["job", "disable", "home"]);
    assert_eq!(dis["enabled"], false);
    assert_eq!(d.status_json()["jobs_enabled"], 0);
    let listed = d.ctl_json(["job", "list"]);
    assert_eq!(listed["jobs"][0]["enabled"], false);
    let out = d.ctl(["job", "disable", "home"]);
    assert_ok(&out); // already disabled: fine, and not audited twice
    let en = d.ctl_json(["job", "enable", "home"]);
    assert_eq!(en["enabled"], true);
    let out = d.ctl(["job", "list"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("home") && stdout(&out).contains("daily"),
        "{}",
        stdout(&out)
    );

    // Restart: everything is still there, byte for byte.
    let targets_before = d.ctl_json(["target", "list"]);
    let job_before = d.ctl_json(["job", "show", "home"]);
    let audit_before = d.ctl_json(["audit"]);
    assert_eq!(d.stop().code(), Some(0));
    d.spawn(&DaemonOpts::default());
    assert_eq!(d.ctl_json(["target", "list"]), targets_before);
    let job_after = d.ctl_json(["job", "show", "home"]);
    assert_eq!(spec_of(&job_after), spec_of(&job_before));
    assert_eq!(job_after["created_at"], job_before["created_at"]);
    assert_eq!(job_after["updated_at"], job_before["updated_at"]);
    assert_eq!(d.ctl_json(["audit"]), audit_before);

    // Remove: a target in use cannot go; after the job is gone it can.
    assert_fails(&d.ctl(["target", "rm", "nas1"]), 1, "home");
    let rm = d.ctl_json(["job", "rm", "home"]);
    assert_eq!(rm["removed"], "home");
    assert_fails(
        &d.ctl(["job", "show", "home"]),
        1,
        "job 'home' does not exist",
    );
    assert_eq!(d.ctl_json(["target", "rm", "nas1"])["removed"], "nas1");
    assert_eq!(names(&d.ctl_json(["target", "list"]), "targets"), ["local"]);
    assert_fails(
        &d.ctl(["target", "rm", "nas1"]),
        1,
        "target 'nas1' does not exist",
    );

    let actions = audit_actions(&d);
    let want: Vec<(String, String)> = [
        ("target.add", "local"),
        ("target.add", "nas1"),
        ("target.edit", "nas1"),
        ("target.edit", "nas1"),
        ("job.add", "home"),
        ("job.edit", "home"),
        ("job.disable", "home"),
        ("job.enable", "home"),
        ("job.rm", "home"),
        ("target.rm", "nas1"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    assert_eq!(actions, want);
    // The audit detail holds the new definition.
    let a = d.ctl_json(["audit", "--limit", "1000"]);
    let add = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "job.add")
        .unwrap();
    let detail: Value = serde_json::from_str(add["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["schedule"], "Mon..Fri 02:00");
}

#[test]
fn job_show_prints_the_next_three_runs() {
    let d = Daemon::start();
    let src = d.dir.display().to_string();
    d.ctl_json([
        "job",
        "add",
        "wk",
        "--source",
        &src,
        "--schedule",
        "Mon..Fri 02:00",
        "--target",
        "local",
    ]);
    let j = d.ctl_json(["job", "show", "wk"]);
    let runs: Vec<&str> = j["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(runs.len(), 3, "{j}");
    let now = jiff::Timestamp::now();
    let mut prev = now;
    for r in &runs {
        let t: jiff::Timestamp = r
            .parse()
            .unwrap_or_else(|e| panic!("next run {r} is not RFC 3339: {e}"));
        assert!(
            t > prev,
            "next runs not increasing and in the future: {runs:?}"
        );
        prev = t;
        // Local wall time 02:00:00 on a weekday.
        let civil: jiff::civil::DateTime = r[..19].parse().unwrap();
        assert_eq!(
            (civil.hour(), civil.minute(), civil.second()),
            (2, 0, 0),
            "{r}"
        );
        let wd = civil.weekday();
        assert!(
            !matches!(
                wd,
                jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
            ),
            "{r} is a {wd:?}"
        );
    }
    // The human form shows them too.
    let out = d.ctl(["job", "show", "wk"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("next run") && text.contains(runs[0]) && text.contains(runs[2]),
        "{text}"
    );
    assert!(text.contains("Mon..Fri *-*-* 02:00:00"), "{text}");
}

#[test]
fn tape_targets_take_copies_and_s3_targets_are_accepted_but_not_supported() {
    let d = Daemon::start();
    let tape = d.ctl_json([
        "target",
        "add",
        "lto",
        "--kind",
        "tape",
        "--path",
        "/dev/nst0",
        "--location",
        "offsite",
    ]);
    assert_eq!(tape["kind"], "tape");
    assert_eq!(tape["media"], "tape");
    assert_eq!(
        tape["supported"], true,
        "a tape target takes copies: {tape}"
    );
    assert!(tape.get("note").is_none(), "{tape}");
    let s3 = d.ctl_json([
        "target",
        "add",
        "cloud",
        "--kind",
        "s3",
        "--path",
        "s3://bucket/prefix",
    ]);
    assert_eq!(s3["media"], "object");
    assert_eq!(s3["supported"], true, "{s3}");
    assert_eq!(
        s3["location"], "offsite",
        "an S3 target is offsite by default: {s3}"
    );
    assert!(s3.get("note").is_none(), "{s3}");
    let disk = d.ctl_json(["target", "show", "local"]);
    assert!(disk.get("note").is_none(), "{disk}");
    let out = d.ctl(["target", "list"]);
    assert!(
        !stdout(&out).contains("not yet supported"),
        "{}",
        stdout(&out)
    );
    assert_eq!(d.status_json()["targets"], 3);
}
