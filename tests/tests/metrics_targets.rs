//! Per-target repository figures and per-channel notification counters on /metrics
//! (docs/metrics.md, "Targets" and "Alerts"): the repository's bytes equal what its files hold
//! on disk, a second identical backup doubles the dedup ratio, the latest verification's
//! problems per target follow a corrupted pack, and every delivery attempt counts once on its
//! channel.

use bms_tests::alerts_util::*;
use bms_tests::poll_until;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

fn scrape(addr: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}`, if served.
fn value(body: &str, sample: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{sample} {v}")))
}

fn bytes_under(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            n += bytes_under(&e.path());
        } else {
            n += m.len();
        }
    }
    n
}

fn repo_bytes(repo: &Path) -> u64 {
    ["packs", "index", "snapshots"]
        .iter()
        .map(|d| bytes_under(&repo.join(d)))
        .sum()
}

#[test]
fn target_figures_follow_backups_and_verifications_and_notifications_count_per_channel() {
    let live = HttpReceiver::start();
    let down = free_port();
    let cfg = format!(
        "retry_initial_ms = 300\nretry_max_secs = 2\n\
         [[channels]]\nname = \"live\"\nkind = \"webhook\"\nurl = \"{}\"\n\
         [[channels]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{down}/d\"\n",
        live.url("/hook")
    );
    let (d, _t) = daemon_with_alerts(&cfg, "home", &[]);
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .expect("metrics address")
        .to_owned();
    // Channels are served at 0 before anything was sent.
    let first = scrape(&addr);
    for ch in ["live", "down"] {
        for outcome in ["sent", "failed"] {
            let s = format!("bms_notifications_total{{channel=\"{ch}\",outcome=\"{outcome}\"}}");
            assert_eq!(value(&first, &s), Some(0.0), "{s} in:\n{first}");
        }
    }

    let repo = d.dir.join("repo");
    let sample = |what: &str| format!("bms_target_{what}{{target=\"t\"}}");
    run_once(&d, "home");
    let one = poll_until(Duration::from_secs(30), "the first figures", || {
        let b = scrape(&addr);
        (value(&b, &sample("logical_bytes")).unwrap_or(0.0) > 0.0).then_some(b)
    });
    assert_eq!(
        value(&one, &sample("repository_bytes")),
        Some(repo_bytes(&repo) as f64),
        "repository bytes against the files on disk:\n{one}"
    );
    let snapshots = d.ctl_json(["snapshot", "list", "--job", "home"]);
    assert_eq!(snapshots["snapshots"].as_array().unwrap().len(), 1);
    let dedup1 = value(&one, &sample("dedup_ratio")).unwrap();
    let logical1 = value(&one, &sample("logical_bytes")).unwrap();
    assert!(value(&one, &sample("compression_ratio")).unwrap() > 0.0);

    // The same data again: twice the logical bytes over the same distinct bytes.
    run_once(&d, "home");
    let two = poll_until(
        Duration::from_secs(30),
        "the figures after a second backup",
        || {
            let b = scrape(&addr);
            (value(&b, &sample("logical_bytes")) == Some(2.0 * logical1)).then_some(b)
        },
    );
    let dedup2 = value(&two, &sample("dedup_ratio")).unwrap();
    assert!(
        (dedup2 / dedup1 - 2.0).abs() < 1e-6,
        "dedup {dedup1} then {dedup2}"
    );
    assert_eq!(
        value(&two, &sample("repository_bytes")),
        Some(repo_bytes(&repo) as f64)
    );

    // Verification per target: clean, then a corrupted pack counts.
    let ok = d.ctl(["verify", "--job", "home", "--read-data", "100", "--wait"]);
    assert!(ok.status.success(), "{ok:?}");
    let clean = scrape(&addr);
    assert_eq!(value(&clean, &sample("last_verify_errors")), Some(0.0));
    let t1 = value(&clean, &sample("last_verify_timestamp_seconds")).unwrap();
    let pack = walk_files(&repo.join("packs")).pop().expect("a pack");
    let mut data = std::fs::read(&pack).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&pack, data).unwrap();
    let bad = d.ctl(["verify", "--job", "home", "--read-data", "100", "--wait"]);
    assert!(!bad.status.success(), "verify of a corrupted pack passed");
    let after = scrape(&addr);
    assert!(
        value(&after, &sample("last_verify_errors")).unwrap() >= 1.0,
        "{after}"
    );
    assert!(value(&after, &sample("last_verify_timestamp_seconds")).unwrap() >= t1);

    // A failing run notifies both channels: one delivery to the live one, failed attempts
    // (retried) to the dead one; the counters only grow.
    set_failing(&d, true);
    run_once(&d, "home");
    let sent = "bms_notifications_total{channel=\"live\",outcome=\"sent\"}";
    let failed = "bms_notifications_total{channel=\"down\",outcome=\"failed\"}";
    let b = poll_until(Duration::from_secs(30), "deliveries counted", || {
        let b = scrape(&addr);
        (value(&b, sent) >= Some(1.0) && value(&b, failed) >= Some(2.0)).then_some(b)
    });
    assert_eq!(
        value(&b, sent),
        Some(live.at("/hook").len() as f64),
        "sent counts what the receiver got"
    );
    assert_eq!(
        value(
            &b,
            "bms_notifications_total{channel=\"live\",outcome=\"failed\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            &b,
            "bms_notifications_total{channel=\"down\",outcome=\"sent\"}"
        ),
        Some(0.0)
    );
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}
