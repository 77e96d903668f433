//! Recovering the catalog through the real bmsd and bmsctl (docs/operations.md "Recovering the
//! catalog"): with catalog.db deleted, bmsd starts on a new catalog, keeps the old export of
//! jobs and targets, takes back the default target's snapshots at once; `bmsctl apply` of the
//! export and `bmsctl catalog rebuild` give the same snapshot list as before (ids, times,
//! statistics, copies on two targets, one of them encrypted), and a second rebuild changes
//! nothing. After a lost state
//! dir, `bmsctl repo restore-catalog` puts back the catalog bmsd stored in its target after each
//! backup, and bmsd starts with the full history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bms_tests::runner_util::write_small_tree;
use bms_tests::*;
use serde_json::Value;

const NEVER: &str = "2099-01-01";

fn add_job(d: &Daemon, name: &str, src: &Path, targets: &[&str]) {
    let mut args = vec![
        "job".to_string(),
        "add".into(),
        name.into(),
        "--source".into(),
        src.display().to_string(),
        "--schedule".into(),
        NEVER.into(),
    ];
    for t in targets {
        args.extend(["--target".into(), (*t).to_string()]);
    }
    d.ctl_json(args);
}

/// Waits until every run is final and asserts none failed.
fn wait_all_final(d: &Daemon) -> Vec<Value> {
    let runs = poll_until(Duration::from_secs(120), "every run final", || {
        let runs = d.runs(None);
        runs.iter()
            .all(|r| !matches!(r["state"].as_str(), Some("queued" | "running")))
            .then_some(runs)
    });
    for r in &runs {
        assert_eq!(r["state"], "succeeded", "{r:#}\nlog:\n{}", d.log());
    }
    runs
}

fn run_and_wait(d: &Daemon, job: &str) {
    let id = d.start_run(job);
    d.wait_run_final(id, Duration::from_secs(120));
    wait_all_final(d);
}

fn snapshot_list(d: &Daemon) -> Vec<Value> {
    let mut v = d.ctl_json(["snapshot", "list"])["snapshots"]
        .as_array()
        .unwrap()
        .clone();
    v.sort_by_key(|s| (s["target"].to_string(), s["id"].to_string()));
    v
}

/// A snapshot record without its run (the runs are gone with a lost catalog).
fn without_run(list: &[Value]) -> Vec<Value> {
    list.iter()
        .map(|s| {
            let mut s = s.clone();
            s.as_object_mut().unwrap().remove("run_id");
            s
        })
        .collect()
}

fn remove_catalog(state: &Path) {
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let _ = std::fs::remove_file(state.join(f));
    }
}

