//! Helpers for the immutability tests: a daemon with a test clock (docs/operations.md
//! "Immutability", `BMS_TEST_CLOCK`) and an immutable disk target on a loop-mounted ext4, and
//! checks of the files' attributes with `lsattr`.

use crate::runner_util::{write_small_tree, LoopMount};
use crate::{Daemon, DaemonOpts};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A daemon whose clock a test shifts, a job `j` backing up `src` to target `t`, an immutable
/// disk target on its own ext4 filesystem.
pub struct Immutable {
    pub d: Daemon,
    pub clock: PathBuf,
    pub repo: PathBuf,
    pub src: PathBuf,
    pub mount: LoopMount,
    _clock_dir: tempfile::TempDir,
}

impl Immutable {
    /// Starts it with target `t` immutable for `days`; `job_args` are more `job add` arguments.
    pub fn start(days: u32, job_args: &[&str]) -> Immutable {
        Immutable::start_target(days, job_args, &[])
    }

    /// [`Immutable::start`] with more `target add` arguments (`--encrypt`, …).
    pub fn start_target(days: u32, job_args: &[&str], target_args: &[&str]) -> Immutable {
        let clock_dir = tempfile::tempdir().expect("tempdir");
        let clock = clock_dir.path().join("clock");
        std::fs::write(&clock, "0 0").expect("write clock file");
        let d = Daemon::start_with(DaemonOpts {
            env: vec![("BMS_TEST_CLOCK".into(), clock.display().to_string())],
            ..Default::default()
        });
        let mount = LoopMount::new("ext4", 64, &d.dir.join("mnt"));
        let repo = mount.mount_point.join("repo");
        std::fs::create_dir(&repo).expect("create repo dir");
        let src = d.dir.join("src");
        write_small_tree(&src);
        let days = days.to_string();
        let mut add = vec![
            "target",
            "add",
            "t",
            "--path",
            repo.to_str().expect("utf-8"),
            "--immutable-days",
            &days,
        ];
        add.extend_from_slice(target_args);
        d.ctl_json(add);
        let mut args = vec![
            "job",
            "add",
            "j",
            "--source",
            src.to_str().expect("utf-8"),
            "--schedule",
            "2099-01-01",
            "--target",
            "t",
        ];
        args.extend_from_slice(job_args);
        d.ctl_json(args);
        Immutable {
            d,
            clock,
            repo,
            src,
            mount,
            _clock_dir: clock_dir,
        }
    }

    /// Shifts bmsd's wall clock and boot clock by these many seconds (from the real ones).
    pub fn set_clock(&self, wall: i64, boot: i64) {
        std::fs::write(&self.clock, format!("{wall} {boot}")).expect("write clock file");
    }

    /// The wall time bmsd recorded at its latest clock check (`clock.json` in its state dir).
    pub fn recorded_wall(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.d.state_dir().join("clock.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["wall"].as_i64()
    }

    /// Waits until bmsd has run two full seal checks on a clock shifted by at least `wall`
    /// seconds (a check records the clock first and then expires seals: the second record
    /// proves the first check finished).
    pub fn wait_checks_at(&self, wall: i64) {
        let min = jiff::Timestamp::now().as_second() + wall - 5;
        let first = crate::poll_until(
            std::time::Duration::from_secs(30),
            "a seal check on the shifted clock",
            || self.recorded_wall().filter(|w| *w >= min),
        );
        crate::poll_until(
            std::time::Duration::from_secs(30),
            "a second seal check",
            || self.recorded_wall().filter(|w| *w > first),
        );
    }

    /// Runs job `j` and returns its final run detail.
    pub fn backup(&self) -> serde_json::Value {
        let id = self.d.start_run("j");
        self.d
            .wait_run_final(id, std::time::Duration::from_secs(120))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // Whatever a test left sealed: the image is removed with the mount.
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.repo)
            .status();
    }
}

/// Every file a seal may cover: below `packs/`, `index/` and `snapshots/` of `repo`.
pub fn sealable_files(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = ["packs", "index", "snapshots"]
        .iter()
        .map(|d| repo.join(d))
        .collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Whether `lsattr` shows the immutable attribute `i` on `path`.
pub fn has_i(path: &Path) -> bool {
    let out = Command::new("lsattr")
        .arg("-d")
        .arg(path)
        .output()
        .expect("run lsattr");
    assert!(
        out.status.success(),
        "lsattr {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let flags = text.split_whitespace().next().unwrap_or_default();
    flags.contains('i')
}

/// The seal record of `path` (`getfattr`), if any.
pub fn sealed_until(path: &Path) -> Option<String> {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", "user.bms.sealed_until"])
        .arg(path)
        .output()
        .expect("run getfattr");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
