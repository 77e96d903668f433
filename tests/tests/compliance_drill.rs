//! Restore drills through the real binaries (docs/compliance.md): a drill of a 200 MB snapshot
//! restores a sample into a private scratch directory that is gone afterwards and records the
//! sample, the restore rate and the projected full-restore time; a drill against a corrupted
//! pack fails, is recorded with what it found, and flips the "0" rule to fail. A job's drill
//! calendar (`--drill-schedule`) makes bmsd start drills by itself.

use bms_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: u64 = 1 << 20;

/// Writes `n` files of `size` bytes of incompressible, distinct content.
fn write_random_files(dir: &Path, n: usize, size: usize) {
    std::fs::create_dir_all(dir.join("deep/er")).expect("mkdir");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..n {
        let mut data = vec![0u8; size];
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let sub = match i % 3 {
            0 => dir.to_path_buf(),
            1 => dir.join("deep"),
            _ => dir.join("deep/er"),
        };
        std::fs::write(sub.join(format!("f{i:03}.bin")), &data).expect("write");
    }
}

fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// `bmsctl compliance j` (exit 1 unless compliant, so not through `ctl_json`).
fn compliance(d: &Daemon) -> Value {
    let out = d.ctl(["--json", "compliance", "j"]);
    serde_json::from_slice(&out.stdout).expect("compliance JSON")
}

