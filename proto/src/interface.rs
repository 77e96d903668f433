//! The Varlink interface descriptions served by `org.varlink.service.GetInterfaceDescription`.

use serde::{Deserialize, Serialize};

/// Reply of `org.varlink.service.GetInfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub url: String,
    pub interfaces: Vec<String>,
}

pub const SERVICE_INTERFACE: &str = "org.varlink.service";

/// The `url` of `GetInfo`: empty, because bms has no web page of its own; its documentation is
/// docs/ of the source and the man pages (docs/protocol.md).
pub const SERVICE_URL: &str = "";

/// The standard service interface every Varlink server provides.
pub const SERVICE_DESCRIPTION: &str = r#"# The Varlink Service Interface is provided by every varlink service. It
# describes the service and the interfaces it implements.
interface org.varlink.service

# Get a list of all the interfaces a service provides and information
# about the implementation.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# Get the description of an interface that is implemented by this service.
method GetInterfaceDescription(interface: string) -> (description: string)

# The requested interface was not found.
error InterfaceNotFound (interface: string)

# The requested method was not found
error MethodNotFound (method: string)

# The interface defines the requested method, but the service does not
# implement it.
error MethodNotImplemented (method: string)

# One of the passed parameters is invalid.
error InvalidParameter (parameter: string)

# Client is denied access
error PermissionDenied ()

# Method is expected to be called with 'more' set to true, but wasn't
error ExpectedMore ()
"#;

/// `org.bms.Manager`, the interface of bmsd.
pub const MANAGER_DESCRIPTION: &str = r#"# The bms backup management daemon.
# Writes need root or group bms-admin; reads need group bms.
interface org.bms.Manager

# immutable_days is stored, not yet enforced.
type TargetSpec (
  name: string,
  kind: ?(disk, nas, tape, s3),
  path: string,
  media_type: ?(disk, tape, object, optical),
  location: ?(onsite, offsite),
  site: ?string,
  immutable_days: ?int,
  min_free_bytes: ?int,
  fs_type: ?string,
  fs_source: ?string,
  retention: ?Retention,
  prune_schedule: ?string,
  prune_grace: ?string,
  encrypt: ?bool,
  key_file: ?string,
  pool: ?string,
  drive: ?int,
  bucket: ?string,
  prefix: ?string,
  region: ?string,
  credentials_file: ?string,
  virtual_host: ?bool,
  object_lock_mode: ?(compliance, governance),
  ca_file: ?string,
  s3_parallel: ?int,
  s3_part_size: ?int
)

type TargetInfo (
  name: string,
  kind: (disk, nas, tape, s3),
  path: string,
  media_type: ?(disk, tape, object, optical),
  location: (onsite, offsite),
  site: ?string,
  immutable_days: int,
  min_free_bytes: int,
  fs_type: ?string,
  fs_source: ?string,
  retention: ?Retention,
  prune_schedule: ?string,
  prune_grace: ?string,
  encrypt: ?bool,
  key_file: ?string,
  pool: ?string,
  drive: ?int,
  bucket: ?string,
  prefix: ?string,
  region: ?string,
  credentials_file: ?string,
  virtual_host: ?bool,
  object_lock_mode: ?(compliance, governance),
  ca_file: ?string,
  s3_parallel: ?int,
  s3_part_size: ?int,
  media: (disk, tape, object, optical),
  supported: bool,
  note: ?string,
  supports: []string,
  used_by: []string,
  last_check: ?TargetCheck,
  key_path: ?string,
  created_at: string,
  updated_at: string
)

# Retention rules (docs/retention.md): applied by ForgetSnapshots (apply_policy) and prune runs.
# Durations are like 7d, 2m (months), 1y6m; keep_tags entries are "a,b" (all of a and b).
type Retention (
  keep_last: ?int,
  keep_hourly: ?int,
  keep_daily: ?int,
  keep_weekly: ?int,
  keep_monthly: ?int,
  keep_yearly: ?int,
  keep_within_days: ?int,
  keep_within: ?string,
  keep_within_hourly: ?string,
  keep_within_daily: ?string,
  keep_within_weekly: ?string,
  keep_within_monthly: ?string,
  keep_within_yearly: ?string,
  keep_tags: ?[]string
)

type DrillPolicy (schedule: string, sample_files: ?int, sample_bytes: ?int)

