//! Tape targets in bmsd through the real binaries (docs/tape.md, "Tape targets"): a job's copy
//! to a tape target on a virtual library is a pax archive GNU tar extracts alone; a small
//! cartridge makes the archive span two media of the pool, each volume extracting on its own;
//! an empty library and a write-protected cartridge fail the copy with clear errors, raise the
//! "media needed" alert and record nothing as complete; a copy waiting for a medium goes on
//! when one is put into the library; the media lifecycle label → allocate →
//! full → expire → scratch runs through `bmsctl media`, and moving the medium to a vault flips
//! the job's offsite and offline rules in `bmsctl compliance`.

use bms_tests::runner_util::assert_trees_equal;
use bms_tests::tape_util::*;
use bms_tests::*;
use std::path::Path;
use std::time::Duration;

#[test]
fn a_tape_copy_extracts_with_tar_and_spans_two_small_cartridges() {
    let d = daemon(5);
    let (lib, src) = setup(&d, &["BMS001", "BMS002", "BMS003"], "64M", 30, 3);
    // The label of BMS001 goes on tape through bmsd; the others are labelled by the copy.
    let m = d.ctl_json([
        "media", "label", "BMS001", "--pool", "weekly", "--target", "lto",
    ]);
    assert_eq!(m["medium"]["state"], "writable", "{m}");
    assert_eq!(m["medium"]["sequence"], 1, "{m}");
    let check = d.ctl_json(["target", "check", "lto"]);
    assert_eq!(check["ok"], true, "{check}");

    let copy = run_copy(&d);
    assert_eq!(copy["state"], "succeeded", "{copy}");
    let m = medium(&d, "BMS001");
    assert_eq!(m["medium"]["write_count"], 1, "{m}");
    assert!(
        m["medium"]["bytes_written"].as_u64().unwrap() > 3 << 20,
        "{m}"
    );
    assert_eq!(m["archives"][0]["state"], "complete", "{m}");
    assert_eq!(m["archives"][0]["last"], true, "{m}");
    assert_eq!(m["medium"]["in_drive"], true, "{m}");
    let snaps = d.ctl_json(["snapshot", "list", "--job", "j", "--target", "lto"]);
    assert_eq!(snaps["snapshots"].as_array().unwrap().len(), 1, "{snaps}");

    // GNU tar alone extracts the archive (tape file 1) and it equals the source.
    let out = d.dir.join("tar1");
    tar_extract(&lib, "BMS001", 1, &out);
    assert_trees_equal(&src, &inside(&out, &src));

    // bmsd restores from the tape target through the catalog: all, and one path.
    let id = snaps["snapshots"][0]["id"].as_str().unwrap().to_owned();
    let all = d.dir.join("restored");
    let r = d.ctl_json([
        "restore",
        &id,
        "--target",
        "lto",
        "--to",
        all.to_str().unwrap(),
    ]);
    assert!(r["files"].as_u64().unwrap() >= 3, "{r}");
    assert_trees_equal(&src, &inside(&all, &src));
    let one = d.dir.join("one");
    let sub = src.join("a/b");
    d.ctl_json([
        "restore",
        &id,
        "--target",
        "lto",
        "--to",
        one.to_str().unwrap(),
        "--path",
        sub.to_str().unwrap(),
    ]);
    assert_trees_equal(&sub, &inside(&one, &sub));
    assert!(!inside(&one, &src).join("a/file0").exists());

    // A second run with more data than fits on one small cartridge: the archive spans.
    let small = d.dir.join("vtl2");
    let l2 = small.to_str().unwrap();
    assert_ok(&d.ctl(["tape", "create-library", l2, "--slots", "3"]));
    for (slot, c) in [("1", "SML001"), ("2", "SML002")] {
        assert_ok(&d.ctl([
            "tape",
            "add-cartridge",
            l2,
            c,
            "--slot",
            slot,
            "--capacity",
            "6M",
        ]));
        d.ctl_json(["media", "add", c, "--media-type", "lto6"]);
    }
    // A pool without a stated retention is refused: the default would let every copy
    // overwrite the archive before it.
    let out = d.ctl(["pool", "add", "small", "--media-type", "lto6"]);
    assert!(
        !out.status.success(),
        "a pool without --retention-days was added"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--retention-days"), "{err}");
    d.ctl_json([
        "pool",
        "add",
        "small",
        "--media-type",
        "lto6",
        "--retention-days",
        "28",
    ]);
    d.ctl_json([
        "target", "add", "lto2", "--kind", "tape", "--path", l2, "--pool", "small",
    ]);
    d.ctl_json(["job", "edit", "j", "--target", "local", "--target", "lto2"]);
    tree(&src, 5);
    let out = d.ctl(["job", "run", "j", "--wait"]);
    let runs = d.ctl_json(["run", "list", "--job", "j"]);
    let copy = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "copy" && r["target"] == "lto2")
        .cloned()
        .unwrap_or_else(|| panic!("no copy to lto2: {runs} {}", stdout(&out)));
    assert_eq!(copy["state"], "succeeded", "{copy}");
    let (m1, m2) = (medium(&d, "SML001"), medium(&d, "SML002"));
    assert_eq!(m1["medium"]["state"], "full", "{m1}");
    assert_eq!(m2["medium"]["state"], "writable", "{m2}");
    assert_eq!(m1["archives"][0]["volume"], 1, "{m1}");
    assert_eq!(m2["archives"][0]["volume"], 2, "{m2}");
    assert_eq!(m2["archives"][0]["last"], true, "{m2}");
    assert_eq!(m1["medium"]["pool"], "small", "labelled by the copy: {m1}");
    // Each volume extracts on its own; together they are the source.
    let both = d.dir.join("tar2");
    let (v1, v2) = (d.dir.join("vol1"), d.dir.join("vol2"));
    tar_extract(&small, "SML001", 1, &v1);
    tar_extract(&small, "SML002", 1, &v2);
    tar_extract(&small, "SML001", 1, &both);
    tar_extract(&small, "SML002", 1, &both);
    assert_trees_equal(&src, &inside(&both, &src));
    // bmsd restores across both volumes.
    let snaps = d.ctl_json(["snapshot", "list", "--job", "j", "--target", "lto2"]);
    let id = snaps["snapshots"][0]["id"].as_str().unwrap().to_owned();
    let all = d.dir.join("restored2");
    d.ctl_json([
        "restore",
        &id,
        "--target",
        "lto2",
        "--to",
        all.to_str().unwrap(),
    ]);
    assert_trees_equal(&src, &inside(&all, &src));
    let count = |p: &Path| {
        std::fs::read_dir(inside(p, &src).join("a"))
            .unwrap()
            .count()
    };
    assert!(count(&v1) < count(&both) && count(&v2) < count(&both));
    // A verification of the tape target reads both volumes back.
    let queued = d.ctl_json(["verify", "--job", "j", "--target", "lto2"]);
    let id = queued["runs"][0]["id"].as_i64().expect("a verify run");
    let done = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let log = done["log"].to_string();
    assert!(log.contains("SML001") && log.contains("SML002"), "{log}");
}

