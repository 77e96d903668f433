//! Helpers for the scheduler and job-runner tests: loop-mounted filesystems that are always
//! unmounted, incompressible test data, tree comparison, and run polling through bmsctl.

use crate::Daemon;
use serde_json::Value;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A loop-mounted filesystem image; unmounted and removed on drop, also when a test panics.
pub struct LoopMount {
    pub mount_point: PathBuf,
    pub image: PathBuf,
    mounted: bool,
}

fn run_tool(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            "; `scripts/test --install` (as root) installs the test packages"
        } else {
            ""
        };
        panic!("cannot run {cmd:?}: {e}{hint}")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl LoopMount {
    /// Creates a sparse image of `size_mib` next to `mount_point`, makes an `fs_type` (ext4, xfs)
    /// filesystem on it and mounts it on `mount_point` (created if missing).
    pub fn new(fs_type: &str, size_mib: u64, mount_point: &Path) -> LoopMount {
        assert!(
            nix::unistd::geteuid().is_root(),
            "loop mounts need root (CI runs as root)"
        );
        assert!(
            Path::new("/dev/loop-control").exists(),
            "this test needs loop devices, and /dev/loop-control is missing: load the loop module \
             (modprobe loop) or run the tests where loop devices exist"
        );
        std::fs::create_dir_all(mount_point).expect("create mount point");
        let image = mount_point.with_extension("img");
        let f = std::fs::File::create(&image).expect("create image");
        f.set_len(size_mib << 20).expect("size image");
        drop(f);
        let mut guard = LoopMount {
            mount_point: mount_point.to_owned(),
            image: image.clone(),
            mounted: false,
        };
        let mkfs = format!("mkfs.{fs_type}");
        let mut cmd = Command::new(&mkfs);
        cmd.arg("-q").arg(&image);
        run_tool(&mut cmd);
        run_tool(
            Command::new("mount")
                .arg("-t")
                .arg(fs_type)
                .arg("-o")
                .arg("loop")
                .arg(&image)
                .arg(mount_point),
        );
        guard.mounted = true;
        guard
    }

    /// Makes the filesystem fail every further I/O like a dead NAS (XFS only).
    pub fn xfs_shutdown(&self) {
        run_tool(
            Command::new("xfs_io")
                .arg("-x")
                .arg("-c")
                .arg("shutdown")
                .arg(&self.mount_point),
        );
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(&self.mount_point)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Something still holds it open (a dying daemon): detach lazily.
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mount_point)
                    .status();
            }
        }
        let _ = std::fs::remove_file(&self.image);
    }
}

/// Fills `len` bytes with xorshift64 output.
pub fn xorshift_fill(buf: &mut [u8], seed: u64) {
    let mut s = seed | 1;
    for chunk in buf.chunks_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let b = s.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

/// Writes `files` files of `file_mib` MiB each under `dir` (spread over subdirectories), with
/// content that neither compresses nor deduplicates: an 8 MiB random block (larger than the
/// largest chunk) with a unique stamp every 64 KiB (smaller than the smallest chunk).
/// Returns the total size in bytes.
pub fn write_noise_tree(dir: &Path, files: usize, file_mib: usize, seed: u64) -> u64 {
    const BLOCK: usize = 8 << 20;
    const STAMP_EVERY: usize = 64 << 10;
    use std::io::Write;
    let mut base = vec![0u8; BLOCK];
    xorshift_fill(&mut base, seed);
    let mut block = vec![0u8; BLOCK];
    let mut counter: u64 = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    for i in 0..files {
        let sub = dir.join(format!("d{:02}", i % 8));
        std::fs::create_dir_all(&sub).expect("mkdir");
        let mut f = std::io::BufWriter::new(
            std::fs::File::create(sub.join(format!("f{i:04}.bin"))).expect("create"),
        );
        let mut left = file_mib << 20;
        while left > 0 {
            block.copy_from_slice(&base);
            for off in (0..BLOCK).step_by(STAMP_EVERY) {
                counter = counter.wrapping_add(1);
                block[off..off + 8].copy_from_slice(&counter.to_le_bytes());
            }
            let n = left.min(BLOCK);
            f.write_all(&block[..n]).expect("write noise");
            left -= n;
            total += n as u64;
        }
        f.flush().expect("flush");
    }
    total
}

/// Writes a small tree of files with distinct modes and nanosecond mtimes, and a symlink.
/// Returns the number of regular files.
pub fn write_small_tree(dir: &Path) -> u64 {
    std::fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
    let files: [(&str, &[u8], u32); 5] = [
        ("a.txt", b"alpha\n", 0o644),
        ("script.sh", b"#!/bin/sh\necho hi\n", 0o750),
        ("sub/b.dat", &[0u8, 1, 2, 3, 255, 254], 0o600),
        ("sub/deeper/c.txt", b"charlie charlie charlie\n", 0o444),
        ("empty", b"", 0o640),
    ];
    for (i, (name, data, mode)) in files.iter().enumerate() {
        let p = dir.join(name);
        std::fs::write(&p, data).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).expect("chmod");
        set_mtime(&p, 1_700_000_000 + i as i64 * 3600, 123_456_789 + i as i64);
    }
    std::os::unix::fs::symlink("a.txt", dir.join("link")).expect("symlink");
    std::fs::set_permissions(dir.join("sub"), std::fs::Permissions::from_mode(0o711))
        .expect("chmod");
    for (d, t) in [("sub/deeper", 1_690_000_000), ("sub", 1_680_000_000)] {
        set_mtime(&dir.join(d), t, 5);
    }
    files.len() as u64
}

