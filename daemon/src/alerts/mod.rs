//! Alerts (docs/alerts.md): the router listens on the event bus and turns events into alert
//! records (dedupe key, severity, open → acked → resolved), queues their notifications in the
//! catalog's outbox in the same transaction, and checks each job's RPO on a timer (the dead-man's
//! switch). The delivery task ([`outbox`]) sends them. A run never waits for any of this: the
//! router only reads the bus, and when it lags it re-reads the latest runs from the catalog.
//!
//! Other parts of bmsd feed alerts through [`on_event`] (compliance, immutability tamper and
//! media events arrive on the bus) or directly through [`raise`] and [`clear`].

pub mod config;
pub mod notice;
mod ops;
pub mod outbox;
pub mod send;
pub mod tls;

use crate::catalog::{AlertChange, Notice};
use crate::events::{Event, TargetHealth};
use crate::state::SharedRef;
use bms_proto::api::{AlertInfo, RunKind, RunState};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// Starts the router, the RPO timer and the delivery task.
pub fn spawn(shared: &SharedRef, cancel: &CancellationToken, tracker: &TaskTracker) {
    tls::install_provider();
    let wake = Arc::new(Notify::new());
    let rx = shared.events.subscribe();
    tracker.spawn(route_events(
        shared.clone(),
        rx,
        wake.clone(),
        cancel.clone(),
    ));
    tracker.spawn(rpo_timer(shared.clone(), wake.clone(), cancel.clone()));
    tracker.spawn(outbox::run(shared.clone(), wake, cancel.clone()));
}

/// The notices of `alert`'s `event` for the channels its route selects.
fn notices_for(cfg: &config::AlertsConfig) -> impl Fn(&AlertInfo, &str) -> Vec<Notice> {
    let cfg = cfg.clone();
    move |a: &AlertInfo, event: &str| {
        let payload = notice::alert_notice(a, event);
        cfg.route(&a.kind, &a.severity, a.job.as_deref())
            .into_iter()
            .map(|channel| Notice {
                channel,
                event: event.to_owned(),
                payload: payload.clone(),
            })
            .collect()
    }
}

/// Records that a condition holds (a new alert or one more occurrence) and queues its notices.
pub async fn raise(shared: &SharedRef, change: AlertChange) {
    let cfg = shared.config().config.alerts;
    let renotify = cfg.renotify.as_secs();
    let notify = notices_for(&cfg);
    let key = change.key.clone();
    let r = shared
        .catalog
        .call(move |c| c.raise_alert(&change, renotify, notify))
        .await;
    match r {
        Ok((alert, Some("raised"))) => {
            info!(alert = alert.id, key = %alert.key, "alert raised: {}", alert.message);
            shared.events.publish(Event::AlertRaised {
                alert: alert.key.clone(),
                job: alert.job.clone(),
                message: alert.message.clone(),
            });
        }
        Ok(_) => {}
        Err(e) => warn!(key = %key, "cannot record alert: {e}"),
    }
}

/// Resolves the live alert with `key`, if any, and queues one `resolved` notice per channel.
pub async fn clear(shared: &SharedRef, key: String) {
    let notify = notices_for(&shared.config().config.alerts);
    let k = key.clone();
    match shared
        .catalog
        .call(move |c| c.resolve_alert_key(&k, notify))
        .await
    {
        Ok(Some(a)) => info!(alert = a.id, key = %key, "alert resolved"),
        Ok(None) => {}
        Err(e) => warn!(key = %key, "cannot resolve alert: {e}"),
    }
}

fn change(kind: &str, severity: &str, job: Option<&str>, target: Option<&str>) -> AlertChange {
    let subject = job.or(target).unwrap_or("bmsd");
    AlertChange {
        key: format!("{kind}:{subject}"),
        kind: kind.into(),
        severity: severity.into(),
        job: job.map(str::to_owned),
        target: target.map(str::to_owned),
        message: String::new(),
        details: json!({}),
    }
}