#[test]
fn a_deleted_catalog_is_rebuilt_from_the_repositories_with_the_same_snapshots() {
    let mut d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    for t in ["a", "b"] {
        let repo = d.dir.join(format!("repo-{t}"));
        std::fs::create_dir_all(&repo).unwrap();
        d.ctl_json(["target", "add", t, "--path", repo.to_str().unwrap()]);
    }
    // Target b is encrypted, with its key file in the test's directory.
    let key = d.dir.join("keys").join("b.key");
    d.ctl_json([
        "target",
        "edit",
        "b",
        "--encrypt",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::metadata(&key).unwrap().len(), 32);
    add_job(&d, "j1", &src, &["a", "b"]);
    add_job(&d, "j2", &src, &["local"]);
    add_job(&d, "j3", &src, &["b"]);
    run_and_wait(&d, "j1");
    std::fs::write(src.join("new-file"), b"changed").unwrap();
    run_and_wait(&d, "j1");
    run_and_wait(&d, "j2");
    run_and_wait(&d, "j3");
    let config: Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("repo-b").join("config")).unwrap())
            .unwrap();
    assert!(config["encryption"].is_object(), "b is encrypted: {config}");
    let before = snapshot_list(&d);
    assert_eq!(before.len(), 6, "{before:#?}");
    assert!(before.iter().all(|s| s["run_id"].is_i64()), "{before:#?}");
    // The export of jobs and targets is written at start: restart for one that has them all.
    assert!(d.stop().success());
    d.spawn(&DaemonOpts::default());
    assert!(d.stop().success());

    let state = d.state_dir();
    remove_catalog(&state);
    d.spawn(&DaemonOpts::default());
    // The new catalog has only the default target; its snapshots came back at start.
    let fresh = snapshot_list(&d);
    assert_eq!(fresh.len(), 1, "{fresh:#?}");
    assert_eq!(fresh[0]["job"], "j2");
    assert!(fresh[0]["run_id"].is_null());
    // The old export is kept aside, not replaced by the new catalog's.
    let kept: Vec<_> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            // Not the new catalog's export, nor its temporary file while it is written.
            n.starts_with("catalog-config.") && n.ends_with(".toml") && n != "catalog-config.toml"
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(d.log().contains("is kept as"), "{}", d.log());
    d.ctl_json(["apply", kept[0].to_str().unwrap()]);

    let r = d.ctl_json(["catalog", "rebuild"]);
    assert_eq!(r["added"], 5, "{r:#}");
    assert_eq!(r["kept"], 1, "{r:#}");
    assert_eq!(r["unknown_jobs"], serde_json::json!([]), "{r:#}");
    let after = snapshot_list(&d);
    assert_eq!(without_run(&after), without_run(&before));
    assert!(after.iter().all(|s| s["run_id"].is_null()), "{after:#?}");
    // The table form and a second rebuild: nothing changes.
    let out = d.ctl(["catalog", "rebuild"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("0 snapshot records added, 6 kept"),
        "{}",
        stdout(&out)
    );
    assert_eq!(snapshot_list(&d), after);
    let audit = audit_actions(&d);
    assert!(
        audit.iter().any(|(a, _)| a == "catalog.rebuild"),
        "{audit:?}"
    );

    // One target only; one that is not there; one without a repository.
    let r = d.ctl_json(["catalog", "rebuild", "--target", "b"]);
    assert_eq!(r["targets"].as_array().unwrap().len(), 1);
    assert_eq!(r["kept"], 3, "{r:#}");
    let out = d.ctl(["catalog", "rebuild", "--target", "nosuch"]);
    assert_fails(&out, 1, "nosuch");
    let empty = d.dir.join("repo-empty");
    std::fs::create_dir_all(&empty).unwrap();
    d.ctl_json(["target", "add", "c", "--path", empty.to_str().unwrap()]);
    let out = d.ctl(["catalog", "rebuild", "--target", "c"]);
    assert_fails(&out, 1, "target 'c'");
    assert_eq!(snapshot_list(&d), after);
}

#[test]
fn a_job_is_refused_the_catalog_name() {
    let d = Daemon::start();
    let out = d.ctl([
        "job",
        "add",
        "_catalog",
        "--source",
        "/tmp",
        "--schedule",
        NEVER,
        "--target",
        "local",
    ]);
    assert_fails(&out, 2, "reserved for the catalog");
}

fn catalog_backup_on() -> DaemonOpts {
    DaemonOpts {
        env: vec![("BMS_TEST_CATALOG_BACKUP".into(), "on".into())],
        ..Default::default()
    }
}

