//! `bmsctl doctor` (docs/operations.md, "bmsctl doctor"): each check passes on a daemon set up
//! right and fails, with a fix, when the test breaks it on purpose: the socket's mode, a missing
//! group, a NAS target that is not mounted, a symlinked or missing source, a job never
//! successful, a catalog failing its integrity check, a missing capability, the metrics
//! endpoint, an unreachable daemon, a caller without a role. Exit 0 only when all pass.

use bms_tests::readme::{Notify, Started};
use bms_tests::users::{as_user, ensure_group, require_root, NOBODY};
use bms_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

/// `bmsctl --json doctor` through `cmd`: the report and the exit code, which must be 0 exactly
/// when every check passed.
fn report_of(out: &Output) -> (Vec<Value>, i32) {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed invalid JSON ({e}): {out:?}"));
    let checks = v["checks"].as_array().expect("checks").clone();
    let all_ok = checks.iter().all(|c| c["ok"] == true);
    assert_eq!(v["ok"], all_ok, "{v}");
    let code = out.status.code().expect("exit code");
    assert_eq!(code, if all_ok { 0 } else { 1 }, "{out:?}");
    for c in &checks {
        if c["ok"] == false {
            assert!(
                c["hint"].as_str().is_some_and(|h| !h.is_empty()),
                "a failed check without a fix: {c}"
            );
        }
    }
    (checks, code)
}

fn doctor(d: &Daemon) -> Vec<Value> {
    let out = d.ctl(["--json", "doctor"]);
    report_of(&out).0
}

/// The check named `name`; panics listing the report when there is none.
fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:#?}"))
}

fn assert_pass(checks: &[Value], name: &str) {
    let c = check(checks, name);
    assert_eq!(c["ok"], true, "{c}");
}

fn assert_fail(checks: &[Value], name: &str, needle: &str) {
    let c = check(checks, name);
    assert_eq!(c["ok"], false, "{c}");
    assert!(
        c["message"].as_str().unwrap_or("").contains(needle),
        "{name}: the message does not say {needle:?}: {c}"
    );
}

fn add_job(d: &Daemon, name: &str, source: &Path) {
    assert_ok(&d.ctl([
        "job",
        "add",
        name,
        "--source",
        source.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
    ]));
}

#[test]
fn a_host_set_up_right_passes_and_each_breakage_fails_with_a_fix() {
    require_root();
    ensure_group("bms");
    ensure_group("bms-admin");
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), "doctor\n").unwrap();
    add_job(&d, "good", &src);
    assert_ok(&d.ctl(["job", "run", "good", "--wait"]));

    let checks = doctor(&d);
    for name in [
        "daemon",
        "role",
        "socket",
        "groups",
        "capability CAP_DAC_READ_SEARCH",
        "capability CAP_CHOWN",
        "capability CAP_LINUX_IMMUTABLE",
        "catalog",
        "metrics",
        "target local",
        "job good sources",
        "job good runs",
    ] {
        assert_pass(&checks, name);
    }
    // The test daemon logs to stderr (--log-target stderr): not journald.
    assert_fail(&checks, "journald", "stderr");
    // These depend on the machine (a_small_state_dir_fails_its_space_check breaks the first).
    assert!(check(&checks, "state dir space")["ok"].is_boolean());
    assert!(check(&checks, "clock")["ok"].is_boolean());

    // The human report: ✓/✗ per line, a fix under each ✗, exit 1 (journald fails here).
    let out = d.ctl(["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("✓ daemon: bmsd "), "{text}");
    assert!(text.contains("✗ journald: "), "{text}");
    assert!(text.contains("\n    fix: "), "{text}");
    assert!(stderr(&out).contains("checks failed"), "{out:?}");

    // The socket's mode.
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_fail(&doctor(&d), "socket", "mode 0666");
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(0o660)).unwrap();
    assert_pass(&doctor(&d), "socket");

    // A NAS target whose share is not mounted.
    let nas = d.dir.join("nas1");
    std::fs::create_dir(&nas).unwrap();
    assert_ok(&d.ctl([
        "target",
        "add",
        "nas1",
        "--kind",
        "nas",
        "--path",
        nas.to_str().unwrap(),
        "--fs-type",
        "nfs4",
    ]));
    assert_fail(&doctor(&d), "target nas1", "not a mount point");

    // A source that became a symbolic link, and one that was removed; jobs never run.
    let real = d.dir.join("real");
    std::fs::create_dir(&real).unwrap();
    let linked = d.dir.join("linked");
    std::fs::create_dir(&linked).unwrap();
    add_job(&d, "linked", &linked);
    std::fs::remove_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&real, &linked).unwrap();
    let gone = d.dir.join("gone");
    std::fs::create_dir(&gone).unwrap();
    add_job(&d, "gone", &gone);
    std::fs::remove_dir(&gone).unwrap();
    let checks = doctor(&d);
    assert_fail(&checks, "job linked sources", "is a symbolic link to");
    assert_fail(&checks, "job gone sources", "does not exist");
    assert_fail(&checks, "job linked runs", "no successful backup");
    assert_fail(&checks, "job gone runs", "no successful backup");
    assert_pass(&checks, "job good runs");
    assert_pass(&checks, "target local");
}

#[test]
fn a_small_state_dir_fails_its_space_check() {
    require_root();
    // The state dir on a 32 MiB filesystem of its own: less than the 1 GiB the check wants.
    let t = tempfile::tempdir().unwrap();
    let fs = bms_tests::runner_util::LoopMount::new("ext4", 32, &t.path().join("state"));
    let d = Daemon::start_with(DaemonOpts {
        dir: Some(t.path().to_owned()),
        ..Default::default()
    });
    assert_fail(&doctor(&d), "state dir space", "MiB free of");
    drop(d);
    drop(fs);
}

