//! Authorisation by the peer's credentials (SO_PEERCRED): root, the daemon's own user and group
//! `bms-admin` are admins; group `bms` reads; everyone else is refused.

use nix::unistd::Group;

/// What a peer may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Reader,
    None,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reader => "reader",
            Role::None => "none",
        }
    }
}

pub const ADMIN_GROUP: &str = "bms-admin";
pub const READ_GROUP: &str = "bms";

/// The peer's groups: its primary gid plus the supplementary groups of its process.
fn peer_groups(gid: u32, pid: Option<i32>) -> Vec<u32> {
    let mut groups = vec![gid];
    if let Some(pid) = pid {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(line) = status.lines().find_map(|l| l.strip_prefix("Groups:")) {
                groups.extend(line.split_whitespace().filter_map(|g| g.parse::<u32>().ok()));
            }
        }
    }
    groups
}

fn gid_of(name: &str) -> Option<u32> {
    Group::from_name(name).ok().flatten().map(|g| g.gid.as_raw())
}

/// Decides the role of a peer.
pub fn role_of(uid: u32, gid: u32, pid: Option<i32>, daemon_uid: u32) -> Role {
    if uid == 0 || uid == daemon_uid {
        return Role::Admin;
    }
    let groups = peer_groups(gid, pid);
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
        assert_eq!(role_of(0, 0, None, 1000), Role::Admin);
        assert_eq!(role_of(1000, 1000, None, 1000), Role::Admin);
    }

    #[test]
    fn stranger_without_groups_is_refused() {
        assert_eq!(role_of(65534, 65534, None, 0), Role::None);
    }
}
