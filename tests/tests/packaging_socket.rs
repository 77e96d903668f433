//! Socket activation as systemd does it (`bmsd.socket`): `systemd-socket-activate` listens on the
//! control socket and starts the real bmsd on the first connection with the socket as fd 3,
//! `LISTEN_FDS=1` and `LISTEN_PID`; bmsd serves it and leaves it in place when it stops. Sockets
//! that are not bmsd's are refused with the reason; variables meant for another process are ignored.

use bms_tests::{bin, clean_command, poll_until, stdout, Daemon, DaemonOpts};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

struct Activated {
    child: Child,
    dir: tempfile::TempDir,
    notify: UnixDatagram,
}

impl Activated {
    /// `systemd-socket-activate -l LISTEN bmsd --socket SOCKET ...`; returns once it listens.
    fn start(listen: &str) -> Activated {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        let notify_path = dir.path().join("notify");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let log = std::fs::File::create(dir.path().join("bmsd.log")).unwrap();
        let listen = dir.path().join(listen);
        let child = clean_command("systemd-socket-activate")
            .arg("-l")
            .arg(&listen)
            .arg("-E")
            .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
            .arg("-E")
            .arg("RUST_LOG=debug")
            .arg(bin("bmsd"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--socket")
            .arg(dir.path().join("run/bmsd.sock"))
            .args(["--metrics-listen", "127.0.0.1:0", "--log-target", "stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("systemd-socket-activate is needed (apt-get install systemd)");
        let a = Activated { child, dir, notify };
        poll_until(Duration::from_secs(10), "the activation socket", || {
            std::fs::symlink_metadata(&listen)
                .ok()
                .filter(|m| m.file_type().is_socket())
        });
        a
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("run/bmsd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bmsd.log")).unwrap_or_default()
    }

    fn ctl(&self, socket: &Path, args: &[&str]) -> std::process::Output {
        clean_command(bin("bmsctl"))
            .arg("--socket")
            .arg(socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        poll_until(Duration::from_secs(15), "bmsd to exit", || {
            self.child.try_wait().unwrap()
        })
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn first_client_starts_bmsd_on_the_passed_socket_which_survives_its_stop() {
    let mut a = Activated::start("run/bmsd.sock");
    // Nothing runs bmsd yet: the first connection starts it and waits in the socket's backlog.
    let out = a.ctl(&a.socket(), &["--json", "status"]);
    assert!(
        out.status.success(),
        "status through the activated socket: {}\nbmsd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(status.get("version").is_some(), "{status}");
    let mut buf = [0u8; 4096];
    let n = a
        .notify
        .recv(&mut buf)
        .expect("READY=1 from the activated bmsd");
    assert!(
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1"),
        "first notification: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        a.log()
            .contains("control socket passed by socket activation"),
        "{}",
        a.log()
    );
    // bmsd applies its socket permissions to the passed socket too.
    let mode = std::fs::metadata(a.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(a.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = a.wait_exit();
    assert!(st.success(), "bmsd exit {st}\n{}", a.log());
    // The socket belongs to the socket unit: bmsd leaves it for the next activation.
    assert!(
        std::fs::symlink_metadata(a.socket())
            .map(|m| m.file_type().is_socket())
            .unwrap_or(false),
        "bmsd removed the activated socket at stop"
    );
}

#[test]
fn a_socket_at_another_path_is_refused_with_the_fix() {
    let mut a = Activated::start("run/other.sock");
    let other = a.dir.path().join("run/other.sock");
    let _ = a.ctl(&other, &["status"]);
    let st = a.wait_exit();
    assert_eq!(st.code(), Some(1), "{}", a.log());
    let log = a.log();
    assert!(
        log.contains("other.sock") && log.contains("bmsd.sock") && log.contains("ListenStream="),
        "{log}"
    );
    assert!(!a.socket().exists(), "bmsd bound its own socket anyway");
}

#[test]
fn listen_variables_for_another_process_are_ignored() {
    let d = Daemon::start_with(DaemonOpts {
        env: vec![
            ("LISTEN_PID".into(), "1".into()),
            ("LISTEN_FDS".into(), "1".into()),
        ],
        ..Default::default()
    });
    let out = d.ctl(["status"]);
    assert!(out.status.success(), "{}", d.log());
    assert!(!d.log().contains("socket activation"), "{}", d.log());
}

/// bmsd started through `sh -c 'LISTEN_PID=$$ exec bmsd ...'` so that LISTEN_PID is its own pid.
fn bmsd_with_own_listen_pid(
    fds: &str,
    close_fd3: bool,
) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "LISTEN_PID=$$ LISTEN_FDS={fds} exec \"$0\" --state-dir \"$1\" --socket \"$2\" --metrics-listen 127.0.0.1:0 --log-target stderr{}",
        if close_fd3 { " 3<&-" } else { " 3</dev/null" }
    );
    let out = clean_command("sh")
        .arg("-c")
        .arg(script)
        .arg(bin("bmsd"))
        .arg(dir.path().join("state"))
        .arg(dir.path().join("bmsd.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, dir)
}

#[test]
fn wrong_descriptors_are_refused_with_the_reason() {
    for (fds, close, want) in [
        ("1", true, "fd 3 is not open"),
        ("1", false, "not a socket"),
        ("2", false, "single ListenStream="),
        ("x", false, "LISTEN_FDS"),
    ] {
        let (out, dir) = bmsd_with_own_listen_pid(fds, close);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "LISTEN_FDS={fds}: {err}");
        assert!(
            err.contains(want),
            "LISTEN_FDS={fds}: want {want:?} in {err}"
        );
        assert!(!dir.path().join("bmsd.sock").exists(), "bound anyway");
    }
}
