//! The 3-2-1-1-0 checker (docs/compliance.md): per job, per rule, a verdict with its reason, a
//! fix hint and the evidence; the history of verdict changes; on-demand verification.

use super::RunInfo;
use serde::{Deserialize, Serialize};

/// The five rules, in the order of their name.
pub const RULES: [Rule; 5] = [
    Rule::Copies,
    Rule::Media,
    Rule::Offsite,
    Rule::ImmutableOrOffline,
    Rule::Errors,
];

/// One rule of 3-2-1-1-0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// 3: the source plus at least two copies on distinct targets.
    Copies,
    /// 2: the copies span at least two media types.
    Media,
    /// 1: at least one copy is offsite.
    Offsite,
    /// 1: at least one copy is immutable now or offline.
    ImmutableOrOffline,
    /// 0: every copy's latest verification found no errors, within the verification window.
    Errors,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Copies => "copies",
            Rule::Media => "media",
            Rule::Offsite => "offsite",
            Rule::ImmutableOrOffline => "immutable_or_offline",
            Rule::Errors => "errors",
        }
    }
    /// The digit of 3-2-1-1-0 the rule stands for.
    pub fn digit(self) -> &'static str {
        match self {
            Rule::Copies => "3",
            Rule::Media => "2",
            Rule::Offsite | Rule::ImmutableOrOffline => "1",
            Rule::Errors => "0",
        }
    }
    pub fn parse(s: &str) -> Option<Rule> {
        RULES.into_iter().find(|r| r.as_str() == s)
    }
}

/// A rule's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not known yet, e.g. a copy never verified: never counted as a pass.
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Verdict> {
        match s {
            "pass" => Some(Verdict::Pass),
            "fail" => Some(Verdict::Fail),
            "unknown" => Some(Verdict::Unknown),
            _ => None,
        }
    }
    /// The metric value: 1 pass, 0 fail, -1 unknown.
    pub fn gauge(self) -> i64 {
        match self {
            Verdict::Pass => 1,
            Verdict::Fail => 0,
            Verdict::Unknown => -1,
        }
    }
    /// ✓, ✗ or ?.
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Unknown => "?",
        }
    }
}

/// One rule of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule: Rule,
    pub verdict: Verdict,
    /// One line: why.
    pub reason: String,
    /// What to do about a fail or unknown: names the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// Where a copy is physically held. A disk or NAS target is one medium (the target itself); a
/// tape target's media are cartridges with their own location and drive state; an object store
/// is medium `object`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Medium {
    /// disk, tape, object or optical.
    pub media_type: String,
    /// onsite or offsite: the target's location, or the medium's own (a tape sent offsite).
    pub location: String,
    /// A label of the medium (tape barcode); none for a disk target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether the medium sits in a drive or library (reachable by software). None when the
    /// question does not apply (disk, object): such media are online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_drive: Option<bool>,
}

/// The latest finished verification of a copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationEvidence {
    pub run: i64,
    /// `verify` or `drill`.
    pub kind: String,
    pub finished_at: String,
    /// succeeded or failed.
    pub state: String,
    /// Whether it found errors (a run that failed).
    pub errors: bool,
    /// Its error message, naming what was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Percentage of the packs re-read, when recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_percent: Option<u8>,
    /// Days since it finished.
    pub age_days: f64,
}

/// One target of a job and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CopyEvidence {
    pub target: String,
    /// Whether this target holds a copy: a completed snapshot no older than the RPO.
    pub is_copy: bool,
    /// The latest completed snapshot of the job on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_run: Option<i64>,
    pub media: Vec<Medium>,
    /// The target's location setting.
    pub location: String,
    /// The snapshot's seal end (immutable until then), when it is sealed and not expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable_until: Option<String>,
    /// The target's `immutable_days` (0: not immutable).
    pub immutable_days: u32,
    /// Whether every medium of the copy is out of any drive or library.
    pub offline: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<VerificationEvidence>,
}

/// The verdicts of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobCompliance {
    pub job: String,
    /// Every rule passes.
    pub compliant: bool,
    /// The RPO a copy must be within, in seconds.
    pub rpo_secs: u64,
    /// `job` (the job's `rpo_secs`) or `schedule` (twice the longest gap between two elapses).
    pub rpo_source: String,
    /// The verification window, in days.
    pub verify_window_days: u32,
    pub rules: Vec<RuleResult>,
    /// One entry per target of the job.
    pub copies: Vec<CopyEvidence>,
}

impl JobCompliance {
    pub fn rule(&self, rule: Rule) -> Option<&RuleResult> {
        self.rules.iter().find(|r| r.rule == rule)
    }
}

/// The checker's view of every job (or one).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Compliance {
    #[serde(default)]
    pub job: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComplianceReply {
    pub evaluated_at: String,
    /// Jobs where every rule passes, of `total`.
    pub compliant: u32,
    pub total: u32,
    pub jobs: Vec<JobCompliance>,
}

/// Recorded changes of verdicts, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceHistory {
    #[serde(default)]
    pub job: Option<String>,
    /// At most this many (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}
/// One change of a rule's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceChange {
    pub id: i64,
    pub time: String,
    pub job: String,
    pub rule: Rule,
    /// None for the first verdict of a job's rule.
    pub from: Option<Verdict>,
    pub to: Verdict,
    pub reason: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComplianceHistoryReply {
    pub changes: Vec<ComplianceChange>,
}

/// Queues verification runs now: of one job (or every job), of one target (or all the job's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    #[serde(default)]
    pub job: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    /// Percentage of packs to re-read (default: the job's `verify.read_data_percent`).
    #[serde(default)]
    pub read_data_percent: Option<u8>,
    /// Queue restore drills (`drill` runs) instead of verifications.
    #[serde(default)]
    pub drill: bool,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyReply {
    pub runs: Vec<RunInfo>,
}
