//! Alert kinds that come from a run's outcome and from compliance (docs/alerts.md, "Alert
//! records"): a backup that finishes with warnings (a partial snapshot) opens `run_partial` and
//! the next clean backup resolves it, with one notice each.

use bms_tests::alerts_util::*;
use bms_tests::poll_until;
use bms_tests::runner_util::write_small_tree;
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
