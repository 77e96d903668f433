//! Who is told and how long bmsd keeps trying (docs/alerts.md, "Channels" and "Delivery"):
//! routes send each alert only to the channels that match its kind, job and severity; an open
//! critical alert is reminded after `renotify_hours` until it is acknowledged (warnings never
//! are); a notice a dead channel never takes is given up after `give_up_hours`, the alert says
//! so, and it is not sent when the channel comes back.

use bms_tests::alerts_util::*;
use bms_tests::poll_until;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn hook(name: &str, http: &HttpReceiver) -> String {
    format!(
        "[[channels]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url(&format!("/{name}/"))
    )
}

fn show(d: &bms_tests::Daemon, id: i64) -> Value {
    d.ctl_json(["alert", "show", &id.to_string()])
}

fn channels_of(detail: &Value) -> BTreeSet<String> {
    detail["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| n["channel"].as_str().unwrap().to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn alert_of(d: &bms_tests::Daemon, kind: &str) -> Value {
    poll_until(WAIT, kind, || {
        alerts(d).into_iter().find(|a| a["kind"] == kind)
    })
}

#[test]
fn routes_send_each_alert_only_to_the_channels_of_its_kind_job_and_severity() {
    let http = HttpReceiver::start();
    let mut cfg = String::new();
    for name in ["all", "crit", "home", "partial", "unrouted"] {
        cfg.push_str(&hook(name, &http));
    }
    cfg.push_str(
        "[[routes]]\nchannels = [\"all\"]\n\
         [[routes]]\nchannels = [\"crit\"]\nmin_severity = \"critical\"\n\
         [[routes]]\nchannels = [\"home\"]\njobs = [\"home\"]\n\
         [[routes]]\nchannels = [\"partial\"]\nkinds = [\"run_partial\"]\n",
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    add_partial_job(&d, "other");

    // A critical alert of job home: the catch-all, the critical and the home route.
    set_failing(&d, true);
    assert_eq!(run_once(&d, "home")["state"], "failed");
    let failed = alert_of(&d, "run_failed");
    assert_eq!(failed["severity"], "critical");
    // A warning of job other: the catch-all and the run_partial route only.
    assert_eq!(run_once(&d, "other")["state"], "warning");
    let partial = alert_of(&d, "run_partial");
    assert_eq!(partial["severity"], "warning");
    assert_eq!(partial["job"], "other");
    // A warning of job home: the catch-all and the home route, not the critical one.
    let gate = d.dir.join("gate");
    let hook_cmd = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; test ! -e {}",
        gate.display(),
        d.dir.join("fail").display()
    );
    d.ctl_json(["job", "edit", "home", "--pre-hook", &hook_cmd]);
    let first = d.start_run("home");
    bms_tests::assert_fails(&d.ctl(["job", "run", "home"]), 1, "already running");
    let missed = alert_of(&d, "run_missed");
    assert_eq!(missed["severity"], "warning");
    std::fs::write(&gate, "").unwrap();
    d.wait_run_final(first, Duration::from_secs(60));

    // The notices are queued with the alert: exactly the routed channels.
    let id = |a: &Value| a["id"].as_i64().unwrap();
    assert_eq!(
        channels_of(&show(&d, id(&failed))),
        set(&["all", "crit", "home"])
    );
    assert_eq!(
        channels_of(&show(&d, id(&partial))),
        set(&["all", "partial"])
    );
    assert_eq!(channels_of(&show(&d, id(&missed))), set(&["all", "home"]));

    // And that is what the receivers got.
    poll_until(WAIT, "every routed notice delivered", || {
        (http.at("/all/").len() == 3
            && http.at("/crit/").len() == 1
            && http.at("/home/").len() == 2
            && http.at("/partial/").len() == 1)
            .then_some(())
    });
    let kinds = |p: &str| -> BTreeSet<String> {
        notice_events(&http, p)
            .into_iter()
            .map(|(k, e)| format!("{k} {e}"))
            .collect()
    };
    assert_eq!(
        kinds("/all/"),
        set(&[
            "run_failed raised",
            "run_partial raised",
            "run_missed raised"
        ])
    );
    assert_eq!(kinds("/crit/"), set(&["run_failed raised"]));
    assert_eq!(
        kinds("/home/"),
        set(&["run_failed raised", "run_missed raised"])
    );
    assert_eq!(kinds("/partial/"), set(&["run_partial raised"]));
    assert!(http.at("/unrouted/").is_empty(), "a channel no route names");
    // The unrouted channel still works when asked directly.
    assert_eq!(d.ctl_json(["alert", "test", "unrouted"])["ok"], true);
}

#[test]
fn open_critical_alerts_are_reminded_after_the_interval_until_acknowledged() {
    let http = HttpReceiver::start();
    // 0.001 h = 3.6 s; reminders are looked for every second.
    let cfg = format!(
        "renotify_hours = 0.001\nrpo_check_secs = 1\n{}",
        hook("hook", &http)
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    let hook_cmd = format!("test ! -e {}", d.dir.join("fail").display());
    let src = d.dir.join("src");
    d.ctl_json([
        "job",
        "add",
        "second",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
        "--pre-hook",
        &hook_cmd,
    ]);
    add_partial_job(&d, "part");
    set_failing(&d, true);
    assert_eq!(run_once(&d, "home")["state"], "failed");
    assert_eq!(run_once(&d, "second")["state"], "failed");
    assert_eq!(run_once(&d, "part")["state"], "warning");

    let of_job = |job: &str, event: &str| -> Vec<jiff::Timestamp> {
        http.at("/hook/")
            .iter()
            .map(|r| r.json())
            .filter(|v| v["alert"]["job"] == job && v["event"] == event)
            .map(|v| v["time"].as_str().unwrap().parse().unwrap())
            .collect()
    };
    // Two reminders of home's alert, each at least the interval after the notice before.
    poll_until(Duration::from_secs(40), "two reminders of home", || {
        (of_job("home", "renotify").len() >= 2).then_some(())
    });
    let raised = of_job("home", "raised");
    assert_eq!(raised.len(), 1, "raised once");
    let reminders = of_job("home", "renotify");
    let mut before = raised[0];
    for r in &reminders {
        let gap = r.duration_since(before).as_secs_f64();
        assert!(gap >= 3.0, "a reminder {gap:.3} s after the notice before");
        before = *r;
    }
    let home = alerts(&d).into_iter().find(|a| a["job"] == "home").unwrap();
    assert_eq!(home["count"], 1, "a reminder is not an occurrence: {home}");
    let detail = show(&d, home["id"].as_i64().unwrap());
    assert!(
        detail["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["event"] == "renotify"),
        "{detail}"
    );

    // Acknowledged: no more reminders of home, while second's go on (two more after the ack).
    let id = home["id"].as_i64().unwrap().to_string();
    d.ctl_json(["alert", "ack", &id, "--comment", "on it"]);
    let home_after_ack = of_job("home", "renotify").len();
    let second_at_ack = of_job("second", "renotify").len();
    poll_until(
        Duration::from_secs(40),
        "two more reminders of second",
        || (of_job("second", "renotify").len() >= second_at_ack + 2).then_some(()),
    );
    assert!(
        of_job("home", "renotify").len() <= home_after_ack + 1,
        "home was reminded after its ack"
    );
    // A warning is never reminded.
    assert_eq!(of_job("part", "raised").len(), 1);
    assert!(of_job("part", "renotify").is_empty(), "a warning reminded");
}

#[test]
fn a_notice_not_delivered_in_time_is_given_up_and_the_alert_says_so() {
    let http = HttpReceiver::start();
    let down = free_port();
    // 0.0005 h = 1.8 s.
    let cfg = format!(
        "give_up_hours = 0.0005\nretry_initial_ms = 200\nretry_max_secs = 1\n{}\
         [[channels]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/d/DOWN-SECRET\"\n",
        hook("hook", &http)
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    set_failing(&d, true);
    assert_eq!(run_once(&d, "home")["state"], "failed");
    let a = alert_of(&d, "run_failed");
    let id = a["id"].as_i64().unwrap();
    let detail = poll_until(WAIT, "the notice given up", || {
        let v = show(&d, id);
        v["alert"]["delivery_problem"].is_string().then_some(v)
    });
    let problem = detail["alert"]["delivery_problem"].as_str().unwrap();
    assert!(
        problem.contains("gave up") && problem.contains("'down'") && problem.contains("attempts"),
        "{problem}"
    );
    assert!(!problem.contains("DOWN-SECRET"), "{problem}");
    let notes = detail["notifications"].as_array().unwrap();
    let dn = notes.iter().find(|n| n["channel"] == "down").unwrap();
    assert_eq!(dn["state"], "failed", "{dn}");
    let tries = dn["attempts"].as_array().unwrap();
    assert!(tries.len() >= 2, "retried before giving up: {dn}");
    assert!(tries.iter().all(|t| t["ok"] == false));
    let first: jiff::Timestamp = tries[0]["time"].as_str().unwrap().parse().unwrap();
    let last: jiff::Timestamp = tries[tries.len() - 1]["time"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        last.duration_since(first).as_secs_f64() >= 1.0,
        "gave up before the time was up: {dn}"
    );
    let hk = notes.iter().find(|n| n["channel"] == "hook").unwrap();
    assert_eq!(hk["state"], "delivered", "the good channel is not held up");
    // Said in `alert show` and in the log.
    let text = bms_tests::stdout(&d.ctl(["alert", "show", &id.to_string()]));
    assert!(text.contains("gave up"), "{text}");
    assert!(d.log().contains("gave up delivering"), "{}", d.log());
    assert!(!d.log().contains("DOWN-SECRET"));

    // The channel comes back: the given-up notice stays given up; a new alert arrives alone.
    let back = HttpReceiver::start_on(down);
    let other = d.dir.join("other-src");
    bms_tests::runner_util::write_small_tree(&other);
    d.ctl_json([
        "job",
        "add",
        "other",
        "--source",
        other.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
        "--pre-hook",
        "false",
    ]);
    assert_eq!(run_once(&d, "other")["state"], "failed");
    let got = poll_until(WAIT, "the new alert on the channel back", || {
        let r = back.at("/d/");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(got.len(), 1, "the given-up notice was sent after all");
    assert_eq!(got[0].json()["alert"]["job"], "other");
}
