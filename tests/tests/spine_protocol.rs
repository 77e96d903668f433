//! The control socket under hostile or sloppy clients: garbage, non-calls, unknown methods, wrong
//! parameter types, oversized and half-sent messages, and more connections than allowed. Each gets
//! an error reply or is dropped, and the daemon goes on serving.

use bms_tests::raw::{error_name, RawConn};
use bms_tests::*;
use serde_json::json;
use std::io::Write;
use std::net::Shutdown;
use std::time::Duration;

fn still_serves(d: &Daemon) {
    let s = d.status_json();
    assert_eq!(s["targets"], 1, "{s}");
}

#[test]
fn garbage_and_non_calls_get_protocol_errors_and_the_connection_goes_on() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    for bad in [
        &b"\xff\xfe not json\0"[..],
        b"[1,2]\0",
        b"{\"method\": 5}\0",
        b"{\"parameters\": {}}\0",
        b"\"org.bms.Manager.Status\"\0",
        b"\0",
    ] {
        c.send(bad);
        let r = c
            .read_message()
            .unwrap_or_else(|| panic!("no reply to {:?}", String::from_utf8_lossy(bad)));
        assert_eq!(error_name(&r), Some("org.bms.Manager.ProtocolError"), "{r}");
        assert!(
            r["parameters"]["message"]
                .as_str()
                .unwrap()
                .contains("not a Varlink call"),
            "{r}"
        );
    }
    // The same connection still answers a good call.
    let r = c.call(&json!({"method": "org.bms.Manager.Status"}));
    assert!(r.get("error").is_none(), "{r}");
    assert_eq!(r["parameters"]["targets"], 1);
    still_serves(&d);
}

#[test]
fn unknown_methods_and_bad_parameters_get_typed_errors() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    let r = c.call(&json!({"method": "org.bms.Manager.NoSuchMethod"}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.MethodNotFound"),
        "{r}"
    );
    assert_eq!(r["parameters"]["method"], "org.bms.Manager.NoSuchMethod");
    let r = c.call(&json!({"method": "org.varlink.service.NoSuchMethod"}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.MethodNotFound"),
        "{r}"
    );
    let r = c.call(&json!({"method": "nodots"}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.MethodNotFound"),
        "{r}"
    );
    let r = c.call(&json!({"method": "org.bms.Manager.GetTarget", "parameters": {"name": 42}}));
    assert_eq!(
        error_name(&r),
        Some("org.bms.Manager.InvalidArgument"),
        "{r}"
    );
    assert!(
        r["parameters"]["message"]
            .as_str()
            .unwrap()
            .contains("GetTarget"),
        "{r}"
    );
    let r = c.call(&json!({"method": "org.bms.Manager.GetTarget", "parameters": {}}));
    assert_eq!(
        error_name(&r),
        Some("org.bms.Manager.InvalidArgument"),
        "missing parameter: {r}"
    );
    assert!(
        r["parameters"]["message"]
            .as_str()
            .unwrap()
            .contains("name"),
        "{r}"
    );
    let r =
        c.call(&json!({"method": "org.bms.Manager.ListTargets", "parameters": {"bogus": true}}));
    assert_eq!(
        error_name(&r),
        Some("org.bms.Manager.InvalidArgument"),
        "unknown parameter: {r}"
    );
    let r =
        c.call(&json!({"method": "org.bms.Manager.GetTarget", "parameters": {"name": "ghost"}}));
    assert_eq!(error_name(&r), Some("org.bms.Manager.NotFound"), "{r}");
    // A validation error names the field.
    let r = c.call(&json!({"method": "org.bms.Manager.AddTarget",
        "parameters": {"target": {"name": "bad name", "path": "/srv/x"}}}));
    assert_eq!(
        error_name(&r),
        Some("org.bms.Manager.InvalidArgument"),
        "{r}"
    );
    assert_eq!(r["parameters"]["field"], "name");
    // Parameters that are not an object.
    c.send(b"{\"method\": \"org.bms.Manager.Status\", \"parameters\": [1]}\0");
    let r = c.read_message().unwrap();
    assert!(error_name(&r).is_some(), "{r}");
    still_serves(&d);
}

#[test]
fn oversized_message_is_refused_and_the_connection_closed() {
    let d = Daemon::start();
    let c = RawConn::connect(&d.socket());
    let mut writer = c.stream.try_clone().unwrap();
    // 10 MiB without a NUL, from a thread: the daemon stops reading after 1 MiB.
    let t = std::thread::spawn(move || {
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..10 {
            if let Err(e) = writer.write_all(&chunk) {
                return Some(e.kind());
            }
        }
        None
    });
    let mut c = c;
    // An error reply and then the close, or a plain close without a reply: both are allowed.
    if let Some(r) = c.read_message() {
        assert_eq!(error_name(&r), Some("org.bms.Manager.ProtocolError"), "{r}");
        assert!(
            r["parameters"]["message"]
                .as_str()
                .unwrap()
                .contains("larger than"),
            "{r}"
        );
        assert!(
            c.read_message().is_none(),
            "connection not closed after an oversized message"
        );
    }
    let write_err = t.join().unwrap();
    assert!(
        matches!(
            write_err,
            Some(std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset)
        ),
        "the daemon read all 10 MiB instead of closing: {write_err:?}"
    );
    still_serves(&d);
}

#[test]
fn half_sent_message_then_close_is_dropped() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send(b"{\"method\": \"org.bms.Manager.AddTarget\", \"parameters\": {\"target\": {\"name\": \"half\"");
    c.stream.shutdown(Shutdown::Write).unwrap();
    assert!(c.read_message().is_none(), "a half message got a reply");
    drop(c);
    // And one closed without even the shutdown.
    let mut c2 = RawConn::connect(&d.socket());
    c2.send(b"{\"method\": \"org.bms");
    drop(c2);
    still_serves(&d);
    assert_fails(&d.ctl(["target", "show", "half"]), 1, "does not exist");
}

#[test]
fn pipelined_calls_are_answered_in_order() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    c.send(b"{\"method\":\"org.bms.Manager.ListTargets\",\"parameters\":{}}\0{\"method\":\"bogus.X\"}\0{\"method\":\"org.bms.Manager.Status\"}\0");
    let a = c.read_message().unwrap();
    assert!(a["parameters"]["targets"].is_array(), "{a}");
    let b = c.read_message().unwrap();
    assert_eq!(
        error_name(&b),
        Some("org.varlink.service.InterfaceNotFound"),
        "{b}"
    );
    let s = c.read_message().unwrap();
    assert!(s["parameters"]["schema_version"].as_u64() >= Some(1), "{s}");
}

