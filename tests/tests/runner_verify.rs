//! Verification after backup (`--verify-after-backup`): a `verify` run belonging to the backup
//! run; bit rot in the target's packs makes it fail and the backup run end with a warning.

use bms_tests::{assert_ok, Daemon};

fn runs(d: &Daemon) -> Vec<serde_json::Value> {
    d.ctl_json(["run", "list", "--job", "v"])["runs"]
        .as_array()
        .unwrap()
        .clone()
}

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn verify_after_backup_passes_then_catches_bit_rot() {
    let d = Daemon::start();
    let src = d.dir.join("vsrc");
    std::fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("data.bin"), &data).unwrap();
    let s = src.to_str().unwrap();
    assert_ok(&d.ctl([
        "job",
        "add",
        "v",
        "--source",
        s,
        "--schedule",
        "daily",
        "--target",
        "local",
        "--verify-after-backup",
        "--read-data-percent",
        "100",
    ]));
    assert_ok(&d.ctl(["job", "run", "v", "--wait"]));
    let list = runs(&d);
    let backup = list.iter().find(|r| r["kind"] == "backup").unwrap();
    let verify = list
        .iter()
        .find(|r| r["kind"] == "verify")
        .expect("a verify run");
    assert_eq!(backup["state"], "succeeded", "{backup}");
    assert_eq!(verify["state"], "succeeded", "{verify}");
    assert_eq!(verify["parent_run"], backup["id"]);
    assert_eq!(verify["target"], "local");

    // Flip a byte in the middle of every pack of the target's repository.
    let status = d.status_json();
    let repo =
        std::path::Path::new(status["state_dir"].as_str().unwrap()).join("repos/local/packs");
    let mut packs = Vec::new();
    files(&repo, &mut packs);
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        std::fs::write(p, b).unwrap();
    }
    std::fs::write(src.join("more.bin"), b"a little more").unwrap();
    // The backup itself succeeds (it adds new data), the verification finds the damage.
    let out = d.ctl(["job", "run", "v", "--wait"]);
    assert_ok(&out);
    let list = runs(&d);
    let backup = list.iter().find(|r| r["kind"] == "backup").unwrap();
    let verify = list.iter().find(|r| r["kind"] == "verify").unwrap();
    assert_eq!(verify["state"], "failed", "{verify}");
    assert_eq!(verify["parent_run"], backup["id"]);
    assert_eq!(backup["state"], "warning", "{backup}");
    let err = backup["error"].as_str().unwrap();
    assert!(err.contains("verification of 'local' found"), "{err}");
    let detail = d.ctl_json(["run", "show", &verify["id"].to_string()]);
    assert!(
        !detail["log"].as_array().unwrap().is_empty(),
        "the problems are in the verify run's log"
    );
}

/// The daemon's /metrics text.
fn metrics(d: &Daemon) -> String {
    use std::io::{Read, Write};
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Waits for a final scheduled `verify` run (not a child) of job `v` with an id above `after`.
fn next_verify(d: &Daemon, after: i64) -> serde_json::Value {
    bms_tests::poll_until(
        std::time::Duration::from_secs(60),
        "a scheduled verification",
        || {
            runs(d).into_iter().find(|r| {
                r["kind"] == "verify"
                    && r["parent_run"].is_null()
                    && r["id"].as_i64().unwrap() > after
                    && !matches!(r["state"].as_str(), Some("queued" | "running"))
            })
        },
    )
}

#[test]
fn scheduled_verification_runs_on_its_calendar_and_catches_bit_rot() {
    let d = Daemon::start();
    let src = d.dir.join("vsrc");
    std::fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    std::fs::write(src.join("data.bin"), &data).unwrap();
    let copy = d.dir.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    assert_ok(&d.ctl(["target", "add", "copy", "--path", copy.to_str().unwrap()]));
    assert_ok(&d.ctl([
        "job",
        "add",
        "v",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01 00:00:00",
        "--target",
        "local",
        "--target",
        "copy",
        "--read-data-percent",
        "100",
    ]));
    assert_ok(&d.ctl(["job", "run", "v", "--wait"]));
    assert!(
        runs(&d).iter().all(|r| r["kind"] != "verify"),
        "no verification without a verification schedule"
    );

    // Every two seconds.
    assert_ok(&d.ctl(["job", "edit", "v", "--verify-schedule", "*:*:0/2"]));
    let first = next_verify(&d, 0);
    assert_eq!(first["state"], "succeeded", "{first}");
    assert_eq!(first["trigger"], "schedule", "{first}");
    assert_eq!(first["target"], "local");
    // The copy is verified by a verify run that belongs to the scheduled one.
    let child_of = |parent: &serde_json::Value| -> serde_json::Value {
        runs(&d)
            .into_iter()
            .find(|r| r["kind"] == "verify" && r["parent_run"] == parent["id"])
            .unwrap_or_else(|| panic!("no verify run of the copy under {parent}"))
    };
    let child = child_of(&first);
    assert_eq!(child["target"], "copy", "{child}");
    assert_eq!(child["state"], "succeeded", "{child}");
    assert!(metrics(&d).contains("bms_job_last_verify_ok{job=\"v\"} 1.0"));

    // Bit rot in every pack of the copy: the next scheduled verification fails and names it.
    let mut packs = Vec::new();
    files(&copy.join("packs"), &mut packs);
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x55;
        std::fs::write(p, b).unwrap();
    }
    // Runs that started before the damage may still pass; one after it must fail.
    let mut last = first["id"].as_i64().unwrap();
    let failed = loop {
        let r = next_verify(&d, last);
        if r["state"] == "failed" {
            break r;
        }
        assert_eq!(r["state"], "succeeded", "{r}");
        last = r["id"].as_i64().unwrap();
        assert!(
            last < first["id"].as_i64().unwrap() + 5,
            "bit rot never found"
        );
    };
    let err = failed["error"].as_str().unwrap();
    assert!(err.contains("verification of 'copy' found"), "{err}");
    assert!(!err.contains("'local'"), "the primary is clean: {err}");
    let child = child_of(&failed);
    assert_eq!(child["state"], "failed", "{child}");
    let metrics = metrics(&d);
    assert!(
        metrics.contains("bms_job_last_verify_ok{job=\"v\"} 0.0"),
        "{metrics}"
    );
    assert!(metrics.contains("bms_job_last_verify_timestamp_seconds{job=\"v\"}"));
    let detail = d.ctl_json(["run", "show", &child["id"].to_string()]);
    let log = detail["log"].to_string();
    assert!(log.contains("data.bin"), "the damaged file is named: {log}");

    // The schedule can be cleared again.
    assert_ok(&d.ctl(["job", "edit", "v", "--verify-schedule", ""]));
    let show = d.ctl_json(["job", "show", "v"]);
    assert!(show["verify"]["schedule"].is_null(), "{show}");
    assert_eq!(show["verify"]["read_data_percent"], 100, "{show}");
}
