//! Forget and prune through the daemon (docs/retention.md): `ForgetSnapshots` removes snapshots
//! by id or by a job's policy from the repositories and the catalog; `Prune` queues `prune`
//! runs, or answers a dry run with every snapshot's fate and the bytes to reclaim.

use super::core::{Ctx, Operation};
use super::from_engine;
use crate::catalog::Actor;
use crate::runner;
use crate::targets::{Purpose, Target};
use bms_engine::retention::Policy;
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How long an interactive forget or dry run waits for a repository another run holds.
const LOCK_WAIT: Duration = Duration::from_secs(60);

fn open(spec: &TargetSpec) -> Result<bms_engine::Repository, bms_engine::Error> {
    let mut repo = runner::open_repo(spec, Purpose::Prune)?;
    repo.set_lock_wait(LOCK_WAIT);
    Ok(repo)
}

async fn target_spec(ctx: &Ctx<'_>, name: &str) -> Result<TargetSpec, ApiError> {
    let n = name.to_owned();
    let spec = ctx
        .shared
        .catalog
        .call(move |c| c.get_target(&n))
        .await?
        .spec;
    Target::from_spec(&spec)?.require(Purpose::Prune)?;
    Ok(spec)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, bms_engine::Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("forget task failed: {e}")))?
        .map_err(|e| from_engine(&e))
}

impl Operation for ForgetSnapshots {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ForgetReply, ApiError> {
        let dry_run = self.dry_run;
        let targets = if self.apply_policy {
            if !self.ids.is_empty() {
                return Err(ApiError::invalid(
                    "ids",
                    "give either snapshot ids or apply_policy with a job, not both",
                ));
            }
            forget_by_policy(ctx, &self).await?
        } else {
            if self.ids.is_empty() {
                return Err(ApiError::invalid(
                    "ids",
                    "name the snapshots to forget, or forget by a job's policy (apply_policy)",
                ));
            }
            forget_ids(ctx, &self).await?
        };
        Ok(ForgetReply { dry_run, targets })
    }
}

async fn forget_by_policy(
    ctx: &Ctx<'_>,
    req: &ForgetSnapshots,
) -> Result<Vec<ForgetOnTarget>, ApiError> {
    let Some(job) = req.job.clone() else {
        return Err(ApiError::invalid(
            "job",
            "apply_policy needs the job whose policy to apply",
        ));
    };
    let j = job.clone();
    let spec = ctx.shared.catalog.call(move |c| c.get_job(&j)).await?.spec;
    let names: Vec<String> = match &req.target {
        Some(t) if !spec.targets.contains(t) => {
            return Err(ApiError::invalid(
                "target",
                format!("job '{job}' does not write to target '{t}'"),
            ))
        }
        Some(t) => vec![t.clone()],
        None => spec.targets.clone(),
    };
    let mut out = Vec::new();
    for name in names {
        let tspec = target_spec(ctx, &name).await?;
        let policy = crate::retention::effective(&spec.retention, tspec.retention.as_ref())?;
        if policy.is_empty() {
            return Err(ApiError::invalid(
                "job",
                format!(
                    "job '{job}' has no retention rule on target '{name}', so nothing would be \
                     removed: set one, e.g. `bmsctl job edit {job} --keep-daily 7`"
                ),
            ));
        }
        let jobs: Vec<(String, Policy)> = vec![(job.clone(), policy)];
        let (dry, n) = (req.dry_run, name.clone());
        let report = blocking(move || {
            let repo = open(&tspec)?;
            crate::retention::forget_by_policies(&repo, &n, &jobs, dry, &AtomicBool::new(false))
        })
        .await?;
        if !req.dry_run {
            record(ctx, &name, &report.removed, &format!("policy of job {job}")).await?;
        }
        out.push(report);
    }
    Ok(out)
}

async fn record(ctx: &Ctx<'_>, target: &str, ids: &[String], why: &str) -> Result<(), ApiError> {
    let (t, ids, why) = (target.to_owned(), ids.to_vec(), why.to_owned());
    let actor = Actor {
        uid: ctx.caller.uid,
    };
    ctx.shared
        .catalog
        .call(move |c| c.forget_snapshots(actor, &t, &ids, &why))
        .await
}