type VerifyPolicy (
  after_backup: ?bool,
  read_data_percent: ?int,
  schedule: ?string,
  drill: ?DrillPolicy,
  window_days: ?int
)

type Hooks (pre: ?string, post: ?string, timeout_secs: ?int)

type JobSpec (
  name: string,
  sources: []string,
  excludes: ?[]string,
  schedule: string,
  randomized_delay_secs: ?int,
  targets: []string,
  retention: ?Retention,
  verify: ?VerifyPolicy,
  hooks: ?Hooks,
  missed: ?(skip, run-once),
  timeout_secs: ?int,
  one_file_system: ?bool,
  rpo_secs: ?int,
  enabled: ?bool
)

type JobInfo (
  name: string,
  sources: []string,
  excludes: []string,
  schedule: string,
  randomized_delay_secs: int,
  targets: []string,
  retention: Retention,
  verify: VerifyPolicy,
  hooks: Hooks,
  missed: (skip, run-once),
  timeout_secs: int,
  one_file_system: bool,
  rpo_secs: ?int,
  enabled: bool,
  schedule_normalized: string,
  next_runs: []string,
  created_at: string,
  updated_at: string
)

type AuditEntry (
  id: int,
  time: string,
  uid: int,
  user: ?string,
  action: string,
  object: string,
  detail: ?string
)

type ConfigSummary (
  path: ?string,
  generation: int,
  loaded_at: string,
  log_level: string,
  max_connections: int,
  max_concurrent_runs: int,
  metrics_listen: string
)

method Status() -> (
  version: string,
  pid: int,
  uptime_secs: int,
  started_at: string,
  schema_version: int,
  targets: int,
  jobs: int,
  jobs_enabled: int,
  state_dir: string,
  socket: string,
  config: ConfigSummary,
  role: string,
  metrics_address: ?string,
  running: []RunInfo,
  queued: []RunInfo
)

method ListTargets() -> (targets: []TargetInfo)
method GetTarget(name: string) -> (target: TargetInfo)
method AddTarget(target: TargetSpec) -> (target: TargetInfo)
method UpdateTarget(target: TargetSpec) -> (target: TargetInfo)
method RemoveTarget(name: string) -> ()

method ListJobs() -> (jobs: []JobInfo)
method GetJob(name: string) -> (job: JobInfo)
method AddJob(job: JobSpec) -> (job: JobInfo)
method UpdateJob(job: JobSpec) -> (job: JobInfo)
method RemoveJob(name: string) -> ()
method SetJobEnabled(name: string, enabled: bool) -> (job: JobInfo)

# Creates or updates targets and jobs to match; unchanged ones are left alone. A name defined
# twice in targets or in jobs is refused with InvalidArgument.
method Apply(targets: ?[]TargetSpec, jobs: ?[]JobSpec, dry_run: ?bool) -> (
  created: []string,
  updated: []string,
  unchanged: []string,
  dry_run: bool
)

# The audit trail, newest first; limit is 1 to 10000 (default 100), other values are refused.
method ListAudit(limit: ?int) -> (entries: []AuditEntry)

type RunStats (
  files_new: int,
  files_changed: int,
  files_unmodified: int,
  bytes_read: int,
  bytes_total: int,
  bytes_added: int,
  chunks_new: int,
  chunks_total: int,
  warnings: int
)

type RunInfo (
  id: int,
  job: string,
  kind: (backup, copy, verify, prune, drill),
  trigger: (schedule, manual, catch-up),
  state: (queued, running, succeeded, warning, failed, cancelled, interrupted, skipped),
  target: ?string,
  source_target: ?string,
  snapshot: ?string,
  parent_run: ?int,
  queued_at: string,
  started_at: ?string,
  finished_at: ?string,
  duration_secs: ?float,
  stats: RunStats,
  error: ?string,
  prune: ?PruneStats,
  drill: ?DrillStats
)

type DrillStats (
  snapshot: string,
  files_sampled: int,
  bytes_sampled: int,
  files_total: int,
  bytes_total: int,
  files_failed: int,
  restore_secs: float,
  bytes_per_sec: float,
  rto_secs: float
)

