//! The metrics endpoint: OpenMetrics text at /metrics with job, run and target figures from the
//! catalog, /healthz, and a daemon that still starts when the metrics port is taken.

use bms_tests::{assert_ok, Daemon, DaemonOpts};
use std::io::{Read, Write};
use std::net::TcpStream;

/// A GET as Prometheus sends it, asking for OpenMetrics (docs/metrics.md, "Formats").
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_owned(), body.to_owned())
}

#[test]
fn metrics_report_jobs_runs_and_targets() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"some data to back up\n").unwrap();
    assert_ok(&d.ctl([
        "job",
        "add",
        "m1",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
    ]));
    assert_ok(&d.ctl(["job", "run", "m1", "--wait"]));
    assert_ok(&d.ctl(["target", "check", "local"]));
    let status = d.status_json();
    let addr = status["metrics_address"]
        .as_str()
        .expect("metrics address in status")
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");

    let (head, body) = get(&addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    for want in [
        "bms_jobs 1.0",
        "bms_targets 1.0",
        "bms_job_enabled{job=\"m1\"} 1.0",
        "bms_runs_total{job=\"m1\",kind=\"backup\",state=\"succeeded\"} 1",
        "bms_job_last_run_state{job=\"m1\",state=\"succeeded\"} 1.0",
        "bms_job_last_success_timestamp_seconds{job=\"m1\"}",
        "bms_target_check_ok{target=\"local\"} 1.0",
        "bms_target_snapshots{target=\"local\"} 1.0",
        "bms_job_next_run_timestamp_seconds{job=\"m1\"}",
        "bms_process_open_fds ",
        "bms_process_resident_memory_bytes ",
        "bms_catalog_bytes ",
        "bms_build_info{version=\"",
    ] {
        assert!(body.contains(want), "missing {want:?} in:\n{body}");
    }
    // The catalog gauges are kept between scrapes and read again after a change: a second
    // run and a new job show at the next scrape.
    assert_ok(&d.ctl(["job", "run", "m1", "--wait"]));
    assert_ok(&d.ctl([
        "job",
        "add",
        "m2",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
    ]));
    let (_, again) = get(&addr, "/metrics");
    for want in [
        "bms_jobs 2.0",
        "bms_target_snapshots{target=\"local\"} 2.0",
        "bms_runs_total{job=\"m1\",kind=\"backup\",state=\"succeeded\"} 2",
        "bms_job_enabled{job=\"m2\"} 1.0",
    ] {
        assert!(
            again.contains(want),
            "missing {want:?} after a change in:\n{again}"
        );
    }
    assert_eq!(
        body.lines().last(),
        Some("# EOF"),
        "OpenMetrics text must end with # EOF"
    );
    // Every sample line is `name{labels} value` with a number.
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        assert!(
            line.starts_with("bms_"),
            "metric outside the bms_ namespace: {line:?}"
        );
    }

    let (head, body) = get(&addr, "/healthz");
    assert!(
        head.starts_with("HTTP/1.1 200") && body == "ok\n",
        "{head}\n{body}"
    );
    let (head, _) = get(&addr, "/nothing");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn daemon_starts_when_metrics_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--metrics-listen".into(), port.clone()],
        ..Default::default()
    });
    let status = d.status_json();
    assert!(status["metrics_address"].is_null(), "{status}");
    assert!(
        d.log().contains("cannot listen for metrics"),
        "log:\n{}",
        d.log()
    );
}
