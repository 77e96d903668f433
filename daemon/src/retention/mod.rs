//! Retention in the daemon: the policies of jobs and targets as the engine's
//! [`bms_engine::retention::Policy`], and forget/prune of one target's repository (blocking;
//! call from a blocking thread). docs/retention.md describes the rules; buckets are taken in
//! bmsd's local time zone (`TZ`, else /etc/localtime).

pub mod schedule;

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use bms_engine::prune::{ForgetSummary, PruneOptions, PruneSummary};
use bms_engine::retention::{KeepDuration, Policy};
use bms_engine::Repository;
use bms_proto::api::{ForgetOnTarget, PruneStats, Retention, SnapshotDecision};
use bms_proto::ApiError;

fn duration(field: &str, v: &Option<String>) -> Result<Option<KeepDuration>, ApiError> {
    v.as_deref()
        .map(|s| {
            s.parse::<KeepDuration>()
                .map_err(|e| ApiError::invalid(field, format!("{field}: {e}")))
        })
        .transpose()
}

/// The engine policy of a job's or target's retention rules; refuses bad durations and tags.
pub fn policy_of(r: &Retention) -> Result<Policy, ApiError> {
    let mut tags = Vec::new();
    for t in &r.keep_tags {
        let set: Vec<String> = t
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if set.is_empty() {
            return Err(ApiError::invalid(
                "keep_tags",
                "keep_tags: an entry names no tag; give tag names like \"manual\" or \"a,b\"",
            ));
        }
        tags.push(set);
    }
    let mut within = duration("keep_within", &r.keep_within)?;
    if r.keep_within_days > 0 {
        let days = Some(KeepDuration::days(r.keep_within_days));
        let mut p = Policy {
            within,
            ..Default::default()
        };
        p.merge_max(&Policy {
            within: days,
            ..Default::default()
        });
        within = p.within;
    }
    Ok(Policy {
        last: r.keep_last,
        hourly: r.keep_hourly,
        daily: r.keep_daily,
        weekly: r.keep_weekly,
        monthly: r.keep_monthly,
        yearly: r.keep_yearly,
        within,
        within_hourly: duration("keep_within_hourly", &r.keep_within_hourly)?,
        within_daily: duration("keep_within_daily", &r.keep_within_daily)?,
        within_weekly: duration("keep_within_weekly", &r.keep_within_weekly)?,
        within_monthly: duration("keep_within_monthly", &r.keep_within_monthly)?,
        within_yearly: duration("keep_within_yearly", &r.keep_within_yearly)?,
        tags,
    })
}

/// The calendar of a target's prune runs: its `prune_schedule`, `weekly` by default; None for
/// `never`.
pub fn prune_calendar(t: &bms_proto::api::TargetSpec) -> Option<String> {
    match t.prune_schedule.as_deref().map(str::trim) {
        None | Some("") => Some(DEFAULT_PRUNE_SCHEDULE.to_string()),
        Some("never") => None,
        Some(s) => Some(s.to_string()),
    }
}

/// The grace period of a target's prunes: its `prune_grace`, 24 h by default; refused below
/// the lease of a run's lock (the engine's minimum, docs/retention.md).
pub fn prune_grace(t: &bms_proto::api::TargetSpec) -> Result<std::time::Duration, ApiError> {
    let configured = match t.prune_grace.as_deref().map(str::trim) {
        None | Some("") => bms_engine::prune::DEFAULT_GRACE,
        Some(s) => std::time::Duration::from_secs(
            bms_proto::units::parse_duration(s)
                .map_err(|e| ApiError::invalid("prune_grace", format!("prune_grace: {e}")))?,
        ),
    };
    bms_engine::prune::effective_grace(configured)
        .map_err(|e| ApiError::invalid("prune_grace", format!("prune_grace: {e}")))
}

/// The default calendar of prune runs.
pub const DEFAULT_PRUNE_SCHEDULE: &str = "weekly";

