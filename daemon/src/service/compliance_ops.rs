//! The 3-2-1-1-0 checker's methods (docs/compliance.md): `Compliance`, `ComplianceHistory` and
//! the on-demand `Verify`.

use super::core::{Ctx, Operation};
use crate::compliance::watch::evaluate_now;
use crate::runner;
use bms_proto::api::*;
use bms_proto::ApiError;

impl Operation for Compliance {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ComplianceReply, ApiError> {
        if let Some(j) = &self.job {
            let name = j.clone();
            ctx.shared.catalog.call(move |c| c.get_job(&name)).await?;
        }
        let evaluated_at = crate::catalog::now_rfc3339();
        let jobs = evaluate_now(ctx.shared, self.job).await?;
        Ok(ComplianceReply {
            evaluated_at,
            compliant: jobs.iter().filter(|j| j.compliant).count() as u32,
            total: jobs.len() as u32,
            jobs,
        })
    }
}

impl Operation for ComplianceHistory {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ComplianceHistoryReply, ApiError> {
        let limit = self.limit.unwrap_or(100);
        if !(1..=10_000).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and 10000 (got {limit}); leave it out for 100"),
            ));
        }
        let changes = ctx
            .shared
            .catalog
            .call(move |c| c.compliance_history(self.job.as_deref(), limit))
            .await?;
        Ok(ComplianceHistoryReply { changes })
    }
}

impl Operation for Verify {
    async fn call(self, ctx: &Ctx<'_>) -> Result<VerifyReply, ApiError> {
        if let Some(p) = self.read_data_percent.filter(|p| *p > 100) {
            return Err(ApiError::invalid(
                "read_data_percent",
                format!("read-data percentage must be 0 to 100 (got {p})"),
            ));
        }
        let jobs: Vec<String> = match &self.job {
            Some(j) => vec![j.clone()],
            None => {
                let all = ctx.shared.catalog.call(|c| c.list_jobs()).await?;
                all.into_iter()
                    .filter(|j| {
                        self.target
                            .as_ref()
                            .is_none_or(|t| j.spec.targets.contains(t))
                    })
                    .map(|j| j.spec.name)
                    .collect()
            }
        };
        if jobs.is_empty() {
            return Err(ApiError::new(
                bms_proto::ErrorKind::NotFound,
                match &self.target {
                    Some(t) => format!("no job writes to target '{t}'; name a target a job uses"),
                    None => "there are no jobs to verify; add one with 'bmsctl job add'".into(),
                },
            ));
        }
        let mut runs = Vec::new();
        for j in jobs {
            let run = if self.drill {
                runner::submit_drill(ctx.runner, &j, RunTrigger::Manual, self.target.clone())
                    .await?
            } else {
                runner::submit_verify_now(
                    ctx.runner,
                    &j,
                    self.target.clone(),
                    self.read_data_percent,
                )
                .await?
            };
            runs.push(run);
        }
        Ok(VerifyReply { runs })
    }
}
