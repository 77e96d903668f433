//! Delivery never delays a job and never loses a notice (docs/alerts.md, "Delivery"): a channel
//! that hangs or refuses does not change a run's duration; failed attempts are recorded and
//! retried with growing waits; a bmsd restart keeps the queued notice, and it arrives once when
//! the channel is back.

use bms_tests::alerts_util::*;
use bms_tests::{poll_until, DaemonOpts};
use serde_json::Value;
use std::time::Duration;

fn duration(run: &Value) -> f64 {
    run["duration_secs"].as_f64().expect("duration_secs")
}

fn attempts_of(d: &bms_tests::Daemon, alert: i64, channel: &str) -> Vec<Value> {
    let v = d.ctl_json(["alert", "show", &alert.to_string()]);
    v["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["channel"] == channel)
        .flat_map(|n| n["attempts"].as_array().unwrap().clone())
        .collect()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v["time"].as_str().unwrap().parse().unwrap()
}

#[test]
fn dead_channels_do_not_delay_runs_and_the_queued_notice_survives_a_restart_and_arrives_once() {
    // Without channels: the baseline duration of a failing run.
    let (base, _t0) = daemon_with_alerts("", "home", &[]);
    set_failing(&base, true);
    let baseline = (0..3)
        .map(|_| duration(&run_once(&base, "home")))
        .fold(0.0, f64::max);
    drop(base);

    // A channel that accepts and never answers (each attempt waits 10 s) and one that refuses.
    let hole = BlackHole::start();
    let down = free_port();
    let cfg = format!(
        "retry_initial_ms = 400\nretry_max_secs = 3\nattempt_timeout_secs = 10\n\
         [[channels]]\nname = \"hole\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/h\"\n\
         [[channels]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/d\"\n",
        hole.port
    );
    let (mut d, _t1) = daemon_with_alerts(&cfg, "home", &[]);
    set_failing(&d, true);
    let mut worst: f64 = 0.0;
    for _ in 0..3 {
        worst = worst.max(duration(&run_once(&d, "home")));
    }
    // A delivery on the run's path would add at least one 10 s attempt.
    assert!(
        worst < baseline + 2.0,
        "runs took {worst:.3} s with dead channels, {baseline:.3} s without"
    );
    let alert = poll_until(Duration::from_secs(20), "the alert", || {
        alerts(&d).into_iter().next()
    });
    let id = alert["id"].as_i64().unwrap();
    assert_eq!(alert["count"], 3);

    // Retried with backoff, every attempt recorded with why it failed.
    let tries = poll_until(Duration::from_secs(30), "three failed attempts", || {
        let a = attempts_of(&d, id, "down");
        (a.len() >= 3).then_some(a)
    });
    for a in &tries {
        assert_eq!(a["ok"], false, "{a}");
        assert!(a["detail"].as_str().unwrap().contains("refused"), "{a}");
        assert!(
            !a["detail"].as_str().unwrap().contains("/d"),
            "URL path in {a}"
        );
    }
    let gap1 = ts(&tries[1]).duration_since(ts(&tries[0])).as_secs_f64();
    let gap2 = ts(&tries[2]).duration_since(ts(&tries[1])).as_secs_f64();
    assert!(
        gap1 >= 0.35 && gap2 > gap1 * 1.4,
        "waits {gap1:.3} s then {gap2:.3} s do not grow"
    );
    assert!(
        d.log().contains("notification not delivered"),
        "failures are logged"
    );

    // Restart bmsd while the notice is still queued, then bring the channel back.
    let status = d.stop();
    assert!(status.success(), "bmsd exit: {status}");
    let back = HttpReceiver::start_on(down);
    d.spawn(&DaemonOpts {
        args: vec![
            "--config".into(),
            d.dir.join("bmsd.toml").display().to_string(),
        ],
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    poll_until(
        Duration::from_secs(30),
        "the notice delivered after the restart",
        || {
            let v = d.ctl_json(["alert", "show", &id.to_string()]);
            v["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["channel"] == "down" && n["state"] == "delivered")
                .then_some(())
        },
    );
    let got = back.at("/d");
    assert_eq!(got.len(), 1, "delivered {} times", got.len());
    assert_eq!(got[0].json()["alert"]["id"], id);
    let last = attempts_of(&d, id, "down");
    assert_eq!(last.last().unwrap()["ok"], true);
    assert!(last.last().unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("200"));
}

#[test]
fn a_run_interrupted_by_a_crash_opens_its_alert_when_bmsd_starts_again() {
    let (mut d, _t) = daemon_with_alerts("", "home", &[]);
    let gate = d.dir.join("gate");
    let hook = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    d.ctl_json(["job", "edit", "home", "--pre-hook", &hook]);
    let id = d.start_run("home");
    poll_until(Duration::from_secs(20), "the run going", || {
        (d.run_show(id)["run"]["state"] == "running").then_some(())
    });
    d.signal(nix::sys::signal::Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    std::fs::write(&gate, "").unwrap();
    d.spawn(&DaemonOpts {
        args: vec![
            "--config".into(),
            d.dir.join("bmsd.toml").display().to_string(),
        ],
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    assert_eq!(d.run_show(id)["run"]["state"], "interrupted");
    let a = poll_until(
        Duration::from_secs(20),
        "the alert of the interrupted run",
        || alerts(&d).into_iter().find(|a| a["kind"] == "run_failed"),
    );
    assert!(
        a["message"].as_str().unwrap().contains("interrupted"),
        "{a}"
    );
    assert_eq!(a["count"], 1);
}
