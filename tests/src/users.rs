//! Running commands as other users and groups (through setpriv) for the authorisation tests.

use std::ffi::OsStr;
use std::process::Command;

/// The uid/gid of `nobody`/`nogroup` used as the unprivileged caller.
pub const NOBODY: u32 = 65534;

/// Fails the test with a clear message when not running as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches users with setpriv and creates groups: run it as root (CI does)"
    );
}

/// Creates a group if it does not exist (`groupadd -f`) and returns its gid.
pub fn ensure_group(name: &str) -> u32 {
    let out = Command::new("groupadd").arg("-f").arg(name).output().expect("run groupadd");
    assert!(out.status.success(), "groupadd -f {name}: {}", String::from_utf8_lossy(&out.stderr));
    nix::unistd::Group::from_name(name)
        .expect("group lookup")
        .unwrap_or_else(|| panic!("group {name} missing after groupadd"))
        .gid
        .as_raw()
}

/// `setpriv --reuid=UID --regid=UID` then `groups` (none: `--clear-groups`) then `program`.
/// The BMS_*, NOTIFY_SOCKET and RUST_LOG variables are cleared as for every test command.
pub fn as_user(uid: u32, groups: &[u32], program: impl AsRef<OsStr>) -> Command {
    let mut cmd = crate::clean_command("setpriv");
    cmd.arg(format!("--reuid={uid}")).arg(format!("--regid={uid}"));
    if groups.is_empty() {
        cmd.arg("--clear-groups");
    } else {
        let list: Vec<String> = groups.iter().map(u32::to_string).collect();
        cmd.arg(format!("--groups={}", list.join(",")));
    }
    cmd.arg("--").arg(program);
    cmd
}
