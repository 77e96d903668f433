//! Apply, audit and status.

use serde::{Deserialize, Serialize};

use super::{JobSpec, TargetSpec};

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

// ---------------------------------------------------------------- audit and status

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAudit {
    /// Newest entries first; at most this many, 1 to 10000 (default 100); other values are
    /// refused with InvalidArgument.
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
    /// Address the metrics endpoint listens on; none when it could not bind.
    #[serde(default)]
    pub metrics_address: Option<String>,
    /// Runs going now.
    pub running: Vec<super::RunInfo>,
    /// Runs waiting for a slot, in order.
    pub queued: Vec<super::RunInfo>,
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