#[test]
fn connections_over_the_limit_get_busy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nmax_connections = 4\n",
    );
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        ..Default::default()
    });
    assert_eq!(d.status_json()["config"]["max_connections"], 4);
    // Hold four connections, each proven accepted by an answer.
    let mut held: Vec<RawConn> = (0..4)
        .map(|_| {
            let mut c = RawConn::connect(&d.socket());
            let r = c.call(&json!({"method": "org.varlink.service.GetInfo"}));
            assert!(r.get("error").is_none(), "{r}");
            c
        })
        .collect();
    let mut extra = RawConn::connect(&d.socket());
    let r = extra
        .read_message()
        .expect("the extra connection got no reply");
    assert_eq!(error_name(&r), Some("org.bms.Manager.Busy"), "{r}");
    assert!(
        r["parameters"]["message"].as_str().unwrap().contains('4'),
        "{r}"
    );
    assert!(
        extra.read_message().is_none(),
        "the busy connection was not closed"
    );
    // bmsctl over the limit reports the daemon's message and a failure (not a hang).
    let out = d.ctl(["status"]);
    assert_fails(&out, 1, "maximum of 4 connections");
    // The held ones still work.
    let r = held[0].call(&json!({"method": "org.bms.Manager.Status"}));
    assert_eq!(r["parameters"]["targets"], 1);
    held.clear();
    // After they close, the daemon serves again (slots free up as it notices the closes).
    poll_until(Duration::from_secs(10), "a free connection slot", || {
        d.ctl(["status"]).status.success().then_some(())
    });
    let five: Vec<RawConn> = (0..4).map(|_| RawConn::connect(&d.socket())).collect();
    drop(five);
    still_serves_eventually(&d);
}

fn still_serves_eventually(d: &Daemon) {
    poll_until(Duration::from_secs(10), "bmsctl status to succeed", || {
        d.ctl(["--json", "status"]).status.success().then_some(())
    });
}
