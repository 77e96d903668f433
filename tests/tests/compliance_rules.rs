//! The 3-2-1-1-0 checker through the real binaries (docs/compliance.md): a job on one onsite
//! disk target fails 3, 2, 1 and 1 with fix hints and "0" is unknown; a second, offsite and
//! immutable disk target (loop-mounted ext4), a run, a copy and a verification pass 3, 1, 1 and
//! 0 while 2 fails with its hint; a corrupted pack of the copy, verified, fails "0" naming the
//! target and the run. Every verdict change is in the history once and once an event, and
//! `bmsctl compliance` exits 0 only when every job passes. The violation is an open alert that
//! the repaired, re-verified copy resolves.

use bms_tests::events_util::EventStream;
use bms_tests::runner_util::{write_small_tree, LoopMount};
use bms_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn compliance(d: &Daemon) -> (i32, Value) {
    let out = d.ctl(["--json", "compliance", "j"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "compliance printed invalid JSON ({e}): {}{}",
            stdout(&out),
            stderr(&out)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn rule<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["jobs"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["rule"] == name)
        .unwrap_or_else(|| panic!("no rule {name} in {v}"))
}

fn verdicts(v: &Value) -> Vec<String> {
    [
        "copies",
        "media",
        "offsite",
        "immutable_or_offline",
        "errors",
    ]
    .iter()
    .map(|r| rule(v, r)["verdict"].as_str().unwrap_or("").to_owned())
    .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn history(d: &Daemon) -> Vec<Value> {
    d.ctl_json(["compliance", "j", "--history"])["changes"]
        .as_array()
        .expect("changes")
        .clone()
}

#[test]
fn one_disk_fails_then_an_offsite_immutable_copy_passes_then_corruption_fails_zero() {
    users::require_root();
    let d = Daemon::start();
    let mut events = EventStream::start(&d, Some("j"));
    let src = d.dir.join("src");
    write_small_tree(&src);
    assert_ok(&d.ctl([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().expect("utf-8"),
        "--schedule",
        "daily",
        "--target",
        "local",
    ]));
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    // Bad requests say what was wrong.
    assert_fails(
        &d.ctl(["verify", "--job", "j", "--target", "nope"]),
        2,
        "target 'nope' is not a target of job 'j'",
    );
    assert_fails(
        &d.ctl(["verify", "--job", "j", "--read-data", "101"]),
        2,
        "101",
    );
    assert_fails(&d.ctl(["compliance", "nojob"]), 1, "nojob");

    // One onsite disk: 3, 2, 1, 1 fail with hints; "0" is unknown, not a pass.
    let (code, v) = compliance(&d);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        verdicts(&v),
        ["fail", "fail", "fail", "fail", "unknown"],
        "{v}"
    );
    assert_eq!(
        v["jobs"][0]["rpo_secs"],
        2 * 86400,
        "daily: twice a day's gap"
    );
    assert_eq!(v["jobs"][0]["rpo_source"], "schedule");
    assert!(rule(&v, "offsite")["hint"]
        .as_str()
        .unwrap()
        .contains("bmsctl target add NAME --path DIR --location offsite"));
    assert!(rule(&v, "immutable_or_offline")["hint"]
        .as_str()
        .unwrap()
        .contains("--immutable-days"));
    assert!(rule(&v, "errors")["hint"]
        .as_str()
        .unwrap()
        .contains("bmsctl verify --job j --target local --read-data 10"));
    // The table: one mark per rule, and the fix lines.
    let out = d.ctl(["compliance"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("✗") && text.contains("?"), "{text}");
    assert!(text.contains("fix: add an offsite target"), "{text}");
    let explain = stdout(&d.ctl(["compliance", "j", "--explain"]));
    assert!(explain.contains("target local: snapshot"), "{explain}");
    assert!(explain.contains("never verified"), "{explain}");
    assert!(stdout(&d.ctl(["status"])).contains("compliance: 0 of 1 jobs compliant"));

    // A second disk target, offsite and immutable, on ext4.
    let mount = LoopMount::new("ext4", 64, &d.dir.join("mnt"));
    let vault = mount.mount_point.join("repo");
    std::fs::create_dir(&vault).expect("create repo dir");
    let _unseal = Unseal(vault.clone());
    assert_ok(&d.ctl([
        "target",
        "add",
        "vault",
        "--path",
        vault.to_str().expect("utf-8"),
        "--location",
        "offsite",
        "--immutable-days",
        "3",
    ]));
    assert_ok(&d.ctl(["job", "edit", "j", "--target", "local", "--target", "vault"]));
    std::fs::write(src.join("more.txt"), "more").expect("write");
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    assert_ok(&d.ctl(["verify", "--job", "j", "--read-data", "100", "--wait"]));
    let (code, v) = compliance(&d);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        verdicts(&v),
        ["pass", "fail", "pass", "pass", "pass"],
        "{v}"
    );
    assert!(rule(&v, "media")["reason"]
        .as_str()
        .unwrap()
        .contains("one media type (disk)"));
    assert!(rule(&v, "media")["hint"]
        .as_str()
        .unwrap()
        .contains("bmsctl target add NAME --kind tape"));
    let copy = v["jobs"][0]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "vault")
        .expect("vault evidence")
        .clone();
    assert!(copy["immutable_until"].is_string(), "{copy}");
    assert_eq!(copy["location"], "offsite");
    assert_eq!(copy["verification"]["read_data_percent"], 100, "{copy}");

    // With a second media type every rule passes: exit 0.
    assert_ok(&d.ctl(["target", "edit", "vault", "--media-type", "optical"]));
    let (code, v) = compliance(&d);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["jobs"][0]["compliant"], true);
    assert!(stdout(&d.ctl(["status"])).contains("compliance: 1 of 1 jobs compliant"));

    // Bit rot in a pack of the copy: its verification fails and "0" fails naming both.
    let mut packs = Vec::new();
    files(&vault.join("packs"), &mut packs);
    let pack = packs.first().expect("a pack on vault").clone();
    unseal(&pack);
    let mut b = std::fs::read(&pack).expect("read pack");
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    std::fs::write(&pack, b).expect("write pack");
    let out = d.ctl(["--json", "verify", "--job", "j", "--target", "vault"]);
    assert_ok(&out);
    let queued: Value = serde_json::from_slice(&out.stdout).expect("json");
    let run = queued["runs"][0]["id"].as_i64().expect("run id");
    assert_eq!(queued["runs"][0]["target"], "vault");
    let fin = d.wait_run_final(run, Duration::from_secs(120));
    assert_eq!(fin["run"]["state"], "failed", "{fin}");
    let (code, v) = compliance(&d);
    assert_eq!(code, 1, "{v}");
    let zero = rule(&v, "errors");
    assert_eq!(zero["verdict"], "fail", "{v}");
    let reason = zero["reason"].as_str().unwrap();
    assert!(
        reason.contains("target vault") && reason.contains(&format!("run {run}")),
        "{reason}"
    );

    // Every change once in the history and once as an event.
    let changes = poll_until(
        Duration::from_secs(30),
        "the errors pass → fail change in the history",
        || {
            let h = history(&d);
            h.iter()
                .any(|c| c["rule"] == "errors" && c["to"] == "fail")
                .then_some(h)
        },
    );
    let key = |rule: &Value, from: &Value, to: &Value| {
        format!(
            "{}:{}:{}",
            rule.as_str().unwrap_or(""),
            from.as_str().unwrap_or("none"),
            to.as_str().unwrap_or("")
        )
    };
    let mut want: Vec<String> = changes
        .iter()
        .map(|c| key(&c["rule"], &c["from"], &c["to"]))
        .collect();
    want.sort();
    let n = want.len();
    events.wait(
        Duration::from_secs(30),
        "a ComplianceChanged per change",
        |seen| {
            seen.iter()
                .filter(|e| e["type"] == "ComplianceChanged")
                .count()
                >= n
        },
    );
    let mut got: Vec<String> = events
        .seen
        .iter()
        .filter(|e| e["type"] == "ComplianceChanged")
        .map(|e| key(&e["rule"], &e["from"], &e["to"]))
        .collect();
    got.sort();
    assert_eq!(got, want, "events and history differ");
    for w in [
        "errors:unknown:pass",
        "errors:pass:fail",
        "copies:fail:pass",
        "offsite:fail:pass",
        "immutable_or_offline:fail:pass",
        "media:fail:pass",
    ] {
        assert!(want.iter().any(|k| k == w), "no {w} in {want:?}");
    }

    // The violation (a rule that passed fails) is an open alert naming the job and the rule's
    // reason (docs/alerts.md); repairing the pack and verifying again restores compliance and
    // resolves it.
    let violated = poll_until(
        Duration::from_secs(30),
        "an open compliance_violated alert",
        || {
            bms_tests::alerts_util::alerts(&d)
                .into_iter()
                .find(|a| a["kind"] == "compliance_violated" && a["state"] == "open")
        },
    );
    assert_eq!(violated["job"], "j", "{violated}");
    assert!(
        violated["message"]
            .as_str()
            .unwrap_or("")
            .contains("target vault"),
        "{violated}"
    );
    let mut b = std::fs::read(&pack).expect("read pack");
    b[mid] ^= 0xff;
    std::fs::write(&pack, b).expect("write pack");
    reseal(&pack);
    assert_ok(&d.ctl([
        "verify",
        "--job",
        "j",
        "--target",
        "vault",
        "--read-data",
        "100",
        "--wait",
    ]));
    let (code, v) = compliance(&d);
    assert_eq!(code, 0, "{v}");
    let id = violated["id"].to_string();
    poll_until(
        Duration::from_secs(30),
        "the compliance_violated alert resolved",
        || {
            let a = d.ctl_json(["alert", "show", &id]);
            (a["alert"]["state"] == "resolved").then_some(())
        },
    );
}

/// Lifts the immutable attribute of everything below a directory when dropped.
struct Unseal(PathBuf);

impl Drop for Unseal {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

fn unseal(p: &Path) {
    chattr("-i", p);
}

/// Puts the immutable attribute back, as bmsd's seal left it.
fn reseal(p: &Path) {
    chattr("+i", p);
}

fn chattr(flag: &str, p: &Path) {
    let st = Command::new("chattr")
        .arg(flag)
        .arg(p)
        .status()
        .expect("chattr");
    assert!(st.success());
}
