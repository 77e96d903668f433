//! The operations on runs, snapshots and target checks.

use super::core::{Caller, Ctx, Item, Items, Operation};
use crate::runner::{self, RunnerRef};
use crate::state::SharedRef;
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a stream reports progress.
pub const TICK: Duration = Duration::from_millis(250);

impl Operation for RunJob {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RunReply, ApiError> {
        let run = runner::submit(ctx.runner, &self.name, RunTrigger::Manual).await?;
        Ok(RunReply { run })
    }
}

impl Operation for ListRuns {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RunList, ApiError> {
        let limit = self.limit.unwrap_or(50).clamp(1, 10_000);
        let runs = ctx
            .shared
            .catalog
            .call(move |c| c.list_runs(self.job.as_deref(), limit))
            .await?;
        Ok(RunList { runs })
    }
}

/// The run, its log and its live progress.
pub async fn run_detail(runner: &runner::Runner, id: i64) -> Result<RunDetail, ApiError> {
    runner::watch::detail(runner, id).await
}

impl Operation for GetRun {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RunDetail, ApiError> {
        run_detail(ctx.runner, self.id).await
    }
}

impl Operation for WatchRun {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RunDetail, ApiError> {
        run_detail(ctx.runner, self.id).await
    }

    fn stream(self, _caller: Caller, runner: RunnerRef) -> Items<RunDetail> {
        watch(runner, self.id)
    }
}

/// The run's detail as it changes until it is final (`runner::watch::watch_run`: the event bus
/// and the run's progress channel, no polling of the catalog).
pub fn watch(runner: RunnerRef, id: i64) -> Items<RunDetail> {
    let (tx, rx) = mpsc::channel(16);
    let mut details = runner::watch::watch_run(runner, id);
    tokio::spawn(async move {
        while let Some(d) = details.recv().await {
            let (item, last) = match d {
                Ok(d) if d.run.state.is_final() => (Item::Last(d), true),
                Ok(d) => (Item::More(d), false),
                Err(e) => (Item::Failed(e), true),
            };
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    rx
}

impl Operation for WatchEvents {
    async fn call(self, _ctx: &Ctx<'_>) -> Result<EventReply, ApiError> {
        Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "WatchEvents streams events: call it with \"more\": true (bmsctl events)",
        ))
    }

    /// The bus's events (`runner::watch::watch_events`) until the client hangs up.
    fn stream(self, _caller: Caller, runner: RunnerRef) -> Items<EventReply> {
        let (tx, rx) = mpsc::channel(64);
        let mut events = runner::watch::watch_events(&runner.shared, self.job);
        tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                if tx.send(Item::More(e)).await.is_err() {
                    return;
                }
            }
        });
        rx
    }
}

impl Operation for CancelRun {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RunReply, ApiError> {
        let run = runner::cancel(ctx.runner, self.id).await?;
        Ok(RunReply { run })
    }
}

impl Operation for ListSnapshots {
    async fn call(self, ctx: &Ctx<'_>) -> Result<SnapshotList, ApiError> {
        let snapshots = ctx
            .shared
            .catalog
            .call(move |c| c.list_snapshots(self.job.as_deref(), self.target.as_deref()))
            .await?;
        Ok(SnapshotList { snapshots })
    }
}

/// Finds a catalogued snapshot by id or unique prefix (8+ characters), optionally on one target.
pub async fn find_snapshot(
    shared: &SharedRef,
    id: &str,
    target: Option<&str>,
) -> Result<SnapshotRecord, ApiError> {
    let t = target.map(str::to_owned);
    let all = shared
        .catalog
        .call(move |c| c.list_snapshots(None, t.as_deref()))
        .await?;
    let matches: Vec<SnapshotRecord> = all.into_iter().filter(|s| s.id.starts_with(id)).collect();
    let distinct: std::collections::BTreeSet<&str> =
        matches.iter().map(|s| s.id.as_str()).collect();
    match distinct.len() {
        0 => Err(not_on_target(shared, id, target).await),
        _ if id.len() < 8 => Err(ApiError::invalid(
            "snapshot",
            "give at least 8 characters of the snapshot id",
        )),
        1 => matches
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("snapshot", id)),
        n => Err(ApiError::invalid(
            "snapshot",
            format!("snapshot prefix '{id}' matches {n} snapshots: give more characters"),
        )),
    }
}

/// The error for a snapshot the catalog has not found (on `target`, when given): says when the
/// target does not exist, or names the targets that do hold the snapshot.
async fn not_on_target(shared: &SharedRef, id: &str, target: Option<&str>) -> ApiError {
    let Some(t) = target else {
        return ApiError::not_found("snapshot", id);
    };
    let tname = t.to_owned();
    if let Err(e) = shared.catalog.call(move |c| c.get_target(&tname)).await {
        return e;
    }
    let all = match shared.catalog.call(|c| c.list_snapshots(None, None)).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let holders: std::collections::BTreeSet<String> = all
        .into_iter()
        .filter(|s| s.id.starts_with(id))
        .map(|s| s.target)
        .collect();
    if holders.is_empty() {
        return ApiError::not_found("snapshot", id);
    }
    let names: Vec<String> = holders.into_iter().map(|h| format!("'{h}'")).collect();
    ApiError::new(
        ErrorKind::NotFound,
        format!(
            "snapshot '{id}' is not on target '{t}'; it is on {} (use --target {})",
            names.join(", "),
            names[0].trim_matches('\'')
        ),
    )
}

impl Operation for GetSnapshot {
    async fn call(self, ctx: &Ctx<'_>) -> Result<SnapshotReply, ApiError> {
        let snapshot = find_snapshot(ctx.shared, &self.id, self.target.as_deref()).await?;
        Ok(SnapshotReply { snapshot })
    }
}

impl Operation for CheckTarget {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TargetCheck, ApiError> {
        let name = self.name.clone();
        let target = ctx
            .shared
            .catalog
            .call(move |c| c.get_target(&name))
            .await?;
        let spec = target.spec;
        let check = tokio::task::spawn_blocking(move || crate::preflight::check(&spec))
            .await
            .map_err(|e| ApiError::internal(format!("check failed: {e}")))?;
        runner::record_check(ctx.shared, &check).await?;
        Ok(check)
    }
}
