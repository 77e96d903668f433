//! Immutable disk targets on a loop-mounted ext4 (docs/operations.md "Immutability"): what a
//! backup seals, that root cannot remove it, that the engine refuses to delete it with the date,
//! that seals are lifted after their time on the trusted clock, and that a seal removed by hand
//! is reported by the next verify (from the file's record, and from bmsd's catalog when the
//! record was removed too).

use bms_engine::store::{Kind, LocalStore, Store};
use bms_engine::ErrorKind;
use bms_tests::events_util::EventStream;
use bms_tests::immutable_util::{has_i, sealable_files, sealed_until, Immutable};
use bms_tests::storage::bmsctl;
use bms_tests::*;
use std::process::Command;
use std::time::Duration;

const DAY: i64 = 86_400;

#[test]
fn a_backup_seals_what_it_wrote_and_root_cannot_remove_it_until_expiry() {
    users::require_root();
    let s = Immutable::start(1, &[]);
    let run = s.backup();
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let log = run["log"].to_string();
    assert!(log.contains("sealed snapshot"), "{log}");
    let files = sealable_files(&s.repo);
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        assert!(has_i(f), "{} is not immutable", f.display());
        let until = sealed_until(f).unwrap_or_else(|| panic!("{} has no record", f.display()));
        let until: jiff::Timestamp = until.parse().expect("RFC 3339");
        let left = until.as_second() - jiff::Timestamp::now().as_second();
        assert!(
            (DAY - 600..=DAY + 5).contains(&left),
            "{}: sealed for {left} s",
            f.display()
        );
    }
    // The config and the lock directory stay mutable.
    assert!(!has_i(&s.repo.join("config")));
    assert!(!has_i(&s.repo.join("locks")));

    // Root cannot remove or change a sealed file.
    let snap = files
        .iter()
        .find(|f| f.parent().is_some_and(|p| p.ends_with("snapshots")))
        .expect("a snapshot file")
        .clone();
    let out = Command::new("rm")
        .arg("-f")
        .arg(&snap)
        .output()
        .expect("rm");
    assert!(!out.status.success(), "rm removed a sealed snapshot");
    assert!(snap.exists());
    assert!(std::fs::write(&snap, b"x").is_err());

    // The engine's deletion refuses with the date (what forget and prune go through).
    let store = LocalStore::new(&s.repo);
    let id = snap.file_name().and_then(|n| n.to_str()).expect("name");
    let e = store.delete(Kind::Snapshots, id).expect_err("deleted");
    assert_eq!(e.kind(), ErrorKind::Immutable, "{e}");
    let until = sealed_until(&snap).expect("record");
    assert!(e.to_string().contains(&until), "{e}");
    assert!(store
        .sealed_until(Kind::Snapshots, id)
        .expect("until")
        .is_some());

    // Twelve hours later on both clocks: nothing expires yet.
    s.set_clock(DAY / 2, DAY / 2);
    s.wait_checks_at(DAY / 2);
    assert!(files.iter().all(|f| has_i(f)));

    // Two days later on both clocks (time that really passed): every seal is lifted.
    s.set_clock(2 * DAY, 2 * DAY);
    poll_until(Duration::from_secs(30), "seals lifted after expiry", || {
        files.iter().all(|f| !has_i(f)).then_some(())
    });
    assert!(files.iter().all(|f| sealed_until(f).is_none()));
    assert!(s.d.log().contains("lifted"), "{}", s.d.log());
    assert_eq!(
        store.sealed_until(Kind::Snapshots, id).expect("until"),
        None
    );
    assert!(store
        .delete(Kind::Snapshots, id)
        .expect("delete after expiry"));
}