type PruneStats (
  snapshots_removed: int,
  snapshots_kept: int,
  packs_removed: int,
  packs_repacked: int,
  packs_written: int,
  bytes_before: int,
  bytes_after: int,
  bytes_reclaimed: int,
  sealed_kept: int
)

type SnapshotDecision (id: string, job: string, time: string, keep: bool, reasons: []string)

type ForgetOnTarget (
  target: string,
  policy: ?string,
  decisions: []SnapshotDecision,
  removed: []string,
  prune: ?PruneStats
)

type RunProgress (
  phase: string,
  files: int,
  bytes_read: int,
  bytes_added: int,
  bytes_expected: int,
  bytes_per_sec: float,
  eta_secs: ?int
)

type SnapshotRecord (
  id: string,
  target: string,
  job: string,
  time: string,
  host: string,
  paths: []string,
  partial: bool,
  run_id: ?int,
  stats: RunStats
)

type TargetCheck (
  name: string,
  ok: bool,
  state: string,
  message: string,
  free_bytes: ?int,
  fs_type: ?string,
  checked_at: string
)

# Queues a backup run now; a job already running gets a skipped run with the reason.
method RunJob(name: string) -> (run: RunInfo)
method ListRuns(job: ?string, limit: ?int) -> (runs: []RunInfo)
method GetRun(id: int) -> (run: RunInfo, log: []string, progress: ?RunProgress)
method CancelRun(id: int) -> (run: RunInfo)
# With "more": one reply per progress step until the run ends.
method WatchRun(id: int) -> (run: RunInfo, log: []string, progress: ?RunProgress)
method ListSnapshots(job: ?string, target: ?string) -> (snapshots: []SnapshotRecord)
method GetSnapshot(id: string, target: ?string) -> (snapshot: SnapshotRecord)
# With "more": progress replies, then the summary. Needs the admin role.
method Restore(snapshot: string, target: ?string, to: string, paths: ?[]string, dry_run: ?bool,
               overwrite: ?string) -> (files: int, bytes: int, done: bool, summary: ?object)
# With "more": an empty reply once subscribed, then one reply per event of the daemon's event
# stream (optionally of one job) until the client hangs up; "missed" counts events dropped for a slow reader. "event" is an object whose
# "type" is RunQueued, RunStarted, RunProgress, RunFinished, TargetStateChanged, AlertRaised,
# ComplianceChanged, MediaNeeded or TamperDetected.
method WatchEvents(job: ?string) -> (event: ?object, missed: ?int)
method CheckTarget(name: string) -> (name: string, ok: bool, state: string, message: string,
                                     free_bytes: ?int, fs_type: ?string, checked_at: string)
# The daemon's side of `bmsctl doctor`: capabilities, catalog integrity, free space, logging,
# metrics, each target's pre-flight (not stored), job sources and jobs never successful.
type DoctorCheck (name: string, ok: bool, message: string, hint: ?string)
method Doctor() -> (checks: []DoctorCheck)
# Removes snapshots (by id, or those the job's retention policy does not keep) from the
# repositories and the catalog. Sealed snapshots are refused (by id) or kept (by policy).
method ForgetSnapshots(ids: ?[]string, job: ?string, target: ?string, apply_policy: ?bool,
                       dry_run: ?bool) -> (dry_run: bool, targets: []ForgetOnTarget)
# Queues one prune run per target (of the job, or every disk/NAS target); a dry run lists every
# snapshot with keep/remove and the bytes prune would reclaim, and queues nothing.
method Prune(job: ?string, target: ?string, dry_run: ?bool) -> (dry_run: bool, runs: []RunInfo,
                                                               targets: []ForgetOnTarget)
# The clock-tamper guard of immutable targets: "tampered" says when and what (no seal expires
# while it is set); confirm_clock clears it once an admin has checked the clock. Admin role.
method UnlockCheck(confirm_clock: ?bool) -> (tampered: ?string, cleared: ?string)

