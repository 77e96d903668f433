//! `bmsctl doctor`: is this host set up right? One line per check, ✓ or ✗ with a fix
//! (docs/operations.md, "bmsctl doctor"). The client checks what it sees itself (the daemon
//! answering, the caller's role, the socket, the groups, the clock); bmsd's `Doctor` method adds
//! its side. Exit 0 when every check passes, 1 otherwise.

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use bms_proto::api::{Doctor, DoctorCheck, Status, StatusReply};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const READ_GROUP: &str = "bms";
const ADMIN_GROUP: &str = "bms-admin";

pub fn doctor(cli: &Cli) -> CliResult {
    let socket = cli
        .socket
        .clone()
        .unwrap_or_else(bms_proto::paths::client_socket);
    let mut checks = Vec::new();
    let status = call(cli, &Status {});
    checks.extend(daemon_and_role(&status, &socket));
    checks.push(socket_check(&socket));
    checks.push(groups_check());
    checks.push(clock_check());
    // The daemon's own checks whenever it answers and lets the caller in, even when its
    // status failed (a damaged catalog can fail the status and still be reported).
    if !matches!(
        status,
        Err(CliError::Unreachable(_) | CliError::Denied(_) | CliError::Daemon { code: 4, .. })
    ) {
        match call(cli, &Doctor {}) {
            Ok(reply) => checks.extend(reply.checks),
            Err(e) => checks.push(DoctorCheck::fail(
                "daemon checks",
                format!("bmsd did not run its checks: {e}"),
                "see bmsd's log (journalctl -u bmsd); an older bmsd lacks the Doctor method: upgrade it",
            )),
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if cli.json {
        crate::output::json(&serde_json::json!({ "ok": failed == 0, "checks": checks }))?;
    } else {
        for c in &checks {
            println!("{} {}: {}", if c.ok { "✓" } else { "✗" }, c.name, c.message);
            if let (false, Some(h)) = (c.ok, &c.hint) {
                println!("    fix: {h}");
            }
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::failure(format!(
            "{failed} of {} checks failed",
            checks.len()
        )))
    }
}

fn daemon_and_role(status: &Result<StatusReply, CliError>, socket: &Path) -> Vec<DoctorCheck> {
    let uid = nix::unistd::getuid().as_raw();
    match status {
        Ok(s) => {
            let mut out = vec![if s.version == bms_proto::VERSION {
                DoctorCheck::pass(
                    "daemon",
                    format!("bmsd {} (pid {}) answers on {}", s.version, s.pid, s.socket),
                )
            } else {
                DoctorCheck::fail(
                    "daemon",
                    format!(
                        "bmsd {} answers, but this bmsctl is {}",
                        s.version,
                        bms_proto::VERSION
                    ),
                    "install bmsd and bmsctl of the same version",
                )
            }];
            out.push(match s.role.as_str() {
                "admin" => DoctorCheck::pass("role", format!("uid {uid} is admin: may read and change")),
                r => DoctorCheck::pass(
                    "role",
                    format!("uid {uid} is {r}: may read; changes need root or group {ADMIN_GROUP}"),
                ),
            });
            out
        }
        Err(CliError::Unreachable(m)) => vec![DoctorCheck::fail(
            "daemon",
            m.clone(),
            "start bmsd (systemctl start bmsd, or ./target/release/bmsd), or name its socket with --socket or BMS_SOCKET",
        )],
        Err(e @ (CliError::Denied(_) | CliError::Daemon { code: 4, .. })) => vec![
            DoctorCheck::pass("daemon", format!("bmsd answers on {}", socket.display())),
            DoctorCheck::fail(
                "role",
                e.to_string(),
                format!(
                    "add the user to group {READ_GROUP} (read) or {ADMIN_GROUP} (change): usermod -aG {READ_GROUP} USER, then log in again"
                ),
            ),
        ],
        Err(e) => vec![DoctorCheck::fail(
            "daemon",
            e.to_string(),
            "see bmsd's log (journalctl -u bmsd)",
        )],
    }
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The socket: mode 0660 as bmsd makes it; a root daemon's belongs to group bms.
fn socket_check(socket: &Path) -> DoctorCheck {
    let meta = match std::fs::metadata(socket) {
        Ok(m) => m,
        Err(e) => {
            return DoctorCheck::fail(
                "socket",
                format!("cannot stat {}: {e}", socket.display()),
                "start bmsd, or name its socket with --socket or BMS_SOCKET",
            )
        }
    };
    let mode = meta.mode() & 0o7777;
    let owner = format!("{}:{}", user_name(meta.uid()), group_name(meta.gid()));
    let text = format!("{}: mode {mode:04o}, owner {owner}", socket.display());
    if mode != 0o660 {
        return DoctorCheck::fail(
            "socket",
            text,
            "bmsd makes its socket 0660 (owner and group only): restart bmsd (systemctl restart bmsd) and do not chmod the socket; let users in through groups bms and bms-admin",
        );
    }
    let bms_gid = nix::unistd::Group::from_name(READ_GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw());
    if meta.uid() == 0 && bms_gid != Some(meta.gid()) {
        return DoctorCheck::fail(
            "socket",
            text,
            format!(
                "a system bmsd gives its socket to group {READ_GROUP}: create the group (groupadd -r {READ_GROUP}) and restart bmsd"
            ),
        );
    }
    DoctorCheck::pass("socket", text)
}

fn groups_check() -> DoctorCheck {
    let missing: Vec<&str> = [READ_GROUP, ADMIN_GROUP]
        .into_iter()
        .filter(|g| !matches!(nix::unistd::Group::from_name(g), Ok(Some(_))))
        .collect();
    if missing.is_empty() {
        DoctorCheck::pass("groups", format!("{READ_GROUP} and {ADMIN_GROUP} exist"))
    } else {
        let add: Vec<String> = missing.iter().map(|g| format!("groupadd -r {g}")).collect();
        DoctorCheck::fail(
            "groups",
            format!("missing: {}", missing.join(", ")),
            format!(
                "create them ({}; the packages do it with sysusers.d), then restart bmsd so that its socket gets them",
                add.join("; ")
            ),
        )
    }
}

/// Whether the kernel's clock is synchronised to a time source (adjtimex: not TIME_ERROR and
/// STA_UNSYNC clear), as `timedatectl` reports it.
fn clock_check() -> DoctorCheck {
    // SAFETY: `timex` is plain data; zeroed it is a valid argument with `modes` 0, which only
    // reads the kernel's clock state into it.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    if state < 0 {
        return DoctorCheck::fail(
            "clock",
            format!(
                "cannot read the clock's state: {}",
                std::io::Error::last_os_error()
            ),
            "check the time synchronisation with timedatectl",
        );
    }
    if state == libc::TIME_ERROR || status & libc::STA_UNSYNC != 0 {
        DoctorCheck::fail(
            "clock",
            "not synchronised to a time source: schedules and retention go by this clock",
            "enable time synchronisation: timedatectl set-ntp true (systemd-timesyncd), or chrony",
        )
    } else {
        DoctorCheck::pass("clock", "synchronised to a time source")
    }
}
