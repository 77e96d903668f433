//! D-Bus through the real binaries (docs/dbus.md), on a private system-type `dbus-daemon`
//! whose policy includes the project's policy file: read and write methods with busctl and with
//! a zbus client, `JobStarted` → `JobProgress` → `JobFinished` and `PropertiesChanged` for
//! `RunningJobs` for a manual run, typed errors, an unprivileged caller refused a write by the
//! bus policy and, under a permissive policy, by bmsd itself; the served introspection equals
//! docs/dbus/org.bms.Manager1.xml; without a bus bmsd runs and says D-Bus is off; a burst of
//! compliance events over many jobs is taken in with one re-read of the properties.

use bms_tests::dbus_bus::{policy_file, Bus, Policy};
use bms_tests::runner_util::write_small_tree;
use bms_tests::users::{as_user, ensure_group, require_root, NOBODY};
use bms_tests::*;
use futures_util::StreamExt;
use std::time::Duration;

const NAME: &str = "org.bms.Manager1";
const PATH: &str = "/org/bms/Manager1";
const IFACE: &str = "org.bms.Manager1";
const T: Duration = Duration::from_secs(60);

fn daemon_on(bus: &Bus) -> Daemon {
    Daemon::start_with(DaemonOpts {
        env: bus.env(),
        ..Default::default()
    })
}

fn add_job(d: &Daemon, job: &str) {
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        job,
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
    ]);
}

async fn client(bus: &Bus) -> zbus::Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .build()
        .await
        .unwrap()
}

async fn call(
    conn: &zbus::Connection,
    method: &str,
    params: &str,
) -> zbus::Result<serde_json::Value> {
    let reply = conn
        .call_method(Some(NAME), PATH, Some(IFACE), method, &(params,))
        .await?;
    let text: String = reply.body().deserialize()?;
    Ok(serde_json::from_str(&text).unwrap())
}