#[test]
fn a_lost_state_dir_is_recovered_from_the_catalog_snapshot_in_the_target() {
    let mut d = Daemon::start_with(catalog_backup_on());
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("nas");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "nas", "--path", repo.to_str().unwrap()]);
    add_job(&d, "j", &src, &["nas"]);
    let plain = d.dir.join("plain");
    assert_ok(&d.ctl(["repo", "init", plain.to_str().unwrap()]));
    let elsewhere = d.dir.join("elsewhere");
    let no_catalog = d.ctl([
        "repo",
        "restore-catalog",
        plain.to_str().unwrap(),
        "--to",
        elsewhere.to_str().unwrap(),
    ]);
    assert_fails(&no_catalog, 1, "holds no catalog snapshot");
    assert!(!elsewhere.join("catalog.db").exists());
    run_and_wait(&d, "j");
    std::fs::write(src.join("more"), b"more").unwrap();
    run_and_wait(&d, "j");
    let last_end = d.runs(Some("j")).last().unwrap()["finished_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // The copy after the last run holds that run's end.
    poll_until(
        Duration::from_secs(60),
        "a catalog snapshot after the last run",
        || {
            d.snapshots("_catalog", Some("nas"))
                .iter()
                .any(|s| s["time"].as_str().unwrap() > last_end.as_str())
                .then_some(())
        },
    );
    let jobs = d.ctl_json(["job", "list"]);
    assert!(!jobs.to_string().contains("_catalog"), "{jobs}");
    let runs_before = d.runs(None);
    let snaps_before = d.snapshots("j", None);
    assert_eq!(snaps_before.len(), 2);
    assert!(d.stop().success());

    let state = d.state_dir();
    std::fs::remove_dir_all(&state).unwrap();
    let out = d.ctl([
        "repo",
        "restore-catalog",
        repo.to_str().unwrap(),
        "--to",
        state.to_str().unwrap(),
    ]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("restored the catalog"),
        "{}",
        stdout(&out)
    );
    let db = state.join("catalog.db");
    assert_eq!(
        std::fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let leftovers: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    // A second one does not replace it.
    let again = d.ctl([
        "repo",
        "restore-catalog",
        repo.to_str().unwrap(),
        "--to",
        state.to_str().unwrap(),
    ]);
    assert_fails(&again, 1, "holds a catalog already");

    d.spawn(&catalog_backup_on());
    let runs_after = d.runs(None);
    let key = |r: &Value| {
        (
            r["id"].clone(),
            r["state"].clone(),
            r["snapshot"].clone(),
            r["finished_at"].clone(),
        )
    };
    assert_eq!(
        runs_after.iter().map(key).collect::<Vec<_>>(),
        runs_before.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(d.snapshots("j", None), snaps_before);
    // The restored catalog lacks only the copy that held it: a rebuild adds it.
    let r = d.ctl_json(["catalog", "rebuild", "--target", "nas"]);
    assert_eq!(
        r["kept"].as_u64().unwrap() + r["added"].as_u64().unwrap(),
        d.snapshots("_catalog", Some("nas")).len() as u64 + 2
    );
}

/// A rebuild takes a snapshot's seal back from its file's record, as the seal record verify
/// checks the repository against (docs/operations.md "Immutability").
#[test]
fn a_rebuild_takes_back_the_seals_of_an_immutable_target() {
    users::require_root();
    let mut s = bms_tests::immutable_util::Immutable::start(1, &[]);
    let run = s.backup();
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let id = run["run"]["snapshot"].as_str().unwrap().to_owned();
    let on_file = bms_tests::immutable_util::sealed_until(&s.repo.join("snapshots").join(&id))
        .expect("the snapshot file's seal record");
    let db = s.d.state_dir().join("catalog.db");
    let seals = |db: &Path| -> Vec<(String, String)> {
        let c = rusqlite::Connection::open(db).unwrap();
        let mut st = c.prepare("SELECT snapshot, until FROM seals").unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(seals(&db), vec![(id.clone(), on_file.clone())]);
    assert!(s.d.stop().success());
    remove_catalog(&s.d.state_dir());
    let opts = DaemonOpts {
        env: vec![("BMS_TEST_CLOCK".into(), s.clock.display().to_string())],
        ..Default::default()
    };
    s.d.spawn(&opts);
    assert!(seals(&db).is_empty());
    s.d.ctl_json([
        "target",
        "add",
        "t",
        "--path",
        s.repo.to_str().unwrap(),
        "--immutable-days",
        "1",
    ]);
    let r = s.d.ctl_json(["catalog", "rebuild", "--target", "t"]);
    assert_eq!(
        (r["added"].as_u64(), r["seals"].as_u64()),
        (Some(1), Some(1)),
        "{r:#}"
    );
    assert_eq!(r["unknown_jobs"], serde_json::json!(["j"]), "{r:#}");
    assert_eq!(seals(&db), vec![(id, on_file)]);
    let r = s.d.ctl_json(["catalog", "rebuild", "--target", "t"]);
    assert_eq!(
        (r["added"].as_u64(), r["seals"].as_u64()),
        (Some(0), Some(0)),
        "{r:#}"
    );
}
