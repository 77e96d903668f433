//! The period report (docs/reports.md): per job, runs by state, bytes, success gaps against the
//! RPO, compliance now and its changes, failures.

use super::*;
use std::collections::BTreeMap;

/// A report over `[since, until)` (RFC 3339), of one job or every job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub since: String,
    pub until: String,
    #[serde(default)]
    pub job: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportReply {
    pub generated_at: String,
    pub since: String,
    pub until: String,
    pub jobs: Vec<JobReport>,
}

/// One failed (or interrupted) run of the period.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportFailure {
    pub run: i64,
    pub kind: RunKind,
    pub state: RunState,
    pub target: Option<String>,
    pub queued_at: String,
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

/// One restore drill finished in the period (docs/compliance.md, "Restore drills").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportDrill {
    pub run: i64,
    pub target: Option<String>,
    pub state: RunState,
    pub finished_at: Option<String>,
    pub files_sampled: u64,
    pub bytes_sampled: u64,
    pub files_failed: u64,
    pub bytes_per_sec: f64,
    /// Projected full-restore time, seconds.
    pub rto_secs: f64,
}

/// One job's part of a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReport {
    pub job: String,
    /// Runs queued in the period, of every kind.
    pub runs: u64,
    /// The same runs by state (every state, zeros included).
    pub runs_by_state: BTreeMap<String, u64>,
    /// The same runs per day (UTC, `YYYY-MM-DD`) by state, days without runs left out.
    pub runs_by_day: BTreeMap<String, BTreeMap<String, u64>>,
    /// Succeeded (and warning) runs over finished runs, 0 to 1; none when no run finished.
    pub success_rate: Option<f64>,
    /// Backup runs queued in the period, and their bytes read and added to the repository.
    pub backup_runs: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// Of the job's primary target's repository now, as the metrics serve them
    /// (`bms_target_dedup_ratio`, `bms_target_compression_ratio`); None when not measured.
    pub dedup_ratio: Option<f64>,
    pub compression_ratio: Option<f64>,
    /// Bytes the period's backup runs added, a running total from the period's start to the
    /// end of each UTC day (`YYYY-MM-DD`) with backups.
    pub stored_by_day: BTreeMap<String, u64>,
    /// Finish time of the job's last succeeded backup up to `until` (any time before too).
    pub last_success: Option<String>,
    /// The longest time in the period without a fresh backup (docs/reports.md).
    pub longest_gap_secs: i64,
    pub rpo_secs: u64,
    pub rpo_met: bool,
    /// The checker's verdicts now.
    pub compliant: bool,
    pub rules: Vec<RuleResult>,
    /// Verdict changes recorded in the period, oldest first.
    pub compliance_changes: Vec<ComplianceChange>,
    /// Restore drills (their own and child drill runs) finished in the period, newest first
    /// (at most 100).
    pub drills: Vec<ReportDrill>,
    /// Failed, interrupted and cancelled runs of the period, newest first (at most 100).
    pub failures: Vec<ReportFailure>,
}
