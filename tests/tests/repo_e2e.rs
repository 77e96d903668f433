//! End-to-end tests of the offline repository commands (`bmsctl repo ...`), driving the real
//! binary: every file type round-trips, incremental runs add little, kill -9 and ENOSPC leave a
//! clean reusable repository, bit rot is found and named.
//!
//! These tests need root (device nodes, ownership, loop mounts) and fail loudly without it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bms_tests::{bin, clean_command};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (CI runs as root): device nodes, chown and loop mounts"
    );
}

fn ctl(args: &[&OsStr]) -> Output {
    clean_command(bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl")
}

fn ctl_ok(args: &[&OsStr]) -> serde_json::Value {
    let mut a: Vec<&OsStr> = vec![OsStr::new("--json")];
    a.extend_from_slice(args);
    let out = ctl(&a);
    assert!(
        out.status.success(),
        "bmsctl {:?} failed: {}\n{}",
        args,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "bad JSON from {args:?}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

macro_rules! os {
    ($($x:expr),* $(,)?) => { &[$(AsRef::<OsStr>::as_ref(&$x)),*] };
}

/// xorshift bytes, deterministic per seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut seed = (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) << 1) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let cn = CString::new(name).unwrap();
    // SAFETY: valid NUL-terminated strings and a live slice for the duration of the call.
    let r = unsafe {
        libc::lsetxattr(
            cp.as_ptr(),
            cn.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr {}: {}",
        p.display(),
        std::io::Error::last_os_error()
    );
}

fn xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cp = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 65536];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::llistxattr(cp.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let cn = CString::new(name).unwrap();
        let mut val = vec![0u8; 65536];
        // SAFETY: as above.
        let m = unsafe {
            libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len())
        };
        assert!(m >= 0);
        val.truncate(m as usize);
        out.push((name.to_vec(), val));
    }
    out.sort();
    out
}

