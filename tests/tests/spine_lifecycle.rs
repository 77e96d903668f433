//! The daemon's life through the real binaries: READY=1 and STATUS= over NOTIFY_SOCKET, `bmsctl
//! status`, one daemon per state dir, SIGTERM/SIGINT with STOPPING=1, and bmsctl without a daemon.

use bms_tests::*;
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

#[test]
fn ready_then_status_reports_version_schema_and_counts() {
    let mut d = Daemon::start();
    let s = d.status_json();
    assert_eq!(s["version"], bms_proto::VERSION);
    assert_eq!(s["pid"], d.pid());
    assert!(s["uptime_secs"].as_u64().is_some(), "uptime_secs: {s}");
    assert!(
        s["uptime_secs"].as_u64().unwrap() < 60,
        "uptime of a fresh daemon: {s}"
    );
    assert!(
        s["started_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .is_ok(),
        "started_at is RFC 3339: {s}"
    );
    let schema = s["schema_version"].as_u64().unwrap_or(0);
    assert!(schema >= 1, "schema_version: {s}");
    assert_eq!(s["targets"], 1);
    assert_eq!(s["jobs"], 0);
    assert_eq!(s["jobs_enabled"], 0);
    assert_eq!(s["state_dir"], d.state_dir().display().to_string());
    assert_eq!(s["socket"], d.socket().display().to_string());
    assert_eq!(s["role"], "admin");
    assert_eq!(s["config"]["generation"], 1);
    assert!(s["config"]["path"].is_null(), "no config file given: {s}");

    // The one target of a fresh catalog: `local`, a disk target under the state dir.
    let t = d.ctl_json(["target", "list"]);
    let targets = t["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{t}");
    let local = &targets[0];
    assert_eq!(local["name"], "local");
    assert_eq!(local["kind"], "disk");
    assert_eq!(local["media"], "disk");
    assert_eq!(local["location"], "onsite");
    assert_eq!(local["supported"], true);
    let path = local["path"].as_str().unwrap();
    assert!(
        path.starts_with(&d.state_dir().display().to_string()),
        "local target {path} is not under the state dir"
    );
    assert!(
        std::path::Path::new(path).is_dir(),
        "the local repository dir {path} was not created"
    );
    assert_eq!(d.ctl_json(["job", "list"])["jobs"], serde_json::json!([]));

    // Human output carries the same facts.
    let out = d.ctl(["status"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains(bms_proto::VERSION) && text.contains(&format!("catalog schema: {schema}")),
        "{text}"
    );
    assert!(
        text.contains("targets: 1") && text.contains("jobs: 0 (0 enabled)"),
        "{text}"
    );

    // STOPPING=1 comes with a STATUS= line.
    d.signal(Signal::SIGTERM);
    let msg = d.wait_for_notify("STOPPING=1", Duration::from_secs(5));
    assert!(
        msg.lines().any(|l| l.starts_with("STATUS=")),
        "no STATUS= with STOPPING=1: {msg:?}"
    );
    assert!(d.wait_exit(Duration::from_secs(5)).success());
}

#[test]
fn ready_comes_with_a_status_line() {
    let d = Daemon::start();
    let msg = &d.ready_message;
    let status = msg
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("{msg:?}"));
    assert!(status.contains("ready"), "STATUS={status}");
    // Readiness means the socket answers right away.
    assert_eq!(d.status_json()["targets"], 1);
}

#[test]
fn second_daemon_on_the_same_state_dir_refuses_and_first_keeps_serving() {
    let d = Daemon::start();
    let first_pid = d.pid();
    let other_socket = d.dir.join("run/other.sock");
    let started = Instant::now();
    let out = clean_command(bin("bmsd"))
        .arg("--state-dir")
        .arg(d.state_dir())
        .arg("--socket")
        .arg(&other_socket)
        .args(["--log-target", "stderr"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.status.success(), "second bmsd started: {out:?}");
    let err = stderr(&out);
    assert!(
        err.contains(&d.state_dir().display().to_string()),
        "does not name the state dir: {err}"
    );
    assert!(
        err.contains(&format!("pid {first_pid}")),
        "does not name the other pid {first_pid}: {err}"
    );
    assert!(
        !other_socket.exists(),
        "the refused daemon left a socket behind"
    );
    let s = d.status_json();
    assert_eq!(s["pid"], first_pid);

    // Another state dir but the same live socket: refused too, naming the socket.
    let out = clean_command(bin("bmsd"))
        .arg("--state-dir")
        .arg(d.dir.join("state2"))
        .arg("--socket")
        .arg(d.socket())
        .args(["--log-target", "stderr"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&d.socket().display().to_string()),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.status_json()["pid"], first_pid);
}

fn stops_on(sig: Signal) {
    let mut d = Daemon::start();
    let sock = d.socket();
    assert!(sock.exists());
    let sent = Instant::now();
    d.signal(sig);
    let msg = d.wait_for_notify("STOPPING=1", Duration::from_secs(5));
    assert!(msg.contains("STOPPING=1"));
    let st = d.wait_exit(Duration::from_secs(5));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(
        st.code(),
        Some(0),
        "exit status after {sig}: {st}; log:\n{}",
        d.log()
    );
    assert!(!sock.exists(), "socket left behind after {sig}");
    assert!(
        d.log().contains(sig.as_str()),
        "log does not mention {sig}:\n{}",
        d.log()
    );
}

#[test]
fn sigterm_exits_zero_with_stopping() {
    stops_on(Signal::SIGTERM);
}

#[test]
fn sigint_exits_zero_with_stopping() {
    stops_on(Signal::SIGINT);
}

#[test]
fn restart_on_the_same_state_dir_keeps_the_catalog() {
    let mut d = Daemon::start();
    let first = d.status_json();
    assert_eq!(d.stop().code(), Some(0));
    d.spawn(&DaemonOpts::default());
    let second = d.status_json();
    assert_ne!(first["pid"], second["pid"]);
    assert_eq!(
        first["schema_version"], second["schema_version"],
        "schema changed on restart"
    );
    assert_eq!(
        second["targets"], 1,
        "the default target was created twice or lost: {second}"
    );
    // The default target is created once: its audit record is not repeated.
    let audit = d.ctl_json(["audit"]);
    let adds: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "target.add")
        .collect();
    assert_eq!(adds.len(), 1, "{audit}");
    assert_eq!(adds[0]["object"], "local");
}

#[test]
fn bmsctl_without_a_daemon_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing at the path.
    let missing = dir.path().join("nothing.sock");
    let out = clean_command(bin("bmsctl"))
        .arg("--socket")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_fails(&out, 3, &missing.display().to_string());
    assert_fails(&out, 3, "is it running?");
    // A stale socket file that nobody listens on.
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let out = clean_command(bin("bmsctl"))
        .arg("--socket")
        .arg(&stale)
        .args(["target", "list"])
        .output()
        .unwrap();
    assert_fails(&out, 3, "cannot reach bmsd");
    // BMS_SOCKET is honoured, and --json errors are JSON on stderr.
    let out = clean_command(bin("bmsctl"))
        .env("BMS_SOCKET", &missing)
        .args(["--json", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stderr).expect("JSON error on stderr");
    assert_eq!(v["error"], "unreachable");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains(&missing.display().to_string()),
        "{v}"
    );
}
