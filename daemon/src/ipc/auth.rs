//! Authorisation by the peer's credentials (SO_PEERCRED): root, the daemon's own user and group
//! `bms-admin` are admins; group `bms` reads; everyone else is refused.

use nix::unistd::Group;

pub use crate::service::{Caller, Role};

pub const ADMIN_GROUP: &str = "bms-admin";
pub const READ_GROUP: &str = "bms";

/// `SO_PEERGROUPS` (Linux 4.13): 59 in asm-generic and on x86, arm and mips; 0x3d on sparc.
#[cfg(not(target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 59;
#[cfg(target_arch = "sparc64")]
const SO_PEERGROUPS: libc::c_int = 0x3d;

/// The supplementary groups of a Unix socket's peer as the kernel recorded them when it
/// connected; `None` when the kernel cannot tell (then `/proc` is asked).
pub fn socket_peer_groups(fd: std::os::fd::BorrowedFd<'_>) -> Option<Vec<u32>> {
    use std::os::fd::AsRawFd;
    const GID: usize = std::mem::size_of::<libc::gid_t>();
    let mut n: usize = 32;
    loop {
        let mut buf: Vec<libc::gid_t> = vec![0; n];
        let mut len = libc::socklen_t::try_from(n * GID).ok()?;
        // SAFETY: `buf` has room for `len` bytes and outlives the call; the kernel writes at most
        // `len` bytes and stores the length it needs (or wrote) in `len`.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let got = len as usize / GID;
        if rc == 0 {
            buf.truncate(got.min(n));
            return Some(buf);
        }
        let retry = std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && got > n
            && got <= 65536;
        if !retry {
            return None;
        }
        n = got;
    }
}

/// The peer's groups: its primary gid plus its supplementary groups, taken from the socket
/// (`known`) or, failing that, from the peer process's `/proc` entry.
fn peer_groups(gid: u32, known: Option<Vec<u32>>, pid: Option<i32>) -> Vec<u32> {
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

fn gid_of(name: &str) -> Option<u32> {
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

/// Lets group `bms-admin` use the socket too, with a POSIX ACL entry `group:bms-admin:rw-`: the
/// socket belongs to group `bms` (mode 0660), and an admin need not also be in `bms`.
/// Returns false when the group does not exist.
pub fn grant_admin_group(socket: &std::path::Path) -> Result<bool, String> {
    let Some(gid) = gid_of(ADMIN_GROUP) else {
        return Ok(false);
    };
    xattr::set(socket, "system.posix_acl_access", &admin_acl(gid)).map_err(|e| {
        format!(
            "cannot give group {ADMIN_GROUP} access to {} with an ACL ({e}); its members must also be in group {READ_GROUP}",
            socket.display()
        )
    })?;
    Ok(true)
}

/// The ACL `user::rw-,group::rw-,group:GID:rw-,mask::rw-,other::---` in the kernel's xattr format
/// (little endian: version 2, then tag/perm/id entries sorted by tag).
fn admin_acl(gid: u32) -> Vec<u8> {
    const UNDEFINED_ID: u32 = u32::MAX;
    const RW: u16 = 6;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, RW, UNDEFINED_ID), // ACL_USER_OBJ
        (0x04, RW, UNDEFINED_ID), // ACL_GROUP_OBJ
        (0x08, RW, gid),          // ACL_GROUP
        (0x10, RW, UNDEFINED_ID), // ACL_MASK
        (0x20, 0, UNDEFINED_ID),  // ACL_OTHER
    ];
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
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
    fn admin_acl_layout() {
        let acl = admin_acl(1002);
        assert_eq!(acl.len(), 4 + 5 * 8);
        assert_eq!(&acl[..4], &[2, 0, 0, 0]);
        assert_eq!(&acl[20..28], &[8, 0, 6, 0, 0xea, 3, 0, 0]);
    }

    #[test]
    fn stranger_without_groups_is_refused() {
        assert_eq!(role_of(65534, 65534, None, None, 0), Role::None);
        assert_eq!(role_of(65534, 65534, Some(vec![]), None, 0), Role::None);
    }

    #[test]
    fn socket_peer_groups_are_the_connecting_process_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut got = socket_peer_groups(std::os::fd::AsFd::as_fd(&a)).unwrap();
        let mut want: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
}