/// The name of a D-Bus error reply.
fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => panic!("not a method error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_run_over_dbus_signals_started_progress_finished_and_running_jobs() {
    require_root();
    let bus = Bus::start(Policy::Project);
    let d = daemon_on(&bus);
    assert!(
        d.log()
            .contains("D-Bus: org.bms.Manager1 on the system bus"),
        "{}",
        d.log()
    );
    // READY=1 came after the name was taken: the first call needs no retry.
    let status = bus.call_json("Status", "{}");
    assert_eq!(status["version"], d.ctl_json(["status"])["version"]);
    add_job(&d, "m");
    let jobs = bus.call_json("ListJobs", "{}");
    assert_eq!(jobs["jobs"][0]["name"], "m", "{jobs}");

    let conn = client(&bus).await;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path(PATH)
        .build()
        .unwrap();
    let mut signals =
        zbus::MessageStream::for_match_rule(rule, &conn, std::num::NonZeroUsize::new(256))
            .await
            .unwrap();
    let run = call(&conn, "RunJob", r#"{"name":"m"}"#).await.unwrap();
    let id = run["run"]["id"].as_i64().unwrap();

    let mut seen: Vec<String> = Vec::new();
    let mut running_seen = false;
    let finished_state = tokio::time::timeout(T, async {
        loop {
            let msg = signals.next().await.unwrap().unwrap();
            let h = msg.header();
            let member = h.member().unwrap().to_string();
            let iface = h.interface().unwrap().to_string();
            if iface == "org.freedesktop.DBus.Properties" && member == "PropertiesChanged" {
                let (i, changed, _): (
                    String,
                    std::collections::HashMap<String, zbus::wire::OwnedVariant>,
                    Vec<String>,
                ) = msg.body().deserialize().unwrap();
                assert_eq!(i, IFACE);
                if let Some(v) = changed.get("RunningJobs") {
                    let jobs: Vec<String> = v.try_clone().unwrap().try_into().unwrap();
                    if jobs == ["m"] {
                        running_seen = true;
                    }
                }
                continue;
            }
            assert_eq!(iface, IFACE, "{member}");
            match member.as_str() {
                "JobStarted" => {
                    let (job, run, kind): (String, i64, String) = msg.body().deserialize().unwrap();
                    assert_eq!((job.as_str(), run, kind.as_str()), ("m", id, "backup"));
                }
                "JobProgress" => {
                    let (job, run, _phase, _f, _b, _e): (String, i64, String, u64, u64, u64) =
                        msg.body().deserialize().unwrap();
                    assert_eq!((job.as_str(), run), ("m", id));
                }
                "JobFinished" => {
                    let (job, run, state, error): (String, i64, String, String) =
                        msg.body().deserialize().unwrap();
                    assert_eq!((job.as_str(), run), ("m", id));
                    assert_eq!(error, "");
                    seen.push(member);
                    return state;
                }
                _ => {}
            }
            seen.push(member);
        }
    })
    .await
    .expect("JobFinished within a minute");
    assert_eq!(finished_state, "succeeded");
    seen.dedup();
    // The compliance checker re-evaluates after the run; its verdicts are signals of their own
    // (docs/compliance.md), not part of the run's sequence.
    seen.retain(|m| m != "ComplianceChanged");
    assert_eq!(
        seen,
        ["JobStarted", "JobProgress", "JobFinished"],
        "{seen:?}"
    );
    assert!(
        running_seen,
        "PropertiesChanged gave RunningJobs = [m] while the run went"
    );
    // The property follows the runner after the end, whichever signal came first.
    let idle = bus.busctl(&["get-property", NAME, PATH, IFACE, "RunningJobs"]);
    assert_ok(&idle);
    let v: serde_json::Value = serde_json::from_slice(&idle.stdout).unwrap();
    assert_eq!(v["data"], serde_json::json!([]), "{v}");
    // The run is the one the control socket knows.
    let detail = call(&conn, "GetRun", &format!(r#"{{"id":{id}}}"#))
        .await
        .unwrap();
    assert_eq!(detail["run"]["state"], "succeeded");
    let version = bus.busctl(&["get-property", NAME, PATH, IFACE, "Version"]);
    assert!(
        stdout(&version).contains(env!("CARGO_PKG_VERSION")),
        "{}",
        stdout(&version)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_bad_parameters_are_named() {
    require_root();
    let bus = Bus::start(Policy::Project);
    let _d = daemon_on(&bus);
    let conn = client(&bus).await;
    let e = call(&conn, "GetJob", r#"{"name":"nosuch"}"#)
        .await
        .unwrap_err();
    assert_eq!(error_name(&e), "org.bms.Manager1.Error.NotFound", "{e}");
    assert!(e.to_string().contains("nosuch"), "{e}");
    let e = call(&conn, "GetJob", "not json").await.unwrap_err();
    assert_eq!(error_name(&e), "org.bms.Manager1.Error.InvalidArgument");
    assert!(e.to_string().contains("GetJob"), "{e}");
    let e = call(&conn, "GetJob", r#"{"nme":"x"}"#).await.unwrap_err();
    assert_eq!(error_name(&e), "org.bms.Manager1.Error.InvalidArgument");
}

#[test]
fn the_bus_policy_refuses_strangers_and_lets_group_bms_only_read() {
    require_root();
    let bus = Bus::start(Policy::Project);
    let d = daemon_on(&bus);
    add_job(&d, "m");
    let stranger = bus.call_in(as_user(NOBODY, &[], "busctl"), "Status", "{}");
    assert!(!stranger.status.success());
    assert!(
        String::from_utf8_lossy(&stranger.stderr).contains("ccess denied")
            || String::from_utf8_lossy(&stranger.stderr).contains("AccessDenied"),
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let bms = ensure_group("bms");
    let reader = bus.call_in(as_user(NOBODY, &[bms], "busctl"), "Status", "{}");
    assert_ok(&reader);
    let write = bus.call_in(
        as_user(NOBODY, &[bms], "busctl"),
        "RunJob",
        r#"{"name":"m"}"#,
    );
    assert!(!write.status.success());
    let err = String::from_utf8_lossy(&write.stderr);
    assert!(
        err.contains("ccess denied") || err.contains("AccessDenied"),
        "{err}"
    );
    // The bus refused it: bmsd never saw the call.
    assert!(d.ctl_json(["run", "list"])["runs"]
        .as_array()
        .unwrap()
        .is_empty());
    let admin = ensure_group("bms-admin");
    let run = bus.call_in(
        as_user(NOBODY, &[admin], "busctl"),
        "RunJob",
        r#"{"name":"m"}"#,
    );
    assert_ok(&run);
}

#[test]
fn with_a_permissive_bus_bmsd_itself_refuses_writes_by_readers_and_strangers() {
    require_root();
    let bus = Bus::start(Policy::Permissive);
    let d = daemon_on(&bus);
    add_job(&d, "m");
    let bms = ensure_group("bms");
    let write = bus.call_in(
        as_user(NOBODY, &[bms], "busctl"),
        "RunJob",
        r#"{"name":"m"}"#,
    );
    assert!(!write.status.success());
    let err = String::from_utf8_lossy(&write.stderr);
    assert!(err.contains("may only read"), "{err}");
    let read = bus.call_in(as_user(NOBODY, &[], "busctl"), "Status", "{}");
    assert!(!read.status.success());
    let err = String::from_utf8_lossy(&read.stderr);
    assert!(err.contains("bms"), "the refusal names the groups: {err}");
    assert!(d.ctl_json(["run", "list"])["runs"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(d.log().contains("refused RunJob"), "{}", d.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_interface_is_the_documented_one() {
    require_root();
    let bus = Bus::start(Policy::Project);
    let _d = daemon_on(&bus);
    let conn = client(&bus).await;
    let reply = conn
        .call_method(
            Some(NAME),
            PATH,
            Some("org.freedesktop.DBus.Introspectable"),
            "Introspect",
            &(),
        )
        .await
        .unwrap();
    let xml: String = reply.body().deserialize().unwrap();
    let start = xml
        .find(&format!("<interface name=\"{IFACE}\">"))
        .expect(&xml);
    let end = start + xml[start..].find("</interface>").unwrap() + "</interface>".len();
    let served = &xml[start..end];
    let doc_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/dbus/org.bms.Manager1.xml");
    let documented = std::fs::read_to_string(&doc_path).unwrap_or_default();
    assert!(
        documented.contains(served),
        "docs/dbus/org.bms.Manager1.xml does not hold the served interface; it is:\n{served}"
    );
}

#[test]
fn the_policy_lets_group_bms_call_exactly_the_read_methods() {
    let text = std::fs::read_to_string(policy_file()).unwrap();
    let mut listed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("send_interface=\"org.bms.Manager1\""))
        .filter_map(|l| l.split("send_member=\"").nth(1))
        .filter_map(|r| r.split('"').next())
        .collect();
    let mut reads: Vec<&str> = bms_proto::api::METHODS
        .iter()
        .filter(|m| !m.writes)
        .map(|m| m.name)
        .collect();
    listed.sort_unstable();
    reads.sort_unstable();
    assert_eq!(
        listed, reads,
        "packaging/systemd/org.bms.Manager1.conf: group bms's methods"
    );
}

#[test]
fn without_a_bus_bmsd_runs_and_says_dbus_is_off() {
    let d = Daemon::start();
    assert!(d.log().contains("D-Bus is off"), "{}", d.log());
    assert_eq!(d.log().matches("D-Bus is off").count(), 1, "logged once");
    d.ctl_json(["status"]);
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--no-dbus".into()],
        ..Default::default()
    });
    assert!(
        d.log().contains("D-Bus is off (dbus = false or --no-dbus)"),
        "{}",
        d.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_alerts_follows_a_failed_run_with_properties_changed() {
    require_root();
    let bus = Bus::start(Policy::Project);
    let d = daemon_on(&bus);
    let get = || {
        let out = bus.busctl(&["get-property", NAME, PATH, IFACE, "OpenAlerts"]);
        assert_ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["data"].as_u64().unwrap()
    };
    assert_eq!(get(), 0);
    let conn = client(&bus).await;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface("org.freedesktop.DBus.Properties")
        .path(PATH)
        .build()
        .unwrap();
    let mut signals =
        zbus::MessageStream::for_match_rule(rule, &conn, std::num::NonZeroUsize::new(256))
            .await
            .unwrap();
    // A job whose pre-hook fails: the run fails and raises a run_failed alert.
    let src = d.dir.join("src");
    write_small_tree(&src);
    d.ctl_json([
        "job",
        "add",
        "bad",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "local",
        "--pre-hook",
        "false",
    ]);
    let out = d.ctl(["job", "run", "bad", "--wait"]);
    assert_ne!(out.status.code(), Some(0), "the run should fail");
    let changed_to = tokio::time::timeout(T, async {
        loop {
            let msg = signals.next().await.unwrap().unwrap();
            let (_, changed, _): (
                String,
                std::collections::HashMap<String, zbus::wire::OwnedVariant>,
                Vec<String>,
            ) = msg.body().deserialize().unwrap();
            if let Some(v) = changed.get("OpenAlerts") {
                let n: u32 = v.try_clone().unwrap().try_into().unwrap();
                return n;
            }
        }
    })
    .await
    .expect("PropertiesChanged for OpenAlerts");
    assert_eq!(changed_to, 1);
    assert_eq!(get(), 1);
    let listed = d.ctl_json(["alert", "list"]);
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 1, "{listed}");
    // CompliantJobs counts as `bmsctl compliance` does: one job, one local copy, not compliant.
    let out = bus.busctl(&["get-property", NAME, PATH, IFACE, "CompliantJobs"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report = d.ctl(["--json", "compliance"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["total"], 1, "{report}");
    assert_eq!(v["data"], report["compliant"], "{v} vs {report}");
}

/// bmsd's user + system CPU time, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (which ends with the last ')').
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_compliance_burst_over_many_jobs_leaves_bmsd_idle_soon_after() {
    // 300 new jobs: their first evaluation publishes one ComplianceChanged per job and rule
    // (1,500 events). The properties are re-read once for the burst, not once per event (each
    // re-read of CompliantJobs evaluates every job), so bmsd is idle again within seconds.
    let bus = Bus::start(Policy::Project);
    let d = daemon_on(&bus);
    add_job(&d, "j");
    let src = d.dir.join("src").display().to_string();
    let mut doc = String::new();
    for i in 0..300 {
        doc.push_str(&format!(
            "[[jobs]]\nname = \"many{i:03}\"\nsources = [\"{src}\"]\ntargets = [\"t\"]\nschedule = \"2099-01-01\"\n\n"
        ));
    }
    let f = write_file(&d.dir, "many.toml", &doc);
    assert_ok(&d.ctl(["apply", f.to_str().unwrap()]));
    // A finished run makes the checker evaluate every job.
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    let getconf = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    let ticks: u64 = stdout(&getconf).trim().parse().unwrap();
    // Re-reading per event kept a core busy for about 15 s here; one re-read takes well under 1 s.
    poll_until(Duration::from_secs(8), "bmsd to be idle", || {
        let a = cpu_ticks(d.pid());
        std::thread::sleep(Duration::from_secs(1));
        let used = cpu_ticks(d.pid()) - a;
        // Under a tenth of a core over that second.
        (used * 10 < ticks).then_some(())
    });
    let out = bus.busctl(&["get-property", NAME, PATH, IFACE, "CompliantJobs"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&d.ctl(["--json", "compliance"]).stdout).unwrap();
    assert_eq!(report["total"], 301, "{report}");
    assert_eq!(v["data"], report["compliant"], "{v} vs {report}");
}
