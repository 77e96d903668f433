//! `Report` (docs/reports.md): the catalog's aggregates per job plus the checker's verdicts now.

use super::core::{Ctx, Operation};
use crate::compliance::watch::evaluate_now;
use crate::state::SharedRef;
use bms_proto::api::*;
use bms_proto::ApiError;
use jiff::Timestamp;

/// The catalog's time format, so that text comparison in SQL compares times.
fn catalog_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_time(field: &str, s: &str) -> Result<Timestamp, ApiError> {
    s.parse::<Timestamp>().map_err(|e| {
        ApiError::invalid(
            field,
            format!("{field} '{s}' is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"),
        )
    })
}

fn secs(t: &str) -> Option<i64> {
    t.parse::<Timestamp>().ok().map(|t| t.as_second())
}

impl Operation for Report {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ReportReply, ApiError> {
        let since = parse_time("since", &self.since)?;
        let until = parse_time("until", &self.until)?;
        if since >= until {
            return Err(ApiError::invalid(
                "since",
                format!(
                    "since ({}) must be before until ({}); swap them or pick another period",
                    self.since, self.until
                ),
            ));
        }
        let only = self.job.map(|j| vec![j]);
        build(ctx.shared, since, until, only.as_deref()).await
    }
}

/// The report over `[since, until)` of the jobs `only` names (each must exist), else of every
/// job: what `Report` answers, and what bmsd's scheduled reports render (docs/reports.md).
pub async fn build(
    shared: &SharedRef,
    since: Timestamp,
    until: Timestamp,
    only: Option<&[String]>,
) -> Result<ReportReply, ApiError> {
    let jobs: Vec<String> = match only {
        Some(names) => {
            let mut out = Vec::with_capacity(names.len());
            for j in names {
                let name = j.clone();
                let job = shared.catalog.call(move |c| c.get_job(&name)).await?;
                out.push(job.spec.name);
            }
            out
        }
        None => {
            let all = shared.catalog.call(|c| c.list_jobs()).await?;
            all.into_iter().map(|j| j.spec.name).collect()
        }
    };
    let generated = Timestamp::now();
    let one = match only {
        Some([j]) => Some(j.clone()),
        _ => None,
    };
    let compliance = evaluate_now(shared, one).await?;
    let (s, u) = (catalog_time(since), catalog_time(until));
    let end = until.min(generated).as_second().max(since.as_second());
    let usage: std::collections::HashMap<String, bms_engine::usage::Usage> =
        shared.usage.snapshot().into_iter().collect();
    let primaries: std::collections::HashMap<String, String> = {
        let all = shared.catalog.call(|c| c.list_jobs()).await?;
        all.into_iter()
            .filter_map(|j| Some((j.spec.name, j.spec.targets.first()?.clone())))
            .collect()
    };
    let mut out = Vec::with_capacity(jobs.len());
    for job in jobs {
        let figures = primaries.get(&job).and_then(|t| usage.get(t));
        let (name, s2, u2) = (job.clone(), s.clone(), u.clone());
        let f = shared
            .catalog
            .call(move |c| c.report_facts(&name, &s2, &u2))
            .await?;
        let jc = compliance.iter().find(|c| c.job == job);
        // The longest stretch without a fresh backup: from the last success before the
        // period (else its start) through each success in it to its end (or now).
        let start = f
            .success_before
            .as_deref()
            .and_then(secs)
            .unwrap_or(since.as_second());
        let (first, last) = (
            f.first_in_period.as_deref().and_then(secs),
            f.last_in_period.as_deref().and_then(secs),
        );
        let longest_gap_secs = match (first, last) {
            (Some(a), Some(b)) => (a - start)
                .max(end - b)
                .max(f.inner_gap_secs.unwrap_or(0.0).round() as i64),
            _ => end - start,
        }
        .max(0);
        let rpo_secs = jc.map(|c| c.rpo_secs).unwrap_or(0);
        let ok = f.runs_by_state.get("succeeded").copied().unwrap_or(0)
            + f.runs_by_state.get("warning").copied().unwrap_or(0);
        let finished = ok
            + ["failed", "cancelled", "interrupted"]
                .iter()
                .map(|s| f.runs_by_state.get(*s).copied().unwrap_or(0))
                .sum::<u64>();
        out.push(JobReport {
            job,
            runs: f.runs,
            runs_by_state: f.runs_by_state,
            runs_by_day: f.runs_by_day,
            success_rate: (finished > 0).then(|| ok as f64 / finished as f64),
            backup_runs: f.backup_runs,
            bytes_read: f.bytes_read,
            bytes_added: f.bytes_added,
            dedup_ratio: figures.map(|u| u.dedup_ratio()),
            compression_ratio: figures.map(|u| u.compression_ratio()),
            stored_by_day: f.stored_by_day,
            last_success: f.last_success,
            longest_gap_secs,
            rpo_secs,
            rpo_met: rpo_secs > 0 && longest_gap_secs <= rpo_secs as i64,
            compliant: jc.is_some_and(|c| c.compliant),
            rules: jc.map(|c| c.rules.clone()).unwrap_or_default(),
            compliance_changes: f.changes,
            drills: f.drills,
            failures: f.failures,
        });
    }
    Ok(ReportReply {
        generated_at: catalog_time(generated),
        since: s,
        until: u,
        jobs: out,
    })
}