async fn forget_ids(ctx: &Ctx<'_>, req: &ForgetSnapshots) -> Result<Vec<ForgetOnTarget>, ApiError> {
    let (job, target) = (req.job.clone(), req.target.clone());
    let all = ctx
        .shared
        .catalog
        .call(move |c| c.list_snapshots(job.as_deref(), target.as_deref()))
        .await?;
    // Every copy of each named snapshot, by target.
    let mut by_target: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for spec in &req.ids {
        let spec = spec.to_ascii_lowercase();
        if spec.len() < 8 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid(
                "ids",
                format!("{spec:?} is not a snapshot id: give at least 8 hex characters"),
            ));
        }
        let hits: Vec<&SnapshotRecord> = all.iter().filter(|s| s.id.starts_with(&spec)).collect();
        let distinct: std::collections::BTreeSet<&str> =
            hits.iter().map(|s| s.id.as_str()).collect();
        match distinct.len() {
            0 => {
                return Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!(
                        "no catalogued snapshot matches {spec}{}: list them with `bmsctl snapshot list`",
                        req.target.as_ref().map(|t| format!(" on target '{t}'")).unwrap_or_default()
                    ),
                ))
            }
            1 => {}
            n => {
                return Err(ApiError::invalid(
                    "ids",
                    format!("snapshot prefix {spec} is ambiguous ({n} snapshots match): give more characters"),
                ))
            }
        }
        for h in hits {
            let v = by_target.entry(h.target.clone()).or_default();
            if !v.contains(&h.id) {
                v.push(h.id.clone());
            }
        }
    }
    let mut specs = Vec::new();
    for name in by_target.keys() {
        specs.push(target_spec(ctx, name).await?);
    }
    // A dry pass over every target first: one sealed copy refuses the whole request before
    // anything is removed.
    let passes: &[bool] = if req.dry_run { &[true] } else { &[true, false] };
    let mut out = Vec::new();
    for &dry in passes {
        out.clear();
        for (tspec, (name, ids)) in specs.iter().zip(&by_target) {
            let (tspec, n, list) = (tspec.clone(), name.clone(), ids.clone());
            let report = blocking(move || {
                let repo = open(&tspec)?;
                let sum = repo.forget(&list, dry, &AtomicBool::new(false))?;
                let mut r = ForgetOnTarget {
                    target: n,
                    ..Default::default()
                };
                crate::retention::add_decisions(&mut r, sum);
                Ok(r)
            })
            .await?;
            if !dry {
                record(ctx, name, &report.removed, "by id").await?;
            }
            out.push(report);
        }
    }
    Ok(out)
}

impl Operation for Prune {
    async fn call(self, ctx: &Ctx<'_>) -> Result<PruneReply, ApiError> {
        let names: Vec<String> = match (&self.target, &self.job) {
            (Some(t), _) => vec![t.clone()],
            (None, Some(j)) => {
                let j = j.clone();
                ctx.shared
                    .catalog
                    .call(move |c| c.get_job(&j))
                    .await?
                    .spec
                    .targets
            }
            (None, None) => ctx
                .shared
                .catalog
                .call(|c| c.list_targets())
                .await?
                .into_iter()
                .filter(|t| crate::targets::capabilities(t.spec.kind).allows(Purpose::Prune))
                .map(|t| t.spec.name)
                .collect(),
        };
        let mut reply = PruneReply {
            dry_run: self.dry_run,
            ..Default::default()
        };
        for name in names {
            if !self.dry_run {
                let run = runner::submit_prune(
                    ctx.runner,
                    &name,
                    self.job.as_deref(),
                    RunTrigger::Manual,
                )
                .await?;
                let (uid, t, detail) = (ctx.caller.uid, name.clone(), format!("run {}", run.id));
                ctx.shared
                    .catalog
                    .call(move |c| {
                        c.record_audit(Actor { uid }, "prune.request", &t, Some(&detail))
                    })
                    .await?;
                reply.runs.push(run);
                continue;
            }
            let tspec = target_spec(ctx, &name).await?;
            let jobs = runner::prune_policies(ctx.shared, &tspec, self.job.as_deref()).await?;
            let grace = crate::retention::prune_grace(&tspec)?;
            let report = blocking(move || {
                crate::retention::forget_and_prune(
                    open(&tspec),
                    &name,
                    &jobs,
                    grace,
                    true,
                    &AtomicBool::new(false),
                )
                .map(|(r, _)| r)
            })
            .await?;
            reply.targets.push(report);
        }
        Ok(reply)
    }
}
