//! The monitoring kit (docs/monitoring.md) against the real bmsd and Debian's Prometheus tools:
//! the alert rules pass `promtool check rules` and their unit tests, every rule has a test that
//! fires it; a live scrape in the 0.0.4 text format passes `promtool check metrics` and holds
//! every metric the dashboard names, with values equal to what bmsctl reports; and a real
//! Prometheus server scrapes bmsd (`up == 1`) and fires the failed-job rule.

use bms_tests::docs::{http_get, http_get_with, ACCEPT_OPENMETRICS};
use bms_tests::runner_util::write_small_tree;
use bms_tests::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn kit(file: &str) -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/monitoring")
        .join(file)
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool (Debian package prometheus, scripts/test-packages)")
}

#[test]
fn the_alert_rules_pass_promtool_and_each_has_a_test_that_fires_it() {
    let rules = kit("bms-alerts.yml");
    assert_ok(&promtool(&["check", "rules", rules.to_str().unwrap()]));
    assert_ok(&promtool(&[
        "test",
        "rules",
        kit("bms-alerts.test.yml").to_str().unwrap(),
    ]));
    let text = std::fs::read_to_string(&rules).unwrap();
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    let tests = std::fs::read_to_string(kit("bms-alerts.test.yml")).unwrap();
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/monitoring.md"),
    )
    .unwrap();
    for name in &names {
        // A test that expects the alert (an `alertname:` line followed by `exp_alerts:` with one).
        let fires = tests.split("alertname: ").skip(1).any(|block| {
            block.starts_with(&format!("{name}\n"))
                && block
                    .split("alertname: ")
                    .next()
                    .is_some_and(|b| b.contains("exp_labels"))
        });
        assert!(fires, "no test in bms-alerts.test.yml fires {name}");
        assert!(
            docs.contains(&format!("### {name}")),
            "docs/monitoring.md has no runbook for {name}"
        );
    }
}

/// A daemon with a job `m` that ran once and was verified after it.
fn daemon_after_a_run() -> (Daemon, String) {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    d.ctl_json([
        "job",
        "add",
        "m",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "local",
        "--verify-after-backup",
        "true",
    ]);
    assert_ok(&d.ctl(["job", "run", "m", "--wait"]));
    assert_ok(&d.ctl(["target", "check", "local"]));
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    (d, addr)
}

/// The metric names of the samples of a scrape.
fn sample_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// The value of the first sample of `name` whose line contains `labels`.
fn value(body: &str, name: &str, labels: &str) -> f64 {
    body.lines()
        .find(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} with {labels} in:\n{body}"))
}

#[test]
fn a_scrape_passes_promtool_and_holds_every_metric_the_dashboard_names() {
    let (d, addr) = daemon_after_a_run();
    let (head, body) = http_get(&addr, "/metrics");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(!body.contains("# EOF"), "{body}");
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert_ok(&out);
    // Prometheus itself asks for OpenMetrics and gets it.
    let (om_head, om_body) = http_get_with(&addr, "/metrics", ACCEPT_OPENMETRICS);
    assert!(
        om_head.contains("application/openmetrics-text"),
        "{om_head}"
    );
    assert!(om_body.ends_with("# EOF\n"), "{om_body}");

    let served = sample_names(&body);
    let dashboard = std::fs::read_to_string(kit("grafana-dashboard.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let mut named = BTreeSet::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for (i, _) in expr.match_indices("bms_") {
                let rest = &expr[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                named.insert(rest[..end].to_owned());
            }
        }
    }
    assert!(named.len() >= 8, "{named:?}");
    for name in &named {
        assert!(
            served.contains(name),
            "the dashboard names {name}, which bmsd does not export:\n{body}"
        );
    }

    // The figures are the ones bmsctl reports for the same objects.
    let jobs = d.ctl_json(["job", "list"]);
    let targets = d.ctl_json(["target", "list"]);
    assert_eq!(
        value(&body, "bms_jobs", ""),
        jobs["jobs"].as_array().unwrap().len() as f64
    );
    assert_eq!(
        value(&body, "bms_targets", ""),
        targets["targets"].as_array().unwrap().len() as f64
    );
    let runs = d.ctl_json(["run", "list", "--job", "m"]);
    let run = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "backup")
        .expect("the backup run");
    assert_eq!(run["state"], "succeeded");
    assert_eq!(
        value(
            &body,
            "bms_runs_total",
            "job=\"m\",kind=\"backup\",state=\"succeeded\""
        ),
        1.0
    );
    let finished: jiff::Timestamp = run["finished_at"].as_str().unwrap().parse().unwrap();
    let last_success = value(&body, "bms_job_last_success_timestamp_seconds", "job=\"m\"");
    assert!(
        (last_success - finished.as_second() as f64).abs() < 1.0,
        "{last_success} vs {finished}"
    );
    let duration = value(&body, "bms_job_last_run_duration_seconds", "job=\"m\"");
    let shown = run["duration_secs"].as_f64().unwrap();
    assert!((duration - shown).abs() < 0.01, "{duration} vs {shown}");
}

/// A free TCP port on loopback (bound and released; Prometheus takes it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET from Prometheus's HTTP API; the JSON body, or None while it does not answer.
fn api(addr: &str, path: &str) -> Option<serde_json::Value> {
    std::net::TcpStream::connect(addr).ok()?;
    let (head, body) = http_get(addr, path);
    head.starts_with("HTTP/1.1 200")
        .then(|| serde_json::from_str(&body).ok())?
}

#[test]
fn a_real_prometheus_scrapes_bmsd_and_fires_the_failed_job_rule() {
    let d = Daemon::start();
    let metrics = d.status_json()["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = d.dir.join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: bms\n    static_configs:\n      - targets: [\"{metrics}\"]\n",
            kit("bms-alerts.yml").canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Kill(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("run prometheus (Debian package prometheus)"),
    );
    let plog = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let t = Duration::from_secs(60);
    poll_until(t, &format!("prometheus ready; log:\n{}", plog()), || {
        std::net::TcpStream::connect(&listen).ok()?;
        let (head, _) = http_get(&listen, "/-/ready");
        head.starts_with("HTTP/1.1 200").then_some(())
    });
    poll_until(t, "up{job=\"bms\"} == 1", || {
        let v = api(&listen, "/api/v1/query?query=up%7Bjob%3D%22bms%22%7D")?;
        (v["data"]["result"][0]["value"][1] == "1").then_some(())
    });
    let src = d.dir.join("src");
    write_small_tree(&src);
    d.ctl_json([
        "job",
        "add",
        "f",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "local",
        "--pre-hook",
        "/bin/false",
    ]);
    let out = d.ctl(["job", "run", "f", "--wait"]);
    assert!(!out.status.success(), "the run fails by its pre-hook");
    let alert = poll_until(t, "BmsJobFailed firing for job f", || {
        let v = api(&listen, "/api/v1/alerts")?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == "BmsJobFailed"
                    && a["labels"]["exported_job"] == "f"
                    && a["state"] == "firing"
            })
            .cloned()
    });
    assert_eq!(alert["labels"]["severity"], "critical", "{alert}");
}
