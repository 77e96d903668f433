//! Helpers for the repository storage safety tests: offline `bmsctl repo` commands, parallel
//! writers, and checks of file modes and of what another local user can read.

use crate::{bin, clean_command};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `bmsctl ARGS` (offline commands need no daemon).
pub fn bmsctl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    clean_command(bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl")
}

/// Sets this test process's umask to 022 (the common default, under which files would be
/// world-readable unless bms sets their modes itself). Child processes inherit it.
pub fn umask_022() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
}

/// A temp directory that every user may traverse (0755), so that only the modes bms sets decide
/// what another user can read below it.
pub fn open_tempdir(prefix: &str) -> tempfile::TempDir {
    let t = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    t
}

/// Every file and directory below `root` (not `root` itself) with its permission bits.
pub fn modes_below(root: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((p, m.is_dir(), m.permissions().mode() & 0o7777));
        }
    }
    out
}

/// Asserts that `root` is 0700 and that every directory below it is 0700 and every file 0600.
pub fn assert_private_tree(root: &Path) {
    let mode = std::fs::metadata(root).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "{} has mode {mode:04o}", root.display());
    let wrong: Vec<String> = modes_below(root)
        .into_iter()
        .filter(|(_, dir, m)| *m != if *dir { 0o700 } else { 0o600 })
        .map(|(p, _, m)| format!("{} {m:04o}", p.display()))
        .collect();
    assert!(wrong.is_empty(), "not private: {wrong:#?}");
}

/// Runs `grep -r NEEDLE DIR` as uid 65534 and asserts it does not find the needle.
pub fn assert_nobody_cannot_grep(dir: &Path, needle: &str) {
    let out = crate::users::as_user(crate::users::NOBODY, &[], "grep")
        .arg("-r")
        .arg("-a")
        .arg("-l")
        .arg(needle)
        .arg(dir)
        .output()
        .expect("run grep as nobody");
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(
        found.trim().is_empty() && out.status.code() != Some(0),
        "uid 65534 found {needle:?} in {}: {found}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Reads and discards the daemon's further sd_notify messages (STATUS= lines of every run) in
/// a background thread, as the service manager does: a test that runs hundreds of runs would
/// otherwise fill the notification socket's small datagram queue.
pub fn drain_notifications(d: &crate::Daemon) {
    let sock = d.notify.try_clone().expect("clone notify socket");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match sock.recv(&mut buf) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    });
}
