//! Alert kinds that come from a run's outcome and from compliance (docs/alerts.md, "Alert
//! records"): a backup that finishes with warnings (a partial snapshot) opens `run_partial` and
//! the next clean backup resolves it; a job that was compliant and stops being so opens
//! `compliance_violated` from the `ComplianceChanged` event, and being compliant again resolves
//! it, each with one notice.

use bms_tests::alerts_util::*;
use bms_tests::runner_util::{write_small_tree, LoopMount};
use bms_tests::{assert_ok, poll_until, users};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn a_partial_snapshot_raises_run_partial_and_the_next_clean_backup_resolves_it() {
    let http = HttpReceiver::start();
    let cfg = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    add_partial_job(&d, "part");
    let run = run_once(&d, "part");
    assert_eq!(run["state"], "warning", "{run}");
    assert!(run["snapshot"].is_string(), "a partial snapshot: {run}");
    let a = poll_until(WAIT, "the run_partial alert", || {
        alerts(&d).into_iter().find(|a| a["kind"] == "run_partial")
    });
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["job"], "part");
    assert_eq!(a["key"], "run_partial:part");
    let msg = a["message"].as_str().unwrap();
    assert!(
        msg.contains("finished with warnings (partial snapshot)"),
        "{a}"
    );
    assert_eq!(a["details"]["run"], run["id"], "{a}");
    // A second partial run counts; it does not notify again.
    assert_eq!(run_once(&d, "part")["state"], "warning");
    poll_until(WAIT, "count 2", || {
        alerts(&d)
            .into_iter()
            .find(|x| x["kind"] == "run_partial" && x["count"] == 2)
    });

    // A clean backup (the source no longer holds the repository) resolves it.
    let clean = d.dir.join("clean");
    write_small_tree(&clean);
    d.ctl_json(["job", "edit", "part", "--source", clean.to_str().unwrap()]);
    assert_eq!(run_once(&d, "part")["state"], "succeeded");
    let id = a["id"].as_i64().unwrap().to_string();
    poll_until(WAIT, "the run_partial alert resolved", || {
        (d.ctl_json(["alert", "show", &id])["alert"]["state"] == "resolved").then_some(())
    });
    let events = poll_until(WAIT, "raised and resolved", || {
        let e = notice_events(&http, "/hook");
        (e.len() >= 2).then_some(e)
    });
    assert_eq!(
        events,
        [
            ("run_partial".to_owned(), "raised".to_owned()),
            ("run_partial".to_owned(), "resolved".to_owned())
        ]
    );
}

/// Clears the immutable attribute under the path when the test ends.
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

#[test]
fn a_compliant_job_that_stops_being_so_raises_compliance_violated_and_restored_resolves_it() {
    users::require_root();
    let http = HttpReceiver::start();
    let cfg = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "j", &[]);
    d.ctl_json(["job", "edit", "j", "--schedule", "daily"]);
    // Two copies besides the source: t, and an offsite, immutable vault of another media type.
    let mount = LoopMount::new("ext4", 64, &d.dir.join("mnt"));
    let vault = mount.mount_point.join("repo");
    std::fs::create_dir(&vault).unwrap();
    let _unseal = Unseal(vault.clone());
    assert_ok(&d.ctl([
        "target",
        "add",
        "vault",
        "--path",
        vault.to_str().unwrap(),
        "--location",
        "offsite",
        "--immutable-days",
        "3",
        "--media-type",
        "optical",
    ]));
    assert_ok(&d.ctl(["job", "edit", "j", "--target", "t", "--target", "vault"]));
    assert_eq!(run_once(&d, "j")["state"], "succeeded");
    assert_ok(&d.ctl(["verify", "--job", "j", "--read-data", "100", "--wait"]));
    let v = d.ctl_json(["compliance", "j"]);
    assert_eq!(v["jobs"][0]["compliant"], true, "{v}");
    // Never violated so far: the rules that failed before the job was set up are no alert.
    assert!(
        !alerts(&d)
            .iter()
            .any(|a| a["kind"] == "compliance_violated"),
        "{:?}",
        alerts(&d)
    );

    // The vault moves onsite: rule 1 (offsite) fails, found at the next evaluation (after a
    // run: a verification, which leaves every other rule as it was).
    assert_ok(&d.ctl(["target", "edit", "vault", "--location", "onsite"]));
    let verify = ["verify", "--job", "j", "--read-data", "100", "--wait"];
    assert_ok(&d.ctl(verify));
    let a = poll_until(WAIT, "the compliance_violated alert", || {
        alerts(&d)
            .into_iter()
            .find(|a| a["kind"] == "compliance_violated")
    });
    assert_eq!(a["job"], "j");
    assert_eq!(a["severity"], "warning");
    assert_eq!(a["state"], "open");
    let msg = a["message"].as_str().unwrap();
    assert!(msg.contains("no longer meets 3-2-1-1-0"), "{a}");
    assert!(
        a["details"]["reason"].as_str().unwrap().contains("offsite"),
        "{a}"
    );
    let v = d.ctl_json(["compliance", "j"]);
    assert_eq!(v["jobs"][0]["compliant"], false, "{v}");

    // Offsite again: compliant, the alert resolves with one notice.
    assert_ok(&d.ctl(["target", "edit", "vault", "--location", "offsite"]));
    assert_ok(&d.ctl(verify));
    let id = a["id"].as_i64().unwrap().to_string();
    poll_until(WAIT, "the compliance alert resolved", || {
        (d.ctl_json(["alert", "show", &id])["alert"]["state"] == "resolved").then_some(())
    });
    let events: Vec<(String, String)> = poll_until(WAIT, "raised and resolved", || {
        let e: Vec<_> = notice_events(&http, "/hook")
            .into_iter()
            .filter(|(k, _)| k == "compliance_violated")
            .collect();
        (e.len() >= 2).then_some(e)
    });
    assert_eq!(
        events,
        [
            ("compliance_violated".to_owned(), "raised".to_owned()),
            ("compliance_violated".to_owned(), "resolved".to_owned())
        ]
    );
    assert_eq!(
        alerts(&d)
            .iter()
            .filter(|a| a["kind"] == "compliance_violated")
            .count(),
        1
    );
}
