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

/// The retention flags of `job add|edit` and `target add|edit` (a target's rules raise its
/// jobs' rules there). Counts of 0 and "" remove a rule.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RetentionFlags {
    /// Retention (docs/retention.md): keep the N newest snapshots (0: no rule).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N hours that have one (0: no rule).
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N days that have one (0: no rule).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N ISO weeks that have one (0: no
    /// rule).
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N months that have one (0: no
    /// rule).
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Retention: keep the newest snapshot of each of the last N years that have one (0: no rule).
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Retention: keep every snapshot younger than the latest one minus N days (0: no rule).
    #[arg(long, value_name = "DAYS")]
    pub keep_within_days: Option<u32>,
    /// Retention: keep every snapshot younger than the latest minus DURATION (7d, 2m, 1y6m; units
    /// y, m (months), d, h; "" removes the rule).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Retention: the newest snapshot of every hour within DURATION of the latest ("" removes).
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<String>,
    /// Retention: the newest snapshot of every day within DURATION of the latest ("" removes).
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<String>,
    /// Retention: the newest snapshot of every week within DURATION of the latest ("" removes).
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<String>,
    /// Retention: the newest snapshot of every month within DURATION of the latest ("" removes).
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<String>,
    /// Retention: the newest snapshot of every year within DURATION of the latest ("" removes).
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<String>,
    /// Retention: keep snapshots carrying all these tags (TAG[,TAG...]; repeat for alternatives;
    /// replaces the list; "" clears it).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    pub keep_tag: Vec<String>,
}

fn text(v: &str) -> Option<String> {
    (!v.trim().is_empty()).then(|| v.trim().to_owned())
}

impl RetentionFlags {
    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        let f = self;
        [
            f.keep_last,
            f.keep_hourly,
            f.keep_daily,
            f.keep_weekly,
            f.keep_monthly,
        ]
        .iter()
        .chain([f.keep_yearly, f.keep_within_days].iter())
        .any(Option::is_some)
            || [
                &f.keep_within,
                &f.keep_within_hourly,
                &f.keep_within_daily,
                &f.keep_within_weekly,
                &f.keep_within_monthly,
                &f.keep_within_yearly,
            ]
            .iter()
            .any(|o| o.is_some())
            || !f.keep_tag.is_empty()
    }

    pub fn apply_to(&self, r: &mut bms_proto::api::Retention) {
        for (dst, src) in [
            (&mut r.keep_last, self.keep_last),
            (&mut r.keep_hourly, self.keep_hourly),
            (&mut r.keep_daily, self.keep_daily),
            (&mut r.keep_weekly, self.keep_weekly),
            (&mut r.keep_monthly, self.keep_monthly),
            (&mut r.keep_yearly, self.keep_yearly),
            (&mut r.keep_within_days, self.keep_within_days),
        ] {
            if let Some(v) = src {
                *dst = v;
            }
        }
        for (dst, src) in [
            (&mut r.keep_within, &self.keep_within),
            (&mut r.keep_within_hourly, &self.keep_within_hourly),
            (&mut r.keep_within_daily, &self.keep_within_daily),
            (&mut r.keep_within_weekly, &self.keep_within_weekly),
            (&mut r.keep_within_monthly, &self.keep_within_monthly),
            (&mut r.keep_within_yearly, &self.keep_within_yearly),
        ] {
            if let Some(v) = src {
                *dst = text(v);
            }
        }
        if !self.keep_tag.is_empty() {
            r.keep_tags = self.keep_tag.iter().filter_map(|t| text(t)).collect();
        }
    }
}

/// A retention's rules in words (`last 3, daily 7, within 30d`), or "keep everything".
pub fn describe(r: &bms_proto::api::Retention) -> String {
    let mut parts: Vec<String> = [
        ("last", r.keep_last),
        ("hourly", r.keep_hourly),
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
        ("yearly", r.keep_yearly),
        ("within days", r.keep_within_days),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(k, n)| format!("{k} {n}"))
    .collect();
    for (k, v) in [
        ("within", &r.keep_within),
        ("within-hourly", &r.keep_within_hourly),
        ("within-daily", &r.keep_within_daily),
        ("within-weekly", &r.keep_within_weekly),
        ("within-monthly", &r.keep_within_monthly),
        ("within-yearly", &r.keep_within_yearly),
    ] {
        if let Some(d) = v {
            parts.push(format!("{k} {d}"));
        }
    }
    for t in &r.keep_tags {
        parts.push(format!("tag {t}"));
    }
    if parts.is_empty() {
        "keep everything".into()
    } else {
        parts.join(", ")
    }
}