/// Sets a path's mtime (not following symlinks) to `secs`.`nanos`.
pub fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let t = TimeSpec::new(secs, nanos);
    utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", p.display()));
}

/// Asserts that the tree at `b` equals the tree at `a`: the same names, types, contents,
/// permission bits, mtimes (to the nanosecond) and symlink targets. The roots' own metadata is
/// not compared (a restore directory is made by the restore).
pub fn assert_trees_equal(a: &Path, b: &Path) {
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }
    fn walk(a: &Path, b: &Path, rel: &Path) {
        let (la, lb) = (listing(&a.join(rel)), listing(&b.join(rel)));
        assert_eq!(la, lb, "entries of {} differ", rel.display());
        for name in la {
            let r = rel.join(&name);
            let (pa, pb) = (a.join(&r), b.join(&r));
            let (ma, mb) = (
                std::fs::symlink_metadata(&pa).expect("lstat"),
                std::fs::symlink_metadata(&pb).expect("lstat"),
            );
            let what = r.display();
            assert_eq!(ma.file_type(), mb.file_type(), "type of {what}");
            if ma.file_type().is_symlink() {
                assert_eq!(
                    std::fs::read_link(&pa).ok(),
                    std::fs::read_link(&pb).ok(),
                    "link target of {what}"
                );
            } else {
                assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of {what}");
            }
            if ma.is_file() {
                assert_eq!(ma.len(), mb.len(), "size of {what}");
                assert!(
                    std::fs::read(&pa).expect("read") == std::fs::read(&pb).expect("read"),
                    "contents of {what} differ"
                );
            }
            if ma.is_dir() {
                walk(a, b, &r);
            }
            assert_eq!(
                (ma.mtime(), ma.mtime_nsec()),
                (mb.mtime(), mb.mtime_nsec()),
                "mtime of {what}"
            );
        }
    }
    walk(a, b, Path::new(""));
}

