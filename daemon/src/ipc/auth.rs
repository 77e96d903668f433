//! The socket's side of authorisation: the peer's credentials (SO_PEERCRED, SO_PEERGROUPS) and
//! the socket's ACL for group `bms-admin`. The rule that turns credentials into a role is the
//! service layer's (`service::roles`), the same for every transport.

pub use crate::service::roles::{caller_of, gid_of, role_of, ADMIN_GROUP, READ_GROUP};

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
    fn admin_acl_layout() {
        let acl = admin_acl(1002);
        assert_eq!(acl.len(), 4 + 5 * 8);
        assert_eq!(&acl[..4], &[2, 0, 0, 0]);
        assert_eq!(&acl[20..28], &[8, 0, 6, 0, 0xea, 3, 0, 0]);
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
