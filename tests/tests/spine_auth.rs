//! Authorisation by peer credentials: strangers are refused (exit 4), group `bms` reads, group
//! `bms-admin` changes things. Needs root (to create groups and switch users with setpriv).

use bms_tests::users::{as_user, ensure_group, require_root, NOBODY};
use bms_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

fn ctl_as(d: &Daemon, groups: &[u32], args: &[&str]) -> Output {
    as_user(NOBODY, groups, bin("bmsctl"))
        .arg("--socket")
        .arg(d.socket())
        .args(args)
        .output()
        .expect("run setpriv")
}

fn audit_len(d: &Daemon) -> usize {
    d.ctl_json(["audit", "--limit", "1000"])["entries"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn stranger_is_refused_reads_and_writes() {
    require_root();
    let d = Daemon::start();
    let before = audit_len(&d);
    for args in [
        &["status"][..],
        &["target", "list"],
        &["job", "list"],
        &["audit"],
        &["target", "add", "x", "--path", "/srv/x"],
        &["job", "rm", "x"],
    ] {
        let out = ctl_as(&d, &[], args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains("bms"),
            "{args:?}: the refusal does not say which group to join: {err}"
        );
    }
    assert_eq!(audit_len(&d), before);
    assert_eq!(d.status_json()["targets"], 1);
}

#[test]
fn daemon_refuses_a_stranger_even_when_the_socket_is_open() {
    require_root();
    let d = Daemon::start();
    // With the file mode out of the way, the daemon's own check (SO_PEERCRED) must refuse.
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    for args in [
        &["status"][..],
        &["target", "list"],
        &["target", "add", "x", "--path", "/srv/x"],
    ] {
        let out = ctl_as(&d, &[], args);
        assert_fails(&out, 4, &format!("uid {NOBODY} may not use bmsd"));
        assert!(
            !stderr(&out).contains("permission denied on"),
            "refused at connect, not by the daemon"
        );
    }
    assert_eq!(
        d.status_json()["targets"],
        1,
        "the refused add stored something"
    );
}

#[test]
fn bms_group_reads_and_bms_admin_group_writes() {
    require_root();
    // The daemon gives the socket to group bms when the group exists at start.
    let reader = ensure_group("bms");
    let admin = ensure_group("bms-admin");
    let d = Daemon::start();
    let meta = std::fs::metadata(d.socket()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.gid(), reader, "socket group");
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
    let src = d.dir.display().to_string();

    // Reader: reads work, writes are refused with exit 4 and the daemon's message.
    let out = ctl_as(&d, &[reader], &["--json", "status"]);
    assert_ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["role"], "reader");
    assert_eq!(s["targets"], 1);
    let out = ctl_as(&d, &[reader], &["--json", "target", "list"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("\"local\""));
    assert_ok(&ctl_as(&d, &[reader], &["audit"]));
    let before = audit_len(&d);
    assert_fails(
        &ctl_as(&d, &[reader], &["target", "add", "x", "--path", "/srv/x"]),
        4,
        "bms-admin",
    );
    assert_fails(
        &ctl_as(
            &d,
            &[reader],
            &[
                "job",
                "add",
                "j",
                "--source",
                &src,
                "--schedule",
                "daily",
                "--target",
                "local",
            ],
        ),
        4,
        "AddJob changes state",
    );
    assert_fails(
        &ctl_as(&d, &[reader], &["target", "rm", "local"]),
        4,
        "bms-admin",
    );
    assert_eq!(audit_len(&d), before);

    // Admin (member of bms-admin only): may write; the audit trail records the caller's uid.
    let out = ctl_as(
        &d,
        &[admin],
        &[
            "--json",
            "target",
            "add",
            "by-admin",
            "--path",
            "/srv/by-admin",
        ],
    );
    assert_ok(&out);
    let out = ctl_as(&d, &[admin], &["--json", "status"]);
    assert_ok(&out);
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["role"], "admin");
    assert_eq!(s["targets"], 2);
    // Both groups: admin too.
    let out = ctl_as(&d, &[reader, admin], &["target", "rm", "by-admin"]);
    assert_ok(&out);
    let a = d.ctl_json(["audit", "--limit", "2"]);
    let e = &a["entries"];
    assert_eq!(e[0]["action"], "target.rm");
    assert_eq!(e[0]["uid"], NOBODY);
    assert_eq!(e[1]["action"], "target.add");
    assert_eq!(e[1]["object"], "by-admin");
    assert_eq!(e[1]["uid"], NOBODY);
}
