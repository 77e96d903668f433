//! The rules of 3-2-1-1-0 exactly as docs/compliance.md states them, decided from [`Facts`] in
//! memory: no I/O here.

use super::{rpo_of, Facts, VERIFY_WINDOW_DAYS};
use bms_proto::api::*;
use std::collections::{BTreeSet, HashMap};

/// Evaluates every job of `facts` (or only `only`).
pub fn evaluate(facts: &Facts, only: Option<&str>) -> Vec<JobCompliance> {
    let mut cache = HashMap::new();
    facts
        .jobs
        .iter()
        .filter(|j| only.is_none_or(|o| o == j.name))
        .map(|j| evaluate_job(facts, j, &mut cache))
        .collect()
}

fn evaluate_job(
    facts: &Facts,
    job: &JobSpec,
    cache: &mut HashMap<String, Option<u64>>,
) -> JobCompliance {
    let (rpo_secs, rpo_source) = rpo_of(job, facts.now, cache);
    let window = job.verify.window_days.unwrap_or(VERIFY_WINDOW_DAYS);
    let mut seen = BTreeSet::new();
    let copies: Vec<CopyEvidence> = job
        .targets
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .map(|t| copy_evidence(facts, job, t, rpo_secs))
        .collect();
    let held: Vec<&CopyEvidence> = copies.iter().filter(|c| c.is_copy).collect();
    let rules = vec![
        copies_rule(job, &copies, &held, rpo_secs),
        media_rule(job, &held),
        offsite_rule(job, &held),
        immutable_rule(job, &held),
        errors_rule(job, &held, facts.now, window),
    ];
    JobCompliance {
        job: job.name.clone(),
        compliant: rules.iter().all(|r| r.verdict == Verdict::Pass),
        rpo_secs,
        rpo_source: rpo_source.to_owned(),
        verify_window_days: window,
        rules,
        copies,
    }
}

fn copy_evidence(facts: &Facts, job: &JobSpec, target: &str, rpo_secs: u64) -> CopyEvidence {
    let key = (job.name.clone(), target.to_owned());
    let spec = facts.targets.get(target);
    let location = spec
        .map(|s| s.location.as_str())
        .unwrap_or("onsite")
        .to_owned();
    let media = match facts.media.get(&(job.name.clone(), target.to_owned())) {
        Some(m) if !m.is_empty() => m.clone(),
        _ => vec![Medium {
            media_type: spec
                .map(|s| s.media().as_str())
                .unwrap_or("disk")
                .to_owned(),
            location: location.clone(),
            label: None,
            in_drive: None,
        }],
    };
    let snap = facts.snapshots.get(&key);
    let oldest = facts
        .now
        .saturating_sub(i64::try_from(rpo_secs).unwrap_or(i64::MAX));
    let is_copy = spec.is_some() && snap.is_some_and(|s| s.unix >= oldest);
    let immutable_until = snap
        .and_then(|s| facts.seals.get(&(target.to_owned(), s.id.clone())))
        .cloned();
    let offline = media.iter().all(|m| m.in_drive == Some(false));
    let verification = facts.verifications.get(&key).map(|v| VerificationEvidence {
        run: v.run,
        kind: v.kind.clone(),
        finished_at: v.finished_at.clone(),
        state: v.state.clone(),
        errors: v.found_errors(),
        error: v.error.clone(),
        read_data_percent: v.read_data_percent,
        age_days: ((facts.now - v.unix).max(0) as f64 / 86400.0 * 10.0).round() / 10.0,
    });
    CopyEvidence {
        target: target.to_owned(),
        is_copy,
        snapshot: snap.map(|s| s.id.clone()),
        snapshot_time: snap.map(|s| s.time.clone()),
        snapshot_run: snap.and_then(|s| s.run),
        media,
        location,
        immutable_until,
        immutable_days: spec.map(|s| s.immutable_days).unwrap_or(0),
        offline,
        verification,
    }
}

fn result(rule: Rule, verdict: Verdict, reason: String, hint: Option<String>) -> RuleResult {
    RuleResult {
        rule,
        verdict,
        reason,
        hint: if verdict == Verdict::Pass { None } else { hint },
    }
}

