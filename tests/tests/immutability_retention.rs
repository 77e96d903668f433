//! Forget and prune against an immutable disk target on a loop-mounted ext4, through the real
//! binaries (docs/retention.md, docs/operations.md "Immutability"): before expiry forget by id is
//! refused with the date, forget by policy and prune keep the sealed snapshot and its data;
//! after expiry on the trusted clock the same forget succeeds and the files are gone. The same
//! holds for an encrypted immutable target, whose sealed objects are also immutable files.

use bms_tests::immutable_util::{has_i, sealable_files, sealed_until, Immutable};
use bms_tests::*;
use std::time::Duration;

const DAY: i64 = 86_400;

fn snapshot_file(s: &Immutable, id: &str) -> std::path::PathBuf {
    s.repo.join("snapshots").join(id)
}

#[test]
fn sealed_snapshots_survive_forget_and_prune_until_their_seal_expires() {
    sealed_snapshots_survive_until_expiry(false);
}

#[test]
fn an_encrypted_immutable_target_seals_and_keeps_its_snapshots_until_expiry() {
    sealed_snapshots_survive_until_expiry(true);
}

fn sealed_snapshots_survive_until_expiry(encrypted: bool) {
    users::require_root();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("t.key");
    let key_arg = key.to_str().unwrap();
    let target: &[&str] = if encrypted {
        &["--encrypt", "--key-file", key_arg]
    } else {
        &[]
    };
    let s = Immutable::start_target(1, &["--keep-last", "1"], target);
    assert_eq!(s.backup()["run"]["state"], "succeeded");
    std::fs::write(s.src.join("new.txt"), b"a second snapshot\n").unwrap();
    assert_eq!(s.backup()["run"]["state"], "succeeded");
    let snaps = s.d.snapshots("j", Some("t"));
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let mut ids: Vec<(String, String)> = snaps
        .iter()
        .map(|v| {
            (
                v["time"].as_str().unwrap_or_default().to_owned(),
                v["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    ids.sort();
    let oldest = ids[0].1.clone();
    let file = snapshot_file(&s, &oldest);
    assert!(file.exists() && has_i(&file), "{}", file.display());
    // Every pack, index and snapshot file is sealed, with its record.
    let sealed = sealable_files(&s.repo);
    assert!(sealed.len() >= 4, "{sealed:?}");
    for f in &sealed {
        assert!(has_i(f), "{} is not immutable", f.display());
        assert!(sealed_until(f).is_some(), "{} has no record", f.display());
    }
    if encrypted {
        let config = std::fs::read_to_string(s.repo.join("config")).unwrap();
        assert!(
            config.contains("xchacha20poly1305"),
            "not an encrypted repository: {config}"
        );
    }

    // Forget by id is refused with the date; nothing changes.
    let out = s.d.ctl(["snapshot", "forget", &oldest]);
    assert_fails(&out, 1, "immutable until");
    assert!(file.exists());
    assert_eq!(s.d.snapshots("j", Some("t")).len(), 2);

    // Forget by policy keeps it and says why; prune keeps its data.
    let out =
        s.d.ctl(["snapshot", "forget", "--job", "j", "--apply-policy"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("immutable until"), "{}", stdout(&out));
    assert!(file.exists());
    let sealed_before = sealable_files(&s.repo);
    let prune = s.d.ctl_json(["prune", "--target", "t"]);
    let run = prune["runs"][0]["id"].as_i64().expect("a prune run");
    let done = s.d.wait_run_final(run, Duration::from_secs(120));
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    for f in &sealed_before {
        assert!(f.exists(), "prune removed sealed {}", f.display());
    }

    // Two days later (wall and boot clocks both moved: time really passed), the seals are lifted
    // and the same forget goes through.
    s.set_clock(2 * DAY, 2 * DAY);
    s.wait_checks_at(2 * DAY);
    assert!(
        !has_i(&file),
        "the seal of {} was not lifted",
        file.display()
    );
    let out = s.d.ctl(["snapshot", "forget", &oldest]);
    assert_ok(&out);
    assert!(!file.exists());
    assert_eq!(s.d.snapshots("j", Some("t")).len(), 1);

    // What is left reads back whole with the target's key.
    let queued = s.d.ctl_json(["verify", "--job", "j", "--read-data", "100"]);
    for r in queued["runs"].as_array().expect("runs") {
        let id = r["id"].as_i64().expect("id");
        let done = s.d.wait_run_final(id, Duration::from_secs(120));
        assert_eq!(done["run"]["state"], "succeeded", "{done}");
    }
}