#[test]
fn a_wall_clock_jump_expires_nothing_and_raises_a_tamper_event() {
    users::require_root();
    let s = Immutable::start(1, &[]);
    let run = s.backup();
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let files = sealable_files(&s.repo);
    assert!(files.iter().all(|f| has_i(f)));
    let mut events = EventStream::start(&s.d, None);
    // The wall clock moves 30 days; the boot clock does not.
    s.set_clock(30 * DAY, 0);
    events.wait(Duration::from_secs(30), "a TamperDetected event", |seen| {
        seen.iter().any(|e| e["type"] == "TamperDetected")
    });
    let e = events
        .seen
        .iter()
        .find(|e| e["type"] == "TamperDetected")
        .expect("event");
    assert_eq!(e["what"], "clock", "{e}");
    assert!(e["target"].is_null(), "{e}");
    assert!(
        e["detail"].as_str().unwrap_or_default().contains("30 days"),
        "{e}"
    );
    assert!(s.d.log().contains("clock tamper"), "{}", s.d.log());
    // The tamper opens a critical alert (docs/alerts.md, "Kinds").
    let alert = poll_until(
        Duration::from_secs(30),
        "an immutability_tamper alert",
        || {
            let v = s.d.ctl_json(["alert", "list", "--state", "open"]);
            v["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["kind"] == "immutability_tamper")
                .cloned()
        },
    );
    assert_eq!(alert["severity"], "critical", "{alert}");
    // Later checks still expire nothing (the tamper holds until confirmed).
    s.wait_checks_at(30 * DAY);
    s.wait_checks_at(30 * DAY);
    assert!(
        files.iter().all(|f| has_i(f)),
        "a seal expired on a jumped clock"
    );
    let text = stdout(&s.d.ctl(["target", "unlock-check"]));
    assert!(text.contains("30 days"), "{text}");

    // An admin who checked the clock confirms it: the seals, now past, are lifted.
    let v = s.d.ctl_json(["target", "unlock-check", "--confirm-clock"]);
    assert!(
        v["cleared"]
            .as_str()
            .unwrap_or_default()
            .contains("30 days"),
        "{v}"
    );
    assert!(v["tampered"].is_null(), "{v}");
    assert!(
        audit_actions(&s.d)
            .iter()
            .any(|(a, o)| a == "clock.confirm" && o == "clock"),
        "{:?}",
        audit_actions(&s.d)
    );
    assert_ok(&s.d.ctl(["target", "unlock-check"]));
    poll_until(
        Duration::from_secs(30),
        "seals lifted after the confirmation",
        || files.iter().all(|f| !has_i(f)).then_some(()),
    );
}

#[test]
fn a_seal_removed_by_hand_is_reported_by_the_next_verify() {
    users::require_root();
    let s = Immutable::start(3, &["--verify-after-backup", "true"]);
    let run = s.backup();
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let snap = sealable_files(&s.repo)
        .into_iter()
        .find(|f| f.parent().is_some_and(|p| p.ends_with("snapshots")))
        .expect("snapshot file");
    let id = snap
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let out = Command::new("chattr")
        .arg("-i")
        .arg(&snap)
        .output()
        .expect("chattr");
    assert!(out.status.success());

    // Offline verification names the object.
    let out = bmsctl(["repo", "verify", s.repo.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(text.contains(&format!("snapshot {id}")), "{text}");
    assert!(text.contains("immutable attribute was removed"), "{text}");

    // Clearing the record too hides it from the files alone, not from bmsd, which recorded the
    // seal in its catalog.
    let out = Command::new("setfattr")
        .args(["-x", "user.bms.sealed_until"])
        .arg(&snap)
        .output()
        .expect("setfattr");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ok(&bmsctl(["repo", "verify", s.repo.to_str().expect("utf-8")]));

    // The daemon's next verification reports it, with a tamper event.
    let mut events = EventStream::start(&s.d, None);
    let run = s.backup();
    assert_eq!(run["run"]["state"], "warning", "{run}");
    let err = run["run"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(err.contains("verification of 't' found"), "{err}");
    let verify =
        s.d.runs(Some("j"))
            .into_iter()
            .rfind(|r| r["kind"] == "verify")
            .expect("a verify run");
    let detail = s.d.run_show(verify["id"].as_i64().expect("id"));
    let log = detail["log"].to_string();
    assert!(log.contains(&format!("seal: snapshot {id}")), "{log}");
    assert!(log.contains("lost its seal record"), "{log}");
    events.wait(Duration::from_secs(30), "a TamperDetected event", |seen| {
        seen.iter()
            .any(|e| e["type"] == "TamperDetected" && e["target"] == "t")
    });
    let e = events
        .seen
        .iter()
        .find(|e| e["type"] == "TamperDetected")
        .expect("event");
    assert!(e["what"].as_str().unwrap_or_default().contains(&id), "{e}");
}

#[test]
fn targets_that_cannot_hold_seals_are_refused_with_the_reason() {
    users::require_root();
    let d = Daemon::start();
    // tmpfs has no immutable attribute.
    let tmp = d.dir.join("tmpfs");
    std::fs::create_dir(&tmp).expect("mkdir");
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&tmp)
        .output()
        .expect("mount");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(tmp.clone());
    let tmp_s = tmp.to_str().expect("utf-8");
    let out = d.ctl([
        "target",
        "add",
        "m",
        "--path",
        tmp_s,
        "--immutable-days",
        "7",
    ]);
    assert_fails(
        &out,
        1,
        "is on tmpfs, which cannot hold the immutable attribute",
    );
    assert!(stderr(&out).contains("ext4"), "{}", stderr(&out));
    // Nothing was stored, and the probe left nothing behind.
    assert_fails(&d.ctl(["target", "show", "m"]), 1, "m");
    assert_eq!(std::fs::read_dir(&tmp).expect("read").count(), 0);
    // Without immutability the same directory is fine; turning it on later is refused.
    assert_ok(&d.ctl(["target", "add", "m", "--path", tmp_s]));
    let out = d.ctl(["target", "edit", "m", "--immutable-days", "7"]);
    assert_fails(&out, 1, "cannot hold the immutable attribute");
    assert_eq!(d.ctl_json(["target", "show", "m"])["immutable_days"], 0);
    // Nor through `apply`.
    let doc = format!("[[targets]]\nname = \"a\"\npath = \"{tmp_s}\"\nimmutable_days = 3\n");
    let f = write_file(&d.dir, "immutable.toml", &doc);
    let out = d.ctl(["apply", f.to_str().expect("utf-8")]);
    assert_fails(&out, 1, "is on tmpfs");
    assert_fails(&d.ctl(["target", "show", "a"]), 1, "a");
    // A directory that does not exist cannot be checked.
    let gone = d.dir.join("gone");
    let out = d.ctl([
        "target",
        "add",
        "g",
        "--path",
        gone.to_str().expect("utf-8"),
        "--immutable-days",
        "7",
    ]);
    assert_fails(&out, 1, "create (or mount) it first");
    // An ext4 directory is accepted, and `target show` says it is enforced.
    let ok = d.dir.join("ok");
    std::fs::create_dir(&ok).expect("mkdir");
    let v = d.ctl_json([
        "target",
        "add",
        "e",
        "--path",
        ok.to_str().expect("utf-8"),
        "--immutable-days",
        "7",
    ]);
    assert_eq!(v["immutable_days"], 7, "{v}");
    assert_eq!(v["notes"], serde_json::json!([]), "{v}");
    let text = stdout(&d.ctl(["target", "show", "e"]));
    assert!(!text.contains("not yet enforced"), "{text}");
    assert!(text.contains("immutability"), "{text}");
}

#[test]
fn a_seal_is_extended_by_a_later_snapshot_never_shortened_and_copies_are_sealed() {
    users::require_root();
    let s = Immutable::start(1, &[]);
    assert_eq!(s.backup()["run"]["state"], "succeeded");
    let first = sealable_files(&s.repo);
    let until_of = |f: &std::path::Path| -> i64 {
        let u = sealed_until(f).unwrap_or_else(|| panic!("{} has no record", f.display()));
        u.parse::<jiff::Timestamp>().expect("RFC 3339").as_second()
    };
    let before: Vec<i64> = first.iter().map(|f| until_of(f)).collect();

    // Three days for the next snapshot: what it reuses is sealed until its end.
    s.d.ctl_json(["target", "edit", "t", "--immutable-days", "3"]);
    assert_eq!(s.backup()["run"]["state"], "succeeded");
    let snapshots_dir = s.repo.join("snapshots");
    for (f, b) in first.iter().zip(&before) {
        let after = until_of(f);
        if f.parent() == Some(snapshots_dir.as_path()) {
            assert_eq!(after, *b, "the first snapshot keeps its own end");
        } else {
            assert!(after >= b + 2 * DAY - 600, "{}: not extended", f.display());
        }
    }
    let extended: Vec<i64> = first.iter().map(|f| until_of(f)).collect();
    // One day again: nothing is shortened.
    s.d.ctl_json(["target", "edit", "t", "--immutable-days", "1"]);
    assert_eq!(s.backup()["run"]["state"], "succeeded");
    for (f, e) in first.iter().zip(&extended) {
        assert!(until_of(f) >= *e, "{}: shortened", f.display());
    }

    // A copy into an immutable target seals the copied snapshot there.
    let plain = s.d.dir.join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    s.d.ctl_json([
        "target",
        "add",
        "p",
        "--path",
        plain.to_str().expect("utf-8"),
    ]);
    s.d.ctl_json([
        "job",
        "add",
        "jc",
        "--source",
        s.src.to_str().expect("utf-8"),
        "--schedule",
        "2099-01-01",
        "--target",
        "p",
        "--target",
        "t",
    ]);
    let id = s.d.start_run("jc");
    let run = s.d.wait_run_final(id, Duration::from_secs(120));
    assert_eq!(run["run"]["state"], "succeeded", "{run}");
    let copy =
        s.d.runs(Some("jc"))
            .into_iter()
            .rfind(|r| r["kind"] == "copy")
            .expect("a copy run");
    let detail = s.d.run_show(copy["id"].as_i64().expect("id"));
    assert!(
        detail["log"].to_string().contains("sealed snapshot"),
        "{detail}"
    );
    let snap = run["run"]["snapshot"]
        .as_str()
        .expect("snapshot id")
        .to_owned();
    let copied = snapshots_dir.join(&snap);
    assert!(has_i(&copied), "the copied snapshot is not sealed");
    // The plain primary has nothing sealed.
    assert!(sealable_files(&plain).iter().all(|f| !has_i(f)));
}
