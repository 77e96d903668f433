//! Notifications to the service manager: the sd_notify protocol (one datagram of `KEY=VALUE`
//! lines to `$NOTIFY_SOCKET`, a path or an `@` abstract name), sent so that a manager that reads
//! slowly never blocks bmsd. `READY=1` and `STOPPING=1` wait up to 2 s for room in the socket's
//! queue; status updates and watchdog pings that find the queue full are dropped (the next one
//! says the same or more). See docs/architecture.md.

use sd_notify::NotifyState;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// How long a `READY=1` or `STOPPING=1` may wait for room in the manager's queue.
const MUST_ARRIVE_WAIT: Duration = Duration::from_secs(2);

/// Sends `states` as one notification; a failure is logged, never fatal.
pub fn send(states: &[NotifyState<'_>]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    send_to(&path, states);
}

fn send_to(path: &std::ffi::OsStr, states: &[NotifyState<'_>]) {
    match try_send(path, states) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            tracing::debug!("service manager's notification queue is full; dropped {states:?}");
        }
        Err(e) => tracing::warn!("cannot notify the service manager: {e}"),
    }
}

fn try_send(path: &std::ffi::OsStr, states: &[NotifyState<'_>]) -> io::Result<()> {
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    let sock = UnixDatagram::unbound()?;
    let must_arrive = states
        .iter()
        .any(|s| matches!(s, NotifyState::Ready | NotifyState::Stopping));
    if must_arrive {
        sock.set_write_timeout(Some(MUST_ARRIVE_WAIT))?;
    } else {
        sock.set_nonblocking(true)?;
    }
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(msg.as_bytes(), &addr)?
        }
        None => sock.send_to(msg.as_bytes(), path)?,
    };
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "incomplete notification",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_status_but_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        let to = path.as_os_str().to_owned();
        // Fill the queue: none of these may block, however many there are.
        let started = std::time::Instant::now();
        for i in 0..2000 {
            send_to(&to, &[NotifyState::Status(&format!("status {i}"))]);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut buf = [0u8; 256];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STATUS=status 0\n");
        // READY=1 waits for room: make some while it waits.
        let reader = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut all = Vec::new();
            rx.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            while let Ok(n) = rx.recv(&mut buf) {
                all.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if all.last().is_some_and(|m| m.contains("READY=1")) {
                    break;
                }
            }
            all
        });
        send_to(&to, &[NotifyState::Ready]);
        let got = reader.join().unwrap();
        assert!(got.iter().any(|m| m == "READY=1\n"), "{got:?}");
    }
}
