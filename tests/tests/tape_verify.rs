//! Verification of tape targets and the end of medium through the real binaries (docs/tape.md,
//! "Verify and restore drills of tape targets", "Tape targets"): a verify run reads the job's
//! latest archive back from the virtual cartridge and checks every file's hash; a byte changed in
//! the cartridge's archive file fails it naming the file, and compliance's "0" rule fails with
//! it. A cartridge smaller than the snapshot with no further medium of the pool fails the copy
//! with "medium needed", records nothing as complete, and a copy after a medium is added succeeds.

use bms_tests::runner_util::assert_trees_equal;
use bms_tests::tape_util::*;
use bms_tests::*;
use serde_json::Value;
use std::time::Duration;

/// Queues a verification (`extra` adds --target or --drill) and waits for it.
fn verify_run(d: &Daemon, extra: &[&str]) -> Value {
    let mut args = vec!["verify", "--job", "j"];
    args.extend_from_slice(extra);
    let queued = d.ctl_json(args);
    let id = queued["runs"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no verify run queued: {queued}"));
    d.wait_run_final(id, Duration::from_secs(120))
}

/// The verdict and reason of compliance's "0" rule.
fn errors_rule(d: &Daemon) -> (String, String) {
    let v = compliance(d);
    let reason = v["jobs"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "errors")
        .map(|r| r["reason"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    (verdict(&v, "errors"), reason)
}

/// The first 512 bytes of file `i` of `tree` (its data starts a tar record).
fn start_of(i: u8) -> Vec<u8> {
    (0..512usize)
        .map(|n| (n as u8).wrapping_mul(31) ^ i)
        .collect()
}

#[test]
fn a_tape_verify_reads_the_archive_back_and_a_changed_byte_fails_it_and_the_0_rule() {
    let d = daemon(5);
    let (lib, _src) = setup(&d, &["VF0001"], "64M", 30, 3);
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "succeeded", "{copy}");

    // The whole job: the repository by this run, the tape by a run of its own; both clean.
    let done = verify_run(&d, &[]);
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let runs = d.ctl_json(["run", "list", "--job", "j"]);
    let tape = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "verify" && r["target"] == "lto")
        .cloned()
        .unwrap_or_else(|| panic!("no verify run of the tape target: {runs}"));
    assert_eq!(tape["state"], "succeeded", "{tape}");
    let shown = d.ctl_json(["run", "show", &tape["id"].to_string()]);
    let log = shown["log"].to_string();
    assert!(
        log.contains("VF0001") && log.contains("every file's hash matches"),
        "{shown}"
    );
    let (v, reason) = errors_rule(&d);
    assert_eq!(v, "pass", "{reason}");

    // One byte of a/file1's data changed on the cartridge.
    let archive = find_cartridge(&lib, "VF0001").join("file-000001");
    let mut bytes = std::fs::read(&archive).unwrap();
    let needle = start_of(1);
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("a/file1's data in the archive");
    bytes[at + 100] ^= 0xff;
    std::fs::write(&archive, &bytes).unwrap();

    let done = verify_run(&d, &["--target", "lto"]);
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let err = done["run"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("a/file1")
            && err.contains("VF0001")
            && err.contains("does not match")
            && !err.contains("a/file0"),
        "{done}"
    );
    let (v, reason) = errors_rule(&d);
    assert_eq!(v, "fail", "{reason}");
    assert!(
        reason.contains("lto") && reason.contains("a/file1"),
        "{reason}"
    );

    // A drill of the tape target is the full read: it fails the same way and records its stats.
    let done = verify_run(&d, &["--target", "lto", "--drill"]);
    assert_eq!(done["run"]["state"], "failed", "{done}");
    assert!(
        done["run"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("a/file1"),
        "{done}"
    );
    assert_eq!(done["run"]["drill"]["files_failed"], 1, "{done}");

    // Put back, the tape verifies clean again and the rule passes.
    bytes[at + 100] ^= 0xff;
    std::fs::write(&archive, &bytes).unwrap();
    let done = verify_run(&d, &["--target", "lto"]);
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let done = verify_run(&d, &["--target", "lto", "--drill"]);
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert!(
        done["run"]["drill"]["files_sampled"].as_u64().unwrap_or(0) >= 3,
        "{done}"
    );
    let (v, reason) = errors_rule(&d);
    assert_eq!(v, "pass", "{reason}");
}

#[test]
fn a_tape_verify_without_an_archive_says_what_to_do() {
    let d = daemon(1);
    let (_lib, _src) = setup(&d, &[], "64M", 30, 1);
    let done = verify_run(&d, &["--target", "lto"]);
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let err = done["run"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("holds no complete archive of job 'j'") && err.contains("bmsctl job run j"),
        "{done}"
    );
}

#[test]
fn the_end_of_a_small_cartridge_with_no_next_medium_fails_clearly_and_records_nothing() {
    let d = daemon(1);
    // About 8 MiB of files onto one 6 MiB cartridge: the archive needs a second medium.
    let (lib, src) = setup(&d, &["EOM001"], "6M", 30, 8);
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "failed", "{copy}");
    let err = copy["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("medium needed") && err.contains("pool weekly") && err.contains("volume 2"),
        "{copy}"
    );
    // The volume on the full cartridge is not recorded; the medium is full; no snapshot on the
    // tape target; compliance sees no tape copy.
    let m = medium(&d, "EOM001");
    assert_eq!(m["medium"]["state"], "full", "{m}");
    assert!(
        m["archives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["state"] != "complete"),
        "{m}"
    );
    let snaps = d.ctl_json(["snapshot", "list", "--job", "j", "--target", "lto"]);
    assert!(snaps["snapshots"].as_array().unwrap().is_empty(), "{snaps}");
    assert_eq!(verdict(&compliance(&d), "media"), "fail");
    let done = verify_run(&d, &["--target", "lto"]);
    assert_eq!(done["run"]["state"], "failed", "{done}");

    // Two cartridges added: the next copy spans them (the full one is left alone).
    let l = lib.to_str().unwrap();
    for (slot, c) in [("2", "EOM002"), ("3", "EOM003")] {
        assert_ok(&d.ctl([
            "tape",
            "add-cartridge",
            l,
            c,
            "--slot",
            slot,
            "--capacity",
            "6M",
        ]));
        d.ctl_json(["media", "add", c, "--media-type", "lto8"]);
    }
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "succeeded", "{copy}");
    let (m2, m3) = (medium(&d, "EOM002"), medium(&d, "EOM003"));
    assert_eq!(m2["archives"][0]["state"], "complete", "{m2}");
    assert_eq!(m3["archives"][0]["last"], true, "{m3}");
    let snaps = d.ctl_json(["snapshot", "list", "--job", "j", "--target", "lto"]);
    let id = snaps["snapshots"][0]["id"].as_str().unwrap().to_owned();
    let all = d.dir.join("restored");
    d.ctl_json([
        "restore",
        &id,
        "--target",
        "lto",
        "--to",
        all.to_str().unwrap(),
    ]);
    assert_trees_equal(&src, &inside(&all, &src));
    let done = verify_run(&d, &["--target", "lto"]);
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
}