/// A tree with every file type the engine handles.
fn make_everything(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("dir/random.bin"), noise(3 << 20, 1)).unwrap();
    fs::write(root.join("dir/text.txt"), "hello\n".repeat(10000)).unwrap();
    fs::write(root.join(OsStr::from_bytes(b"new\nline")), b"newline name").unwrap();
    fs::write(
        root.join(OsStr::from_bytes(b"bad-\xff\xfe-utf8")),
        b"invalid utf-8 name",
    )
    .unwrap();
    // 2 GiB sparse file with a little data.
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(2 << 30).unwrap();
    sparse.write_all_at(b"start", 0).unwrap();
    sparse.write_all_at(&noise(100_000, 5), 1 << 30).unwrap();
    sparse.write_all_at(b"end", (2 << 30) - 3).unwrap();
    drop(sparse);
    // Hard links, symlinks, xattrs, special files, ownership and modes.
    fs::hard_link(root.join("dir/text.txt"), root.join("dir/sub/hardlink")).unwrap();
    std::os::unix::fs::symlink("../text.txt", root.join("dir/sub/rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    set_xattr(&root.join("dir/text.txt"), "user.comment", b"some value");
    set_xattr(&root.join("dir"), "user.bin", &[0, 1, 2, 255]);
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("chardev"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &root.join("blockdev"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(7, 99),
    )
    .unwrap();
    fs::set_permissions(
        root.join("dir/random.bin"),
        fs::Permissions::from_mode(0o4750),
    )
    .unwrap();
    fs::set_permissions(root.join("dir/sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    std::os::unix::fs::lchown(root.join("dir/random.bin"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("dangling"), Some(42), Some(43)).unwrap();
    // Distinct, nanosecond mtimes (set last, directories after their content).
    for (i, p) in [
        "empty",
        "dir/random.bin",
        "dir/text.txt",
        "sparse",
        "fifo",
        "dir/sub",
        "dir",
        "",
    ]
    .iter()
    .enumerate()
    {
        let t =
            nix::sys::time::TimeSpec::new(1_600_000_000 + i as i64 * 1000, 123_456_789 + i as i64);
        nix::sys::stat::utimensat(
            nix::fcntl::AT_FDCWD,
            &root.join(p),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
    }
}

/// Compares source and restored trees: types, contents, modes, owners, mtimes, symlink
/// targets, devices, xattrs, hard-link structure, and sparse files staying sparse.
fn compare(a: &Path, b: &Path, links: &mut HashMap<u64, u64>) {
    let (ma, mb) = (
        fs::symlink_metadata(a).unwrap(),
        fs::symlink_metadata(b).unwrap(),
    );
    let what = b.display();
    assert_eq!(ma.mode(), mb.mode(), "mode/type of {what}");
    assert_eq!(
        (ma.uid(), ma.gid()),
        (mb.uid(), mb.gid()),
        "owner of {what}"
    );
    assert_eq!(
        (ma.mtime(), ma.mtime_nsec()),
        (mb.mtime(), mb.mtime_nsec()),
        "mtime of {what}"
    );
    assert_eq!(xattrs(a), xattrs(b), "xattrs of {what}");
    let ft = ma.file_type();
    if ft.is_file() {
        assert_eq!(ma.size(), mb.size(), "size of {what}");
        if ma.nlink() > 1 {
            let prev = links.insert(ma.ino(), mb.ino());
            assert!(
                prev.is_none() || prev == Some(mb.ino()),
                "hard links of {what}"
            );
            assert_eq!(ma.nlink(), mb.nlink(), "link count of {what}");
        }
        assert!(
            mb.blocks() <= ma.blocks() + 64,
            "{what} is no longer sparse: {} blocks vs {}",
            mb.blocks(),
            ma.blocks()
        );
        let (fa, fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
        let mut off = 0u64;
        let mut ba = vec![0u8; 1 << 20];
        let mut bb = vec![0u8; 1 << 20];
        while off < ma.size() {
            // Skip compare of long hole stretches quickly: compare 1 MiB every 64 MiB in big files.
            let n = fa.read_at(&mut ba, off).unwrap();
            let m = fb.read_at(&mut bb[..n], off).unwrap();
            assert_eq!(n, m);
            assert!(ba[..n] == bb[..n], "content of {what} differs at {off}");
            off += if ma.size() > (256 << 20) && ma.blocks() * 512 < ma.size() {
                64 << 20
            } else {
                n as u64
            };
        }
    } else if ft.is_symlink() {
        assert_eq!(
            fs::read_link(a).unwrap(),
            fs::read_link(b).unwrap(),
            "target of {what}"
        );
    } else if ft.is_dir() {
        let names = |p: &Path| {
            let mut v: Vec<_> = fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            v.sort();
            v
        };
        let na = names(a);
        assert_eq!(na, names(b), "entries of {what}");
        for n in na {
            compare(&a.join(&n), &b.join(&n), links);
        }
    } else {
        assert_eq!(ma.rdev(), mb.rdev(), "device of {what}");
    }
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

#[test]
fn every_file_type_round_trips() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_everything(&src);
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);
    let s = ctl_ok(os![
        "repo", "backup", repo, src, "--job", "e2e", "--tag", "first"
    ]);
    assert_eq!(s["partial"], false, "{s}");
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    let target = tmp.path().join("restore");
    let r = ctl_ok(os!["repo", "restore", repo, &id[..8], "--to", target]);
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r}");
    compare(&src, &restored(&target, &src), &mut HashMap::new());

    // ls shows the odd names; verify --read-data is clean.
    let ls = ctl_ok(os!["repo", "ls", repo, "latest", src, "--recursive"]);
    let paths: Vec<&str> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("/new\nline")), "{paths:?}");
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");

    // Dry run writes nothing; restoring again with --overwrite never skips everything.
    let dry = tmp.path().join("dry");
    ctl_ok(os![
        "repo",
        "restore",
        repo,
        "latest",
        "--to",
        dry,
        "--dry-run"
    ]);
    assert!(!dry.exists());
    let again = ctl_ok(os!["repo", "restore", repo, "latest", "--to", target]);
    assert_eq!(again["files"], 0, "{again}");
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

#[test]
fn incremental_backups_add_only_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in 0..10 {
        fs::create_dir_all(src.join(format!("d{d}"))).unwrap();
        for f in 0..20 {
            fs::write(
                src.join(format!("d{d}/f{f}")),
                noise(100_000 + f * 1000, (d * 100 + f) as u64),
            )
            .unwrap();
        }
    }
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);
    ctl_ok(os!["repo", "backup", repo, src]);
    let size1 = dir_size(&repo);
    let s2 = ctl_ok(os!["repo", "backup", repo, src]);
    assert_eq!(
        s2["bytes_read"], 0,
        "unchanged files must not be read: {s2}"
    );
    assert_eq!(s2["files_unmodified"], 200);
    let size2 = dir_size(&repo);
    assert!(
        size2 - size1 < size1 / 100,
        "unchanged backup grew the repository by {} of {size1}",
        size2 - size1
    );
    // Change 1% of the files (2 of 200).
    fs::write(src.join("d3/f4"), noise(104_000, 999)).unwrap();
    fs::write(src.join("d7/f9"), noise(109_000, 998)).unwrap();
    let s3 = ctl_ok(os!["repo", "backup", repo, src]);
    assert_eq!(s3["files_changed"], 2, "{s3}");
    let grown = dir_size(&repo) - size2;
    assert!(
        (213_000..400_000).contains(&grown),
        "changing 213 kB grew the repository by {grown}"
    );
}

/// kill -9 at seeded random points of backups: the repository always verifies, and the next
/// backup succeeds and reuses what was written.
#[test]
fn kill_dash_nine_leaves_a_clean_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..24 {
        fs::create_dir_all(src.join(format!("d{}", i % 4))).unwrap();
        fs::write(
            src.join(format!("d{}/f{i}", i % 4)),
            noise(1 << 20, i as u64 + 7),
        )
        .unwrap();
    }
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo, "--pack-size", "1M"]);
    let mut seed: u64 = 0x5eed_1234;
    let mut completed = 0;
    let mut snapshots = 0;
    let mut interrupted = 0;
    for round in 0..5 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(5 + seed % 120);
        let mut child = clean_command(bin("bmsctl"))
            .args(os!["repo", "backup", repo, src])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
        assert_eq!(v["ok"], true, "round {round} (killed after {delay:?}): {v}");
        // A run killed after its snapshot was committed (while releasing its lock or printing)
        // leaves that snapshot, complete; one killed before leaves none. verify above checked
        // that every snapshot present has all its data.
        let now = ctl_ok(os!["repo", "snapshots", repo])["snapshots"]
            .as_array()
            .unwrap()
            .len();
        assert!(
            now == snapshots || now == snapshots + 1,
            "round {round}: {now} snapshots after {snapshots}"
        );
        if status.success() {
            assert_eq!(
                now,
                snapshots + 1,
                "round {round}: a finished run saved nothing"
            );
        } else if now == snapshots {
            interrupted += 1;
        }
        snapshots = now;
    }
    assert!(
        interrupted > 0,
        "no round was killed before its snapshot ({completed} completed): the kill delays are too long for this machine"
    );
    // What the killed and completed runs left: packs, and snapshots whose data is complete.
    let packs_left: usize = fs::read_dir(repo.join("packs"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert!(
        packs_left > 0,
        "no run got as far as a pack ({completed} completed): the kill delays are too short"
    );
    let s = ctl_ok(os!["repo", "backup", repo, src]);
    assert_eq!(s["partial"], false);
    let new = s["chunks_new"].as_u64().unwrap();
    let reused = s["chunks_total"].as_u64().unwrap() - new;
    if snapshots > 0 {
        // An unchanged source over a complete snapshot stores nothing new.
        assert_eq!(new, 0, "a completed snapshot's data was not reused: {s}");
    } else {
        // Packs made durable by killed runs are indexed again and their chunks reused.
        assert!(
            reused > 0,
            "nothing of the killed runs' {packs_left} packs was reused: {s}"
        );
    }
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    let target = tmp.path().join("restore");
    ctl_ok(os!["repo", "restore", repo, "latest", "--to", target]);
    compare(&src, &restored(&target, &src), &mut HashMap::new());
}

/// Unmounts and detaches the loop device on drop.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn enospc_fails_clearly_and_leaves_reusable_data() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    assert!(Command::new("truncate")
        .args(os!["-s", "64M", img])
        .status()
        .unwrap()
        .success());
    let mk = Command::new("mkfs.ext4")
        .args(os!["-q", "-F", img])
        .output()
        .expect("mkfs.ext4 (e2fsprogs) is needed");
    assert!(
        mk.status.success(),
        "mkfs.ext4: {}",
        String::from_utf8_lossy(&mk.stderr)
    );
    let m = Command::new("mount")
        .args(os!["-o", "loop", img, mnt])
        .output()
        .unwrap();
    assert!(
        m.status.success(),
        "mount -o loop: {}",
        String::from_utf8_lossy(&m.stderr)
    );
    let _guard = Mount(mnt.clone());

    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("f{i}")), noise(10 << 20, 100 + i)).unwrap();
    }
    let repo = mnt.join("repo");
    ctl_ok(os!["repo", "init", repo, "--pack-size", "1M"]);
    // Ballast that the "administrator" removes to free space after the failure.
    fs::write(mnt.join("ballast"), vec![1u8; 20 << 20]).unwrap();
    let out = ctl(os!["repo", "backup", repo, src]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "backup of 100 MiB into 64 MiB must fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no space left on device"),
        "unclear error: {err}"
    );
    let snaps = ctl_ok(os!["repo", "snapshots", repo]);
    assert_eq!(
        snaps["snapshots"].as_array().unwrap().len(),
        0,
        "a failed run must not leave a snapshot"
    );
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
    // After freeing space (and with less to back up) the next run fits and reuses the data
    // already written (f0 is read first).
    fs::remove_file(mnt.join("ballast")).unwrap();
    for i in 1..10 {
        fs::remove_file(src.join(format!("f{i}"))).unwrap();
    }
    let s = ctl_ok(os!["repo", "backup", repo, src]);
    let reused = s["chunks_total"].as_u64().unwrap() - s["chunks_new"].as_u64().unwrap();
    assert!(
        reused > 0,
        "the data written before ENOSPC was not reused: {s}"
    );
    let v = ctl_ok(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn bit_rot_is_found_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("victim.bin"), noise(3 << 20, 77)).unwrap();
    let repo = tmp.path().join("repo");
    ctl_ok(os!["repo", "init", repo]);
    let s = ctl_ok(os!["repo", "backup", repo, src]);
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    // Flip a byte in the middle of the (only) pack: it lands in the file's data.
    let mut packs = Vec::new();
    for sub in fs::read_dir(repo.join("packs")).unwrap() {
        for e in fs::read_dir(sub.unwrap().path()).unwrap() {
            packs.push(e.unwrap().path());
        }
    }
    packs.sort_by_key(|p| fs::metadata(p).unwrap().len());
    let pack = packs.last().unwrap();
    let mut data = fs::read(pack).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x10;
    fs::write(pack, &data).unwrap();
    let out = ctl(os!["repo", "verify", repo, "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id), "snapshot not named: {text}");
    assert!(text.contains("victim.bin"), "file not named: {text}");
    assert!(
        text.contains(pack.file_name().unwrap().to_str().unwrap()),
        "pack not named: {text}"
    );
}
