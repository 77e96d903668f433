//! Keeps the run history bounded: at start and every six hours, run records older than
//! `run_history_days` are deleted (the latest ones that status and metrics report are kept).
//! The setting is read at each pass, so SIGHUP changes it.

use crate::state::SharedRef;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

const EVERY: Duration = Duration::from_secs(6 * 3600);

pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    loop {
        prune(&shared).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

async fn prune(shared: &SharedRef) {
    let days = shared.config().config.run_history_days;
    if days == 0 {
        return;
    }
    let Some(cutoff) = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .ok()
    else {
        return;
    };
    let before = cutoff.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    match shared.catalog.call(move |c| c.prune_runs(&before)).await {
        Ok(0) => {}
        Ok(n) => info!("deleted {n} run record(s) older than {days} days (run_history_days)"),
        Err(e) => warn!("cannot prune the run history: {e}"),
    }
}
