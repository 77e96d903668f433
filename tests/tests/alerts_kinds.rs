//! Alert kinds and commands (docs/alerts.md): the dead-man's switch (a job with an RPO and no
//! successful run gets its alert within the RPO, with no run at all), target, skipped-run and
//! verification alerts;
//! ack, resolve and silence work, are audited, and refuse bad input.

use bms_tests::alerts_util::*;
use bms_tests::{assert_fails, audit_actions, poll_until};
use std::time::Duration;

#[test]
fn a_job_with_rpo_1m_and_no_run_raises_the_rpo_alert_within_a_minute() {
    let http = HttpReceiver::start();
    let cfg = format!(
        "rpo_check_secs = 1\n[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &["--rpo", "1m"]);
    let job = d.ctl_json(["job", "show", "home"]);
    assert_eq!(job["rpo_secs"], 60, "{job}");
    let created: jiff::Timestamp = job["created_at"].as_str().unwrap().parse().unwrap();
    let a = poll_until(Duration::from_secs(80), "the RPO alert", || {
        alerts(&d).into_iter().find(|a| a["kind"] == "rpo_exceeded")
    });
    let seen: jiff::Timestamp = a["first_seen"].as_str().unwrap().parse().unwrap();
    let after = seen.duration_since(created).as_secs();
    assert!(
        (60..=70).contains(&after),
        "raised {after} s after the job was created: {a}"
    );
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["job"], "home");
    assert!(a["message"].as_str().unwrap().contains("RPO"), "{a}");
    assert!(d.runs(Some("home")).is_empty(), "no run may have happened");
    let hook = poll_until(Duration::from_secs(20), "the RPO webhook", || {
        http.at("/hook").into_iter().next()
    });
    assert_eq!(hook.json()["alert"]["kind"], "rpo_exceeded");
    // Checked again every second, it stays one alert until a backup succeeds.
    let id = a["id"].as_i64().unwrap();
    assert_eq!(run_once(&d, "home")["state"], "succeeded");
    poll_until(Duration::from_secs(20), "the RPO alert resolved", || {
        let v = d.ctl_json(["alert", "show", &id.to_string()]);
        (v["alert"]["state"] == "resolved").then_some(())
    });
    assert_eq!(
        alerts(&d)
            .iter()
            .filter(|a| a["kind"] == "rpo_exceeded")
            .count(),
        1
    );
}