# Alerts (docs/alerts.md). "details" is an object; states are open, acked, resolved.
type AlertInfo (
  id: int, key: string, kind: string, severity: string, state: string, job: ?string,
  target: ?string, message: string, details: object, first_seen: string, last_seen: string,
  count: int, last_notified: ?string, acked_by: ?int, acked_at: ?string, ack_comment: ?string,
  resolved_at: ?string, delivery_problem: ?string
)
type DeliveryAttempt (time: string, ok: bool, detail: string)
type NotificationInfo (
  id: int, channel: string, event: string, state: string, created_at: string,
  delivered_at: ?string, next_attempt_at: ?string, attempts: []DeliveryAttempt
)
method ListAlerts(state: ?string, limit: ?int) -> (alerts: []AlertInfo)
method GetAlert(id: int) -> (alert: AlertInfo, notifications: []NotificationInfo)
method AckAlert(id: int, comment: ?string) -> (alert: AlertInfo)
method ResolveAlert(id: int) -> (alert: AlertInfo)
method TestChannel(channel: string) -> (channel: string, kind: string, ok: bool, detail: string)
# "until" is RFC 3339 or a duration from now such as 2h or 30m.
method SilenceAlerts(job: string, until: string, comment: ?string) -> (job: string, until: string)

# The 3-2-1-1-0 checker (docs/compliance.md). verdict: pass, fail or unknown; rule: copies,
# media, offsite, immutable_or_offline, errors.
type RuleResult (rule: string, verdict: string, reason: string, hint: ?string)
type Medium (media_type: string, location: string, label: ?string, in_drive: ?bool)
type VerificationEvidence (
  run: int, kind: string, finished_at: string, state: string, errors: bool, error: ?string,
  read_data_percent: ?int, age_days: float
)
type CopyEvidence (
  target: string, is_copy: bool, snapshot: ?string, snapshot_time: ?string, snapshot_run: ?int,
  media: []Medium, location: string, immutable_until: ?string, immutable_days: int,
  offline: bool, verification: ?VerificationEvidence
)
type JobCompliance (
  job: string, compliant: bool, rpo_secs: int, rpo_source: string, verify_window_days: int,
  rules: []RuleResult, copies: []CopyEvidence
)
method Compliance(job: ?string) -> (evaluated_at: string, compliant: int, total: int,
                                    jobs: []JobCompliance)
type ComplianceChange (
  id: int, time: string, job: string, rule: string, from: ?string, to: string, reason: string
)
# Recorded verdict changes, newest first (default 100, at most 10000).
method ComplianceHistory(job: ?string, limit: ?int) -> (changes: []ComplianceChange)
# Queues verify runs now: of the job (or every job), of the target (or all the job's targets).
# With drill, restore drills (drill runs) instead.
method Verify(job: ?string, target: ?string, read_data_percent: ?int, drill: ?bool)
  -> (runs: []RunInfo)

# The period report (docs/reports.md): runs queued in [since, until) (RFC 3339) per job.
type ReportFailure (
  run: int, kind: string, state: string, target: ?string, queued_at: string,
  finished_at: ?string, error: ?string
)
type ReportDrill (
  run: int, target: ?string, state: string, finished_at: ?string, files_sampled: int,
  bytes_sampled: int, files_failed: int, bytes_per_sec: float, rto_secs: float
)
type JobReport (
  job: string, runs: int, runs_by_state: [string]int,
  runs_by_day: [string][string]int, success_rate: ?float, backup_runs: int,
  bytes_read: int, bytes_added: int, dedup_ratio: ?float, compression_ratio: ?float,
  stored_by_day: [string]int, last_success: ?string, longest_gap_secs: int,
  rpo_secs: int, rpo_met: bool, compliant: bool, rules: []RuleResult,
  compliance_changes: []ComplianceChange, drills: []ReportDrill, failures: []ReportFailure
)
method Report(since: string, until: string, job: ?string) -> (generated_at: string, since: string,
                                                              until: string, jobs: []JobReport)

# Catalog recovery (docs/operations.md "Recovering the catalog"): re-reads the repository of
# every disk/NAS target (or of one) and adds the snapshot records and seals the catalog lacks;
# existing records are kept. Admin role.
type TargetRebuild (target: string, added: int, kept: int, seals: int, unknown_job: int,
                    error: ?string)
method RebuildCatalog(target: ?string) -> (targets: []TargetRebuild, added: int, kept: int,
                                           seals: int, unknown_jobs: []string)

# The media manager (docs/tape.md, "Media manager"): pools, media, their lifecycle
# (scratch, writable, full, expired, retired, damaged) and locations (drive:…, slot:…,
# shelf[:…], vault:…). Writes need the admin role.
type PoolInfo (name: string, media_type: string, retention_days: int, vault: ?string,
               vault_days: int, scratch: int, writable: int, full: int, expired: int)
