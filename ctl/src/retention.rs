//! Retention options shared by `bmsctl repo forget` and the policy flags of jobs and targets,
//! and the table that shows keep/remove decisions (docs/retention.md).

use bms_engine::retention::{KeepDuration, Policy};

use crate::error::{CliError, CliResult};

/// The keep rules of a retention policy (restic's `forget` semantics, docs/retention.md).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeepArgs {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot younger than the latest one minus DURATION (e.g. 7d, 2m, 1y6m; units
    /// y, m (months), d, h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep the newest snapshot of every hour within DURATION of the latest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Keep the newest snapshot of every day within DURATION of the latest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    /// Keep the newest snapshot of every week within DURATION of the latest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    /// Keep the newest snapshot of every month within DURATION of the latest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    /// Keep the newest snapshot of every year within DURATION of the latest snapshot.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots carrying all of these tags (comma-separated; repeat for alternatives).
    #[arg(long = "keep-tag", value_name = "TAG[,TAG...]")]
    pub keep_tag: Vec<String>,
}

fn duration(v: &Option<String>) -> CliResult<Option<KeepDuration>> {
    v.as_deref()
        .map(|s| s.parse::<KeepDuration>())
        .transpose()
        .map_err(|e| CliError::usage(e.to_string()))
}

impl KeepArgs {
    pub fn policy(&self) -> CliResult<Policy> {
        let mut tags = Vec::new();
        for t in &self.keep_tag {
            let set: Vec<String> = t
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if set.is_empty() {
                return Err(CliError::usage(
                    "--keep-tag needs at least one tag name".to_string(),
                ));
            }
            tags.push(set);
        }
        Ok(Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: duration(&self.keep_within)?,
            within_hourly: duration(&self.keep_within_hourly)?,
            within_daily: duration(&self.keep_within_daily)?,
            within_weekly: duration(&self.keep_within_weekly)?,
            within_monthly: duration(&self.keep_within_monthly)?,
            within_yearly: duration(&self.keep_within_yearly)?,
            tags,
        })
    }
}

/// One row of a keep/remove table.
pub struct Row<'a> {
    pub short_id: &'a str,
    pub time: &'a str,
    pub job: &'a str,
    pub keep: bool,
    pub reasons: &'a [String],
}

/// Prints the decisions, one snapshot a line: `keep   2f3a9c1d  2026-11-30T02:00:00Z  home  daily 2026-11-30`.
pub fn print_rows(rows: &[Row<'_>]) {
    for r in rows {
        println!(
            "{:<6} {:<8}  {:<30}  {:<12}  {}",
            if r.keep { "keep" } else { "remove" },
            r.short_id,
            r.time,
            r.job,
            r.reasons.join(", ")
        );
    }
}
