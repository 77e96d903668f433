//! Events of the daemon's event stream (docs/architecture.md, "Events") and `WatchEvents`, the
//! method that streams them. Each event is a JSON object whose `type` names its kind.

use super::{RunInfo, RunKind, RunProgress, RunState, RunStats};
use serde::{Deserialize, Serialize};

/// How a target looks after its latest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetHealth {
    Ok,
    Warning,
    Error,
}

/// Something that happened in bmsd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A run was recorded as queued (child runs — copies, verifications — too).
    RunQueued { run: RunInfo },
    /// A run left the queue and started.
    RunStarted { run: RunInfo },
    /// Live progress of a going run: at most a few per second, and about once a second while
    /// the run goes even when nothing changed.
    RunProgress {
        run: i64,
        job: String,
        kind: RunKind,
        progress: RunProgress,
    },
    /// A run ended; `run` is its final record.
    RunFinished {
        run: RunInfo,
        state: RunState,
        stats: RunStats,
        error: Option<String>,
    },
    /// A target's check result changed (pre-flight checks and `target check`).
    TargetStateChanged {
        target: String,
        state: TargetHealth,
        reason: String,
        /// Free bytes the check saw, when it got that far.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        free_bytes: Option<u64>,
    },
    /// Reserved for alerts.
    AlertRaised {
        alert: String,
        job: Option<String>,
        message: String,
    },
    /// A rule of a job's 3-2-1-1-0 changed its verdict (docs/compliance.md); `compliant` is the
    /// job's state after the change (every rule passes), `reason` the rule's reason.
    ComplianceChanged {
        job: String,
        compliant: bool,
        reason: String,
        /// The rule (copies, media, offsite, immutable_or_offline, errors).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        /// Its verdict before (pass, fail, unknown; none for its first verdict) and now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    /// Reserved for removable media (tape).
    MediaNeeded { target: String, message: String },
    /// Immutability was attacked (docs/operations.md "Immutability"): a sealed object lost its
    /// immutable attribute (found by verify; `target` and the object in `what`), or the wall
    /// clock jumped forward (`what` is "clock", no target).
    TamperDetected {
        target: Option<String>,
        what: String,
        detail: String,
    },
}

impl Event {
    /// The job an event is about, if any.
    pub fn job(&self) -> Option<&str> {
        match self {
            Event::RunQueued { run } | Event::RunStarted { run } => Some(&run.job),
            Event::RunFinished { run, .. } => Some(&run.job),
            Event::RunProgress { job, .. } => Some(job),
            Event::AlertRaised { job, .. } => job.as_deref(),
            Event::ComplianceChanged { job, .. } => Some(job),
            Event::TargetStateChanged { .. }
            | Event::MediaNeeded { .. }
            | Event::TamperDetected { .. } => None,
        }
    }

    /// The run an event is about, if any.
    pub fn run_id(&self) -> Option<i64> {
        match self {
            Event::RunQueued { run } | Event::RunStarted { run } => Some(run.id),
            Event::RunFinished { run, .. } => Some(run.id),
            Event::RunProgress { run, .. } => Some(*run),
            _ => None,
        }
    }
}

/// Streams events (`continues: true`) until the client hangs up; call with `more`. With `job`,
/// only events about that job (target events are left out).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEvents {
    #[serde(default)]
    pub job: Option<String>,
}

/// One reply of `WatchEvents`: an event, or word that events were missed. The first reply has
/// neither: it says the subscription is in place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventReply {
    pub event: Option<Event>,
    /// Set when this subscriber fell behind and this many events were dropped for it; re-read
    /// the state (ListRuns, GetRun) to catch up.
    #[serde(default)]
    pub missed: Option<u64>,
}
