//! The operations on the configuration: status, targets, jobs, apply and the audit trail.

use super::core::{Ctx, Operation};
use crate::catalog::{Actor, Upsert, SCHEMA_VERSION};
use bms_proto::api::*;
use bms_proto::ApiError;

fn actor(ctx: &Ctx<'_>) -> Actor {
    Actor {
        uid: ctx.caller.uid,
    }
}

impl Operation for Status {
    async fn call(self, ctx: &Ctx<'_>) -> Result<StatusReply, ApiError> {
        let (targets, jobs, jobs_enabled) = ctx.shared.catalog.call(|c| c.counts()).await?;
        let cs = ctx.shared.config();
        let schema_version = ctx.shared.catalog.call(|c| c.schema_version()).await?;
        debug_assert_eq!(schema_version, SCHEMA_VERSION);
        let (running_ids, queued_ids) = ctx.runner.snapshot();
        let (running, queued) = ctx
            .shared
            .catalog
            .call(move |c| {
                let get = |ids: &[i64]| {
                    ids.iter()
                        .map(|id| c.get_run(*id))
                        .collect::<Result<Vec<_>, _>>()
                };
                Ok((get(&running_ids)?, get(&queued_ids)?))
            })
            .await?;
        Ok(StatusReply {
            version: bms_proto::VERSION.into(),
            pid: std::process::id(),
            uptime_secs: ctx.shared.started.elapsed().as_secs(),
            started_at: ctx.shared.started_at.clone(),
            schema_version,
            targets,
            jobs,
            jobs_enabled,
            state_dir: cs.config.state_dir.display().to_string(),
            socket: cs.config.socket.display().to_string(),
            config: ConfigSummary {
                path: cs.config.path.as_ref().map(|p| p.display().to_string()),
                generation: cs.generation,
                loaded_at: cs.loaded_at.clone(),
                log_level: cs.effective_log_level.clone(),
                max_connections: cs.config.max_connections,
                max_concurrent_runs: cs.config.max_concurrent_runs,
                metrics_listen: cs.config.metrics_listen.to_string(),
            },
            role: ctx.caller.role.as_str().into(),
            metrics_address: ctx.shared.metrics_address.get().map(|a| a.to_string()),
            running,
            queued,
        })
    }
}

impl Operation for ListTargets {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TargetList, ApiError> {
        let targets = ctx.shared.catalog.call(|c| c.list_targets()).await?;
        Ok(TargetList { targets })
    }
}

impl Operation for GetTarget {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TargetReply, ApiError> {
        let target = ctx
            .shared
            .catalog
            .call(move |c| c.get_target(&self.name))
            .await?;
        Ok(TargetReply { target })
    }
}

/// AddTarget and UpdateTarget: a definition whose kind can hold seals is checked for
/// immutability first (docs/operations.md "Immutability"), then stored.
async fn put_target(
    ctx: &Ctx<'_>,
    spec: TargetSpec,
    mode: Upsert,
) -> Result<TargetReply, ApiError> {
    if crate::targets::Target::from_spec(&spec).is_ok() {
        crate::immutability::check_target_spec(&spec).await?;
        crate::targets::ensure_key_file(&spec)?;
    }
    let a = actor(ctx);
    let target = ctx
        .shared
        .catalog
        .call(move |c| c.put_target(a, &spec, mode))
        .await?;
    Ok(TargetReply { target })
}

impl Operation for AddTarget {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TargetReply, ApiError> {
        put_target(ctx, self.target, Upsert::CreateOnly).await
    }
}

impl Operation for UpdateTarget {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TargetReply, ApiError> {
        put_target(ctx, self.target, Upsert::UpdateOnly).await
    }
}

impl Operation for RemoveTarget {
    async fn call(self, ctx: &Ctx<'_>) -> Result<Empty, ApiError> {
        let a = actor(ctx);
        ctx.shared
            .catalog
            .call(move |c| c.remove_target(a, &self.name))
            .await?;
        Ok(Empty {})
    }
}

impl Operation for ListJobs {
    async fn call(self, ctx: &Ctx<'_>) -> Result<JobList, ApiError> {
        let jobs = ctx.shared.catalog.call(|c| c.list_jobs()).await?;
        Ok(JobList { jobs })
    }
}

