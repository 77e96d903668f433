//! The one rule that turns a caller's credentials into a role, for every transport (the Varlink
//! socket's peer credentials, a D-Bus sender's `GetConnectionCredentials`): root, the daemon's
//! own user and group `bms-admin` are admins; group `bms` reads; everyone else is refused
//! (docs/architecture.md, "The service layer").

use super::{Caller, Role};
use nix::unistd::Group;

pub const ADMIN_GROUP: &str = "bms-admin";
pub const READ_GROUP: &str = "bms";

/// The peer's groups: its primary gid plus its supplementary groups, taken from the socket
/// (`known`) or, failing that, from the peer process's `/proc` entry.
pub fn peer_groups(gid: u32, known: Option<Vec<u32>>, pid: Option<i32>) -> Vec<u32> {
    let mut groups = vec![gid];
    if let Some(known) = known {
        groups.extend(known);
        return groups;
    }
    if let Some(pid) = pid {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(line) = status.lines().find_map(|l| l.strip_prefix("Groups:")) {
                groups.extend(
                    line.split_whitespace()
                        .filter_map(|g| g.parse::<u32>().ok()),
                );
            }
        }
    }
    groups
}

pub fn gid_of(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Decides the role of a peer from its credentials and, when known, its supplementary groups.
/// This is the one rule for every transport (docs/architecture.md, "The service layer").
pub fn role_of(
    uid: u32,
    gid: u32,
    groups: Option<Vec<u32>>,
    pid: Option<i32>,
    daemon_uid: u32,
) -> Role {
    caller_of(uid, gid, groups, pid, daemon_uid).role
}

/// The caller a peer's credentials describe: its uid, its groups and the role they give.
pub fn caller_of(
    uid: u32,
    gid: u32,
    groups: Option<Vec<u32>>,
    pid: Option<i32>,
    daemon_uid: u32,
) -> Caller {
    let gids = peer_groups(gid, groups, pid);
    let role = role_from(uid, &gids, daemon_uid);
    Caller { uid, gids, role }
}

fn role_from(uid: u32, groups: &[u32], daemon_uid: u32) -> Role {
    if uid == 0 || uid == daemon_uid {
        return Role::Admin;
    }
    let member = |name: &str| gid_of(name).is_some_and(|g| groups.contains(&g));
    if member(ADMIN_GROUP) {
        Role::Admin
    } else if member(READ_GROUP) {
        Role::Reader
    } else {
        Role::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_own_user_are_admins() {
        assert_eq!(role_of(0, 0, None, None, 1000), Role::Admin);
        assert_eq!(role_of(1000, 1000, None, None, 1000), Role::Admin);
    }

    #[test]
    fn stranger_without_groups_is_refused() {
        assert_eq!(role_of(65534, 65534, None, None, 0), Role::None);
        assert_eq!(role_of(65534, 65534, Some(vec![]), None, 0), Role::None);
    }
}
