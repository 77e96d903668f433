//! The catalog's own recovery (docs/operations.md "Recovering the catalog"): rebuilding the
//! snapshot records from the repositories.

use serde::{Deserialize, Serialize};

/// The reserved job name of the catalog's own snapshots: after each successful backup run bmsd
/// stores a copy of its catalog under this name in the run's target. No user job may take it.
pub const CATALOG_JOB: &str = "_catalog";

/// Re-reads the repository of every disk and NAS target (or of `target` only) and adds the
/// snapshot records the catalog lacks, with the same ids, times, statistics and jobs, and the
/// seals recorded in the repository. Records the catalog has are kept as they are, so running
/// it twice changes nothing. Needs the admin role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RebuildCatalog {
    #[serde(default)]
    pub target: Option<String>,
}

/// What a rebuild found on one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRebuild {
    pub target: String,
    /// Snapshot records added.
    pub added: u64,
    /// Snapshot records the catalog already had (left as they were).
    pub kept: u64,
    /// Seals (immutability ends) read from the repository and added.
    pub seals: u64,
    /// Snapshots of a job the catalog does not know (recorded all the same).
    pub unknown_job: u64,
    /// Why the target could not be read (nothing of it was changed then).
    pub error: Option<String>,
}

/// The result of [`RebuildCatalog`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildReply {
    pub targets: Vec<TargetRebuild>,
    pub added: u64,
    pub kept: u64,
    pub seals: u64,
    /// Names of the jobs found in repositories but not in the catalog (add them, or apply the
    /// exported configuration, to see them in `job list`).
    pub unknown_jobs: Vec<String>,
}