/// Queues a healthchecks-style ping of the job, if it has one.
async fn ping(shared: &SharedRef, job: &str, what: &str, run: i64, message: String) {
    let channel = format!("ping:{job}");
    if shared.config().config.alerts.channel(&channel).is_none() {
        return;
    }
    let n = Notice {
        channel,
        event: format!("ping-{what}"),
        payload: notice::ping_notice(job, what, run, &message),
    };
    if let Err(e) = shared.catalog.call(move |c| c.queue_notices(&[n])).await {
        warn!(job, "cannot queue the {what} ping: {e}");
    }
}

/// The hook every event passes through (docs/alerts.md, "Kinds").
pub async fn on_event(shared: &SharedRef, event: &Event) {
    match event {
        Event::RunStarted { run } if run.kind == RunKind::Backup => {
            ping(
                shared,
                &run.job,
                "start",
                run.id,
                format!("run {} started", run.id),
            )
            .await;
        }
        Event::RunFinished {
            run, state, error, ..
        } => on_run_finished(shared, run, *state, error.as_deref()).await,
        Event::TargetStateChanged {
            target,
            state,
            reason,
            free_bytes,
        } => {
            let mut c = change("target_unavailable", "critical", None, Some(target));
            match state {
                TargetHealth::Ok => return clear(shared, c.key).await,
                TargetHealth::Warning => c.severity = "warning".into(),
                TargetHealth::Error => {}
            }
            c.message = format!("target '{target}': {reason}");
            c.details = json!({"reason": reason, "free_bytes": free_bytes});
            raise(shared, c).await;
        }
        Event::ComplianceChanged {
            job,
            compliant,
            reason,
            rule,
            from,
            ..
        } => {
            let mut c = change("compliance_violated", "warning", Some(job), None);
            if *compliant {
                return clear(shared, c.key).await;
            }
            // A violation is a rule that passed and no longer does; a rule that never passed
            // (a new job) is what `bmsctl compliance` shows, not an alert (docs/alerts.md).
            if rule.is_some() && from.as_deref() != Some("pass") {
                return;
            }
            c.message = format!("job '{job}' no longer meets 3-2-1-1-0: {reason}");
            c.details = json!({"reason": reason});
            raise(shared, c).await;
        }
        Event::TamperDetected {
            target,
            what,
            detail,
        } => {
            // A broken seal or a wall-clock jump: critical, and it stays open until an admin
            // resolves it (nothing clears it by itself), docs/alerts.md.
            let mut c = change("immutability_tamper", "critical", None, target.as_deref());
            c.message = match target {
                Some(t) => format!("target '{t}': {what}: {detail}"),
                None => format!("{what}: {detail}"),
            };
            c.details = json!({"what": what, "detail": detail});
            raise(shared, c).await;
        }
        Event::MediaNeeded { target, message } => {
            let mut c = change("media_needed", "warning", None, Some(target));
            c.message = format!("target '{target}': {message}");
            raise(shared, c).await;
        }
        // Raised by this module itself (and by nothing else yet): not routed again.
        Event::AlertRaised { .. } | Event::RunQueued { .. } | Event::RunProgress { .. } => {}
        Event::RunStarted { .. } => {}
    }
}

