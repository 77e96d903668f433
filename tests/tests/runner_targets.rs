//! Targets in runs, through the real bmsd and bmsctl: a job with two disk targets gets a
//! snapshot on each and restores from the second; a NAS target must be a mount point (nothing is
//! ever written into the bare directory) and works once a filesystem is mounted there; a NAS that
//! dies mid-run (XFS shutdown) fails the run cleanly and `target check` reports it.
//! The NAS tests need root for loop mounts.

use bms_tests::runner_util::*;
use bms_tests::*;
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";

fn entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn two_disk_targets_each_hold_a_snapshot_and_the_second_restores() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    for t in ["first", "second"] {
        let p = d.dir.join(t);
        std::fs::create_dir_all(&p).unwrap();
        d.ctl_json(["target", "add", t, "--path", p.to_str().unwrap()]);
    }
    d.ctl_json([
        "job",
        "add",
        "two",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "first",
        "--target",
        "second",
    ]);
    let id = d.start_run("two");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    let run = &detail["run"];
    assert_eq!(run["state"], "succeeded", "{detail}");
    assert_eq!(run["target"], "first");
    let snap = run["snapshot"].as_str().unwrap().to_owned();

    // The copy is a run of its own, tied to the backup run.
    let runs = d.runs(Some("two"));
    let copies: Vec<_> = runs.iter().filter(|r| r["kind"] == "copy").collect();
    assert_eq!(copies.len(), 1, "{runs:#?}");
    let copy = copies[0];
    assert_eq!(copy["state"], "succeeded", "{copy}");
    assert_eq!(copy["target"], "second");
    assert_eq!(copy["source_target"], "first");
    assert_eq!(copy["parent_run"].as_i64(), Some(id));

    let on_first = d.snapshots("two", Some("first"));
    let on_second = d.snapshots("two", Some("second"));
    assert_eq!(on_first.len(), 1, "{on_first:#?}");
    assert_eq!(on_second.len(), 1, "{on_second:#?}");
    assert_eq!(on_first[0]["id"], snap.as_str());
    assert_eq!(on_second[0]["target"], "second");
    let second_id = on_second[0]["id"].as_str().unwrap().to_owned();
    // The second target's repository holds the snapshot by itself.
    let offline = d.ctl_json(["repo", "snapshots", d.dir.join("second").to_str().unwrap()]);
    assert!(offline.to_string().contains(&second_id), "{offline}");

    // Restoring from the second target needs nothing of the first.
    let second_repo = d.dir.join("second");
    let out = clean_command(bin("bmsctl"))
        .args(["repo", "verify"])
        .arg(&second_repo)
        .output()
        .unwrap();
    assert_ok(&out);
    std::fs::rename(d.dir.join("first"), d.dir.join("first.away")).unwrap();
    let to = d.dir.join("restored");
    let out = d.ctl([
        "restore",
        &second_id,
        "--target",
        "second",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_ok(&out);
    // A snapshot keeps its sources' absolute paths: the tree comes back under DIR/<source path>.
    let restored = to.join(src.strip_prefix("/").unwrap());
    assert_trees_equal(&src, &restored);
}

#[test]
fn nas_target_must_be_mounted_and_nothing_is_written_into_the_bare_directory() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    let nas = d.dir.join("nas");
    std::fs::create_dir_all(&nas).unwrap();
    d.ctl_json([
        "target",
        "add",
        "nas",
        "--kind",
        "nas",
        "--path",
        nas.to_str().unwrap(),
    ]);
    d.ctl_json([
        "job",
        "add",
        "n",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "nas",
    ]);

    let id = d.start_run("n");
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(detail["run"]["state"], "failed", "{detail}");
    let err = detail["run"]["error"].as_str().unwrap();
    assert!(err.contains("not mounted"), "{err}");
    assert!(
        entries(&nas).is_empty(),
        "bms wrote into the bare mount point: {:?}",
        entries(&nas)
    );
    let out = d.ctl(["target", "check", "nas"]);
    assert_fails(&out, 1, "not mounted");
    assert!(
        entries(&nas).is_empty(),
        "the check wrote into the bare mount point: {:?}",
        entries(&nas)
    );
    assert!(d.snapshots("n", None).is_empty());

    // The same path with a filesystem mounted on it works.
    // A fresh ext4 holds `lost+found` at its root, like most real NAS or USB disk filesystems:
    // the repository is created next to it.
    let _mnt = LoopMount::new("ext4", 64, &nas);
    let check = d.ctl_json(["target", "check", "nas"]);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["fs_type"], "ext4", "{check}");
    let id = d.start_run("n");
    let detail = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    assert_eq!(d.snapshots("n", Some("nas")).len(), 1);
    assert!(
        nas.join("config").exists(),
        "no repository on the mounted filesystem: {:?}",
        entries(&nas)
    );
    drop(d);
}

#[test]
fn nas_that_dies_mid_run_fails_the_run_cleanly_and_check_reports_it() {
    let base = tempfile::Builder::new()
        .prefix("bms-xfs-")
        .tempdir()
        .unwrap();
    let nas = base.path().join("nas");
    // Declared before the daemon, so it is unmounted after the daemon is gone.
    let mnt = LoopMount::new("xfs", 1024, &nas);
    let d = Daemon::start();
    let src = d.dir.join("src");
    // Enough data that the run is still going when the filesystem dies.
    let total = write_noise_tree(&src, 24, 24, 7);
    d.ctl_json([
        "target",
        "add",
        "nas",
        "--kind",
        "nas",
        "--path",
        nas.to_str().unwrap(),
        "--fs-type",
        "xfs",
    ]);
    d.ctl_json([
        "job",
        "add",
        "x",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "nas",
    ]);

    let id = d.start_run("x");
    let seen = d.wait_run_progress(id, 1, Duration::from_secs(30));
    let read = seen["progress"]["bytes_read"].as_u64().unwrap();
    assert!(
        read < total,
        "the run read everything before the shutdown: {seen}"
    );
    mnt.xfs_shutdown();

    let detail = d.wait_run_final(id, Duration::from_secs(60));
    let run = &detail["run"];
    assert_eq!(run["state"], "failed", "{detail}");
    assert!(run["snapshot"].is_null(), "{detail}");
    let err = run["error"].as_str().unwrap().to_lowercase();
    assert!(
        err.contains("input/output error") || err.contains("i/o error"),
        "{err}"
    );
    assert!(d.snapshots("x", None).is_empty());

    let out = d.ctl(["target", "check", "nas"]);
    assert_fails(&out, 1, "failed its check");
    let said = stdout(&out).to_lowercase();
    assert!(
        said.contains("i/o error") || said.contains("input/output error"),
        "{said}"
    );
    // The daemon goes on serving.
    assert_eq!(d.status_json()["pid"], d.pid());
    drop(d);
    drop(mnt);
}
