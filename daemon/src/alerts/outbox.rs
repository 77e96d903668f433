//! The delivery task (docs/alerts.md, "Delivery"): takes the oldest pending notification of
//! each channel from the catalog's outbox, delivers the channels side by side, records every
//! attempt, and retries a failure with exponential backoff and jitter until it is delivered or
//! `give_up_hours` have passed. Nothing here is on the path of a run.

use super::config::AlertsConfig;
use crate::catalog::OutboxItem;
use crate::state::SharedRef;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// The longest the task sleeps without looking at the outbox.
const IDLE: Duration = Duration::from_secs(1);

/// A random fraction in 0..1 (for jitter).
fn random_fraction() -> f64 {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (r % 10_000) as f64 / 10_000.0
}

/// The wait after the `attempts`-th failure: initial × 2^(attempts−1), at most `max`, plus up
/// to a quarter of it at random.
pub fn backoff(cfg: &AlertsConfig, attempts: u32) -> Duration {
    let exp = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    let base = cfg.retry_initial.saturating_mul(exp).min(cfg.retry_max);
    base + base.mul_f64(0.25 * random_fraction())
}

fn at(d: Duration) -> String {
    let t = jiff::Timestamp::now()
        + jiff::SignedDuration::from_millis(d.as_millis().min(i64::MAX as u128) as i64);
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn age(created: &str) -> Duration {
    created
        .parse::<jiff::Timestamp>()
        .ok()
        .map(|t| jiff::Timestamp::now().duration_since(t))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}

/// Channels with an attempt in flight: each channel is delivered in order, one at a time, and a
/// channel that hangs holds up only itself.
type Busy = Arc<Mutex<HashSet<String>>>;

pub async fn run(shared: SharedRef, wake: Arc<Notify>, cancel: CancellationToken) {
    let busy: Busy = Arc::default();
    loop {
        let pause = match round(&shared, &busy, &wake).await {
            Ok(p) => p,
            Err(e) => {
                warn!("alert delivery: cannot read the outbox: {e}");
                IDLE
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn lock(busy: &Busy) -> std::sync::MutexGuard<'_, HashSet<String>> {
    match busy.lock() {
        Ok(b) => b,
        Err(p) => p.into_inner(),
    }
}

/// Starts the attempts that are due; returns how long to wait for the next due item.
async fn round(
    shared: &SharedRef,
    busy: &Busy,
    wake: &Arc<Notify>,
) -> Result<Duration, bms_proto::ApiError> {
    let heads = shared.catalog.call(|c| c.outbox_heads()).await?;
    let now = crate::catalog::now_rfc3339();
    let cfg = shared.config().config.alerts;
    let mut pause = IDLE;
    for (item, next) in heads {
        if lock(busy).contains(&item.channel) {
            continue;
        }
        if next > now {
            if let Ok(t) = next.parse::<jiff::Timestamp>() {
                let d = t.duration_since(jiff::Timestamp::now());
                pause = pause.min(Duration::try_from(d).unwrap_or_default());
            }
            continue;
        }
        lock(busy).insert(item.channel.clone());
        let (cfg, shared, busy, wake) = (cfg.clone(), shared.clone(), busy.clone(), wake.clone());
        tokio::spawn(async move {
            let channel = item.channel.clone();
            attempt(&shared, &cfg, item).await;
            lock(&busy).remove(&channel);
            wake.notify_one();
        });
    }
    Ok(pause)
}

async fn attempt(shared: &SharedRef, cfg: &AlertsConfig, item: OutboxItem) {
    // The heads were read before this channel was claimed: an attempt that ended in between
    // has already delivered (or rescheduled) this item.
    let it = item.clone();
    match shared.catalog.call(move |c| c.outbox_still_due(&it)).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            warn!(
                notice = item.id,
                "cannot check a notification before delivery: {e}"
            );
            return;
        }
    }
    let result = match cfg.channel(&item.channel) {
        Some(ch) => super::send::deliver(ch, &item.payload, cfg.attempt_timeout).await,
        None => Err(format!(
            "channel '{}' is not in the configuration (removed?)",
            item.channel
        )),
    };
    let attempts = item.attempts + 1;
    let outcome = if result.is_ok() { "sent" } else { "failed" };
    shared.notifications.inc(&[&item.channel, outcome]);
    let (ok, detail, next, gave_up) = match result {
        Ok(detail) => {
            info!(channel = %item.channel, notice = item.id, "notification delivered: {detail}");
            (true, detail, None, None)
        }
        Err(detail) => {
            let gone = cfg.channel(&item.channel).is_none();
            if gone || age(&item.created_at) >= cfg.give_up {
                let why = format!(
                    "gave up delivering the {} notice to channel '{}' after {attempts} attempts: {detail}",
                    item.event, item.channel
                );
                warn!(channel = %item.channel, notice = item.id, "{why}");
                (false, detail, None, Some(why))
            } else {
                let wait = backoff(cfg, attempts);
                debug!(channel = %item.channel, notice = item.id, "delivery failed ({detail}); retry in {wait:?}");
                warn!(channel = %item.channel, notice = item.id, attempt = attempts, "notification not delivered: {detail}");
                (false, detail, Some(at(wait)), None)
            }
        }
    };
    let it = item.clone();
    let r = shared
        .catalog
        .call(move |c| c.record_attempt(&it, ok, &detail, next.as_deref(), gave_up.as_deref()))
        .await;
    if let Err(e) = r {
        warn!(notice = item.id, "cannot record a delivery attempt: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter() {
        let cfg = AlertsConfig {
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(10),
            ..AlertsConfig::default()
        };
        let b1 = backoff(&cfg, 1);
        let b3 = backoff(&cfg, 3);
        let b9 = backoff(&cfg, 9);
        assert!(b1 >= Duration::from_secs(1) && b1 <= Duration::from_millis(1250));
        assert!(b3 >= Duration::from_secs(4) && b3 <= Duration::from_secs(5));
        assert!(b9 >= Duration::from_secs(10) && b9 <= Duration::from_millis(12500));
    }
}
