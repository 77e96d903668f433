//! Socket activation: the control socket handed over by systemd (`bmsd.socket`), with the
//! semantics of `sd_listen_fds(3)`: `LISTEN_PID` must name this process, `LISTEN_FDS` counts the
//! descriptors passed from fd 3 on, and both variables are removed so children do not see them.
//! bmsd takes exactly one descriptor, fd 3, and uses it only when it is a listening Unix stream
//! socket bound to the configured socket path; otherwise it refuses to start with the reason
//! (docs/operations.md, "Socket activation"). Without `LISTEN_FDS` bmsd binds its own socket.

use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, SockaddrLike, SockaddrStorage};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// What the `LISTEN_*` variables say, before any descriptor is looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Passed {
    /// No socket activation (no `LISTEN_FDS`, or `LISTEN_PID` names another process).
    None,
    /// One descriptor, fd 3.
    One,
}

/// Interprets `LISTEN_PID` and `LISTEN_FDS` for the process `pid`, like `sd_listen_fds`.
pub fn parse(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<Passed, String> {
    let Some(fds) = listen_fds else {
        return Ok(Passed::None);
    };
    let Some(for_pid) = listen_pid else {
        return Ok(Passed::None);
    };
    let for_pid: u32 = for_pid.trim().parse().map_err(|_| {
        format!("socket activation: LISTEN_PID={for_pid:?} is not a process id; check bmsd.socket and the service manager")
    })?;
    if for_pid != pid {
        // Meant for another process (the variables leaked through a parent): not ours.
        return Ok(Passed::None);
    }
    let n: u32 = fds.trim().parse().map_err(|_| {
        format!("socket activation: LISTEN_FDS={fds:?} is not a number; check bmsd.socket")
    })?;
    match n {
        0 => Ok(Passed::None),
        1 => Ok(Passed::One),
        n => Err(format!(
            "socket activation passed {n} sockets; bmsd serves one control socket: give bmsd.socket a single ListenStream= line"
        )),
    }
}

/// Checks that `fd` is a listening Unix stream socket bound to `path`.
pub fn check(fd: BorrowedFd<'_>, path: &Path) -> Result<(), String> {
    let fd_no = fd.as_raw_fd();
    let not_socket = |e: nix::Error| {
        format!("socket activation: fd {fd_no} is not a socket ({e}); check bmsd.socket (ListenStream=)")
    };
    let kind = getsockopt(&fd, sockopt::SockType).map_err(not_socket)?;
    let addr: SockaddrStorage = getsockname(fd_no).map_err(not_socket)?;
    let Some(unix) = addr.as_unix_addr() else {
        return Err(format!(
            "socket activation: fd {fd_no} is a {:?} socket, not a Unix socket; bmsd.socket must have ListenStream={}",
            addr.family(),
            path.display()
        ));
    };
    if kind != SockType::Stream {
        return Err(format!(
            "socket activation: fd {fd_no} is a {kind:?} socket, not a stream socket; use ListenStream={} in bmsd.socket",
            path.display()
        ));
    }
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(not_socket)? {
        return Err(format!(
            "socket activation: fd {fd_no} is not listening; bmsd.socket must not use Accept=yes"
        ));
    }
    match unix.path() {
        Some(bound) if bound == path => Ok(()),
        Some(bound) => Err(format!(
            "socket activation passed a socket bound to {} but bmsd's socket is {}; make ListenStream= in bmsd.socket and `socket` in bmsd.toml (or --socket) the same path",
            bound.display(),
            path.display()
        )),
        None => Err(format!(
            "socket activation: fd {fd_no} is an abstract or unnamed Unix socket; bmsd.socket must have ListenStream={}",
            path.display()
        )),
    }
}

/// Takes the control socket systemd passed, if any, and removes the `LISTEN_*` variables.
/// Call before any other thread starts (the environment is changed).
pub fn take(path: &Path) -> Result<Option<UnixListener>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if parse(pid.as_deref(), fds.as_deref(), std::process::id())? == Passed::None {
        return Ok(None);
    }
    // Is fd 3 open at all? F_GETFD fails with EBADF when it is not.
    // SAFETY: the borrow lives only for this call; fcntl on a closed descriptor just fails.
    let probe = unsafe { BorrowedFd::borrow_raw(LISTEN_FDS_START) };
    nix::fcntl::fcntl(probe, nix::fcntl::FcntlArg::F_GETFD).map_err(|e| {
        format!("socket activation: LISTEN_FDS=1 but fd 3 is not open ({e}); start bmsd through bmsd.socket or without LISTEN_FDS")
    })?;
    // SAFETY: fd 3 is open (checked above) and was passed to this process by the service manager
    // for it to own (LISTEN_PID names this process); nothing else in bmsd uses fd 3.
    let owned = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    check(owned.as_fd(), path)?;
    // Like sd_listen_fds(3): the descriptor is not inherited by hooks and other children.
    nix::fcntl::fcntl(
        owned.as_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| format!("socket activation: cannot set close-on-exec on fd 3: {e}"))?;
    let listener = UnixListener::from(owned);
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("socket activation: cannot make fd 3 non-blocking: {e}"))?;
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixDatagram, UnixStream};

    #[test]
    fn parse_follows_sd_listen_fds() {
        assert_eq!(parse(None, None, 7), Ok(Passed::None));
        assert_eq!(parse(Some("7"), None, 7), Ok(Passed::None));
        assert_eq!(parse(None, Some("1"), 7), Ok(Passed::None));
        // For another process: ignored, as sd_listen_fds does.
        assert_eq!(parse(Some("8"), Some("1"), 7), Ok(Passed::None));
        assert_eq!(parse(Some("7"), Some("0"), 7), Ok(Passed::None));
        assert_eq!(parse(Some("7"), Some("1"), 7), Ok(Passed::One));
        let e = parse(Some("7"), Some("2"), 7).unwrap_err();
        assert!(
            e.contains("2 sockets") && e.contains("ListenStream="),
            "{e}"
        );
        let e = parse(Some("x"), Some("1"), 7).unwrap_err();
        assert!(e.contains("LISTEN_PID"), "{e}");
        let e = parse(Some("7"), Some("one"), 7).unwrap_err();
        assert!(e.contains("LISTEN_FDS"), "{e}");
    }

    #[test]
    fn check_accepts_a_listening_unix_stream_socket_at_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bmsd.sock");
        let l = UnixListener::bind(&path).unwrap();
        check(l.as_fd(), &path).unwrap();
    }

    #[test]
    fn check_refuses_another_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.sock");
        let l = UnixListener::bind(&path).unwrap();
        let e = check(l.as_fd(), &dir.path().join("bmsd.sock")).unwrap_err();
        assert!(e.contains("other.sock") && e.contains("same path"), "{e}");
    }

    #[test]
    fn check_refuses_datagram_tcp_unbound_and_non_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bmsd.sock");
        let d = UnixDatagram::bind(&path).unwrap();
        let e = check(d.as_fd(), &path).unwrap_err();
        assert!(e.contains("not a stream socket"), "{e}");
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let e = check(t.as_fd(), &path).unwrap_err();
        assert!(e.contains("not a Unix socket"), "{e}");
        let (a, _b) = UnixStream::pair().unwrap();
        let e = check(a.as_fd(), &path).unwrap_err();
        assert!(e.contains("not listening") || e.contains("unnamed"), "{e}");
        let f = std::fs::File::open("/dev/null").unwrap();
        let e = check(f.as_fd(), &path).unwrap_err();
        assert!(e.contains("not a socket"), "{e}");
    }
}