async fn on_run_finished(
    shared: &SharedRef,
    run: &bms_proto::api::RunInfo,
    state: RunState,
    error: Option<&str>,
) {
    let job = run.job.as_str();
    let details = json!({"run": run.id, "state": state.as_str(), "error": error,
                         "target": run.target, "snapshot": run.snapshot});
    let err = error.unwrap_or("no reason recorded");
    match run.kind {
        RunKind::Backup => {
            let what = match state {
                RunState::Succeeded | RunState::Warning => "success",
                RunState::Failed | RunState::Interrupted => "fail",
                _ => "",
            };
            if !what.is_empty() {
                ping(
                    shared,
                    job,
                    what,
                    run.id,
                    format!("run {} {}: {err}", run.id, state.as_str()),
                )
                .await;
            }
            let key = |k: &str| format!("{k}:{job}");
            let (raise_kind, severity, message, clears): (Option<&str>, &str, String, Vec<&str>) =
                match state {
                    RunState::Failed | RunState::Interrupted => (
                        Some("run_failed"),
                        "critical",
                        format!("backup of job '{job}' {}: {err}", state.as_str()),
                        vec![],
                    ),
                    RunState::Warning => (
                        Some("run_partial"),
                        "warning",
                        format!("backup of job '{job}' finished with warnings (partial snapshot): {err}"),
                        vec!["run_failed", "run_missed", "rpo_exceeded"],
                    ),
                    RunState::Skipped => (
                        Some("run_missed"),
                        "warning",
                        format!("backup of job '{job}' was skipped: {err}"),
                        vec![],
                    ),
                    RunState::Succeeded => (
                        None,
                        "",
                        String::new(),
                        vec!["run_failed", "run_partial", "run_missed", "rpo_exceeded"],
                    ),
                    _ => (None, "", String::new(), vec![]),
                };
            for k in clears {
                clear(shared, key(k)).await;
            }
            if let Some(kind) = raise_kind {
                let mut c = change(kind, severity, Some(job), run.target.as_deref());
                c.key = key(kind);
                c.message = message;
                c.details = details;
                raise(shared, c).await;
            }
        }
        // A restore drill is verification evidence too (docs/compliance.md).
        RunKind::Verify | RunKind::Drill => {
            let target = run.target.as_deref().unwrap_or("");
            let mut c = change("verify_errors", "critical", Some(job), Some(target));
            c.key = format!("verify_errors:{job}:{target}");
            match state {
                RunState::Succeeded => clear(shared, c.key).await,
                RunState::Failed | RunState::Warning => {
                    c.message = format!(
                        "verification of job '{job}' on target '{target}' found errors: {err}"
                    );
                    c.details = details;
                    raise(shared, c).await;
                }
                _ => {}
            }
        }
        _ => {
            let target = run.target.as_deref().unwrap_or("");
            let mut c = change("run_failed", "critical", Some(job), Some(target));
            c.key = format!("run_failed:{job}:{}:{target}", run.kind.as_str());
            match state {
                RunState::Succeeded => clear(shared, c.key).await,
                RunState::Failed => {
                    c.message = format!(
                        "{} of job '{job}' to target '{target}' failed: {err}",
                        run.kind.as_str()
                    );
                    c.details = details;
                    raise(shared, c).await;
                }
                _ => {}
            }
        }
    }
}

async fn route_events(
    shared: SharedRef,
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    // Runs that ended while nothing listened (interrupted by a crash, recorded at start) count.
    resync(&shared).await;
    wake.notify_one();
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = rx.recv() => ev,
        };
        match ev {
            Ok(ev) => on_event(&shared, &ev).await,
            Err(RecvError::Lagged(n)) => {
                warn!("alert router missed {n} events; re-reading the latest runs");
                resync(&shared).await;
            }
            Err(RecvError::Closed) => return,
        }
        wake.notify_one();
    }
}

/// At start and after a lag: the latest backup run of each job decides its run alerts.
async fn resync(shared: &SharedRef) {
    let latest = match shared.catalog.call(|c| c.latest_backup_states()).await {
        Ok(l) => l,
        Err(e) => return warn!("alert router: cannot re-read the runs: {e}"),
    };
    let live = shared
        .catalog
        .call(|c| c.live_alert_keys())
        .await
        .unwrap_or_default();
    for (job, state, id, error) in latest {
        let key = format!("run_failed:{job}");
        match state.as_str() {
            "failed" | "interrupted" if !live.contains(&key) => {
                let mut c = change("run_failed", "critical", Some(&job), None);
                c.message = format!(
                    "backup of job '{job}' {state}: {}",
                    error.as_deref().unwrap_or("no reason recorded")
                );
                c.details = json!({"run": id, "state": state, "error": error});
                raise(shared, c).await;
            }
            "succeeded" => {
                for k in ["run_failed", "run_partial", "run_missed", "rpo_exceeded"] {
                    let key = format!("{k}:{job}");
                    if live.contains(&key) {
                        clear(shared, key).await;
                    }
                }
            }
            _ => {}
        }
    }
}

