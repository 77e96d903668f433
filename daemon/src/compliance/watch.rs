//! When compliance is evaluated (docs/compliance.md, "When"): at start, after every
//! `RunFinished` and `TargetStateChanged` event, and daily. Each verdict that differs from the last
//! recorded one is written to `compliance_history` and published as one `ComplianceChanged`
//! event. A subscriber of the event bus: it never holds up a run; when it lags it re-evaluates
//! from the catalog, which holds every fact.

use crate::catalog::NewChange;
use crate::state::SharedRef;
use bms_proto::api::{Event, JobCompliance, Rule, Verdict};
use bms_proto::ApiError;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

const DAILY: Duration = Duration::from_secs(86400);

/// Evaluates every job now from the catalog.
pub async fn evaluate_now(
    shared: &SharedRef,
    only: Option<String>,
) -> Result<Vec<JobCompliance>, ApiError> {
    let now = jiff::Timestamp::now().as_second();
    let facts = shared
        .catalog
        .call(move |c| c.compliance_facts(now))
        .await?;
    tokio::task::spawn_blocking(move || super::evaluate(&facts, only.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("compliance evaluation failed: {e}")))
}

pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    let mut rx = shared.events.subscribe();
    let mut last = match shared.catalog.call(|c| c.compliance_verdicts()).await {
        Ok(v) => v,
        Err(e) => {
            warn!("cannot read the compliance history: {e}");
            HashMap::new()
        }
    };
    loop {
        if let Err(e) = pass(&shared, &mut last).await {
            warn!("compliance evaluation failed: {e}");
        }
        // Wait for a reason to evaluate again.
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(DAILY) => break,
                ev = rx.recv() => match ev {
                    Ok(Event::RunFinished { .. } | Event::TargetStateChanged { .. }) => break,
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        debug!("compliance checker missed {n} events; re-evaluating");
                        break;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
        // Take in what else is already waiting, so a burst is one evaluation.
        while rx.try_recv().is_ok() {}
    }
}

/// One evaluation: records and publishes the verdicts that changed.
async fn pass(
    shared: &SharedRef,
    last: &mut HashMap<(String, Rule), Verdict>,
) -> Result<(), ApiError> {
    let jobs = evaluate_now(shared, None).await?;
    let mut changes = Vec::new();
    let mut compliant = HashMap::new();
    for j in &jobs {
        compliant.insert(j.job.clone(), j.compliant);
        for r in &j.rules {
            let before = last.get(&(j.job.clone(), r.rule)).copied();
            if before != Some(r.verdict) {
                changes.push(NewChange {
                    job: j.job.clone(),
                    rule: r.rule,
                    from: before,
                    to: r.verdict,
                    reason: r.reason.clone(),
                });
            }
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    let recorded = shared
        .catalog
        .call(move |c| c.record_compliance_changes(&changes))
        .await?;
    for c in recorded {
        last.insert((c.job.clone(), c.rule), c.to);
        let job_ok = compliant.get(&c.job).copied().unwrap_or(false);
        shared.events.publish(Event::ComplianceChanged {
            reason: format!(
                "{} ({}): {} → {}: {}",
                c.rule.digit(),
                c.rule.as_str(),
                c.from.map(Verdict::as_str).unwrap_or("none"),
                c.to.as_str(),
                c.reason
            ),
            job: c.job,
            compliant: job_ok,
            rule: Some(c.rule.as_str().to_owned()),
            from: c.from.map(|v| v.as_str().to_owned()),
            to: Some(c.to.as_str().to_owned()),
        });
    }
    Ok(())
}
