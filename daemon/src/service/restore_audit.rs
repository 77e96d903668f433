//! The audit record and log lines of a restore through bmsd (docs/operations.md, "Restores").

use crate::catalog::Actor;
use crate::state::SharedRef;
use bms_engine::restore::RestoreSummary;
use bms_proto::ApiError;
use serde_json::{json, Value};

/// At most this many failed paths go into one audit entry (the client gets all of them).
const MAX_FAILED: usize = 100;

/// Who restores what, from where, to where, how.
pub struct RestoreAudit {
    pub uid: u32,
    pub snapshot: String,
    pub target: String,
    pub paths: Vec<String>,
    pub to: String,
    pub overwrite: &'static str,
    pub dry_run: bool,
}

impl RestoreAudit {
    fn detail(&self) -> Value {
        json!({
            "snapshot": self.snapshot,
            "target": self.target,
            "paths": self.paths,
            "to": self.to,
            "overwrite": self.overwrite,
            "dry_run": self.dry_run,
        })
    }

    async fn record(
        &self,
        shared: &SharedRef,
        action: &'static str,
        detail: Value,
    ) -> Result<(), ApiError> {
        let actor = Actor { uid: self.uid };
        let object = self.snapshot.clone();
        let detail = detail.to_string();
        shared
            .catalog
            .call(move |c| c.record_audit(actor, action, &object, Some(&detail)))
            .await
    }

    /// Logs and records the start; an error here refuses the restore.
    pub async fn started(&self, shared: &SharedRef) -> Result<(), ApiError> {
        tracing::info!(
            uid = self.uid,
            snapshot = %self.snapshot,
            target = %self.target,
            paths = ?self.paths,
            to = %self.to,
            overwrite = self.overwrite,
            dry_run = self.dry_run,
            "restore started"
        );
        self.record(shared, "restore.start", self.detail())
            .await
            .map_err(|e| {
                ApiError::internal(format!(
                    "restore refused: it cannot be recorded in the audit trail ({}); check the catalog",
                    e.message
                ))
            })
    }

    /// Logs and records the outcome: `succeeded`, `failed` (some entries or the whole restore)
    /// or `cancelled`.
    pub async fn finished(
        &self,
        shared: &SharedRef,
        r: &Result<RestoreSummary, String>,
        cancelled: bool,
    ) {
        let mut d = self.detail();
        let outcome = match r {
            Ok(s) => {
                let failed: Vec<&str> = s.failed.iter().map(|f| f.path.as_str()).collect();
                d["files"] = json!(s.files);
                d["bytes"] = json!(s.bytes);
                d["skipped"] = json!(s.skipped);
                d["errors"] = json!(s.errors.len());
                d["failed"] = json!(failed.iter().take(MAX_FAILED).collect::<Vec<_>>());
                if s.errors.is_empty() {
                    "succeeded"
                } else {
                    d["error"] = json!(s.errors.first());
                    "failed"
                }
            }
            Err(_) if cancelled => "cancelled",
            Err(e) => {
                d["error"] = json!(e);
                "failed"
            }
        };
        d["outcome"] = json!(outcome);
        let files = d["files"].as_u64().unwrap_or(0);
        let errors = d["errors"].as_u64().unwrap_or(0);
        let error = d["error"].as_str().unwrap_or("").to_owned();
        if outcome == "succeeded" || outcome == "cancelled" {
            tracing::info!(
                uid = self.uid,
                snapshot = %self.snapshot,
                to = %self.to,
                outcome,
                files,
                "restore {outcome}"
            );
        } else {
            tracing::warn!(
                uid = self.uid,
                snapshot = %self.snapshot,
                to = %self.to,
                outcome,
                files,
                errors,
                error = %error,
                "restore failed: {error}"
            );
        }
        let action = match outcome {
            "succeeded" => "restore.succeeded",
            "cancelled" => "restore.cancelled",
            _ => "restore.failed",
        };
        if let Err(e) = self.record(shared, action, d).await {
            tracing::error!(
                uid = self.uid,
                snapshot = %self.snapshot,
                "the outcome of a restore could not be recorded in the audit trail: {}",
                e.message
            );
        }
    }
}
