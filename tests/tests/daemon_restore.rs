//! Restores through bmsd stop when nobody wants them any more: a client that goes away stops its
//! restore, and SIGTERM stops a restore at once and tells the client why. The restores are
//! slowed down deterministically by throttling the daemon's reads from the repository's loop
//! device (a blkio/io cgroup), so they are surely under way when the test acts.
//! A restored file gets its name only when complete, so the restore is seen under way by the
//! files bmsd holds open below the restore directory.
//! These tests need root (loop mounts, cgroups).

use bms_tests::restore_util::{temp_leftovers, writing_below};
use bms_tests::runner_util::*;
use bms_tests::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const NEVER: &str = "2099-01-01 00:00:00";

/// (regular files, allocated bytes) under `dir`.
fn restored(dir: &Path) -> (u64, u64) {
    let mut out = (0, 0);
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                let (f, b) = restored(&p);
                out = (out.0 + f, out.1 + b);
            } else if md.is_file() {
                out = (out.0 + 1, out.1 + md.blocks() * 512);
            }
        }
    }
    out
}

struct Setup {
    d: Daemon,
    repo: PathBuf,
    snapshot: String,
    total: u64,
    _mount: LoopMount,
}

/// A daemon with a 64 MiB snapshot of incompressible data on a loop-mounted target, its
/// repository evicted from the page cache.
fn setup() -> Setup {
    let d = Daemon::start();
    let src = d.dir.join("src");
    let total = write_noise_tree(&src, 4, 16, 11);
    let repo = d.dir.join("slow");
    let mount = LoopMount::new("ext4", 256, &repo);
    d.ctl_json(["target", "add", "slow", "--path", repo.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "big",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "slow",
    ]);
    let id = d.start_run("big");
    let detail = d.wait_run_final(id, Duration::from_secs(120));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    let snapshot = detail["run"]["snapshot"].as_str().unwrap().to_owned();
    evict(&repo);
    Setup {
        d,
        repo,
        snapshot,
        total,
        _mount: mount,
    }
}

#[test]
fn a_client_that_goes_away_stops_its_restore() {
    let s = setup();
    // 64 MiB at 2 MiB/s would take half a minute.
    let _throttle = ReadThrottle::new(device_of(&s.repo), 2 << 20, s.d.pid());
    let to = s.d.dir.join("restored");
    let mut client =
        s.d.ctl_cmd()
            .args(["restore", &s.snapshot, "--to", to.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    poll_until(Duration::from_secs(30), "the restore to start", || {
        writing_below(s.d.pid(), &to).then_some(())
    });
    client.kill().unwrap();
    client.wait().unwrap();
    poll_until(
        Duration::from_secs(20),
        "bmsd to notice the client left",
        || {
            s.d.log()
                .contains("restore stopped: the client went away")
                .then_some(())
        },
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s
        .d
        .log()
        .contains("cancelled; what was restored so far stays there")
    {
        assert!(
            Instant::now() < deadline,
            "the restore did not stop within 20 s; log:\n{}",
            s.d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The outcome is audited although the client is gone.
    poll_until(
        Duration::from_secs(20),
        "the cancel in the audit trail",
        || {
            let a = s.d.ctl_json(["audit"]);
            a["entries"][0]["action"]
                .as_str()
                .is_some_and(|x| x == "restore.cancelled")
                .then_some(())
        },
    );
    // Files cut short by the cancel are not left behind, under their names or temporary ones.
    poll_until(
        Duration::from_secs(20),
        "the restore to close its files",
        || (!writing_below(s.d.pid(), &to)).then_some(()),
    );
    assert_eq!(temp_leftovers(&to), Vec::<PathBuf>::new());
    let (_, bytes) = restored(&to);
    assert!(
        bytes < s.total / 2,
        "the restore went on: {bytes} of {} bytes written",
        s.total
    );
    // The daemon is fine and the next restore works.
    drop(_throttle);
    let again = s.d.dir.join("again");
    assert_ok(&s.d.ctl(["restore", &s.snapshot, "--to", again.to_str().unwrap()]));
    assert_eq!(restored(&again).1, s.total);
}

#[test]
fn sigterm_stops_a_restore_at_once_and_tells_the_client() {
    let mut s = setup();
    let _throttle = ReadThrottle::new(device_of(&s.repo), 4 << 20, s.d.pid());
    let to = s.d.dir.join("restored");
    let client =
        s.d.ctl_cmd()
            .args(["restore", &s.snapshot, "--to", to.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    poll_until(Duration::from_secs(30), "the restore to start", || {
        writing_below(s.d.pid(), &to).then_some(())
    });
    let asked = Instant::now();
    s.d.signal(nix::sys::signal::Signal::SIGTERM);
    let status = s.d.wait_exit(Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}\n{}", s.d.log());
    // Waiting for the restore would take 16 s; the shutdown grace for requests is 4 s.
    assert!(
        took < Duration::from_secs(3),
        "bmsd took {took:?} to stop\n{}",
        s.d.log()
    );
    let out = client.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bmsd is shutting down") && err.contains("run the restore again"),
        "{err}"
    );
    assert!(restored(&to).1 < s.total);
    assert_eq!(temp_leftovers(&to), Vec::<PathBuf>::new());
}
