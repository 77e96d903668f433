//! Typed errors from the service layer to bmsctl's exit codes (docs/protocol.md, "Errors"): a
//! missing snapshot is NotFound and exits 1 naming it, an internal fault exits 1 with
//! "internal error" (never 2), and every method of the method table is served.

use bms_tests::raw::{error_name, RawConn};
use bms_tests::restore_util::offline;
use bms_tests::*;
use serde_json::{json, Value};
use std::ffi::OsStr;

#[test]
fn restore_of_a_missing_snapshot_through_bmsd_is_not_found_and_exits_1() {
    let d = Daemon::start();
    let to = d.dir.join("to");
    for id in ["NOSUCH", "deadbeefdeadbeef"] {
        let out = d.ctl(["restore", id, "--to", to.to_str().unwrap()]);
        assert_fails(&out, 1, id);
        let out = d.ctl(["--json", "restore", id, "--to", to.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let e: Value = serde_json::from_slice(&out.stderr).unwrap();
        assert_eq!(e["error_name"], "org.bms.Manager.NotFound", "{e}");
        assert!(e["message"].as_str().unwrap().contains(id), "{e}");
    }
    assert!(!to.exists());
}

#[test]
fn repo_restore_of_a_missing_snapshot_exits_1_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let to = tmp.path().join("to");
    assert_ok(&offline(&[
        OsStr::new("repo"),
        OsStr::new("init"),
        repo.as_os_str(),
    ]));
    for id in ["NOSUCH", "deadbeefdeadbeef"] {
        let out = offline(&[
            OsStr::new("repo"),
            OsStr::new("restore"),
            repo.as_os_str(),
            OsStr::new(id),
            OsStr::new("--to"),
            to.as_os_str(),
        ]);
        assert_fails(&out, 1, id);
    }
}

#[test]
fn an_internal_fault_in_bmsd_exits_1_with_internal_error() {
    let d = Daemon::start_with(DaemonOpts {
        env: vec![("BMSD_TEST_INTERNAL_FAULT".into(), "ListJobs".into())],
        ..Default::default()
    });
    let out = d.ctl(["job", "list"]);
    assert_fails(&out, 1, "internal error");
    let out = d.ctl(["--json", "job", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let e: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(e["error_name"], "org.bms.Manager.Internal", "{e}");
    assert_eq!(e["error"], "failure", "{e}");
    // Only the named method fails; bmsd goes on.
    d.ctl_json(["target", "list"]);
}

#[test]
fn an_internal_fault_in_the_engine_exits_1_not_2() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    assert_ok(&offline(&[
        OsStr::new("repo"),
        OsStr::new("init"),
        repo.as_os_str(),
    ]));
    let out = clean_command(bin("bmsctl"))
        .env("BMSCTL_TEST_INTERNAL_FAULT", "1")
        .args([
            OsStr::new("repo"),
            OsStr::new("snapshots"),
            repo.as_os_str(),
        ])
        .output()
        .unwrap();
    assert_fails(&out, 1, "internal error");
}

/// Every method of the method table is served over Varlink (none answers MethodNotFound),
/// and one that is not in the table is not.
#[test]
fn every_method_of_the_table_is_served() {
    let d = Daemon::start();
    let mut c = RawConn::connect(&d.socket());
    for m in bms_proto::api::METHODS {
        // Parameters no method accepts: each must get past the method lookup to refuse them.
        let r = c.call(&json!({"method": format!("org.bms.Manager.{}", m.name),
                               "parameters": {"no_such_parameter": 1}}));
        assert_eq!(
            error_name(&r),
            Some("org.bms.Manager.InvalidArgument"),
            "{}: {r}",
            m.name
        );
    }
    let r = c.call(&json!({"method": "org.bms.Manager.NoSuchMethod", "parameters": {}}));
    assert_eq!(
        error_name(&r),
        Some("org.varlink.service.MethodNotFound"),
        "{r}"
    );
}

/// Run by [`a_reader_is_refused_every_writing_method_of_the_table`] as user nobody in group
/// `bms`: calls every method of the table on `TABLE_SOCKET` and prints `NAME ERROR` lines.
#[test]
#[ignore = "helper process of a_reader_is_refused_every_writing_method_of_the_table"]
fn call_every_method_child() {
    let Ok(sock) = std::env::var("TABLE_SOCKET") else {
        return;
    };
    let mut c = RawConn::connect(std::path::Path::new(&sock));
    for m in bms_proto::api::METHODS {
        let r = c.call(&json!({"method": format!("org.bms.Manager.{}", m.name),
                               "parameters": {}}));
        println!("CALLED {} {}", m.name, error_name(&r).unwrap_or("-"));
    }
}

/// The role check reads the table: a reader may call every method marked `read` and is refused
/// every method marked `write`, streaming ones included.
#[test]
fn a_reader_is_refused_every_writing_method_of_the_table() {
    bms_tests::users::require_root();
    let reader = bms_tests::users::ensure_group("bms");
    let d = Daemon::start();
    let before = audit_actions(&d).len();
    let out = bms_tests::users::as_user(
        bms_tests::users::NOBODY,
        &[reader],
        std::env::current_exe().unwrap(),
    )
    .args([
        "--exact",
        "call_every_method_child",
        "--ignored",
        "--nocapture",
    ])
    .env("TABLE_SOCKET", d.socket())
    .output()
    .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    let got: std::collections::BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("CALLED "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert_eq!(got.len(), bms_proto::api::METHODS.len(), "{text}");
    for m in bms_proto::api::METHODS {
        let denied = got[m.name] == "org.bms.Manager.PermissionDenied";
        assert_eq!(denied, m.writes, "{}: {}", m.name, got[m.name]);
    }
    assert_eq!(audit_actions(&d).len(), before, "a reader changed nothing");
}