fn errors_rule(d: &Daemon) -> (Value, Value) {
    let v = compliance(d);
    let rule = v["jobs"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"] == "errors")
        .expect("errors rule")
        .clone();
    let copy = v["jobs"][0]["copies"][0].clone();
    (rule, copy)
}

/// Queues a drill with `bmsctl verify --drill` and waits for it; returns its final record.
fn drill(d: &Daemon) -> Value {
    let out = d.ctl(["--json", "verify", "--drill", "--job", "j"]);
    assert_ok(&out);
    let queued: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(queued["runs"][0]["kind"], "drill", "{queued}");
    let id = queued["runs"][0]["id"].as_i64().expect("run id");
    d.wait_run_final(id, Duration::from_secs(300))
}

/// The scratch directories are gone once a drill has ended (whatever its result).
fn assert_no_scratch(d: &Daemon) {
    let dir = d.state_dir().join("drills");
    if dir.exists() {
        let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the drills directory is private");
        let left: Vec<_> = std::fs::read_dir(&dir).expect("read").flatten().collect();
        assert!(left.is_empty(), "scratch left behind: {left:?}");
    }
}

#[test]
fn a_drill_of_a_200_mb_snapshot_records_sample_rate_and_rto() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_random_files(&src, 50, 4 * MIB as usize);
    let total = 50 * 4 * MIB;
    // Flags that make no drill are refused with what to do.
    assert_fails(
        &d.ctl([
            "job",
            "add",
            "j",
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            "daily",
            "--target",
            "local",
            "--drill-files",
            "5",
        ]),
        2,
        "--drill-schedule",
    );
    assert_fails(
        &d.ctl([
            "job",
            "add",
            "j",
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            "daily",
            "--target",
            "local",
            "--drill-schedule",
            "weekly",
            "--drill-files",
            "0",
        ]),
        2,
        "sample_files",
    );
    assert_ok(&d.ctl([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
        "--drill-schedule",
        "Sun 04:00",
        "--drill-files",
        "10",
        "--drill-bytes",
        "64M",
        "--verify-window",
        "14d",
    ]));
    let job = d.ctl_json(["job", "show", "j"]);
    assert_eq!(job["verify"]["drill"]["schedule"], "Sun 04:00", "{job}");
    assert_eq!(job["verify"]["drill"]["sample_files"], 10);
    assert_eq!(job["verify"]["drill"]["sample_bytes"], 64 * MIB);
    assert_eq!(job["verify"]["window_days"], 14);
    let export = stdout(&d.ctl(["job", "export", "j"]));
    assert!(export.contains("sample_files = 10"), "{export}");

    // Before any snapshot a drill fails saying what to do, and drills nothing.
    let fin = drill(&d);
    assert_eq!(fin["run"]["state"], "failed", "{fin}");
    assert!(
        fin["run"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("bmsctl job run j --wait"),
        "{fin}"
    );

    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    let fin = drill(&d);
    assert_eq!(fin["run"]["state"], "succeeded", "{fin}");
    let st = &fin["run"]["drill"];
    let sampled = st["files_sampled"].as_u64().expect("files_sampled");
    let bytes = st["bytes_sampled"].as_u64().expect("bytes_sampled");
    assert!((1..=10).contains(&sampled), "{st}");
    assert!(bytes > 0 && bytes <= 64 * MIB, "{st}");
    assert_eq!(bytes, sampled * 4 * MIB, "whole files are sampled: {st}");
    assert_eq!(st["files_total"], 50, "{st}");
    assert_eq!(st["bytes_total"], total, "{st}");
    assert_eq!(st["files_failed"], 0, "{st}");
    let rate = st["bytes_per_sec"].as_f64().expect("rate");
    let secs = st["restore_secs"].as_f64().expect("secs");
    let rto = st["rto_secs"].as_f64().expect("rto");
    assert!(rate > 0.0 && secs > 0.0, "{st}");
    assert!(
        (rate - bytes as f64 / secs).abs() / rate < 0.01,
        "rate is the sample over its time: {st}"
    );
    assert!(
        (rto - total as f64 / rate).abs() / rto < 0.01,
        "RTO is the snapshot at that rate: {st}"
    );
    assert_eq!(
        st["snapshot"],
        d.ctl_json(["snapshot", "list", "--job", "j"])["snapshots"][0]["id"],
        "the latest snapshot is drilled"
    );
    assert_no_scratch(&d);
    let show = stdout(&d.ctl(["run", "show", &fin["run"]["id"].to_string()]));
    assert!(
        show.contains("projected full restore (RTO)") && show.contains("of 50 file(s)"),
        "{show}"
    );
    // The drill is verification evidence: "0" passes on it, within the job's window.
    let (rule, copy) = errors_rule(&d);
    assert_eq!(rule["verdict"], "pass", "{rule}");
    assert_eq!(copy["verification"]["kind"], "drill", "{copy}");
    assert_eq!(compliance(&d)["jobs"][0]["verify_window_days"], 14);

    // The report lists the drills with their projected restore time.
    let rep = d.ctl_json([
        "report", "--period", "day", "--job", "j", "--format", "json",
    ]);
    let drills = rep["jobs"][0]["drills"].as_array().expect("drills").clone();
    assert_eq!(drills.len(), 2, "the failed and the succeeded drill: {rep}");
    assert_eq!(drills[0]["state"], "succeeded", "newest first: {rep}");
    assert_eq!(drills[0]["rto_secs"].as_f64(), Some(rto), "{rep}");
    assert_eq!(drills[0]["files_sampled"].as_u64(), Some(sampled));
    let csv = stdout(&d.ctl(["report", "--period", "day", "--job", "j", "--format", "csv"]));
    assert!(
        csv.lines()
            .next()
            .unwrap_or("")
            .ends_with(",drills,rto_secs"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .nth(1)
            .unwrap_or("")
            .ends_with(&format!(",2,{rto:.0}")),
        "{csv}"
    );

    // --no-drill removes it.
    assert_ok(&d.ctl(["job", "edit", "j", "--no-drill"]));
    assert!(d.ctl_json(["job", "show", "j"])["verify"]["drill"].is_null());
}

#[test]
fn a_drill_against_a_corrupted_pack_fails_and_flips_zero() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_random_files(&src, 6, MIB as usize);
    assert_ok(&d.ctl([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
        "--drill-schedule",
        "weekly",
        "--drill-files",
        "1000",
        "--drill-bytes",
        "1G",
    ]));
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    let fin = drill(&d);
    assert_eq!(fin["run"]["state"], "succeeded", "{fin}");
    assert_eq!(fin["run"]["drill"]["files_sampled"], 6, "{fin}");
    assert_eq!(errors_rule(&d).0["verdict"], "pass");

    // Bit rot in the data pack (the largest one; trees are in a small pack of their own).
    let mut all = packs(&d.state_dir().join("repos/local/packs"));
    all.sort_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0));
    let pack = all.last().expect("a pack").clone();
    let mut b = std::fs::read(&pack).expect("read pack");
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&pack, b).expect("write pack");

    let fin = drill(&d);
    let run = fin["run"]["id"].as_i64().unwrap();
    assert_eq!(fin["run"]["state"], "failed", "{fin}");
    let err = fin["run"]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("restore drill of 'local' failed") && err.contains("bmsctl run show"),
        "{err}"
    );
    let st = &fin["run"]["drill"];
    assert!(st["files_failed"].as_u64().unwrap_or(0) >= 1, "{st}");
    assert!(
        fin["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap_or("").contains("/f0")),
        "the log names the damaged files: {fin}"
    );
    assert_no_scratch(&d);
    let (rule, copy) = errors_rule(&d);
    assert_eq!(rule["verdict"], "fail", "{rule}");
    let reason = rule["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("target local") && reason.contains(&format!("run {run}")),
        "{reason}"
    );
    assert_eq!(copy["verification"]["kind"], "drill");
    let out = d.ctl(["compliance", "j"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn a_drill_schedule_makes_bmsd_start_drills_on_its_own() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_random_files(&src, 6, 64 * 1024);
    let src = src.to_str().unwrap();
    assert_ok(&d.ctl([
        "job",
        "add",
        "j",
        "--source",
        src,
        "--schedule",
        "2099-01-01",
        "--target",
        "local",
    ]));
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    // Drills every two seconds from now on; nothing but the calendar queues them.
    assert_ok(&d.ctl([
        "job",
        "edit",
        "j",
        "--drill-schedule",
        "*:*:0/2",
        "--drill-files",
        "3",
    ]));
    let edited: jiff::Timestamp = d.ctl_json(["job", "show", "j"])["updated_at"]
        .as_str()
        .expect("updated_at")
        .parse()
        .expect("time");
    let scheduled = poll_until(Duration::from_secs(30), "a drill from the calendar", || {
        d.runs(Some("j")).into_iter().find(|r| {
            r["kind"] == "drill"
                && r["trigger"] == "schedule"
                && !matches!(r["state"].as_str(), Some("queued" | "running"))
        })
    });
    assert_ok(&d.ctl(["job", "edit", "j", "--no-drill"]));
    let id = scheduled["id"].as_i64().expect("run id");
    let fin = d.wait_run_final(id, Duration::from_secs(60));
    let run = &fin["run"];
    assert_eq!(run["state"], "succeeded", "{fin}");
    assert_eq!(run["target"], "local", "{fin}");
    let queued: jiff::Timestamp = run["queued_at"]
        .as_str()
        .expect("queued_at")
        .parse()
        .expect("time");
    assert!(
        queued >= edited,
        "a drill from before the schedule was set: {fin}"
    );
    let st = &run["drill"];
    let sampled = st["files_sampled"].as_u64().expect("files_sampled");
    assert!((1..=3).contains(&sampled), "{st}");
    assert_eq!(st["files_failed"], 0, "{st}");
    assert!(st["rto_secs"].as_f64().expect("rto") > 0.0, "{st}");
    assert_no_scratch(&d);
}
