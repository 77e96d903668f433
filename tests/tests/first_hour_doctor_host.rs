//! `bmsctl doctor`'s host checks that need more than a broken file (docs/operations.md,
//! "bmsctl doctor"): a bmsd of another version behind the socket fails the daemon check; a bmsd
//! that logs to the journal passes the journald check, and its lines reach the journal socket;
//! the clock check says what the kernel says (adjtimex), read here on our own.

use bms_tests::raw::RawConn;
use bms_tests::readme::{Notify, Started};
use bms_tests::users::require_root;
use bms_tests::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn report(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed invalid JSON ({e}): {out:?}"));
    let checks = v["checks"].as_array().expect("checks").clone();
    let all_ok = checks.iter().all(|c| c["ok"] == true);
    assert_eq!(
        out.status.code(),
        Some(if all_ok { 0 } else { 1 }),
        "{out:?}"
    );
    checks
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
}

fn doctor_at(socket: &Path) -> Vec<Value> {
    let out = clean_command(bin("bmsctl"))
        .arg("--socket")
        .arg(socket)
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    report(&out)
}

/// Reads one NUL-terminated message from `s`; None at EOF.
fn read_msg(s: &mut UnixStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(p) = buf.iter().position(|b| *b == 0) {
            let m: Vec<u8> = buf.drain(..=p).collect();
            return Some(m[..m.len() - 1].to_vec());
        }
        let mut chunk = [0u8; 65536];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A socket in front of bmsd's that passes every call through and says the daemon's version
/// is `version`: a bmsd of another release, as after an upgrade of only one of the two.
fn version_skew_proxy(upstream: PathBuf, at: &Path, version: &'static str) {
    let listener = UnixListener::bind(at).expect("bind proxy");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut client) = conn else { return };
            let up = upstream.clone();
            std::thread::spawn(move || {
                let mut real = RawConn::connect(&up);
                let mut buf = Vec::new();
                while let Some(msg) = read_msg(&mut client, &mut buf) {
                    let call: Value = match serde_json::from_slice(&msg) {
                        Ok(v) => v,
                        Err(_) => return,
                    };
                    let mut reply = real.call(&call);
                    if reply["parameters"]["version"].is_string() {
                        reply["parameters"]["version"] = Value::from(version);
                    }
                    let mut bytes = serde_json::to_vec(&reply).unwrap();
                    bytes.push(0);
                    if client.write_all(&bytes).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

#[test]
fn a_bmsd_of_another_version_fails_the_daemon_check() {
    let d = Daemon::start();
    let checks = doctor_at(&d.socket());
    let daemon = check(&checks, "daemon");
    assert_eq!(daemon["ok"], true, "{daemon}");
    let status = d.status_json();
    let version = status["version"].as_str().unwrap().to_owned();
    assert!(
        daemon["message"]
            .as_str()
            .unwrap()
            .contains(&format!("bmsd {version} ")),
        "{daemon}"
    );

    let proxy = d.dir.join("old.sock");
    version_skew_proxy(d.socket(), &proxy, "0.0.1-old");
    let checks = doctor_at(&proxy);
    let daemon = check(&checks, "daemon");
    assert_eq!(daemon["ok"], false, "{daemon}");
    let msg = daemon["message"].as_str().unwrap();
    assert!(
        msg.contains("bmsd 0.0.1-old answers")
            && msg.contains(&format!("this bmsctl is {version}")),
        "{daemon}"
    );
    assert!(
        daemon["hint"].as_str().unwrap().contains("same version"),
        "{daemon}"
    );
    // The daemon's own checks still ran through it.
    assert_eq!(check(&checks, "catalog")["ok"], true, "{checks:?}");
}

#[test]
fn a_bmsd_that_logs_to_the_journal_passes_the_journald_check_and_its_lines_arrive() {
    require_root();
    let t = tempfile::tempdir().unwrap();
    // The journal's socket, as journald binds it, in a directory of the test; bmsd sees it at
    // /run/systemd/journal/socket in a mount namespace of its own (a tmpfs over /run).
    let jdir = t.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    let journal = UnixDatagram::bind(jdir.join("socket")).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = t.path().join("notify");
    let n = Notify::bind(&notify);
    let socket = t.path().join("bmsd.sock");
    let mut cmd = clean_command("unshare");
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(
            "mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/systemd/journal && \
             mount --bind \"$1\" /run/systemd/journal && shift && exec \"$@\"",
        )
        .arg("sh")
        .arg(&jdir)
        .arg(bin("bmsd"))
        .arg("--state-dir")
        .arg(t.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-target",
            "journald",
            "--no-dbus",
        ]);
    let mut started = Started::spawn(cmd, t.path(), &notify);
    started.wait_ready(&n);

    let checks = doctor_at(&socket);
    let j = check(&checks, "journald");
    assert_eq!(j["ok"], true, "{j}\n{}", started.log());
    assert!(j["message"].as_str().unwrap().contains("journal"), "{j}");
    // bmsd's log lines are journal entries (MESSAGE, PRIORITY fields) on that socket.
    let mut entries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline && entries.is_empty() {
        if let Ok(len) = journal.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if text.contains("MESSAGE") {
                entries.push(text);
            }
        }
    }
    assert!(!entries.is_empty(), "no journal entry from bmsd");
    assert!(entries[0].contains("PRIORITY"), "{}", entries[0]);
    let st: Value = serde_json::from_slice(
        &clean_command(bin("bmsctl"))
            .arg("--socket")
            .arg(&socket)
            .args(["--json", "status"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    started.stop(&st["pid"]);
}

/// The kernel's clock state as `timedatectl`'s "System clock synchronized" reads it.
fn kernel_clock_synchronised() -> bool {
    // SAFETY: `timex` is plain data; zeroed with `modes` 0 the call only reads the clock state.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    assert!(state >= 0, "adjtimex: {}", std::io::Error::last_os_error());
    state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0
}

#[test]
fn the_clock_check_says_what_the_kernel_says() {
    let d = Daemon::start();
    let before = kernel_clock_synchronised();
    let checks = doctor_at(&d.socket());
    let after = kernel_clock_synchronised();
    let clock = check(&checks, "clock");
    if before == after {
        assert_eq!(clock["ok"], before, "{clock}");
    }
    let msg = clock["message"].as_str().unwrap();
    if clock["ok"] == true {
        assert!(msg.contains("synchronised to a time source"), "{clock}");
    } else {
        assert!(msg.contains("not synchronised"), "{clock}");
        assert!(
            clock["hint"]
                .as_str()
                .unwrap()
                .contains("timedatectl set-ntp true"),
            "{clock}"
        );
    }
    // The human report has the line with its mark.
    let text = stdout(&d.ctl(["doctor"]));
    let mark = if clock["ok"] == true { "✓" } else { "✗" };
    assert!(text.contains(&format!("{mark} clock: {msg}")), "{text}");
}
