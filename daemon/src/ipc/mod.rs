//! The Varlink server on the control socket: framing, limits, and one task per connection. It
//! is an adapter of the service layer (docs/architecture.md, "The service layer"): `dispatch`
//! decodes each call, hands it to [`Service`] and encodes what comes back.

pub mod auth;
mod dispatch;

use crate::runner::RunnerRef;
use crate::service::{Caller, Role, Service};
use bms_proto::varlink::{self, Reply, MAX_MESSAGE};
use bms_proto::{ApiError, ErrorKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// A message must arrive whole within this time of its first byte, however the client paces it;
/// otherwise the connection is dropped (a client dripping a byte a second cannot hold a slot).
const PARTIAL_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Connection slots only admins may take, so that readers cannot lock them out.
const ADMIN_RESERVE: usize = 4;
/// Connections one non-admin user may hold at once.
const PER_USER: usize = 8;

/// Accepts connections until `cancel` fires. At most `max_connections` are served at once, the
/// last few only for admins, and at most a few per non-admin user; a connection over a limit gets
/// a `Busy` error and is closed.
pub async fn serve(
    listener: UnixListener,
    runner: RunnerRef,
    max_connections: u32,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let shared = runner.shared.clone();
    let service = Service::new(runner);
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    let per_user: Arc<Mutex<HashMap<u32, usize>>> = Arc::default();
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("accept on control socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let peer = match stream.peer_cred() {
            Ok(c) => auth::caller_of(
                c.uid(),
                c.gid(),
                auth::socket_peer_groups(std::os::fd::AsFd::as_fd(&stream)),
                c.pid(),
                shared.daemon_uid,
            ),
            Err(e) => {
                warn!("cannot read peer credentials: {e}");
                continue;
            }
        };
        let admin = peer.role == Role::Admin;
        let reserve_hit =
            !admin && slots.available_permits() <= ADMIN_RESERVE.min(max_connections as usize / 2);
        let user_slot = if admin {
            Some(None)
        } else {
            UserSlot::take(&per_user, peer.uid).map(Some)
        };
        match (reserve_hit, user_slot, slots.clone().try_acquire_owned()) {
            (false, Some(user_slot), Ok(permit)) => {
                tracker.spawn(connection(
                    stream,
                    peer,
                    service.clone(),
                    cancel.clone(),
                    (permit, user_slot),
                ));
            }
            (_, None, _) => {
                let msg = format!(
                    "uid {} already holds the most connections one user may have ({PER_USER}); \
                     close one (another bmsctl or varlinkctl still running?) and try again",
                    peer.uid
                );
                tracker.spawn(refuse_busy(stream, msg));
            }
            _ => {
                let msg = format!(
                    "bmsd is serving its maximum of {max_connections} connections{}; try again shortly",
                    if admin {
                        String::new()
                    } else {
                        format!(" ({} of them kept for administrators)", ADMIN_RESERVE.min(max_connections as usize / 2))
                    }
                );
                tracker.spawn(refuse_busy(stream, msg));
            }
        }
    }
}

/// One of a non-admin user's connections; gives the place back when dropped.
struct UserSlot {
    counts: Arc<Mutex<HashMap<u32, usize>>>,
    uid: u32,
}

impl UserSlot {
    fn take(counts: &Arc<Mutex<HashMap<u32, usize>>>, uid: u32) -> Option<UserSlot> {
        let mut c = counts.lock().ok()?;
        let n = c.entry(uid).or_insert(0);
        if *n >= PER_USER {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            counts: counts.clone(),
            uid,
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counts.lock() {
            if let Some(n) = c.get_mut(&self.uid) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.remove(&self.uid);
                }
            }
        }
    }
}

/// How long a refused connection is kept open to swallow the call its client may be writing.
const BUSY_LINGER: Duration = Duration::from_secs(2);

async fn refuse_busy(mut stream: UnixStream, message: String) {
    let err = ApiError::new(ErrorKind::Busy, message);
    if send(
        &mut stream,
        &Reply::error(err.kind.wire_name(), err.wire_parameters()),
    )
    .await
    .is_err()
    {
        return;
    }
    let _ = stream.shutdown().await;
    // A client usually writes its call before reading. Closing at once would fail that write with
    // EPIPE and the client would never see Busy; so read and discard (at most one message's worth)
    // until the client closes or a moment passes.
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut total = 0;
        while total <= MAX_MESSAGE {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(BUSY_LINGER, drain).await;
}

async fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let bytes = varlink::encode(reply).map_err(std::io::Error::other)?;
    stream.write_all(&bytes).await
}

async fn connection(
    mut stream: UnixStream,
    peer: Caller,
    service: Service,
    cancel: CancellationToken,
    _slots: (OwnedSemaphorePermit, Option<UserSlot>),
) {
    debug!(
        uid = peer.uid,
        role = peer.role.as_str(),
        "client connected"
    );
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // When the first byte of the message now in `buf` arrived.
    let mut partial_since: Option<Instant> = None;
    loop {
        while let Some(msg) = varlink::take_message(&mut buf) {
            partial_since = None;
            match dispatch::handle(&msg, &peer, &service).await {
                dispatch::Outcome::None => {}
                dispatch::Outcome::One(reply) => {
                    if send(&mut stream, &reply).await.is_err() {
                        return;
                    }
                    if peer.role == Role::None {
                        // A refused caller gets its answer and nothing more.
                        return;
                    }
                }
                dispatch::Outcome::Stream(mut rx) => loop {
                    // Also watch the client: one that hangs up ends the stream (dropping `rx`
                    // stops the work behind it, e.g. a restore), even when no reply is due.
                    tokio::select! {
                        reply = rx.recv() => match reply {
                            Some(reply) => {
                                if send(&mut stream, &reply).await.is_err() {
                                    return;
                                }
                            }
                            None => break,
                        },
                        read = stream.read(&mut chunk) => match read {
                            Ok(0) | Err(_) => {
                                debug!(uid = peer.uid, "client left during a stream");
                                return;
                            }
                            // Calls sent ahead are answered after the stream.
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        },
                    }
                },
            }
        }
        if buf.len() > MAX_MESSAGE {
            warn!(
                uid = peer.uid,
                "dropping connection: message larger than {MAX_MESSAGE} bytes"
            );
            let _ = send(
                &mut stream,
                &dispatch::protocol_error(format!(
                    "message larger than {MAX_MESSAGE} bytes; connection closed"
                )),
            )
            .await;
            return;
        }
        let limit = if buf.is_empty() {
            partial_since = None;
            IDLE_TIMEOUT
        } else {
            let since = *partial_since.get_or_insert_with(Instant::now);
            PARTIAL_MESSAGE_TIMEOUT.saturating_sub(since.elapsed())
        };
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(limit, stream.read(&mut chunk)) => r,
        };
        match read {
            Err(_) => {
                debug!(
                    uid = peer.uid,
                    partial = !buf.is_empty(),
                    "closing connection after timeout"
                );
                return;
            }
            Ok(Ok(0)) => {
                if !buf.is_empty() {
                    debug!(
                        uid = peer.uid,
                        "client closed the connection in the middle of a message"
                    );
                }
                return;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => {
                debug!(uid = peer.uid, "read error on control socket: {e}");
                return;
            }
        }
    }
}
