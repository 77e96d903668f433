//! Alerts (docs/alerts.md): records made from the daemon's events, their notifications and the
//! methods that list, acknowledge, resolve and silence them.

use serde::{Deserialize, Serialize};

/// One alert: a condition, deduplicated by `key` (kind plus job or target), from the first time
/// it was seen until it resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    pub id: i64,
    /// The dedupe key, `KIND:JOB` or `KIND:TARGET`.
    pub key: String,
    /// `run_failed`, `run_partial`, `run_missed`, `rpo_exceeded`, `verify_errors`,
    /// `target_unavailable`, `compliance_violated`, `immutability_tamper`, `media_needed`.
    pub kind: String,
    /// `critical`, `warning` or `info`.
    pub severity: String,
    /// `open`, `acked` or `resolved`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// What happened, in one line (the latest occurrence).
    pub message: String,
    /// The latest occurrence's details (run id, error, free bytes...).
    pub details: serde_json::Value,
    pub first_seen: String,
    pub last_seen: String,
    /// How many times the condition was seen while the alert was not resolved.
    pub count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_notified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// Set when a notification of this alert could not be delivered and bmsd gave up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_problem: Option<String>,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub time: String,
    pub ok: bool,
    /// The HTTP status or SMTP reply, or why the attempt failed (never a secret).
    pub detail: String,
}

/// A notification of an alert to one channel, waiting or done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationInfo {
    pub id: i64,
    pub channel: String,
    /// `raised`, `renotify` or `resolved`.
    pub event: String,
    /// `pending`, `delivered` or `failed` (bmsd gave up).
    pub state: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<DeliveryAttempt>,
}

/// Alerts, newest first; with `state`, only those in it (`open`, `acked`, `resolved`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListAlerts {
    #[serde(default)]
    pub state: Option<String>,
    /// At most this many, 1 to 10000 (default 100).
    #[serde(default)]
    pub limit: Option<u32>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertList {
    pub alerts: Vec<AlertInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetAlert {
    pub id: i64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertDetail {
    pub alert: AlertInfo,
    pub notifications: Vec<NotificationInfo>,
}

/// Acknowledges an open alert: no more reminders; it still resolves when the condition clears.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckAlert {
    pub id: i64,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Resolves an alert by hand; one "resolved" notice goes out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveAlert {
    pub id: i64,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertReply {
    pub alert: AlertInfo,
}

/// Sends a test notice to a channel now, bypassing the outbox, and says how it went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestChannel {
    pub channel: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestChannelReply {
    pub channel: String,
    pub kind: String,
    pub ok: bool,
    /// The HTTP status or SMTP reply, or why it failed.
    pub detail: String,
}

/// Keeps a job's alerts from notifying until `until` (RFC 3339, or a duration from now such
/// as `2h`); alerts are still recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceAlerts {
    pub job: String,
    pub until: String,
    #[serde(default)]
    pub comment: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SilenceReply {
    pub job: String,
    /// RFC 3339 end of the silence.
    pub until: String,
}