/// A job's policy on a target: the job's rules, each raised to the target's where the target
/// keeps more.
pub fn effective(job: &Retention, target: Option<&Retention>) -> Result<Policy, ApiError> {
    let mut p = policy_of(job)?;
    if let Some(t) = target {
        p.merge_max(&policy_of(t)?);
    }
    Ok(p)
}

/// bmsd's time zone for retention buckets.
pub fn time_zone() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::system()
}

/// Adds the decisions of an engine forget to a target's report.
pub fn add_decisions(out: &mut ForgetOnTarget, sum: ForgetSummary) {
    out.decisions
        .extend(sum.decisions.into_iter().map(|d| SnapshotDecision {
            id: d.id,
            job: d.job,
            time: d.time,
            keep: d.keep,
            reasons: d.reasons,
        }));
    out.removed.extend(sum.removed);
}

/// Applies each job's policy to its snapshots in `repo` (jobs with no rule keep everything).
pub fn forget_by_policies(
    repo: &Repository,
    target: &str,
    jobs: &[(String, Policy)],
    dry_run: bool,
    stop: &AtomicBool,
) -> Result<ForgetOnTarget, bms_engine::Error> {
    let tz = time_zone();
    let mut out = ForgetOnTarget {
        target: target.to_string(),
        ..Default::default()
    };
    let mut described = Vec::new();
    for (job, policy) in jobs {
        if policy.is_empty() {
            continue;
        }
        described.push(format!("{job}: {}", policy.describe()));
        let name = job.clone();
        let sum =
            repo.forget_policy(policy, &move |s| s.snapshot.job == name, &tz, dry_run, stop)?;
        add_decisions(&mut out, sum);
    }
    out.policy = (!described.is_empty()).then(|| described.join("; "));
    Ok(out)
}

/// Prune statistics for the wire.
pub fn stats_of(forget: &ForgetOnTarget, p: &PruneSummary) -> PruneStats {
    PruneStats {
        snapshots_removed: forget.removed.len() as u64,
        snapshots_kept: p.snapshots,
        packs_removed: p.packs_removed,
        packs_repacked: p.packs_repacked,
        packs_written: p.packs_written,
        bytes_before: p.bytes_before,
        bytes_after: p.bytes_after,
        bytes_reclaimed: p.bytes_reclaimed,
        sealed_kept: p.sealed_kept.len() as u64,
        packs_condemned: p.packs_condemned,
        packs_rescued: p.packs_rescued,
        packs_waiting: p.packs_waiting,
        bytes_waiting: p.bytes_waiting,
        bytes_reclaimed_after_grace: p.bytes_reclaimed_after_grace,
        grace_secs: p.grace_secs,
    }
}

/// Forget by policy, then prune (or, dry, what both would do). A target without a repository
/// yet (no backup written) has nothing to prune.
pub fn forget_and_prune(
    repo: Result<Repository, bms_engine::Error>,
    target: &str,
    jobs: &[(String, Policy)],
    grace: std::time::Duration,
    dry_run: bool,
    stop: &AtomicBool,
) -> Result<(ForgetOnTarget, PruneSummary), bms_engine::Error> {
    let repo = match repo {
        Err(bms_engine::Error::NotARepository { .. }) => {
            let out = ForgetOnTarget {
                target: target.to_string(),
                policy: Some("no repository yet: nothing to prune".into()),
                prune: Some(PruneStats::default()),
                ..Default::default()
            };
            return Ok((out, PruneSummary::default()));
        }
        r => r?,
    };
    let repo = &repo;
    let mut out = forget_by_policies(repo, target, jobs, dry_run, stop)?;
    let opts = PruneOptions {
        dry_run,
        grace,
        ..Default::default()
    };
    let sum = if dry_run {
        let removed: HashSet<String> = out.removed.iter().cloned().collect();
        repo.prune_assuming(&opts, &removed, stop)?
    } else {
        repo.prune(&opts, stop)?
    };
    out.prune = Some(stats_of(&out, &sum));
    Ok((out, sum))
}