#[test]
fn an_empty_library_and_a_write_protected_cartridge_fail_clearly() {
    let d = daemon(1);
    let (lib, _src) = setup(&d, &[], "64M", 30, 1);
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "failed", "{copy}");
    let err = copy["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("medium needed") && err.contains("pool weekly"),
        "{copy}"
    );
    let alerts = d.ctl_json(["alert", "list"]);
    assert!(
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "media_needed"
                && a["message"].as_str().unwrap_or("").contains("pool weekly")),
        "{alerts}"
    );
    let snaps = d.ctl_json(["snapshot", "list", "--job", "j", "--target", "lto"]);
    assert!(snaps["snapshots"].as_array().unwrap().is_empty(), "{snaps}");

    // A write-protected cartridge: a clear error, nothing recorded as complete.
    let l = lib.to_str().unwrap();
    assert_ok(&d.ctl([
        "tape",
        "add-cartridge",
        l,
        "WP0001",
        "--slot",
        "1",
        "--capacity",
        "64M",
    ]));
    assert_ok(&d.ctl(["tape", "write-protect", l, "WP0001", "on"]));
    d.ctl_json(["media", "add", "WP0001", "--media-type", "lto8"]);
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "failed", "{copy}");
    let err = copy["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("WP0001") && err.contains("write-protected"),
        "{copy}"
    );
    let m = medium(&d, "WP0001");
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
    // An unknown medium is named.
    let out = d.ctl(["--json", "media", "label", "NOPE", "--pool", "weekly"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("medium 'NOPE' does not exist"),
        "{out:?}"
    );
}