/// Polls `f` every `every` until it returns `Some`, panicking with `what` (and `context()`) after
/// `timeout`.
pub fn poll_every<T>(
    timeout: Duration,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Waits until the wall clock has passed `t`.
pub fn wait_for_clock(t: jiff::Timestamp) {
    let limit = t
        .duration_since(jiff::Timestamp::now())
        .as_secs_f64()
        .max(0.0)
        + 5.0;
    poll_every(
        Duration::from_secs_f64(limit),
        Duration::from_millis(20),
        "the clock",
        || (jiff::Timestamp::now() > t).then_some(()),
    );
}

impl Daemon {
    /// Runs of `job` (all runs when `None`), oldest first.
    pub fn runs(&self, job: Option<&str>) -> Vec<Value> {
        let mut args = vec!["run", "list", "--limit", "1000"];
        if let Some(j) = job {
            args.extend(["--job", j]);
        }
        let mut v = self.ctl_json(args)["runs"]
            .as_array()
            .expect("runs array")
            .clone();
        v.reverse();
        v
    }

    /// `bmsctl --json run show ID`.
    pub fn run_show(&self, id: i64) -> Value {
        self.ctl_json(["run", "show", &id.to_string()])
    }

    /// Waits until run `id` is in a final state and returns its detail.
    pub fn wait_run_final(&self, id: i64, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.run_show(id);
            let state = last["run"]["state"].as_str().unwrap_or_default();
            if !matches!(state, "queued" | "running") {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "run {id} not final within {timeout:?}: {last}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `job` has at least `n` final backup runs; returns all its runs, oldest first.
    pub fn wait_final_runs(&self, job: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let runs = self.runs(Some(job));
            let done = runs
                .iter()
                .filter(|r| {
                    r["kind"] == "backup"
                        && !matches!(r["state"].as_str(), Some("queued" | "running"))
                })
                .count();
            if done >= n {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "job {job}: {done} of {n} runs final after {timeout:?}: {runs:#?}\nlog:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts `bmsctl job run NAME` and returns the new run's id.
    pub fn start_run(&self, job: &str) -> i64 {
        let r = self.ctl_json(["job", "run", job]);
        r["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("job run printed no id: {r}"))
    }

    /// Waits until run `id` is running and has read at least `min_bytes`; returns the detail.
    pub fn wait_run_progress(&self, id: i64, min_bytes: u64, timeout: Duration) -> Value {
        poll_every(timeout, Duration::from_millis(20), "run progress", || {
            let d = self.run_show(id);
            assert!(
                matches!(d["run"]["state"].as_str(), Some("queued" | "running")),
                "run {id} ended before it was seen making progress: {d}"
            );
            let read = d["progress"]["bytes_read"].as_u64().unwrap_or(0);
            (d["run"]["state"] == "running" && read >= min_bytes).then_some(d)
        })
    }

    /// Snapshots of `job` on `target` from `snapshot list --json`.
    pub fn snapshots(&self, job: &str, target: Option<&str>) -> Vec<Value> {
        let mut args = vec!["snapshot", "list", "--job", job];
        if let Some(t) = target {
            args.extend(["--target", t]);
        }
        self.ctl_json(args)["snapshots"]
            .as_array()
            .expect("snapshots array")
            .clone()
    }
}

/// Whether a process is gone (or only a zombie waiting for its reaper).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

const BLKIO: &str = "/sys/fs/cgroup/blkio";

/// The device number of the filesystem holding `p`.
pub fn device_of(p: &Path) -> u64 {
    std::fs::metadata(p).expect("stat").dev()
}

/// Limits the read rate of one process on one block device (cgroup v1 blkio, or the io
/// controller of cgroup v2); undone on drop.
pub struct ReadThrottle {
    dir: PathBuf,
    root: PathBuf,
}

impl ReadThrottle {
    pub fn new(dev: u64, bytes_per_sec: u64, pid: i32) -> ReadThrottle {
        let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
        let name = format!("bms-test-{}-{pid}", std::process::id());
        let v1 = Path::new(BLKIO);
        let v2 = Path::new("/sys/fs/cgroup");
        let (root, file, line) = if v1.join("blkio.throttle.read_bps_device").exists() {
            (
                v1.to_path_buf(),
                "blkio.throttle.read_bps_device",
                format!("{major}:{minor} {bytes_per_sec}"),
            )
        } else if std::fs::read_to_string(v2.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io"))
        {
            std::fs::write(v2.join("cgroup.subtree_control"), "+io")
                .expect("enable the io controller");
            (
                v2.to_path_buf(),
                "io.max",
                format!("{major}:{minor} rbps={bytes_per_sec}"),
            )
        } else {
            panic!("this test needs cgroup v1 blkio at {BLKIO} or the cgroup v2 io controller");
        };
        let dir = root.join(name);
        std::fs::create_dir(&dir).expect("create cgroup");
        let guard = ReadThrottle { dir, root };
        std::fs::write(guard.dir.join(file), line).expect("set read limit");
        std::fs::write(guard.dir.join("cgroup.procs"), pid.to_string())
            .expect("move the process into the cgroup");
        guard
    }
}

impl Drop for ReadThrottle {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.split_whitespace() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), p);
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Drops the page cache of every file under `dir`, so that reading them goes to the device.
pub fn evict(dir: &Path) {
    nix::unistd::sync();
    for e in std::fs::read_dir(dir).expect("evict") {
        let p = e.expect("evict").path();
        let md = std::fs::symlink_metadata(&p).expect("evict");
        if md.is_dir() {
            evict(&p);
        } else if md.is_file() {
            let f = std::fs::File::open(&p).expect("evict");
            nix::fcntl::posix_fadvise(
                &f,
                0,
                0,
                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
            )
            .expect("evict");
        }
    }
}

/// A daemon with a disk target `t` (an empty directory `dir/repo`) and a job `job` backing up a
/// small tree `dir/src` to it on a schedule that never fires during a test; `extra` are more
/// `job add` arguments (hooks, timeouts). Returns the daemon, the source and the repository.
pub fn daemon_with_job(job: &str, extra: &[&str]) -> (crate::Daemon, PathBuf, PathBuf) {
    daemon_with_job_opts(crate::DaemonOpts::default(), job, extra)
}

/// [`daemon_with_job`] for a daemon started with `opts`.
pub fn daemon_with_job_opts(
    opts: crate::DaemonOpts,
    job: &str,
    extra: &[&str],
) -> (crate::Daemon, PathBuf, PathBuf) {
    let d = crate::Daemon::start_with(opts);
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).expect("create repo dir");
    d.ctl_json([
        "target",
        "add",
        "t",
        "--path",
        repo.to_str().expect("utf-8"),
    ]);
    let mut args = vec![
        "job",
        "add",
        job,
        "--source",
        src.to_str().expect("utf-8"),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
    ];
    args.extend_from_slice(extra);
    d.ctl_json(args);
    (d, src, repo)
}
