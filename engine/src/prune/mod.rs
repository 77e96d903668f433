//! Forget and prune: removing snapshots, and reclaiming the space of data no snapshot needs.
//!
//! Prune works in two phases with a grace period (docs/repository-format.md "Prune").
//! Phase 1 holds the `prune` lock, beside which backups, copies and restores run: it marks
//! every blob the snapshots reference; packs without a live blob are condemned (recorded with
//! the time in the repository's condemned list, [`Condemned`]); packs whose live bytes are
//! below [`PruneOptions::repack_below_percent`] of their blob bytes have their live blobs
//! copied into new packs, which are indexed, and are then condemned; a condemned pack that is
//! needed again is rescued (taken off the list). Phase 2 runs only when a condemned pack has
//! waited [`PruneOptions::grace`]: under the `exclusive` lock (so no backup that could still
//! commit a reference to it runs) it marks the snapshots that appeared since phase 1, and
//! deletes the condemned packs that are still unneeded, in crash-safe order: one new index
//! file naming every pack that stays (its `supersedes` lists the old ones), the old index
//! files, the packs, then the condemned list. The list also records what the last mark
//! covered ([`Mark`]): a prune that finds no snapshot of it forgotten skips phase 1
//! (`since.rs`) and phase 2 walks only the newer snapshots. Sealed objects
//! ([`crate::store::Store::sealed_until`]) are kept and reported.

mod condemned;
mod forget;
mod phase2;
mod plan;
mod since;
mod sweep;

use std::time::Duration;

use serde::Serialize;

pub use condemned::{Condemned, Mark, Settled};
pub use forget::ForgetSummary;
pub use plan::{estimate_pack_size, PackAction};

/// Environment variable of the crash tests only (docs/retention.md "Crash safety"): when set
/// to N, a prune that is not a dry run kills its own process with SIGKILL right after its N-th
/// change to the repository (0: before the first change).
pub const ABORT_ENV: &str = "BMS_TEST_PRUNE_KILL_AFTER";

/// Environment variable of the overlap tests only: prune pauses in phase 1, holding the
/// `prune` lock after its mark, until the file it names exists (see `sweep.rs`).
pub const PAUSE_ENV: &str = "BMS_TEST_PRUNE_PAUSE";

/// Environment variable of the tests only (debug builds): a grace period in seconds that
/// replaces the configured one and may be below [`MIN_GRACE`] (0: delete in the same run).
pub const GRACE_ENV: &str = "BMS_TEST_PRUNE_GRACE";

/// Default of [`PruneOptions::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The shortest grace period allowed: the lease of a run's lock ([`crate::lock::LEASE`]).
pub const MIN_GRACE: Duration = crate::lock::LEASE;

/// The grace period to use for a configured one: refused below [`MIN_GRACE`]; then replaced by
/// [`GRACE_ENV`] in debug builds when that is set.
pub fn effective_grace(configured: Duration) -> crate::Result<Duration> {
    if configured < MIN_GRACE {
        return Err(crate::Error::InvalidArgument(format!(
            "a prune grace period of {}s is too short: it must be at least {}s, the lease of \
             a run's lock, so that a backup that lost its lock cannot commit a reference to a \
             deleted pack; give a longer grace period (the default is 24h)",
            configured.as_secs(),
            MIN_GRACE.as_secs()
        )));
    }
    #[cfg(debug_assertions)]
    if let Some(secs) = std::env::var(GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        tracing::warn!("{GRACE_ENV} set: prune grace period {secs}s (a test hook)");
        return Ok(Duration::from_secs(secs));
    }
    Ok(configured)
}

/// Default of [`PruneOptions::repack_below_percent`].
pub const DEFAULT_REPACK_BELOW_PERCENT: u8 = 50;

/// How prune works.
#[derive(Debug, Clone, Copy)]
pub struct PruneOptions {
    /// Only compute what would be done (the `prune` lock is still taken so that no other
    /// prune changes the answer).
    pub dry_run: bool,
    /// A pack whose live blob bytes are below this percentage of its blob bytes is repacked.
    pub repack_below_percent: u8,
    /// How long a pack stays condemned before a prune may delete it. The engine takes it as
    /// given; callers pass user input through [`effective_grace`].
    pub grace: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_below_percent: DEFAULT_REPACK_BELOW_PERCENT,
            grace: DEFAULT_GRACE,
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
/// files; `bytes_reclaimed` is `bytes_before - bytes_after` (what this run frees);
/// `bytes_after_grace` is what stays once every pack condemned now has waited the grace period
/// and been deleted by a later prune.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub snapshots: u64,
    pub packs_before: u64,
    /// Packs deleted by this run (condemned at least the grace period ago and still unneeded).
    pub packs_removed: u64,
    /// Packs this run condemned (newly).
    pub packs_condemned: u64,
    /// Condemned packs this run took off the list because a snapshot needs them again.
    pub packs_rescued: u64,
    /// Condemned packs left waiting for the grace period after this run, and their bytes.
    pub packs_waiting: u64,
    pub bytes_waiting: u64,
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
    pub bytes_after_grace: u64,
    pub bytes_reclaimed_after_grace: u64,
    /// The grace period used, in seconds.
    pub grace_secs: u64,
    /// Changes made to the repository (or, in a dry run, that would be made).
    pub changes: u64,
    pub sealed_kept: Vec<SealedObject>,
    pub notes: Vec<String>,
    #[serde(rename = "duration_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub duration: Duration,
}

#[cfg(test)]
mod tests;