#[test]
fn ack_resolve_and_silence_are_audited_and_refuse_bad_input() {
    let http = HttpReceiver::start();
    let down = free_port();
    let cfg = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[channels]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/x\"\n\
         [[routes]]\nchannels = [\"hook\"]\n",
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    set_failing(&d, true);
    run_once(&d, "home");
    let a = poll_until(Duration::from_secs(20), "the alert", || {
        alerts(&d).into_iter().next()
    });
    let id = a["id"].as_i64().unwrap().to_string();

    let acked = d.ctl_json(["alert", "ack", &id, "--comment", "disk swap tonight"]);
    assert_eq!(acked["alert"]["state"], "acked");
    assert_eq!(acked["alert"]["ack_comment"], "disk swap tonight");
    assert_fails(&d.ctl(["alert", "ack", &id]), 1, "not open");
    assert_fails(&d.ctl(["alert", "show", "999"]), 1, "does not exist");
    assert_fails(
        &d.ctl(["alert", "list", "--state", "bogus"]),
        2,
        "open, acked, resolved",
    );

    let resolved = d.ctl_json(["alert", "resolve", &id]);
    assert_eq!(resolved["alert"]["state"], "resolved");
    assert_fails(&d.ctl(["alert", "resolve", &id]), 1, "already resolved");

    assert_fails(
        &d.ctl(["alert", "silence", "--job", "home", "--until", "soon"]),
        2,
        "duration",
    );
    assert_fails(
        &d.ctl([
            "alert",
            "silence",
            "--job",
            "home",
            "--until",
            "2001-01-01T00:00:00Z",
        ]),
        2,
        "in the past",
    );
    assert_fails(
        &d.ctl(["alert", "silence", "--job", "nope", "--until", "1h"]),
        1,
        "does not exist",
    );
    let s = d.ctl_json(["alert", "silence", "--job", "home", "--until", "1h"]);
    assert_eq!(s["job"], "home");

    // Silenced: a new failure is recorded but notifies nobody.
    run_once(&d, "home");
    let again = poll_until(Duration::from_secs(20), "the second alert", || {
        alerts(&d)
            .into_iter()
            .find(|a| a["id"].as_i64().unwrap().to_string() != id)
    });
    let detail = d.ctl_json(["alert", "show", &again["id"].as_i64().unwrap().to_string()]);
    assert!(
        detail["notifications"].as_array().unwrap().is_empty(),
        "{detail}"
    );
    let events: Vec<String> = poll_until(Duration::from_secs(20), "two webhook posts", || {
        let h = http.at("/hook");
        (h.len() >= 2).then_some(h)
    })
    .iter()
    .map(|h| h.json()["event"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(events, ["raised", "resolved"]);

    let actions = audit_actions(&d);
    for want in ["alert.ack", "alert.silence", "alert.resolve"] {
        assert!(
            actions.iter().any(|(a, _)| a == want),
            "{want} not audited: {actions:?}"
        );
    }

    // `alert test`: a good channel, a dead one (exit 1, says why), an unknown one.
    let ok = d.ctl_json(["alert", "test", "hook"]);
    assert_eq!(ok["ok"], true, "{ok}");
    let dead = d.ctl(["alert", "test", "down"]);
    assert_fails(&dead, 1, "failed");
    assert!(
        !bms_tests::stderr(&dead).contains("/x"),
        "the URL path leaked"
    );
    assert_fails(&d.ctl(["alert", "test", "nope"]), 1, "not configured");

    // Metrics: open alerts by severity and failed deliveries by channel.
    let status = d.status_json();
    let addr = status["metrics_address"].as_str().unwrap().to_owned();
    let text = http_get(&addr, "/metrics");
    assert!(
        text.contains("bms_alerts_open{severity=\"critical\"} 1"),
        "{text}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn an_unavailable_target_raises_an_alert_with_the_free_bytes_and_resolves_when_back() {
    let http = HttpReceiver::start();
    let cfg = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    let check = |name: &str| d.ctl(["--json", "target", "check", name]);
    check("t");
    // Low space: the check fails with the free bytes, and so does the alert.
    d.ctl_json(["target", "edit", "t", "--min-free", "1000000T"]);
    check("t");
    let a = poll_until(Duration::from_secs(20), "the target alert", || {
        alerts(&d)
            .into_iter()
            .find(|a| a["kind"] == "target_unavailable")
    });
    assert_eq!(a["target"], "t");
    assert_eq!(a["severity"], "critical");
    assert!(a["message"].as_str().unwrap().contains("low space"), "{a}");
    assert!(a["details"]["free_bytes"].as_u64().unwrap() > 0, "{a}");
    // Back to normal: resolved, with one "resolved" notice.
    d.ctl_json(["target", "edit", "t", "--min-free", "0"]);
    check("t");
    let id = a["id"].as_i64().unwrap().to_string();
    poll_until(Duration::from_secs(20), "the target alert resolved", || {
        let v = d.ctl_json(["alert", "show", &id]);
        (v["alert"]["state"] == "resolved" && v["notifications"].as_array().unwrap().len() == 2)
            .then_some(())
    });
    let events: Vec<String> = poll_until(Duration::from_secs(20), "two posts", || {
        let h = http.at("/hook");
        (h.len() >= 2).then_some(h)
    })
    .iter()
    .map(|h| h.json()["event"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(events, ["raised", "resolved"]);
}

#[test]
fn a_skipped_run_raises_the_missed_alert_and_the_next_good_run_resolves_it() {
    let (d, _temp) = daemon_with_alerts("", "home", &[]);
    // A slow pre-hook keeps the first run going while the second is asked for.
    let gate = d.dir.join("gate");
    let hook = format!("while [ ! -e {} ]; do sleep 0.05; done", gate.display());
    d.ctl_json(["job", "edit", "home", "--pre-hook", &hook]);
    let first = d.start_run("home");
    assert_fails(&d.ctl(["job", "run", "home"]), 1, "already running");
    let runs = d.runs(Some("home"));
    assert!(runs.iter().any(|r| r["state"] == "skipped"), "{runs:?}");
    let a = poll_until(Duration::from_secs(20), "the missed-run alert", || {
        alerts(&d).into_iter().find(|a| a["kind"] == "run_missed")
    });
    assert_eq!(a["severity"], "warning");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(
        d.wait_run_final(first, Duration::from_secs(60))["run"]["state"],
        "succeeded"
    );
    let id = a["id"].as_i64().unwrap().to_string();
    poll_until(
        Duration::from_secs(20),
        "the missed-run alert resolved",
        || (d.ctl_json(["alert", "show", &id])["alert"]["state"] == "resolved").then_some(()),
    );
}

fn pack_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            pack_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn verification_errors_raise_an_alert_per_job_and_target() {
    let (d, _temp) = daemon_with_alerts(
        "",
        "home",
        &["--verify-after-backup", "--read-data-percent", "100"],
    );
    assert_eq!(run_once(&d, "home")["state"], "succeeded");
    let mut packs = Vec::new();
    pack_files(&d.dir.join("repo/packs"), &mut packs);
    assert!(!packs.is_empty());
    for p in &packs {
        bms_tests::restore_util::corrupt_pack(p);
    }
    std::fs::write(d.dir.join("src/more.bin"), b"a little more").unwrap();
    run_once(&d, "home");
    let a = poll_until(Duration::from_secs(30), "the verification alert", || {
        alerts(&d)
            .into_iter()
            .find(|a| a["kind"] == "verify_errors")
    });
    assert_eq!(a["key"], "verify_errors:home:t");
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["target"], "t");
    assert!(
        a["message"].as_str().unwrap().contains("found errors"),
        "{a}"
    );
}