impl Operation for GetJob {
    async fn call(self, ctx: &Ctx<'_>) -> Result<JobReply, ApiError> {
        let job = ctx
            .shared
            .catalog
            .call(move |c| c.get_job(&self.name))
            .await?;
        Ok(JobReply { job })
    }
}

/// Checks and stores a job (added or updated), then lets the scheduler look at it.
async fn put_job(ctx: &Ctx<'_>, job: JobSpec, mode: Upsert) -> Result<JobReply, ApiError> {
    crate::validate::job(&job)?;
    crate::validate::sources_exist(&job).await?;
    let a = actor(ctx);
    let job = ctx
        .shared
        .catalog
        .call(move |c| c.put_job(a, &job, mode))
        .await?;
    ctx.shared.scheduler_wake.notify_one();
    Ok(JobReply { job })
}

impl Operation for AddJob {
    async fn call(self, ctx: &Ctx<'_>) -> Result<JobReply, ApiError> {
        put_job(ctx, self.job, Upsert::CreateOnly).await
    }
}

impl Operation for UpdateJob {
    async fn call(self, ctx: &Ctx<'_>) -> Result<JobReply, ApiError> {
        put_job(ctx, self.job, Upsert::UpdateOnly).await
    }
}

impl Operation for RemoveJob {
    async fn call(self, ctx: &Ctx<'_>) -> Result<Empty, ApiError> {
        let a = actor(ctx);
        ctx.shared
            .catalog
            .call(move |c| c.remove_job(a, &self.name))
            .await?;
        Ok(Empty {})
    }
}

impl Operation for SetJobEnabled {
    async fn call(self, ctx: &Ctx<'_>) -> Result<JobReply, ApiError> {
        let a = actor(ctx);
        let job = ctx
            .shared
            .catalog
            .call(move |c| c.set_job_enabled(a, &self.name, self.enabled))
            .await?;
        ctx.shared.scheduler_wake.notify_one();
        Ok(JobReply { job })
    }
}

/// Refuses a name that two entries of one list define: the second would silently win.
fn apply_duplicates(req: &Apply) -> Result<(), ApiError> {
    let targets: Vec<&str> = req.targets.iter().map(|t| t.name.as_str()).collect();
    let jobs: Vec<&str> = req.jobs.iter().map(|j| j.name.as_str()).collect();
    for (list, what, names) in [("targets", "target", targets), ("jobs", "job", jobs)] {
        for (i, n) in names.iter().enumerate() {
            if let Some(first) = names[..i].iter().position(|m| m == n) {
                return Err(ApiError::invalid(
                    format!("{list}[{i}].name"),
                    format!(
                        "{list}[{first}] and {list}[{i}] both define {what} '{}': keep one of them",
                        crate::validate::echo(n)
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl Operation for Apply {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ApplyReply, ApiError> {
        apply_duplicates(&self)?;
        for (i, job) in self.jobs.iter().enumerate() {
            if crate::validate::job(job).is_ok() {
                crate::validate::sources_exist(job).await.map_err(|mut e| {
                    e.message = format!("jobs[{i}] '{}': {}", job.name, e.message);
                    e.field = Some(format!("jobs[{i}].sources"));
                    e
                })?;
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            if crate::targets::Target::from_spec(t).is_ok() {
                crate::immutability::check_target_spec(t)
                    .await
                    .map_err(|mut e| {
                        e.field = Some(format!("targets[{i}].immutable_days"));
                        e
                    })?;
                if !self.dry_run {
                    crate::targets::ensure_key_file(t).map_err(|mut e| {
                        e.field = Some(format!("targets[{i}].key_file"));
                        e
                    })?;
                }
            }
        }
        let a = actor(ctx);
        let reply = ctx.shared.catalog.call(move |c| c.apply(a, &self)).await?;
        ctx.shared.scheduler_wake.notify_one();
        Ok(reply)
    }
}

impl Operation for ListAudit {
    async fn call(self, ctx: &Ctx<'_>) -> Result<AuditList, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and 10000 (got {limit}); leave it out for 100"),
            ));
        }
        let entries = ctx
            .shared
            .catalog
            .call(move |c| c.list_audit(limit))
            .await?;
        Ok(AuditList { entries })
    }
}
