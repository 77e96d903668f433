//! What a notification says (docs/alerts.md, "Payloads"): the outbox stores one JSON notice
//! (schema `bms.alert.v1` or `bms.ping.v1`, never a secret); each channel renders it when it is
//! delivered — the generic webhook sends it as it is, Teams gets an Adaptive Card 1.4 in the
//! Workflows envelope, e-mail a text and an HTML part.

use bms_proto::api::AlertInfo;
use serde_json::{json, Value};

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The notice of an alert's `event` (`raised`, `renotify`, `resolved`, `test`).
pub fn alert_notice(alert: &AlertInfo, event: &str) -> String {
    json!({
        "schema": "bms.alert.v1",
        "event": event,
        "host": hostname(),
        "time": crate::catalog::now_rfc3339(),
        "alert": alert,
    })
    .to_string()
}

/// The notice of a job's ping (`start`, `success`, `fail`).
pub fn ping_notice(job: &str, ping: &str, run: i64, message: &str) -> String {
    json!({
        "schema": "bms.ping.v1",
        "ping": ping,
        "job": job,
        "run": run,
        "host": hostname(),
        "time": crate::catalog::now_rfc3339(),
        "message": message,
    })
    .to_string()
}

/// A notice for `bmsctl alert test`.
pub fn test_notice() -> String {
    let now = crate::catalog::now_rfc3339();
    let alert = AlertInfo {
        id: 0,
        key: "test".into(),
        kind: "test".into(),
        severity: "info".into(),
        state: "open".into(),
        job: None,
        target: None,
        message: "test notification from bmsd (bmsctl alert test)".into(),
        details: json!({}),
        first_seen: now.clone(),
        last_seen: now,
        count: 1,
        last_notified: None,
        acked_by: None,
        acked_at: None,
        ack_comment: None,
        resolved_at: None,
        delivery_problem: None,
    };
    alert_notice(&alert, "test")
}

/// The parts of an alert notice that every rendering uses.
pub struct View {
    pub event: String,
    pub host: String,
    pub alert: Value,
}

impl View {
    pub fn parse(payload: &str) -> View {
        let v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
        View {
            event: v["event"].as_str().unwrap_or("raised").to_owned(),
            host: v["host"].as_str().unwrap_or("").to_owned(),
            alert: v["alert"].clone(),
        }
    }

    fn s(&self, key: &str) -> String {
        match &self.alert[key] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            v => v.to_string(),
        }
    }

    /// `job home`, `target nas` or `bmsd`.
    pub fn subject_of(&self) -> String {
        match (self.alert["job"].as_str(), self.alert["target"].as_str()) {
            (Some(j), _) => format!("job {j}"),
            (None, Some(t)) => format!("target {t}"),
            _ => "bmsd".into(),
        }
    }

    pub fn state_word(&self) -> &'static str {
        match self.event.as_str() {
            "resolved" => "RESOLVED",
            "renotify" => "STILL OPEN",
            "test" => "TEST",
            _ => "OPEN",
        }
    }

    pub fn title(&self) -> String {
        format!(
            "[bms] {}: {}: {} {} ({})",
            self.host,
            self.subject_of(),
            self.s("kind").replace('_', " "),
            self.state_word(),
            self.s("severity")
        )
    }

    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![
            ("Host", self.host.clone()),
            ("Kind", self.s("kind")),
            ("Severity", self.s("severity")),
            ("State", self.state_word().to_lowercase()),
        ];
        for (label, key) in [("Job", "job"), ("Target", "target")] {
            let v = self.s(key);
            if !v.is_empty() {
                f.push((label, v));
            }
        }
        f.push(("Count", self.s("count")));
        f.push(("First seen", self.s("first_seen")));
        f.push(("Last seen", self.s("last_seen")));
        f.push(("Alert", format!("#{} ({})", self.s("id"), self.s("key"))));
        f
    }

    pub fn message(&self) -> String {
        self.s("message")
    }

    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n{}\n\n", self.title(), self.message());
        for (k, v) in self.facts() {
            out.push_str(&format!("{k}: {v}\n"));
        }
        let details = &self.alert["details"];
        if details.as_object().is_some_and(|o| !o.is_empty()) {
            out.push_str(&format!("Details: {details}\n"));
        }
        out.push_str("\nAcknowledge with: bmsctl alert ack ");
        out.push_str(&self.s("id"));
        out.push('\n');
        out
    }

    pub fn html(&self) -> String {
        let mut rows = String::new();
        for (k, v) in self.facts() {
            rows.push_str(&format!(
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                escape(k),
                escape(&v)
            ));
        }
        format!(
            "<!DOCTYPE html><html><body><h2>{}</h2><p>{}</p><table>{rows}</table>\
             <p>Acknowledge with <code>bmsctl alert ack {}</code></p></body></html>",
            escape(&self.title()),
            escape(&self.message()),
            escape(&self.s("id"))
        )
    }

    /// The Microsoft Teams Workflows envelope with an Adaptive Card of version 1.4 (Workflows
    /// refuses later versions).
    pub fn teams(&self) -> Value {
        let color = match (self.event.as_str(), self.s("severity").as_str()) {
            ("resolved", _) => "Good",
            (_, "critical") => "Attention",
            (_, "warning") => "Warning",
            _ => "Default",
        };
        let facts: Vec<Value> = self
            .facts()
            .into_iter()
            .map(|(k, v)| json!({"title": k, "value": v}))
            .collect();
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": [
                        {"type": "TextBlock", "text": self.title(), "weight": "Bolder",
                         "size": "Medium", "wrap": true, "color": color},
                        {"type": "TextBlock", "text": self.message(), "wrap": true},
                        {"type": "FactSet", "facts": facts}
                    ]
                }
            }]
        })
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_card_is_version_1_4_in_the_workflows_envelope() {
        let v = View::parse(&test_notice());
        let t = v.teams();
        assert_eq!(t["type"], "message");
        let a = &t["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["version"], "1.4");
        assert!(v.html().contains("<table>"));
        assert!(v.text().contains("TEST"));
    }
}
