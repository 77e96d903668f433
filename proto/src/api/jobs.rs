//! Jobs: what, when and where to back up.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MissedPolicy {
    /// Runs missed while the daemon was down are not made up.
    Skip,
    /// One catch-up run at start-up for runs missed while the daemon was down.
    #[default]
    RunOnce,
}

impl MissedPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MissedPolicy::Skip => "skip",
            MissedPolicy::RunOnce => "run-once",
        }
    }
}

/// How many snapshots to keep (docs/retention.md, restic's `forget` semantics): a snapshot is
/// kept if any rule keeps it. No rule at all keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Keep everything younger than the latest snapshot minus this many days.
    pub keep_within_days: u32,
    /// Keep everything younger than the latest snapshot minus this duration (`7d`, `2m`,
    /// `1y6m`; units y, m (months), d, h).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
    /// Keep the newest snapshot of each hour within this duration of the latest snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<String>,
    /// Keep snapshots carrying all tags of one entry (`a,b` means a and b).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<String>,
}

impl Retention {
    /// Whether no rule is set (everything is kept).
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }
}

/// When and how deeply a job's snapshots are verified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyPolicy {
    /// Verify the primary target right after each backup (structure, plus `read_data_percent` of
    /// the packs re-read), recorded as a `verify` run of the backup run. Off by default.
    pub after_backup: bool,
    /// Percentage of the packs re-read and re-hashed by verification (0..=100).
    pub read_data_percent: u8,
    /// Calendar expression for scheduled verification: on this calendar a `verify` run checks
    /// the primary target, and a child `verify` run each further target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Restore drills (docs/compliance.md): on their own calendar, a sample of files restored
    /// from the latest snapshot on each target and compared with the recorded hashes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillPolicy>,
    /// Verification window in days: a copy verified longer ago fails the "0" rule (default 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_days: Option<u32>,
}

/// Files restored by a drill when the policy names no number.
pub const DRILL_SAMPLE_FILES: u32 = 20;
/// Bytes restored by a drill at most when the policy names no size (256 MiB).
pub const DRILL_SAMPLE_BYTES: u64 = 256 << 20;

fn drill_files() -> u32 {
    DRILL_SAMPLE_FILES
}
fn drill_bytes() -> u64 {
    DRILL_SAMPLE_BYTES
}

/// A job's restore drill: `drill = { schedule, sample_files, sample_bytes }` in its verify policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillPolicy {
    /// Calendar expression of the drills.
    pub schedule: String,
    /// Files restored per target at most (a random sample).
    #[serde(default = "drill_files")]
    pub sample_files: u32,
    /// Bytes restored per target at most.
    #[serde(default = "drill_bytes")]
    pub sample_bytes: u64,
}

/// Commands run before and after a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub post: Option<String>,
    pub timeout_secs: u32,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            pre: None,
            post: None,
            timeout_secs: 300,
        }
    }
}

fn yes() -> bool {
    true
}

/// A backup job as the user describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub name: String,
    /// Absolute paths to back up.
    pub sources: Vec<String>,
    /// Glob patterns of paths to leave out.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// systemd calendar expression, e.g. `daily` or `Mon..Fri 02:00`.
    pub schedule: String,
    /// Up to this many seconds of random delay added to each scheduled run.
    #[serde(default)]
    pub randomized_delay_secs: u32,
    /// Target names; the first is the primary, the others receive copies.
    pub targets: Vec<String>,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub verify: VerifyPolicy,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub missed: MissedPolicy,
    /// A run still going after this many seconds is stopped (0: no limit).
    #[serde(default)]
    pub timeout_secs: u64,
    /// Do not cross filesystem boundaries below the sources.
    #[serde(default)]
    pub one_file_system: bool,
    /// Recovery point objective in seconds: with no successful backup for this long, the
    /// "no successful backup within RPO" alert opens (docs/alerts.md). None: no such alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_secs: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// A job as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    #[serde(flatten)]
    pub spec: JobSpec,
    /// The schedule in systemd's normalized form.
    pub schedule_normalized: String,
    /// The next elapse times of the schedule (RFC 3339), at most 3.
    pub next_runs: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListJobs {}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    pub jobs: Vec<JobInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetJob {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReply {
    pub job: JobInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddJob {
    pub job: JobSpec,
}

/// Replaces a job's definition; the name selects it and cannot change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateJob {
    pub job: JobSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveJob {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetJobEnabled {
    pub name: String,
    pub enabled: bool,
}
