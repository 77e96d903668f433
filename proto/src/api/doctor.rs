//! `Doctor`: what bmsd finds wrong with its own setup (docs/operations.md, "bmsctl doctor").

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Doctor {}

/// One line of the doctor's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoctorCheck {
    /// What was checked, e.g. `catalog`, `capability CAP_CHOWN`, `target nas1`, `job etc sources`.
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub message: String,
    /// What to do about it; set when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl DoctorCheck {
    pub fn pass(name: impl Into<String>, message: impl Into<String>) -> DoctorCheck {
        DoctorCheck {
            name: name.into(),
            ok: true,
            message: message.into(),
            hint: None,
        }
    }

    pub fn fail(
        name: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> DoctorCheck {
        DoctorCheck {
            name: name.into(),
            ok: false,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DoctorReply {
    /// The daemon's side of the checks, in a stable order.
    pub checks: Vec<DoctorCheck>,
}
