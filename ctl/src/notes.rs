//! Notes on settings that are stored but not yet enforced (none today: retention and
//! immutability are both enforced), shown by
//! `job show|add|edit`, `target show|add|edit` and `apply`, and in `--json` as a `notes` array,
//! the way a target of a kind that cannot be written yet carries its note.

use bms_proto::api::{JobSpec, TargetInfo, TargetSpec};
use serde::Serialize;

/// Says that settings are stored and do nothing yet.
pub const NOT_ENFORCED: &str = "stored, not yet enforced";

/// The notes of a job (none today: its retention is applied by forget and prune).
pub fn job(_spec: &JobSpec) -> Vec<String> {
    Vec::new()
}

/// The notes of a target definition. `immutable_days` is enforced on disk and NAS targets
/// (bmsd refuses it where it cannot be, docs/operations.md "Immutability"), so there are none
/// today; the function stays the one place such notes come from.
pub fn target_spec(spec: &TargetSpec) -> Vec<String> {
    let _ = spec;
    Vec::new()
}

/// Whether bmsd says it enforces `immutable_days` on targets of this one's kind (its `supports`).
pub fn enforces_immutability(info: &TargetInfo) -> bool {
    info.supports.iter().any(|s| s == "immutability")
}

/// The notes of a target as bmsd reports it: its own note (a kind not yet supported), then ours.
pub fn target(info: &TargetInfo) -> Vec<String> {
    let mut notes: Vec<String> = info.note.iter().cloned().collect();
    if !enforces_immutability(info) {
        notes.extend(target_spec(&info.spec));
    }
    notes
}

/// `value` as JSON with a `notes` array added (empty when there is nothing to say).
pub fn with_notes<T: Serialize>(value: &T, notes: Vec<String>) -> serde_json::Value {
    let mut v = serde_json::to_value(value).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("notes".into(), notes.into());
    }
    v
}
