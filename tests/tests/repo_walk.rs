//! End-to-end tests of how `bmsctl repo backup` walks its sources: entries it may not read
//! make a partial snapshot (and nothing else is lost), `--one-file-system` keeps mount points
//! empty, and several sources keep their absolute paths across incremental runs.
//!
//! These tests need root (setpriv to an unprivileged user, tmpfs mounts).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bms_tests::{bin, clean_command};

const NOBODY: u32 = 65534;

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root): setpriv and tmpfs mounts"
    );
}

fn json_of(out: &Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {what}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn ctl_ok(args: &[&OsStr]) -> serde_json::Value {
    let out = clean_command(bin("bmsctl"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run bmsctl");
    json_of(&out, &format!("bmsctl {args:?}"))
}

/// Runs bmsctl as user and group `nobody`, without supplementary groups.
fn ctl_as_nobody(args: &[&OsStr]) -> serde_json::Value {
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(bin("bmsctl"))
        .arg("--json")
        .args(args)
        .env_remove("BMS_SOCKET")
        .output()
        .expect("run setpriv (util-linux)");
    json_of(&out, &format!("bmsctl {args:?} as nobody"))
}

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

fn write(p: &Path, text: &str) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// Every regular file under `root`, relative, with its content, sorted.
fn files_under(root: &Path) -> Vec<(PathBuf, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                walk(root, &p, out);
            } else if md.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_path_buf();
                out.push((rel, fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn warnings(s: &serde_json::Value) -> Vec<String> {
    s["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn unreadable_entries_make_a_partial_snapshot_and_lose_nothing_else() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let src = tmp.path().join("src");
    write(&src.join("ok.txt"), "readable");
    write(&src.join("open/sub/deep.txt"), "deep");
    write(&src.join("locked.txt"), "no access");
    write(&src.join("secret/inner.txt"), "hidden");
    fs::set_permissions(src.join("locked.txt"), fs::Permissions::from_mode(0o000)).unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let repo = tmp.path().join("repo");
    fs::create_dir(&repo).unwrap();
    nix::unistd::chown(
        &repo,
        Some(nix::unistd::Uid::from_raw(NOBODY)),
        Some(nix::unistd::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    ctl_as_nobody(os!["repo", "init", repo]);

    let s = ctl_as_nobody(os!["repo", "backup", repo, src]);
    assert_eq!(s["partial"], true, "{s}");
    let w = warnings(&s);
    assert_eq!(s["warnings_count"], 2, "{w:?}");
    assert!(
        w.iter()
            .any(|m| m.contains("locked.txt") && m.contains("ermission denied")),
        "{w:?}"
    );
    assert!(
        w.iter().any(|m| m.contains("/secret")
            && m.contains("cannot list directory")
            && m.contains("ermission denied")),
        "{w:?}"
    );
    let list = ctl_ok(os!["repo", "snapshots", repo]);
    assert_eq!(list["snapshots"][0]["partial"], true, "{list}");

    // Everything readable is in the snapshot; the unlistable directory is kept, empty.
    let target = tmp.path().join("restore");
    ctl_ok(os!["repo", "restore", repo, "latest", "--to", target]);
    let back = restored(&target, &src);
    assert_eq!(
        files_under(&back),
        vec![
            (PathBuf::from("ok.txt"), "readable".to_string()),
            (PathBuf::from("open/sub/deep.txt"), "deep".to_string()),
        ]
    );
    let secret = fs::symlink_metadata(back.join("secret")).unwrap();
    assert!(secret.is_dir());
    assert_eq!(secret.mode() & 0o7777, 0o000);
    assert_eq!(fs::read_dir(back.join("secret")).unwrap().count(), 0);
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");

    // Once readable, the next backup takes the files in and is complete.
    fs::set_permissions(src.join("locked.txt"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o755)).unwrap();
    let s2 = ctl_as_nobody(os!["repo", "backup", repo, src]);
    assert_eq!(s2["partial"], false, "{s2}");
    assert_eq!(s2["files_new"], 2, "{s2}");
    assert_eq!(s2["files_unmodified"], 2, "{s2}");
}

/// Unmounts on drop, so that a failing test leaves no mount behind.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn one_file_system_keeps_mount_points_empty() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), "on the source filesystem");
    let mnt = src.join("mnt");
    fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m,mode=0750"),
    )
    .expect("mount tmpfs");
    let _guard = Mount(mnt.clone());
    write(&mnt.join("inner/b.txt"), "on the mounted filesystem");
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);

    let s = ctl_ok(os!["repo", "backup", repo, src, "--one-file-system"]);
    assert_eq!(s["partial"], false, "{s}");
    let one = tmp.path().join("one");
    ctl_ok(os!["repo", "restore", repo, "latest", "--to", one]);
    let back = restored(&one, &src);
    assert_eq!(
        files_under(&back),
        vec![(PathBuf::from("a.txt"), "on the source filesystem".into())]
    );
    let m = fs::symlink_metadata(back.join("mnt")).unwrap();
    assert!(m.is_dir(), "the mount point itself is kept");
    assert_eq!(m.mode() & 0o7777, 0o750, "with the mounted root's mode");

    let s = ctl_ok(os!["repo", "backup", repo, src]);
    assert_eq!(s["files_new"], 1, "{s}");
    let all = tmp.path().join("all");
    ctl_ok(os!["repo", "restore", repo, "latest", "--to", all]);
    assert_eq!(
        files_under(&restored(&all, &src)),
        vec![
            (PathBuf::from("a.txt"), "on the source filesystem".into()),
            (
                PathBuf::from("mnt/inner/b.txt"),
                "on the mounted filesystem".into()
            ),
        ]
    );
}

#[test]
fn several_sources_keep_their_paths_across_incremental_runs() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("x/a");
    let b = tmp.path().join("y/b/deeper");
    let single = tmp.path().join("x/single.txt");
    write(&a.join("one.txt"), "one");
    write(&a.join("sub/two.txt"), "two");
    write(&b.join("three.txt"), "three");
    write(&single, "single");
    write(&tmp.path().join("x/not-a-source.txt"), "left out");
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);

    let s1 = ctl_ok(os!["repo", "backup", repo, a, b, single]);
    assert_eq!(s1["files_new"], 4, "{s1}");
    let s2 = ctl_ok(os!["repo", "backup", repo, a, b, single]);
    assert_eq!(s2["files_new"], 0, "{s2}");
    assert_eq!(s2["files_unmodified"], 4, "{s2}");
    assert_eq!(s2["bytes_added"], 0, "{s2}");
    assert_eq!(s2["parent"], s1["snapshot_id"], "{s2}");

    write(&a.join("sub/two.txt"), "two, edited");
    let s3 = ctl_ok(os!["repo", "backup", repo, a, b, single]);
    assert_eq!(s3["files_changed"], 1, "{s3}");
    assert_eq!(s3["files_unmodified"], 3, "{s3}");

    let target = tmp.path().join("restore");
    ctl_ok(os!["repo", "restore", repo, "latest", "--to", target]);
    let root = restored(&target, tmp.path());
    assert_eq!(
        files_under(&root),
        vec![
            (PathBuf::from("x/a/one.txt"), "one".into()),
            (PathBuf::from("x/a/sub/two.txt"), "two, edited".into()),
            (PathBuf::from("x/single.txt"), "single".into()),
            (PathBuf::from("y/b/deeper/three.txt"), "three".into()),
        ]
    );
}

#[test]
fn an_interrupted_offline_backup_stops_cleanly() {
    use bms_tests::runner_util::{device_of, evict, write_noise_tree, LoopMount, ReadThrottle};
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    // The source sits on its own small filesystem, so that its reads can be slowed down.
    let src = tmp.path().join("src");
    let _mount = LoopMount::new("ext4", 96, &src);
    let total = write_noise_tree(&src, 4, 8, 5);
    evict(&src);
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);

    let child = clean_command(bin("bmsctl"))
        .args(os!["repo", "backup", repo, src])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // 32 MiB at 1 MiB/s: half a minute unless interrupted.
    let _throttle = ReadThrottle::new(device_of(&src), 1 << 20, child.id() as i32);
    let locks = repo.join("locks");
    bms_tests::poll_until(
        std::time::Duration::from_secs(20),
        "the backup to hold its lock",
        || (fs::read_dir(&locks).unwrap().count() > 0).then_some(()),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cancelled: no snapshot was written"), "{err}");
    assert_eq!(fs::read_dir(&locks).unwrap().count(), 0, "lock released");
    let list = ctl_ok(os!["repo", "snapshots", repo]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 0, "{list}");
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");

    // Without the brake, the next backup completes.
    drop(_throttle);
    let s = ctl_ok(os!["repo", "backup", repo, src]);
    assert_eq!(s["partial"], false, "{s}");
    assert_eq!(s["bytes_total"], total, "{s}");
}