/// The dead-man's switch: a job with an RPO and no good backup for that long gets an alert,
/// whether or not any run happened.
async fn rpo_timer(shared: SharedRef, wake: Arc<Notify>, cancel: CancellationToken) {
    let mut pruned: Option<std::time::Instant> = None;
    loop {
        let due = match pruned {
            Some(t) => t.elapsed() >= PRUNE_EVERY,
            None => true,
        };
        if due {
            prune(&shared).await;
            pruned = Some(std::time::Instant::now());
        }
        check_rpo(&shared).await;
        wake.notify_one();
        let every = shared.config().config.alerts.rpo_check;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// How often old alerts and notifications are pruned.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);

/// Resolved alerts and finished notifications live as long as run records
/// (`run_history_days`; 0 keeps them).
async fn prune(shared: &SharedRef) {
    let days = shared.config().config.run_history_days;
    let Ok(cutoff) = jiff::Timestamp::now().checked_sub(jiff::SignedDuration::from_hours(
        24 * i64::from(days.max(1)),
    )) else {
        return;
    };
    if days == 0 {
        return;
    }
    let before = cutoff.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    match shared.catalog.call(move |c| c.prune_alerts(&before)).await {
        Ok(0) => {}
        Ok(n) => info!("deleted {n} old alert and notification record(s) (run_history_days)"),
        Err(e) => warn!("cannot prune old alerts: {e}"),
    }
}

/// The whole seconds since `since` once they reach `rpo` seconds, compared to the millisecond
/// (the whole seconds of each time alone would call 59.1 s "60").
fn rpo_exceeded(now: jiff::Timestamp, since: jiff::Timestamp, rpo: u64) -> Option<i64> {
    let age_ms = now.as_millisecond() - since.as_millisecond();
    (age_ms >= (rpo as i64).saturating_mul(1000)).then_some(age_ms / 1000)
}

async fn check_rpo(shared: &SharedRef) {
    let cfg = shared.config().config.alerts;
    let facts = shared
        .catalog
        .call(move |c| {
            let mut out = Vec::new();
            for j in c.list_jobs()? {
                if let (Some(rpo), true) = (j.spec.rpo_secs, j.spec.enabled) {
                    let last = c.last_good_backup(&j.spec.name)?;
                    out.push((j.spec.name.clone(), rpo, last, j.created_at.clone()));
                }
            }
            let live = c.live_alert_keys()?;
            let reminders = c.remind_alerts(cfg.renotify.as_secs(), notices_for(&cfg))?;
            Ok((out, live, reminders))
        })
        .await;
    let (jobs, live, reminders) = match facts {
        Ok(f) => f,
        Err(e) => return warn!("RPO check: cannot read the jobs: {e}"),
    };
    for id in reminders {
        info!(alert = id, "reminder queued for open critical alert {id}");
    }
    let now = jiff::Timestamp::now();
    for (job, rpo, last, created) in jobs {
        let since = last.as_deref().unwrap_or(&created);
        let Ok(t) = since.parse::<jiff::Timestamp>() else {
            continue;
        };
        let key = format!("rpo_exceeded:{job}");
        if let Some(age) = rpo_exceeded(now, t, rpo) {
            if live.contains(&key) {
                continue;
            }
            let mut c = change("rpo_exceeded", "critical", Some(&job), None);
            c.message = match &last {
                Some(l) => format!(
                    "no successful backup of job '{job}' within its RPO of {rpo} s (last at {l})"
                ),
                None => format!(
                    "no successful backup of job '{job}' within its RPO of {rpo} s (none since the job was created at {created})"
                ),
            };
            c.details = json!({"rpo_secs": rpo, "last_success": last, "age_secs": age});
            raise(shared, c).await;
        } else if live.contains(&key) {
            clear(shared, key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rpo_is_reached_to_the_millisecond() {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let created = t("2026-12-02T06:10:36.988Z");
        assert_eq!(
            super::rpo_exceeded(t("2026-12-02T06:11:36.115Z"), created, 60),
            None
        );
        assert_eq!(
            super::rpo_exceeded(t("2026-12-02T06:11:36.987Z"), created, 60),
            None
        );
        assert_eq!(
            super::rpo_exceeded(t("2026-12-02T06:11:36.988Z"), created, 60),
            Some(60)
        );
        assert_eq!(
            super::rpo_exceeded(t("2026-12-02T06:12:40.000Z"), created, 60),
            Some(123)
        );
    }
}