type MediumInfo (
  barcode: string, media_type: string, pool: ?string, media_set: ?string, sequence: ?int,
  state: string, location: string, offsite: bool, in_drive: bool, expected_return: ?string,
  write_count: int, bytes_written: int, last_written: ?string, expires_at: ?string,
  labelled_at: ?string
)
type MediumArchive (job: string, target: string, snapshot: string, state: string, volume: int,
                    tape_file: int, bytes: int, files: int, last: bool)
method ListPools() -> (pools: []PoolInfo)
method GetPool(name: string) -> (pool: PoolInfo, media: []MediumInfo)
method AddPool(name: string, media_type: string, retention_days: ?int, vault: ?string,
               vault_days: ?int) -> (pool: PoolInfo, media: []MediumInfo)
method ListMedia(pool: ?string, state: ?string) -> (media: []MediumInfo)
method GetMedium(barcode: string) -> (medium: MediumInfo, archives: []MediumArchive)
method AddMedium(barcode: string, media_type: string, location: ?string)
  -> (medium: MediumInfo, archives: []MediumArchive)
# With target, the label is also written onto the cartridge in that tape target's library.
method LabelMedium(barcode: string, pool: string, target: ?string)
  -> (medium: MediumInfo, archives: []MediumArchive)
# expected_return: RFC 3339, a date or a duration from now such as 14d.
method MoveMedium(barcode: string, to: string, expected_return: ?string)
  -> (medium: MediumInfo, archives: []MediumArchive)
method RetireMedium(barcode: string) -> (medium: MediumInfo, archives: []MediumArchive)
method EraseMedium(barcode: string) -> (medium: MediumInfo, archives: []MediumArchive)
# Expires media whose pool's retention ended; expired media not in a vault return to scratch.
method ExpireMedia() -> (expired: []string, scratch: []string)
# The rotation plan for a day (default now): what leaves for a vault, what comes back.
type DueToVault (barcode: string, vault: string)
method MediaDue(at: ?string) -> (at: string, to_vault: []DueToVault, come_back: []string)

error NotFound (message: string, field: ?string)
error AlreadyExists (message: string, field: ?string)
error InvalidArgument (message: string, field: ?string)
error PermissionDenied (message: string, field: ?string)
error Busy (message: string, field: ?string)
error InUse (message: string, field: ?string)
error ProtocolError (message: string, field: ?string)
error MethodNotFound (message: string, field: ?string)
error NotSupported (message: string, field: ?string)
error Internal (message: string, field: ?string)
error Immutable (message: string, field: ?string)
"#;

/// The description of a served interface, if it is one of ours.
pub fn description(interface: &str) -> Option<&'static str> {
    match interface {
        SERVICE_INTERFACE => Some(SERVICE_DESCRIPTION),
        crate::INTERFACE => Some(MANAGER_DESCRIPTION),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::*;

    /// The interface description declares exactly the methods of the method table, and every
    /// error kind.
    #[test]
    fn description_declares_every_method() {
        for m in METHODS {
            assert!(
                MANAGER_DESCRIPTION.contains(&format!("method {}(", m.name)),
                "{} missing from interface description",
                m.name
            );
        }
        let declared: Vec<&str> = MANAGER_DESCRIPTION
            .lines()
            .filter_map(|l| l.strip_prefix("method "))
            .filter_map(|l| l.split('(').next())
            .collect();
        let table: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        assert_eq!(declared, table, "description and method table differ");
        for k in crate::ErrorKind::ALL {
            assert!(MANAGER_DESCRIPTION.contains(&format!("error {} (", k.as_str())));
        }
    }

    #[test]
    fn the_table_agrees_with_the_method_impls() {
        fn info<M: Method>() -> MethodInfo {
            MethodInfo {
                name: M::NAME,
                writes: M::WRITES,
                streams: M::STREAMS,
            }
        }
        assert!(METHODS.contains(&info::<Restore>()));
        assert!(METHODS.contains(&info::<WatchRun>()));
        assert!(METHODS.contains(&info::<Status>()));
        assert!(info::<Restore>().writes && info::<Restore>().streams);
        assert!(!info::<Status>().writes && !info::<Status>().streams);
    }
}