#[test]
fn a_missing_group_is_named() {
    require_root();
    ensure_group("bms");
    ensure_group("bms-admin");
    let d = Daemon::start();
    // bmsctl sees a group database without bms-admin (a private mount namespace, so the host's
    // groups stay as they are).
    let groups = d.dir.join("group");
    let text: String = std::fs::read_to_string("/etc/group")
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("bms-admin:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&groups, text).unwrap();
    let out = clean_command("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind \"$1\" /etc/group && exec \"$2\" --socket \"$3\" --json doctor")
        .arg("sh")
        .arg(&groups)
        .arg(bin("bmsctl"))
        .arg(d.socket())
        .output()
        .unwrap();
    let (checks, code) = report_of(&out);
    assert_eq!(code, 1);
    assert_fail(&checks, "groups", "missing: bms-admin");
    let hint = check(&checks, "groups")["hint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hint.contains("groupadd -r bms-admin"), "{hint}");
    assert_pass(&checks, "daemon");
}

#[test]
fn a_catalog_that_fails_its_integrity_check_is_reported() {
    let mut d = Daemon::start();
    assert_pass(&doctor(&d), "catalog");
    // A clean stop moves everything into catalog.db; the restart finds it whole, then its
    // pages are damaged under the running daemon.
    d.stop();
    d.spawn(&DaemonOpts::default());
    let db = d.state_dir().join("catalog.db");
    let bytes = std::fs::read(&db).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() > 2 * page, "a catalog of one page?");
    let mut damaged = bytes[..page].to_vec();
    damaged.resize(bytes.len(), 0x5a);
    std::fs::write(&db, damaged).unwrap();
    let out = d.ctl(["--json", "doctor"]);
    let (checks, code) = report_of(&out);
    assert_eq!(code, 1);
    assert_fail(&checks, "catalog", "integrity check");
    let hint = check(&checks, "catalog")["hint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(hint.contains("A damaged catalog"), "{hint}");
}

#[test]
fn a_capability_the_jobs_need_and_bmsd_lacks_is_named() {
    require_root();
    // bmsd as root, but without CAP_DAC_READ_SEARCH in its bounding set.
    let t = tempfile::tempdir().unwrap();
    let notify = t.path().join("notify");
    let n = Notify::bind(&notify);
    let socket = t.path().join("bmsd.sock");
    let mut cmd = clean_command("setpriv");
    cmd.args(["--inh-caps=-all", "--bounding-set=-dac_read_search", "--"])
        .arg(bin("bmsd"))
        .arg("--state-dir")
        .arg(t.path().join("state"))
        .arg("--socket")
        .arg(&socket)
        .args(["--metrics-listen", "127.0.0.1:0", "--log-target", "stderr"]);
    let mut started = Started::spawn(cmd, t.path(), &notify);
    started.wait_ready(&n);
    let ctl = |args: &[&str]| -> Output {
        clean_command(bin("bmsctl"))
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    // Nothing needs it yet: no job.
    let (checks, _) = report_of(&ctl(&["--json", "doctor"]));
    assert_pass(&checks, "capability CAP_DAC_READ_SEARCH");
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    assert_ok(&ctl(&[
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
    ]));
    let (checks, code) = report_of(&ctl(&["--json", "doctor"]));
    assert_eq!(code, 1);
    assert_fail(&checks, "capability CAP_DAC_READ_SEARCH", "lacks it");
    assert_pass(&checks, "capability CAP_CHOWN");
    let st: Value = serde_json::from_slice(&ctl(&["--json", "status"]).stdout).unwrap();
    started.stop(&st["pid"]);
}

#[test]
fn metrics_not_bound_and_an_unreachable_daemon_fail() {
    // The metrics address is taken: bmsd runs without its endpoint, and the doctor says so.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--metrics-listen".into(), addr.clone()],
        ..Default::default()
    });
    assert_fail(&doctor(&d), "metrics", &addr);

    // No daemon at the socket: the local checks still run; exit 1.
    let out = clean_command(bin("bmsctl"))
        .arg("--socket")
        .arg(d.dir.join("nobody-here.sock"))
        .args(["--json", "doctor"])
        .output()
        .unwrap();
    let (checks, code) = report_of(&out);
    assert_eq!(code, 1);
    assert_fail(&checks, "daemon", "cannot reach bmsd");
    assert_fail(&checks, "socket", "cannot stat");
    assert!(checks.iter().any(|c| c["name"] == "groups"), "{checks:?}");
    assert!(!checks.iter().any(|c| c["name"] == "catalog"), "{checks:?}");
}

#[test]
fn the_callers_role_is_reported() {
    require_root();
    let bms = ensure_group("bms");
    let d = Daemon::start();
    let doctor_as = |groups: &[u32]| -> (Vec<Value>, i32) {
        let out: Output = as_user(NOBODY, groups, bin("bmsctl"))
            .arg("--socket")
            .arg(d.socket())
            .args(["--json", "doctor"])
            .output()
            .unwrap();
        report_of(&out)
    };
    // A member of bms reads: the role passes, and the daemon's checks are there.
    let (checks, _) = doctor_as(&[bms]);
    assert_pass(&checks, "role");
    assert!(
        check(&checks, "role")["message"]
            .as_str()
            .unwrap()
            .contains("reader"),
        "{checks:?}"
    );
    assert_pass(&checks, "catalog");
    // A stranger: refused, and told which group to join.
    let (checks, code) = doctor_as(&[]);
    assert_eq!(code, 1);
    let role = check(&checks, "role");
    assert_eq!(role["ok"], false, "{role}");
    assert!(
        role["hint"].as_str().unwrap().contains("usermod -aG bms"),
        "{role}"
    );
}
