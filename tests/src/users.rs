//! Running commands as other users and groups (through setpriv) for the authorisation tests.

use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

/// The uid/gid of `nobody`/`nogroup` used as the unprivileged caller.
pub const NOBODY: u32 = 65534;

/// Fails the test with a clear message when not running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches users with setpriv and creates groups: run it as root (CI does)"
    );
}

/// Creates a group if it does not exist (`groupadd -f`) and returns its gid. Retries for a few
/// seconds because a parallel test may hold the lock on /etc/group.
pub fn ensure_group(name: &str) -> u32 {
    let lookup = || {
        nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw())
    };
    let mut last_err = String::new();
    crate::poll_until(
        Duration::from_secs(10),
        &format!("group {name} ({last_err})"),
        || {
            if let Some(gid) = lookup() {
                return Some(gid);
            }
            let out = Command::new("groupadd")
                .arg("-f")
                .arg(name)
                .output()
                .expect("run groupadd");
            if !out.status.success() {
                last_err = String::from_utf8_lossy(&out.stderr).into_owned();
                eprintln!("groupadd -f {name}: {last_err}");
            }
            lookup()
        },
    )
}

/// `setpriv --reuid=UID --regid=UID` then `groups` (none: `--clear-groups`) then `program`.
/// The BMS_*, NOTIFY_SOCKET and RUST_LOG variables are cleared as for every test command.
pub fn as_user(uid: u32, groups: &[u32], program: impl AsRef<OsStr>) -> Command {
    let mut cmd = crate::clean_command("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--").arg(program);
    cmd
}
