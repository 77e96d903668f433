//! Runs (backup, copy, verify, prune), snapshots, restores and target checks.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Backup,
    Copy,
    Verify,
    Prune,
    /// A restore drill (docs/compliance.md).
    Drill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunTrigger {
    Schedule,
    Manual,
    CatchUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Queued,
    Running,
    Succeeded,
    /// Finished with a snapshot, but some files could not be read (a partial snapshot).
    Warning,
    Failed,
    Cancelled,
    /// The daemon stopped or died while the run was going.
    Interrupted,
    /// Not started, e.g. because the job was already running; `error` says why.
    Skipped,
}

impl RunState {
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$v),)* _ => None }
            }
        }
    };
}
str_enum!(RunKind { Backup => "backup", Copy => "copy", Verify => "verify", Prune => "prune", Drill => "drill" });
str_enum!(RunTrigger { Schedule => "schedule", Manual => "manual", CatchUp => "catch-up" });
str_enum!(RunState {
    Queued => "queued", Running => "running", Succeeded => "succeeded", Warning => "warning",
    Failed => "failed", Cancelled => "cancelled", Interrupted => "interrupted", Skipped => "skipped",
});

/// Counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunStats {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub bytes_read: u64,
    /// Logical bytes of file content in the snapshot.
    pub bytes_total: u64,
    /// Bytes added to the repository (after dedup and compression).
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_total: u64,
    pub warnings: u64,
}

/// A run as the catalog records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: i64,
    pub job: String,
    pub kind: RunKind,
    pub trigger: RunTrigger,
    pub state: RunState,
    /// The target written to.
    pub target: Option<String>,
    /// For copies: the target copied from.
    pub source_target: Option<String>,
    /// The snapshot written (backup, copy).
    pub snapshot: Option<String>,
    /// For copies: the backup run they belong to.
    pub parent_run: Option<i64>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_secs: Option<f64>,
    pub stats: RunStats,
    pub error: Option<String>,
    /// Prune runs: what was removed and reclaimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneStats>,
    /// Drill runs: what was restored and compared, and the restore time it projects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillStats>,
}

/// What a restore drill restored and found (docs/compliance.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DrillStats {
    /// The snapshot drilled (the latest on the target).
    pub snapshot: String,
    /// Files and content bytes restored (the sample).
    pub files_sampled: u64,
    pub bytes_sampled: u64,
    /// Files and content bytes of the whole snapshot.
    pub files_total: u64,
    pub bytes_total: u64,
    /// Sampled files that could not be restored or whose content differs from the recorded
    /// hashes.
    pub files_failed: u64,
    /// Seconds the sample took to restore, and the rate it gives (bytes per second).
    pub restore_secs: f64,
    pub bytes_per_sec: f64,
    /// Projected time to restore the whole snapshot at that rate (RTO evidence), seconds.
    pub rto_secs: f64,
}

/// Statistics of a prune run (or what a dry run would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PruneStats {
    pub snapshots_removed: u64,
    pub snapshots_kept: u64,
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Bytes of packs and index files before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_reclaimed: u64,
    /// Objects kept because they are sealed (immutable).
    pub sealed_kept: u64,
    /// Packs condemned by this run, rescued (needed again), and still waiting for the grace
    /// period (with their bytes) afterwards (docs/retention.md "How prune works").
    pub packs_condemned: u64,
    pub packs_rescued: u64,
    pub packs_waiting: u64,
    pub bytes_waiting: u64,
    /// What is reclaimed once every condemned pack has waited the grace period.
    pub bytes_reclaimed_after_grace: u64,
    pub grace_secs: u64,
}

/// One snapshot and what a retention policy decided for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDecision {
    pub id: String,
    pub job: String,
    pub time: String,
    pub keep: bool,
    /// Why it is kept: `daily 2026-11-30`, `last 3`, `within 7d`, `immutable until ...`.
    pub reasons: Vec<String>,
}

/// What forget did (or would do) on one target.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForgetOnTarget {
    pub target: String,
    /// The policy applied, described (`last 3, daily 7`), when forgetting by policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    pub decisions: Vec<SnapshotDecision>,
    /// Ids removed (to be removed, for a dry run).
    pub removed: Vec<String>,
    /// Prune dry runs: what prune would reclaim after this forget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneStats>,
}

/// Removes snapshots from their repositories and the catalog: by id (`ids`), or with
/// `apply_policy` those the retention policy of `job` does not keep, on `target` or on every
/// target of the job. Sealed snapshots are refused (by id) or kept (by policy).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetSnapshots {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub apply_policy: bool,
    #[serde(default)]
    pub dry_run: bool,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ForgetReply {
    pub dry_run: bool,
    pub targets: Vec<ForgetOnTarget>,
}

/// Applies the retention policies and reclaims space: one `prune` run per target (`target`,
/// the targets of `job`, or every disk/NAS target). With `dry_run`, nothing is queued or
/// changed and the reply lists every snapshot with keep/remove and the bytes prune would
/// reclaim.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prune {
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub dry_run: bool,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PruneReply {
    pub dry_run: bool,
    /// The prune runs queued (not for a dry run).
    pub runs: Vec<RunInfo>,
    /// Dry run: per target, the decisions and the bytes to reclaim.
    pub targets: Vec<ForgetOnTarget>,
}

/// Live progress of a running run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunProgress {
    /// `queued`, `preflight`, `pre-hook`, `backup`, `copy to NAME`, `done`.
    pub phase: String,
    pub files: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    /// Estimated bytes to read (from the parent snapshot), 0 when unknown.
    pub bytes_expected: u64,
    pub bytes_per_sec: f64,
    pub eta_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunJob {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReply {
    pub run: RunInfo,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRuns {
    #[serde(default)]
    pub job: Option<String>,
    /// Newest first; at most this many (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRun {
    pub id: i64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: RunInfo,
    /// Hook output, warnings and notes, in order.
    pub log: Vec<String>,
    pub progress: Option<RunProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    pub id: i64,
}

/// Streams `RunDetail` replies (`continues: true`) until the run is final; call with `more`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchRun {
    pub id: i64,
}

/// A snapshot as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: String,
    pub target: String,
    pub job: String,
    pub time: String,
    pub host: String,
    pub paths: Vec<String>,
    pub partial: bool,
    pub run_id: Option<i64>,
    pub stats: RunStats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSnapshots {
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSnapshot {
    /// Full id or unique prefix (at least 8 characters).
    pub id: String,
    #[serde(default)]
    pub target: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SnapshotReply {
    pub snapshot: SnapshotRecord,
}

/// Restores a snapshot through the daemon (admin only). Streams `RestoreReply` with progress
/// (`continues: true`) when called with `more`; the last reply has `summary`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub snapshot: String,
    /// The target holding the snapshot; default: the first that has it.
    #[serde(default)]
    pub target: Option<String>,
    /// Absolute directory to restore into.
    pub to: String,
    /// Paths inside the snapshot; empty: everything.
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub dry_run: bool,
    /// never, if-changed or always.
    #[serde(default)]
    pub overwrite: Option<String>,
}
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RestoreReply {
    pub files: u64,
    pub bytes: u64,
    pub done: bool,
    pub summary: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTarget {
    pub name: String,
}
/// The result of a target pre-flight check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetCheck {
    pub name: String,
    pub ok: bool,
    /// `ok`, `not mounted`, `wrong filesystem`, `read-only`, `low space`, `missing`, `error`, `unsupported`.
    pub state: String,
    pub message: String,
    pub free_bytes: Option<u64>,
    pub fs_type: Option<String>,
    pub checked_at: String,
}
// It writes a probe file on the target and stores the result: admins only.
