//! A bmsd without CAP_LINUX_IMMUTABLE (docs/operations.md "Immutability"): `target add|edit`
//! refuse immutability naming the capability, and a backup to a target that was made immutable
//! by a bmsd that had it ends with warnings saying the snapshot is not immutable. Its own test
//! binary: the capability is dropped from this test thread's bounding set, which the bmsd it
//! starts inherits.

use bms_tests::immutable_util::{has_i, sealable_files, Immutable};
use bms_tests::*;

/// CAP_LINUX_IMMUTABLE of linux/capability.h.
const CAP_LINUX_IMMUTABLE: libc::c_ulong = 9;

#[test]
fn without_the_capability_immutability_is_refused_and_a_backup_warns() {
    users::require_root();
    let mut s = Immutable::start(2, &[]);
    s.d.stop();
    // SAFETY: prctl(PR_CAPBSET_DROP) takes plain integers and only changes this thread's
    // capability bounding set; processes spawned from this thread inherit it.
    let r = unsafe {
        libc::prctl(
            libc::PR_CAPBSET_DROP,
            CAP_LINUX_IMMUTABLE,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    assert_eq!(r, 0, "prctl: {}", std::io::Error::last_os_error());
    s.d.spawn(&DaemonOpts {
        dir: Some(s.d.dir.clone()),
        ..Default::default()
    });

    let run = s.backup();
    assert_eq!(run["run"]["state"], "warning", "{run}");
    let err = run["run"]["error"].as_str().unwrap_or_default();
    assert!(err.contains("is NOT immutable"), "{err}");
    assert!(err.contains("CAP_LINUX_IMMUTABLE"), "{err}");
    assert!(run["log"].to_string().contains("NOT immutable"), "{run}");
    assert!(sealable_files(&s.repo).iter().all(|f| !has_i(f)));
    // The snapshot itself is complete.
    assert!(run["run"]["snapshot"].is_string(), "{run}");

    let out = s.d.ctl(["target", "edit", "t", "--immutable-days", "5"]);
    assert_fails(&out, 1, "CAP_LINUX_IMMUTABLE");
    let dir = s.mount.mount_point.join("other");
    std::fs::create_dir(&dir).expect("mkdir");
    let out = s.d.ctl([
        "target",
        "add",
        "o",
        "--path",
        dir.to_str().expect("utf-8"),
        "--immutable-days",
        "5",
    ]);
    assert_fails(&out, 1, "CAP_LINUX_IMMUTABLE");
    assert_eq!(
        std::fs::read_dir(&dir).expect("read").count(),
        0,
        "probe left behind"
    );
}
