//! The Varlink server on the control socket: framing, limits, and one task per connection.

pub mod auth;
mod dispatch;
mod handlers;
mod run_handlers;
mod streams;

use crate::state::SharedRef;
use bms_proto::varlink::{self, Reply, MAX_MESSAGE};
use bms_proto::{ApiError, ErrorKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

/// A message started but not finished within this time is dropped with its connection.
const PARTIAL_MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that sends nothing for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Who is calling, and what they may do.
pub struct Peer {
    pub uid: u32,
    pub role: auth::Role,
}

/// Accepts connections until `cancel` fires. At most `max_connections` are served at once; a
/// connection over the limit gets a `Busy` error and is closed.
pub async fn serve(
    listener: UnixListener,
    shared: SharedRef,
    max_connections: u32,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let slots = Arc::new(Semaphore::new(max_connections as usize));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => match slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    tracker.spawn(connection(stream, shared.clone(), cancel.clone(), permit));
                }
                Err(_) => {
                    tracker.spawn(refuse_busy(stream, max_connections));
                }
            },
            Err(e) => {
                warn!("accept on control socket failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// How long a refused connection is kept open to swallow the call its client may be writing.
const BUSY_LINGER: Duration = Duration::from_secs(2);

async fn refuse_busy(mut stream: UnixStream, max: u32) {
    let err = ApiError::new(
        ErrorKind::Busy,
        format!("bmsd is serving its maximum of {max} connections; try again shortly"),
    );
    if send(&mut stream, &Reply::error(err.kind.wire_name(), err.wire_parameters())).await.is_err() {
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

fn protocol_error(msg: impl Into<String>) -> Reply {
    let e = ApiError::new(ErrorKind::ProtocolError, msg);
    Reply::error(e.kind.wire_name(), e.wire_parameters())
}

async fn connection(mut stream: UnixStream, shared: SharedRef, cancel: CancellationToken, _slot: OwnedSemaphorePermit) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            uid: c.uid(),
            role: auth::role_of(c.uid(), c.gid(), c.pid(), shared.daemon_uid),
        },
        Err(e) => {
            warn!("cannot read peer credentials: {e}");
            return;
        }
    };
    debug!(uid = peer.uid, role = peer.role.as_str(), "client connected");
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(msg) = varlink::take_message(&mut buf) {
            match dispatch::handle(&msg, &peer, &shared).await {
                dispatch::Outcome::None => {}
                dispatch::Outcome::One(reply) => {
                    if send(&mut stream, &reply).await.is_err() {
                        return;
                    }
                }
                dispatch::Outcome::Stream(mut rx) => {
                    while let Some(reply) = rx.recv().await {
                        if send(&mut stream, &reply).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if buf.len() > MAX_MESSAGE {
            warn!(uid = peer.uid, "dropping connection: message larger than {MAX_MESSAGE} bytes");
            let _ = send(
                &mut stream,
                &protocol_error(format!("message larger than {MAX_MESSAGE} bytes; connection closed")),
            )
            .await;
            return;
        }
        let limit = if buf.is_empty() { IDLE_TIMEOUT } else { PARTIAL_MESSAGE_TIMEOUT };
        let read = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(limit, stream.read(&mut chunk)) => r,
        };
        match read {
            Err(_) => {
                debug!(uid = peer.uid, partial = !buf.is_empty(), "closing connection after timeout");
                return;
            }
            Ok(Ok(0)) => {
                if !buf.is_empty() {
                    debug!(uid = peer.uid, "client closed the connection in the middle of a message");
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
