//! The 3-2-1-1-0 checker (docs/compliance.md). The catalog hands over every fact in a few
//! queries ([`Facts`], `Catalog::compliance_facts`); [`evaluate`] decides in memory, per job and
//! per rule, pass / fail / unknown with a reason, a fix hint and the evidence. `watch` re-evaluates
//! on run and target events and daily, records changes as history and publishes them.

mod eval;
mod rpo;
pub mod watch;

pub use eval::evaluate;
pub use rpo::rpo_of;

use bms_proto::api::{JobSpec, Medium, TargetSpec};
use std::collections::HashMap;

/// The verification window when the job sets none, in days.
pub const VERIFY_WINDOW_DAYS: u32 = 30;

/// The latest completed snapshot of a job on a target.
#[derive(Debug, Clone)]
pub struct SnapFact {
    pub id: String,
    pub time: String,
    /// Seconds since the epoch (parsed from `time`).
    pub unix: i64,
    pub run: Option<i64>,
}

/// The latest finished verification (verify or drill run) of a job on a target.
#[derive(Debug, Clone)]
pub struct VerifyFact {
    pub run: i64,
    pub kind: String,
    pub state: String,
    pub finished_at: String,
    pub unix: i64,
    pub error: Option<String>,
    pub read_data_percent: Option<u8>,
    /// Problems the run's own check found; None when it was not recorded (the run's state
    /// decides then).
    pub problems: Option<i64>,
}

impl VerifyFact {
    /// Whether this verification counts as having found errors.
    pub fn found_errors(&self) -> bool {
        match self.problems {
            Some(n) => n > 0,
            None => self.state != "succeeded",
        }
    }
}

/// Everything the checker needs, loaded at once.
#[derive(Debug, Default)]
pub struct Facts {
    /// Seconds since the epoch of the evaluation.
    pub now: i64,
    pub jobs: Vec<JobSpec>,
    pub targets: HashMap<String, TargetSpec>,
    /// (job, target) → latest completed snapshot.
    pub snapshots: HashMap<(String, String), SnapFact>,
    /// (target, snapshot) → seal end (RFC 3339), only seals that end after `now`.
    pub seals: HashMap<(String, String), String>,
    /// (job, target) → latest verification.
    pub verifications: HashMap<(String, String), VerifyFact>,
    /// (job, target) → the removable media (tape cartridges) holding the job's latest complete
    /// copy on the target, with their own location and drive state. A target with none listed
    /// is its own single medium (disk, NAS, object store).
    pub media: HashMap<(String, String), Vec<Medium>>,
}

/// Seconds since the epoch of an RFC 3339 time, if it parses.
pub fn unix_of(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// RFC 3339 (UTC, seconds) of a Unix time.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}