fn names(copies: &[&CopyEvidence]) -> String {
    if copies.is_empty() {
        return "none".into();
    }
    copies
        .iter()
        .map(|c| c.target.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn human_secs(s: u64) -> String {
    match s {
        s if s.is_multiple_of(86400) => format!("{}d", s / 86400),
        s if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        s => format!("{}m", s.div_ceil(60)),
    }
}

fn copies_rule(
    job: &JobSpec,
    all: &[CopyEvidence],
    held: &[&CopyEvidence],
    rpo: u64,
) -> RuleResult {
    let n = held.len();
    let reason = format!(
        "source plus {n} cop{} within the RPO of {} ({}); needs the source plus 2",
        if n == 1 { "y" } else { "ies" },
        human_secs(rpo),
        names(held)
    );
    let stale: Vec<&CopyEvidence> = all.iter().filter(|c| !c.is_copy).collect();
    let hint = if all.len() < 2 {
        format!(
            "add a second target and give the job both: bmsctl target add NAME --path DIR; \
             bmsctl job edit {j} {} --target NAME",
            all.iter()
                .map(|c| format!("--target {}", c.target))
                .collect::<Vec<_>>()
                .join(" "),
            j = job.name
        )
    } else {
        let s = stale
            .iter()
            .map(|c| c.target.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "target(s) {s} hold no snapshot within the RPO: bmsctl job run {} --wait",
            job.name
        )
    };
    let verdict = if n >= 2 { Verdict::Pass } else { Verdict::Fail };
    result(Rule::Copies, verdict, reason, Some(hint))
}

fn media_rule(job: &JobSpec, held: &[&CopyEvidence]) -> RuleResult {
    let types: BTreeSet<&str> = held
        .iter()
        .flat_map(|c| c.media.iter().map(|m| m.media_type.as_str()))
        .collect();
    let list = types.iter().copied().collect::<Vec<_>>().join(", ");
    let reason = match types.len() {
        0 => "no copy within the RPO, so no media type".to_owned(),
        1 => format!("every copy is on one media type ({list}); needs 2"),
        n => format!("copies span {n} media types ({list})"),
    };
    let verdict = if types.len() >= 2 {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let other = if types.contains("tape") {
        "object"
    } else {
        "tape"
    };
    let hint = format!(
        "add a target on another medium and give it to the job: bmsctl target add NAME --kind {other} \
         --path PATH (or --media-type {other}); bmsctl job edit {} --target … --target NAME",
        job.name
    );
    result(Rule::Media, verdict, reason, Some(hint))
}

fn offsite_rule(job: &JobSpec, held: &[&CopyEvidence]) -> RuleResult {
    let off: Vec<&CopyEvidence> = held
        .iter()
        .copied()
        .filter(|c| c.location == "offsite" || c.media.iter().any(|m| m.location == "offsite"))
        .collect();
    let (verdict, reason) = if off.is_empty() {
        (
            Verdict::Fail,
            format!("no copy is offsite (copies: {})", names(held)),
        )
    } else {
        (Verdict::Pass, format!("offsite copy on {}", names(&off)))
    };
    let hint = format!(
        "add an offsite target: bmsctl target add NAME --path DIR --location offsite; \
         bmsctl job edit {} --target … --target NAME",
        job.name
    );
    result(Rule::Offsite, verdict, reason, Some(hint))
}

fn immutable_rule(job: &JobSpec, held: &[&CopyEvidence]) -> RuleResult {
    let imm: Vec<String> = held
        .iter()
        .filter_map(|c| {
            c.immutable_until
                .as_ref()
                .map(|u| format!("{} immutable until {u}", c.target))
        })
        .chain(
            held.iter()
                .filter(|c| c.offline)
                .map(|c| format!("{} offline", c.target)),
        )
        .collect();
    let (verdict, reason) = if imm.is_empty() {
        (
            Verdict::Fail,
            format!(
                "no copy is immutable now or offline (copies: {})",
                names(held)
            ),
        )
    } else {
        (Verdict::Pass, imm.join("; "))
    };
    let some = held
        .iter()
        .map(|c| c.target.as_str())
        .next()
        .unwrap_or("NAME");
    let hint = format!(
        "make a copy immutable: bmsctl target edit {some} --immutable-days 30 (on ext4, xfs or \
         btrfs), then bmsctl job run {} --wait",
        job.name
    );
    result(Rule::ImmutableOrOffline, verdict, reason, Some(hint))
}

fn errors_rule(job: &JobSpec, held: &[&CopyEvidence], now: i64, window: u32) -> RuleResult {
    let verify = |t: &str| {
        format!(
            "bmsctl verify --job {} --target {t} --read-data 10",
            job.name
        )
    };
    if held.is_empty() {
        return result(
            Rule::Errors,
            Verdict::Unknown,
            "no copy within the RPO to verify".into(),
            Some(format!("bmsctl job run {} --wait", job.name)),
        );
    }
    let window_secs = i64::from(window) * 86400;
    for c in held {
        if let Some(v) = c.verification.as_ref().filter(|v| v.errors) {
            let reason = format!(
                "target {} failed verification in run {} ({}): {}",
                c.target,
                v.run,
                v.finished_at,
                v.error.as_deref().unwrap_or("errors found")
            );
            let hint = format!(
                "see bmsctl run show {}; repair or replace the copy on {}, then {}",
                v.run,
                c.target,
                verify(&c.target)
            );
            return result(Rule::Errors, Verdict::Fail, reason, Some(hint));
        }
    }
    for c in held {
        if let Some(v) = &c.verification {
            let age = now - super::unix_of(&v.finished_at).unwrap_or(now);
            if age > window_secs {
                let days = age / 86400;
                let reason = format!(
                    "target {} last verified {days} days ago (run {}); the window is {window} days",
                    c.target, v.run
                );
                let hint = format!(
                    "target {} last verified {days} days ago: {}",
                    c.target,
                    verify(&c.target)
                );
                return result(Rule::Errors, Verdict::Fail, reason, Some(hint));
            }
        }
    }
    let never: Vec<&CopyEvidence> = held
        .iter()
        .copied()
        .filter(|c| c.verification.is_none())
        .collect();
    if let Some(first) = never.first() {
        return result(
            Rule::Errors,
            Verdict::Unknown,
            format!("never verified: {}", names(&never)),
            Some(format!(
                "target {} was never verified: {}",
                first.target,
                verify(&first.target)
            )),
        );
    }
    let runs = held
        .iter()
        .filter_map(|c| {
            c.verification
                .as_ref()
                .map(|v| format!("{} run {}", c.target, v.run))
        })
        .collect::<Vec<_>>()
        .join(", ");
    result(
        Rule::Errors,
        Verdict::Pass,
        format!("every copy verified without errors within {window} days ({runs})"),
        None,
    )
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
