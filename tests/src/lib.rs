//! Shared helpers for the end-to-end tests: locate the real binaries, start bmsd on a private
//! state dir and socket and wait for `READY=1`, run bmsctl and parse its JSON.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Path of a binary built by this workspace (target/<profile>/NAME).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/test-xxxx -> target/debug/NAME
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// A command with the BMS_* and systemd variables of the outer environment removed.
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("BMS_")
            || k == "NOTIFY_SOCKET"
            || k.starts_with("WATCHDOG_")
            || k == "RUST_LOG"
        {
            cmd.env_remove(&k);
        }
    }
    // Prune deletes what it condemns in the same run (docs/protocol.md "Test hooks"); the
    // tests of the grace period itself remove or replace this.
    cmd.env("BMS_TEST_PRUNE_GRACE", "0");
    // bmsd's backup of its own catalog after each backup run adds `_catalog` snapshots to the
    // targets (docs/operations.md "Recovering the catalog"); tests of it set this to `on`.
    cmd.env("BMS_TEST_CATALOG_BACKUP", "off");
    cmd
}

/// Options for starting bmsd.
#[derive(Default, Clone)]
pub struct DaemonOpts {
    /// Extra arguments for bmsd.
    pub args: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Reuse this directory (to restart a daemon on the same state).
    pub dir: Option<PathBuf>,
}

/// A running bmsd with its own temp directory.
pub struct Daemon {
    pub child: Option<Child>,
    /// Root of the test's files; the state dir is `dir/state`, the socket `dir/run/bmsd.sock`.
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    pub notify: UnixDatagram,
    pub notify_path: PathBuf,
    pub stderr_path: PathBuf,
    /// The notification datagram that carried READY=1 at the last start.
    pub ready_message: String,
}

impl Daemon {
    /// Starts bmsd and waits until it sends READY=1.
    pub fn start() -> Daemon {
        Daemon::start_with(DaemonOpts::default())
    }

    pub fn start_with(opts: DaemonOpts) -> Daemon {
        let (temp, dir) = match &opts.dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("bms-e2e-")
                    .tempdir()
                    .expect("tempdir");
                let d = t.path().to_owned();
                (Some(t), d)
            }
        };
        // Let unprivileged test users reach the socket directory (the socket's own mode decides).
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir_all(dir.join("run")).expect("run dir");
        std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let notify_path = dir.join(format!("notify-{}", std::process::id()));
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).expect("bind notify socket");
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut d = Daemon {
            child: None,
            dir,
            _temp: temp,
            notify,
            notify_path,
            stderr_path: PathBuf::new(),
            ready_message: String::new(),
        };
        d.spawn(&opts);
        d
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("run/bmsd.sock")
    }

    /// Starts the bmsd process (again) and waits for READY=1.
    pub fn spawn(&mut self, opts: &DaemonOpts) {
        let n = std::fs::read_dir(&self.dir).map(|r| r.count()).unwrap_or(0);
        self.stderr_path = self.dir.join(format!("bmsd-{n}.log"));
        let log = std::fs::File::create(&self.stderr_path).expect("log file");
        let mut cmd = clean_command(bin("bmsd"));
        cmd.arg("--state-dir")
            .arg(self.state_dir())
            .arg("--socket")
            .arg(self.socket())
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .arg("--log-target")
            .arg("stderr")
            .args(&opts.args)
            .env("NOTIFY_SOCKET", &self.notify_path)
            // No bus unless a test starts one (tests/src/dbus_bus.rs): D-Bus is off, logged.
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}/no-bus", self.dir.display()),
            )
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}/no-bus", self.dir.display()),
            )
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn bmsd"));
        self.ready_message = self.wait_for_notify("READY=1", Duration::from_secs(30));
    }

    /// Waits for a notification line; panics with the daemon's log if it does not come.
    pub fn wait_for_notify(&mut self, want: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.lines().any(|l| l == want) {
                    return msg;
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "bmsd exited ({status}) before sending {want}; log:\n{}",
                        self.log()
                    );
                }
            }
        }
        panic!(
            "bmsd did not send {want} within {timeout:?}; log:\n{}",
            self.log()
        );
    }

    /// The daemon's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("daemon running")
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).expect("kill");
    }

    /// Sends SIGTERM and returns the exit status (panics after 10 s).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "bmsd did not exit within 10 s of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A bmsctl command aimed at this daemon.
    pub fn ctl_cmd(&self) -> Command {
        let mut cmd = clean_command(bin("bmsctl"));
        cmd.arg("--socket").arg(self.socket());
        cmd
    }

    /// Runs bmsctl with the given arguments.
    pub fn ctl<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ctl_cmd().args(args).output().expect("run bmsctl")
    }

    /// Runs `bmsctl --json ARGS`, asserts success, and parses stdout.
    pub fn ctl_json<I, S>(&self, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = self
            .ctl_cmd()
            .arg("--json")
            .args(args)
            .output()
            .expect("run bmsctl");
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "bmsctl printed invalid JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Asserts a command succeeded, showing its output when not.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "command failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a command exited with `code` and that its stderr mentions `needle`.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}, got {}\nstdout:\n{}\nstderr:\n{err}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(needle),
        "stderr does not mention {needle:?}:\n{err}"
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub mod alerts_util;
pub mod cli_checks;
pub mod dbus_bus;
pub mod docs;
pub mod events_util;
pub mod immutable_util;
pub mod raw;
pub mod readme;
pub mod restore_util;
pub mod tour;
pub mod users;

/// Polls `f` until it returns `Some`, panicking with `what` after `timeout`.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes a file under `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

impl Daemon {
    /// Waits for the daemon to exit on its own (after a signal) and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = child.try_wait().expect("wait") {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bmsd did not exit within {timeout:?}; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `bmsctl --json status`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        self.ctl_json(["status"])
    }
}
pub mod runner_util;
pub mod s3_util;
pub mod screenshot;
pub mod storage;
pub mod tape_util;
pub mod tls_front;

/// The audit trail as (action, object), oldest first; every entry must be by root.
pub fn audit_actions(d: &Daemon) -> Vec<(String, String)> {
    let a = d.ctl_json(["audit", "--limit", "1000"]);
    let mut out: Vec<(String, String)> = a["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["uid"], 0, "audit entry not by root: {e}");
            assert_eq!(e["user"], "root", "{e}");
            assert!(
                e["time"]
                    .as_str()
                    .unwrap()
                    .parse::<jiff::Timestamp>()
                    .is_ok(),
                "{e}"
            );
            (
                e["action"].as_str().unwrap().to_owned(),
                e["object"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse(); // oldest first
    out
}

/// A job's spec without the derived and time fields.
pub fn spec_of(job: &serde_json::Value) -> serde_json::Value {
    let mut j = job.clone();
    for k in [
        "schedule_normalized",
        "next_runs",
        "created_at",
        "updated_at",
    ] {
        j.as_object_mut().unwrap().remove(k);
    }
    j
}