#[test]
fn a_copy_waiting_for_a_medium_goes_on_when_one_is_put_into_the_library() {
    let d = daemon(120);
    let (lib, src) = setup(&d, &[], "64M", 30, 1);
    let id = d.start_run("j");
    // The copy asks for a medium: an open media_needed alert naming the pool.
    poll_until(Duration::from_secs(60), "the media_needed alert", || {
        let alerts = d.ctl_json(["alert", "list", "--state", "open"]);
        alerts["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["kind"] == "media_needed")
            .then_some(())
    });
    let l = lib.to_str().unwrap();
    assert_ok(&d.ctl([
        "tape",
        "add-cartridge",
        l,
        "LATE01",
        "--slot",
        "2",
        "--capacity",
        "64M",
    ]));
    d.ctl_json(["media", "add", "LATE01", "--media-type", "lto8"]);
    let run = d.wait_run_final(id, Duration::from_secs(120));
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let m = medium(&d, "LATE01");
    assert_eq!(m["archives"][0]["state"], "complete", "{m}");
    let out = d.dir.join("late");
    tar_extract(&lib, "LATE01", 1, &out);
    assert_trees_equal(&src, &inside(&out, &src));
}

#[test]
fn the_media_lifecycle_and_a_vault_move_flip_compliance() {
    let d = daemon(5);
    let (_lib, _src) = setup(&d, &["LC0001"], "64M", 0, 1);
    let m = medium(&d, "LC0001");
    assert_eq!(m["medium"]["state"], "scratch", "{m}");
    let copy = run_copy(&d);
    assert_eq!(copy["state"], "succeeded", "{copy}");
    let m = medium(&d, "LC0001");
    assert_eq!(m["medium"]["state"], "writable", "allocated: {m}");
    assert_eq!(m["medium"]["pool"], "weekly", "{m}");

    // Two copies on two media types, both onsite, the tape in its drive (online).
    let v = compliance(&d);
    assert_eq!(verdict(&v, "copies"), "pass", "{v}");
    assert_eq!(verdict(&v, "media"), "pass", "{v}");
    assert_eq!(verdict(&v, "offsite"), "fail", "{v}");
    assert_eq!(verdict(&v, "immutable_or_offline"), "fail", "{v}");

    // A verification of the whole job checks the repository and, in a run of its own, reads
    // the tape archive back.
    let queued = d.ctl_json(["verify", "--job", "j"]);
    let id = queued["runs"][0]["id"].as_i64().expect("a verify run");
    let done = d.wait_run_final(id, Duration::from_secs(60));
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
    assert_eq!(tape["parent_run"], id, "{tape}");
    // To the vault: offsite and offline.
    d.ctl_json([
        "media",
        "move",
        "LC0001",
        "--to",
        "vault:iron",
        "--expected-return",
        "14d",
    ]);
    let v = compliance(&d);
    assert_eq!(verdict(&v, "offsite"), "pass", "{v}");
    assert_eq!(verdict(&v, "immutable_or_offline"), "pass", "{v}");
    let copies = v["jobs"][0]["copies"].as_array().unwrap();
    let tape = copies.iter().find(|c| c["target"] == "lto").unwrap();
    assert_eq!(tape["media"][0]["label"], "LC0001", "{v}");

    // Retention 0 days: the medium expires at once; in the vault it stays expired and is due
    // back; back on the shelf it returns to scratch and its archive stops counting.
    let e = d.ctl_json(["media", "expire"]);
    assert_eq!(e["expired"], serde_json::json!(["LC0001"]), "{e}");
    assert_eq!(e["scratch"], serde_json::json!([]), "{e}");
    let due = d.ctl_json(["media", "due"]);
    assert_eq!(due["come_back"], serde_json::json!(["LC0001"]), "{due}");
    d.ctl_json(["media", "move", "LC0001", "--to", "shelf"]);
    let e = d.ctl_json(["media", "expire"]);
    assert_eq!(e["scratch"], serde_json::json!(["LC0001"]), "{e}");
    let m = medium(&d, "LC0001");
    assert_eq!(m["medium"]["state"], "scratch", "{m}");
    assert_eq!(m["archives"][0]["state"], "overwritten", "{m}");
    let v = compliance(&d);
    assert_eq!(
        verdict(&v, "media"),
        "fail",
        "the expired tape no longer counts: {v}"
    );

    // Lists and shows have --json; a reader (group bms) may list, not change.
    let pools = d.ctl_json(["pool", "list"]);
    assert_eq!(pools["pools"][0]["name"], "weekly", "{pools}");
    let list = d.ctl_json(["media", "list", "--pool", "weekly"]);
    assert_eq!(list["media"][0]["barcode"], "LC0001", "{list}");
    let out = d.ctl(["media", "move", "LC0001", "--to", "vault:"]);
    assert_fails(&out, 2, "vault:NAME");
    if nix::unistd::geteuid().is_root() {
        let bms = users::ensure_group("bms");
        let as_reader = |args: &[&str]| {
            users::as_user(users::NOBODY, &[bms], bin("bmsctl"))
                .arg("--socket")
                .arg(d.socket())
                .args(args)
                .output()
                .expect("run setpriv")
        };
        assert_ok(&as_reader(&["media", "list"]));
        assert_ok(&as_reader(&["pool", "show", "weekly"]));
        let out = as_reader(&["media", "retire", "LC0001"]);
        assert_eq!(out.status.code(), Some(4), "{out:?}");
        assert!(stderr(&out).contains("bms-admin"), "{out:?}");
        assert_eq!(medium(&d, "LC0001")["medium"]["state"], "scratch");
    }
}
