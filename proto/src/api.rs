//! Requests and replies of `org.bms.Manager`. Each request type names its reply type through
//! [`Method`], so a caller cannot pair a call with the wrong reply.
//!
//! Field names are the stable JSON names that `bmsctl --json` prints and `bmsctl apply` reads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A Varlink method of `org.bms.Manager`.
pub trait Method: Serialize + DeserializeOwned {
    /// The short method name, e.g. `Status`.
    const NAME: &'static str;
    /// Whether the method changes state (needs the admin role).
    const WRITES: bool;
    /// What a successful call returns.
    type Reply: Serialize + DeserializeOwned;
}

macro_rules! method {
    ($req:ident, $reply:ty, $writes:expr) => {
        impl Method for $req {
            const NAME: &'static str = stringify!($req);
            const WRITES: bool = $writes;
            type Reply = $reply;
        }
    };
}

/// An empty parameter or reply object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

// ---------------------------------------------------------------- targets

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Disk,
    Nas,
    Tape,
    S3,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Disk => "disk",
            TargetKind::Nas => "nas",
            TargetKind::Tape => "tape",
            TargetKind::S3 => "s3",
        }
    }
    /// The media type a target of this kind has unless told otherwise (a NAS is disk).
    pub fn default_media(self) -> MediaType {
        match self {
            TargetKind::Disk | TargetKind::Nas => MediaType::Disk,
            TargetKind::Tape => MediaType::Tape,
            TargetKind::S3 => MediaType::Object,
        }
    }
    /// Whether this version of bms can write to targets of this kind.
    pub fn supported(self) -> bool {
        matches!(self, TargetKind::Disk | TargetKind::Nas)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Disk,
    Tape,
    Object,
    Optical,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Disk => "disk",
            MediaType::Tape => "tape",
            MediaType::Object => "object",
            MediaType::Optical => "optical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    #[default]
    Onsite,
    Offsite,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Onsite => "onsite",
            Location::Offsite => "offsite",
        }
    }
}

/// A place backups are written to, as the user describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    #[serde(default)]
    pub kind: TargetKind,
    /// Directory (disk, nas), device (tape) or bucket URL (s3).
    pub path: String,
    /// Defaults to the kind's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default)]
    pub location: Location,
    /// Free-form site label, e.g. "dc-2" or "bank vault".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Days a written snapshot stays immutable (0: not immutable).
    #[serde(default)]
    pub immutable_days: u32,
    /// Runs fail before writing when less than this many bytes are free.
    #[serde(default)]
    pub min_free_bytes: u64,
    /// NAS only: the filesystem type the mount must have (e.g. "nfs4", "cifs", "ext4").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// NAS only: the mount source or filesystem UUID/label the mount must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_source: Option<String>,
}

impl TargetSpec {
    pub fn media(&self) -> MediaType {
        self.media_type.unwrap_or(self.kind.default_media())
    }
}

/// A target as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    #[serde(flatten)]
    pub spec: TargetSpec,
    /// The effective media type.
    pub media: MediaType,
    /// False for kinds this version cannot write yet.
    pub supported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Jobs that use this target.
    pub used_by: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTargets {}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetList {
    pub targets: Vec<TargetInfo>,
}
method!(ListTargets, TargetList, false);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTarget {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReply {
    pub target: TargetInfo,
}
method!(GetTarget, TargetReply, false);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTarget {
    pub target: TargetSpec,
}
method!(AddTarget, TargetReply, true);

/// Replaces a target's definition; the name selects it and cannot change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    pub target: TargetSpec,
}
method!(UpdateTarget, TargetReply, true);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveTarget {
    pub name: String,
}
method!(RemoveTarget, Empty, true);

// ---------------------------------------------------------------- jobs

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

/// How many snapshots to keep; a snapshot is kept if any rule keeps it. All zero keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Keep everything younger than this many days.
    pub keep_within_days: u32,
}

/// When and how deeply a job's snapshots are verified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyPolicy {
    /// Verify the structure right after each backup.
    pub after_backup: bool,
    /// Percentage of the data re-read and re-hashed by scheduled verification (0..=100).
    pub read_data_percent: u8,
    /// Calendar expression for scheduled verification; none means only after backups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy {
            after_backup: true,
            read_data_percent: 0,
            schedule: None,
        }
    }
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
method!(ListJobs, JobList, false);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetJob {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReply {
    pub job: JobInfo,
}
method!(GetJob, JobReply, false);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddJob {
    pub job: JobSpec,
}
method!(AddJob, JobReply, true);

/// Replaces a job's definition; the name selects it and cannot change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateJob {
    pub job: JobSpec,
}
method!(UpdateJob, JobReply, true);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveJob {
    pub name: String,
}
method!(RemoveJob, Empty, true);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetJobEnabled {
    pub name: String,
    pub enabled: bool,
}
method!(SetJobEnabled, JobReply, true);

// ---------------------------------------------------------------- apply

/// A whole configuration: targets and jobs, created or updated to match, idempotently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
    #[serde(default)]
    pub jobs: Vec<JobSpec>,
    /// Validate and report what would change, store nothing.
    #[serde(default)]
    pub dry_run: bool,
}
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyReply {
    /// Entries like `target:nas1` or `job:home`.
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    pub dry_run: bool,
}
method!(Apply, ApplyReply, true);

// ---------------------------------------------------------------- audit and status

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    /// Newest entries first; at most this many (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339 time of the change.
    pub time: String,
    pub uid: u32,
    /// User name of `uid` when it resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// e.g. `target.add`, `job.edit`, `job.disable`.
    pub action: String,
    /// The object's name.
    pub object: String,
    /// The new definition or other details, as JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}
method!(ListAudit, AuditList, false);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {}
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReply {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    pub started_at: String,
    pub schema_version: u32,
    pub targets: u32,
    pub jobs: u32,
    pub jobs_enabled: u32,
    pub state_dir: String,
    pub socket: String,
    pub config: ConfigSummary,
    /// The caller's role: `admin` or `reader`.
    pub role: String,
}
/// The configuration in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    /// The file it came from; none when running on embedded defaults.
    pub path: Option<String>,
    /// Counts successful loads: 1 at start, +1 per accepted reload.
    pub generation: u32,
    pub loaded_at: String,
    pub log_level: String,
    pub max_connections: u32,
    pub max_concurrent_runs: u32,
    pub metrics_listen: String,
}
method!(Status, StatusReply, false);
