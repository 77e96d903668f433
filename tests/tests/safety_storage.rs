//! Repositories, the state dir and the catalog are private to their owner: files 0600,
//! directories 0700 whatever the umask, offline and in bmsd, so that another local user
//! (uid 65534) can neither read backed-up content from the packs nor list snapshots. And a
//! damaged snapshot file is listed as damaged, not silently left out.
//! See docs/repository-format.md "Permissions".

use bms_tests::runner_util::write_small_tree;
use bms_tests::storage::*;
use bms_tests::users::{as_user, require_root, NOBODY};
use bms_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";

/// A root-only source file whose content is a unique marker; returns (source dir, marker).
fn secret_source(dir: &Path) -> (std::path::PathBuf, String) {
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let marker = format!(
        "TOPSECRET-{}-{}",
        std::process::id(),
        dir.display().to_string().len()
    );
    let f = write_file(&src, "secret.txt", &format!("{marker}\n"));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    (src, marker)
}

fn as_nobody_ctl(args: &[&str]) -> std::process::Output {
    as_user(NOBODY, &[], bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl as nobody")
}

#[test]
fn offline_repository_is_private_whatever_the_umask() {
    require_root();
    umask_022();
    let t = open_tempdir("bms-private-");
    let (src, marker) = secret_source(t.path());
    let repo = t.path().join("repo");
    let r = repo.to_str().unwrap();
    assert_ok(&bmsctl(["repo", "init", r]));
    assert_ok(&bmsctl(["repo", "backup", r, src.to_str().unwrap()]));
    assert_ok(&bmsctl([
        "repo",
        "backup",
        r,
        src.to_str().unwrap(),
        "--force",
    ]));
    assert_private_tree(&repo);
    assert_nobody_cannot_grep(&repo, &marker);
    // The marker is in the repository (small blobs are stored as they are): root finds it.
    let out = std::process::Command::new("grep")
        .args(["-r", "-a", "-l", &marker])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the test's premise: root finds the marker"
    );
    for args in [
        vec!["repo", "snapshots", r],
        vec!["repo", "ls", r, "latest"],
    ] {
        let out = as_nobody_ctl(&args);
        assert_fails(&out, 4, "Permission denied");
        assert!(
            stderr(&out).contains("run as a user that may access this path"),
            "{}",
            stderr(&out)
        );
        assert!(!stdout(&out).contains("secret"), "{}", stdout(&out));
    }
}

#[test]
fn init_restricts_an_existing_open_directory() {
    require_root();
    umask_022();
    let t = open_tempdir("bms-private-");
    let repo = t.path().join("shared");
    std::fs::create_dir(&repo).unwrap();
    std::fs::set_permissions(&repo, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = bmsctl(["repo", "init", repo.to_str().unwrap()]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("from mode 0777 to 0700"),
        "init does not say it restricted the directory: {}",
        stdout(&out)
    );
    assert_private_tree(&repo);
    // --json reports the same note.
    let repo2 = t.path().join("shared2");
    std::fs::create_dir(&repo2).unwrap();
    std::fs::set_permissions(&repo2, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = bmsctl(["--json", "repo", "init", repo2.to_str().unwrap()]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["notes"][0].as_str().unwrap().contains("to 0700"), "{v}");
    assert_private_tree(&repo2);
}

#[test]
fn daemon_state_dir_catalog_and_targets_are_private() {
    require_root();
    umask_022();
    let d = Daemon::start();
    let (src, marker) = secret_source(&d.dir);
    // The default target (created by bmsd under its state dir) and a copy target in an empty
    // directory that everyone may read (bmsd restricts it when it creates the repository).
    let other = d.dir.join("targets/t2");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ctl_json(["target", "add", "t2", "--path", other.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "secret",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "local",
        "--target",
        "t2",
    ]);
    let id = d.start_run("secret");
    let r = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(r["run"]["state"], "succeeded", "{r}\n{}", d.log());
    assert_eq!(d.snapshots("secret", Some("t2")).len(), 1);
    let state = d.state_dir();
    assert_private_tree(&state);
    for f in ["catalog.db", "catalog.db-wal", "catalog.db-shm"] {
        let m = std::fs::metadata(state.join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(m, 0o600, "{f}");
    }
    assert_private_tree(&other);
    assert_nobody_cannot_grep(&state, &marker);
    assert_nobody_cannot_grep(&other, &marker);
}

#[test]
fn daemon_restricts_an_open_state_dir() {
    require_root();
    umask_022();
    let dir = open_tempdir("bms-state-");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A catalog left world-readable by an older bmsd.
    std::fs::File::create(state.join("catalog.db")).unwrap();
    std::fs::set_permissions(
        state.join("catalog.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let d = Daemon::start_with(DaemonOpts {
        dir: Some(dir.path().to_owned()),
        ..Default::default()
    });
    assert!(d.log().contains("restricted"), "{}", d.log());
    assert_private_tree(&state);
}

#[test]
fn repo_snapshots_lists_a_damaged_snapshot_and_fails() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let src = t.path().join("src");
    write_small_tree(&src);
    let r = repo.to_str().unwrap();
    assert_ok(&bmsctl(["repo", "init", r]));
    assert_ok(&bmsctl(["repo", "backup", r, src.to_str().unwrap()]));
    assert_ok(&bmsctl([
        "repo",
        "backup",
        r,
        src.to_str().unwrap(),
        "--force",
    ]));
    let mut names: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let bad = &names[0];
    let p = repo.join("snapshots").join(bad);
    let mut data = std::fs::read(&p).unwrap();
    data[10] ^= 0x01;
    std::fs::write(&p, &data).unwrap();

    let out = bmsctl(["repo", "snapshots", r]);
    assert_fails(&out, 1, "damaged");
    let text = stdout(&out);
    assert!(text.contains(&bad[..16]), "{text}");
    assert!(text.contains("does not match its name"), "{text}");
    assert!(text.contains("1 snapshot(s)"), "{text}");

    let out = bmsctl(["--json", "repo", "snapshots", r]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["damaged"][0]["id"], bad.as_str(), "{v}");
    assert!(
        v["damaged"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not match its name"),
        "{v}"
    );
    let err: serde_json::Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["error"], "failure", "{err}");
}
