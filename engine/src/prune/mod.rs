//! Forget and prune: removing snapshots, and reclaiming the space of data no snapshot needs.
//!
//! Prune holds the repository's `exclusive` lock for its whole run, so no backup, copy or
//! verify runs at the same time (docs/repository-format.md "Prune"). It marks every blob the
//! remaining snapshots reference, then sweeps: packs without a live blob are removed, packs
//! whose live bytes are below [`PruneOptions::repack_below_percent`] of their blob bytes have
//! their live blobs copied into new packs and are removed, the rest stay as they are. The
//! order is crash safe: new packs, then one new index file naming every kept and new pack
//! (its `supersedes` lists the old index files), then the old index files are deleted, then the
//! old packs. Sealed objects ([`crate::store::Store::sealed_until`]) are kept and reported.

mod forget;
mod plan;
mod sweep;

use std::time::Duration;

use serde::Serialize;

pub use forget::ForgetSummary;
pub use plan::{estimate_pack_size, PackAction};

/// Environment variable of the crash tests only (docs/retention.md "Crash safety"): when set
/// to N, a prune that is not a dry run kills its own process with SIGKILL right after its N-th
/// change to the repository (0: before the first change).
pub const ABORT_ENV: &str = "BMS_TEST_PRUNE_KILL_AFTER";

/// Environment variable of the overlap tests only: prune pauses, holding the exclusive lock,
/// until the file it names exists (see `sweep.rs`).
pub const PAUSE_ENV: &str = "BMS_TEST_PRUNE_PAUSE";

/// Default of [`PruneOptions::repack_below_percent`].
pub const DEFAULT_REPACK_BELOW_PERCENT: u8 = 50;

/// How prune works.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Only compute what would be done (no lock is needed beyond a read of the state; the
    /// exclusive lock is still taken so that the answer is consistent).
    pub dry_run: bool,
    /// A pack whose live blob bytes are below this percentage of its blob bytes is repacked.
    pub repack_below_percent: u8,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_below_percent: DEFAULT_REPACK_BELOW_PERCENT,
        }
    }
}

/// An object prune had to keep because it is sealed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SealedObject {
    /// `pack` or `index file`.
    pub kind: &'static str,
    pub id: String,
    /// RFC 3339.
    pub until: String,
}

/// What a prune did (or, for a dry run, would do). Sizes are file bytes of packs and index
/// files; `bytes_reclaimed` is `bytes_before - bytes_after`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub snapshots: u64,
    pub packs_before: u64,
    pub packs_removed: u64,
    pub packs_repacked: u64,
    pub packs_written: u64,
    pub packs_kept: u64,
    /// Packs that no index named (left by an interrupted run) among the removed ones.
    pub unindexed_packs_removed: u64,
    pub index_files_removed: u64,
    pub index_files_written: u64,
    pub blobs_live: u64,
    pub blobs_repacked: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_reclaimed: u64,
    pub sealed_kept: Vec<SealedObject>,
    pub notes: Vec<String>,
    #[serde(rename = "duration_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub duration: Duration,
}

#[cfg(test)]
mod tests;
