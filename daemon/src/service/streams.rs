//! The streamed forms of `WatchRun` (the run until it ends) and `Restore` (progress, then the
//! summary). Dropping the receiver stops the work behind a stream.

use super::restore::restore as run_restore;
use super::run_ops::run_detail;
use super::{Item, Items};
use crate::state::SharedRef;
use bms_proto::api::{Restore, RestoreReply, RunDetail};
use bms_proto::{ApiError, ErrorKind};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a stream reports progress.
const TICK: Duration = Duration::from_millis(250);

/// The run's detail now and then until it is final.
pub fn watch(shared: SharedRef, id: i64) -> Items<RunDetail> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            match run_detail(&shared, id).await {
                Ok(d) => {
                    let last = d.run.state.is_final();
                    let item = if last { Item::Last(d) } else { Item::More(d) };
                    if tx.send(item).await.is_err() || last {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Item::Failed(e)).await;
                    return;
                }
            }
            tokio::time::sleep(TICK).await;
        }
    });
    rx
}

/// A restore on behalf of `uid`: progress items, then the summary.
pub fn restore(shared: SharedRef, req: Restore, uid: u32) -> Items<RestoreReply> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(restore_stream(shared, req, uid, tx));
    rx
}

async fn restore_stream(
    shared: SharedRef,
    req: Restore,
    uid: u32,
    tx: mpsc::Sender<Item<RestoreReply>>,
) {
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
            let _ = progress_tx.try_send(Item::More(r));
        }
    };
    // Dropping the restore future stops the restore (see `restore::restore`).
    let result = tokio::select! {
        r = run_restore(&shared, req, uid, progress) => r,
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
            Ok(r) => Item::Last(r),
            Err(e) => Item::Failed(e),
        })
        .await;
}
