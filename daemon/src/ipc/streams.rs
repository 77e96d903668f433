//! Methods that stream replies when called with `"more": true`: `WatchRun`, `WatchEvents` and
//! `Restore`.

use super::auth::Role;
use super::dispatch::{api_error, Outcome};
use super::run_handlers::restore;
use super::Peer;
use crate::state::SharedRef;
use bms_proto::api::{Restore, RestoreReply, WatchEvents, WatchRun};
use bms_proto::varlink::{Call, Reply};
use bms_proto::{ApiError, ErrorKind, INTERFACE};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a restore reports progress.
const TICK: Duration = Duration::from_millis(250);

fn reply<T: serde::Serialize>(value: &T, continues: bool) -> Reply {
    let mut r = Reply::ok(serde_json::to_value(value).unwrap_or_default());
    r.continues = continues;
    r
}

fn params<T: serde::de::DeserializeOwned>(call: &Call, method: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::Object(
        call.parameters.clone().unwrap_or_default(),
    ))
    .map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("invalid parameters for {method}: {e}"),
        )
    })
}

/// Starts a stream for calls that have one; `None` lets the call be handled normally.
pub async fn start(call: &Call, peer: &Peer, shared: &SharedRef) -> Option<Outcome> {
    let method = call.method.strip_prefix(INTERFACE)?.strip_prefix('.')?;
    let (tx, rx) = mpsc::channel(16);
    match method {
        "WatchRun" => {
            let req: WatchRun = match params(call, method) {
                Ok(r) => r,
                Err(e) => return Some(Outcome::One(api_error(e))),
            };
            tokio::spawn(watch(shared.clone(), req.id, tx));
        }
        "WatchEvents" => {
            let req: WatchEvents = match params(call, method) {
                Ok(r) => r,
                Err(e) => return Some(Outcome::One(api_error(e))),
            };
            tokio::spawn(watch_events(shared.clone(), req, tx));
        }
        "Restore" => {
            if peer.role != Role::Admin {
                log_refused_restore(call, peer.uid);
                return Some(Outcome::One(api_error(ApiError::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "restore needs root or group 'bms-admin'; uid {} may only read",
                        peer.uid
                    ),
                ))));
            }
            let req: Restore = match params(call, method) {
                Ok(r) => r,
                Err(e) => return Some(Outcome::One(api_error(e))),
            };
            tokio::spawn(restore_stream(shared.clone(), req, peer.uid, tx));
        }
        _ => return None,
    }
    Some(Outcome::Stream(rx))
}

/// Forwards `runner::watch::watch_run`.
async fn watch(shared: SharedRef, id: i64, tx: mpsc::Sender<Reply>) {
    let mut details = crate::runner::watch::watch_run(shared, id);
    while let Some(d) = details.recv().await {
        let (r, last) = match d {
            Ok(d) => {
                let last = d.run.state.is_final();
                (reply(&d, !last), last)
            }
            Err(e) => (api_error(e), true),
        };
        if tx.send(r).await.is_err() || last {
            return;
        }
    }
}

/// Forwards `runner::watch::watch_events` until the client hangs up.
async fn watch_events(shared: SharedRef, req: WatchEvents, tx: mpsc::Sender<Reply>) {
    let mut events = crate::runner::watch::watch_events(&shared, req.job);
    while let Some(e) = events.recv().await {
        if tx.send(reply(&e, true)).await.is_err() {
            return;
        }
    }
}

/// A restore refused for lack of the admin role is logged (a warning with the caller's uid and
/// what it asked for), not audited: a caller who may only read does not write to the catalog.
pub fn log_refused_restore(call: &Call, uid: u32) {
    let p = call.parameters.clone().unwrap_or_default();
    let field = |k: &str| {
        p.get(k)
            .map(|v| v.to_string())
            .unwrap_or_else(|| "-".into())
    };
    tracing::warn!(
        uid,
        snapshot = %field("snapshot"),
        to = %field("to"),
        paths = %field("paths"),
        "restore refused: uid {uid} is not root or in group 'bms-admin'"
    );
}

async fn restore_stream(shared: SharedRef, req: Restore, uid: u32, tx: mpsc::Sender<Reply>) {
    let progress_tx = tx.clone();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let progress = move |files: u64, bytes: u64| {
        let Ok(mut l) = last.lock() else { return };
        if l.elapsed() >= TICK {
            *l = std::time::Instant::now();
            let r = RestoreReply {
                files,
                bytes,
                done: false,
                summary: None,
            };
            let _ = progress_tx.try_send(reply(&r, true));
        }
    };
    // Dropping the restore future stops the restore (see `run_handlers::restore`).
    let result = tokio::select! {
        r = restore(&shared, req, uid, progress) => r,
        _ = tx.closed() => {
            tracing::info!("restore stopped: the client went away");
            return;
        }
        _ = shared.shutdown.cancelled() => Err(ApiError::new(
            ErrorKind::Busy,
            "restore stopped: bmsd is shutting down; what was restored so far stays in the \
             target directory; run the restore again (with --overwrite if-changed) once bmsd is back",
        )),
    };
    let _ = tx
        .send(match result {
            Ok(r) => reply(&r, false),
            Err(e) => api_error(e),
        })
        .await;
}
