//! Immutability of targets (docs/operations.md "Immutability"): the clock-tamper guard.

use serde::{Deserialize, Serialize};

/// Says whether bmsd's trusted clock found a tamper (a wall-clock jump), which stops every seal
/// from expiring; with `confirm_clock`, an admin who checked the clock clears it. Needs the
/// admin role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlockCheck {
    #[serde(default)]
    pub confirm_clock: bool,
}

/// The clock guard's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UnlockCheckReply {
    /// The tamper in force (after this call), if any: when and what was found.
    pub tampered: Option<String>,
    /// The tamper this call cleared, if any.
    pub cleared: Option<String>,
}
