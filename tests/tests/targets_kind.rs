//! Targets by kind: what each kind supports is said by `target show` (and `--json`); what a kind
//! cannot do (a backup into a tape target, a restore of a snapshot a tape target holds no
//! archive of) is refused plainly.

use bms_tests::{assert_ok, stdout, Daemon};
use std::time::Duration;

fn supports(v: &serde_json::Value) -> Vec<String> {
    v["supports"]
        .as_array()
        .unwrap_or_else(|| panic!("no supports list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn target_show_says_what_each_kind_supports() {
    let d = Daemon::start();
    let dir = d.dir.join("nas");
    std::fs::create_dir_all(&dir).unwrap();
    let nas = d.ctl_json([
        "target",
        "add",
        "nas1",
        "--kind",
        "nas",
        "--path",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        supports(&nas),
        [
            "backup",
            "copy into",
            "copy from",
            "verify",
            "restore",
            "pre-flight check",
            "mount check",
            "immutability"
        ]
    );
    let local = d.ctl_json(["target", "show", "local"]);
    assert_eq!(
        supports(&local),
        [
            "backup",
            "copy into",
            "copy from",
            "verify",
            "restore",
            "pre-flight check",
            "immutability"
        ]
    );
    let text = stdout(&d.ctl(["target", "show", "local"]));
    assert!(
        text.contains(
            "backup, copy into, copy from, verify, restore, pre-flight check, immutability"
        ),
        "{text}"
    );
    assert!(!text.contains("mount check"), "{text}");

    // A tape target is a copy sink (docs/tape.md, "Tape targets").
    let tape = d.ctl_json([
        "target",
        "add",
        "lto",
        "--kind",
        "tape",
        "--path",
        "/dev/nst0",
    ]);
    assert_eq!(
        supports(&tape),
        ["copy into", "verify", "restore", "pre-flight check"],
        "{tape}"
    );
    assert_eq!(tape["supported"], true, "{tape}");
    let text = stdout(&d.ctl(["target", "show", "lto"]));
    assert!(
        text.contains("none (copies fail until one is set: --pool)"),
        "{text}"
    );
    let s3 = d.ctl_json([
        "target",
        "add",
        "cloud",
        "--kind",
        "s3",
        "--path",
        "s3://bucket/p",
    ]);
    // S3 targets do all a disk target does; their immutability is Object Lock (docs/s3.md).
    assert_eq!(
        supports(&s3),
        [
            "backup",
            "copy into",
            "copy from",
            "verify",
            "restore",
            "pre-flight check",
            "immutability"
        ]
    );
    assert_eq!(s3["supported"], true);
}

#[test]
fn kinds_without_a_writer_are_refused_by_checks_runs_and_copies() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"data\n").unwrap();
    assert_ok(&d.ctl([
        "target",
        "add",
        "lto",
        "--kind",
        "tape",
        "--path",
        "/dev/nst0",
    ]));
    let out = d.ctl(["target", "check", "lto"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("/dev/nst0 cannot be opened"),
        "{}",
        stdout(&out)
    );

    // A tape primary target: the run fails before anything is written.
    for (job, targets) in [
        ("on-tape", vec!["lto"]),
        ("copy-tape", vec!["local", "lto"]),
    ] {
        let mut args = vec![
            "job",
            "add",
            job,
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            "daily",
        ];
        for t in &targets {
            args.extend(["--target", t]);
        }
        assert_ok(&d.ctl(args));
    }
    let id = d.start_run("on-tape");
    let run = d.wait_run_final(id, Duration::from_secs(30));
    assert_eq!(run["run"]["state"], "failed", "{run}");
    let err = run["run"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("'lto'") && err.contains("takes copies only"),
        "{run}"
    );

    // A tape copy target whose device is missing: the backup to local succeeds, its copy to
    // tape fails its pre-flight check.
    let id = d.start_run("copy-tape");
    let run = d.wait_run_final(id, Duration::from_secs(30));
    let runs = d.runs(Some("copy-tape"));
    let copy = runs
        .iter()
        .find(|r| r["kind"] == "copy")
        .unwrap_or_else(|| panic!("no copy run: {runs:#?}"));
    assert_eq!(copy["state"], "failed", "{copy}");
    assert_eq!(copy["target"], "lto", "{copy}");
    let err = run["run"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("/dev/nst0 cannot be opened"), "{run}");
    assert_eq!(d.snapshots("copy-tape", Some("local")).len(), 1, "{run}");
}

#[test]
fn restore_from_a_target_redefined_as_tape_without_an_archive_is_refused() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(src.join("a.txt"), b"data\n").unwrap();
    assert_ok(&d.ctl(["target", "add", "t1", "--path", repo.to_str().unwrap()]));
    assert_ok(&d.ctl([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "t1",
    ]));
    assert_ok(&d.ctl(["job", "run", "j", "--wait"]));
    let snap = d.snapshots("j", Some("t1"))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The target is redefined as a tape target, which holds no archive of the snapshot.
    assert_ok(&d.ctl([
        "target",
        "edit",
        "t1",
        "--kind",
        "tape",
        "--path",
        "/dev/nst0",
    ]));
    let to = d.dir.join("restored");
    let out = d.ctl(["--json", "restore", &snap, "--to", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err: serde_json::Value =
        serde_json::from_slice(&out.stderr).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(err["error_name"], "org.bms.Manager.NotFound", "{err}");
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("no complete tape archive of snapshot") && msg.contains("'t1'"),
        "{err}"
    );
    assert!(!to.join("a.txt").exists(), "nothing restored");
}
