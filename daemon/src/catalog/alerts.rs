//! Alerts, silences and the notification outbox in the catalog (docs/alerts.md). A change of an
//! alert and the notifications it causes are written in one transaction, so that a notice is
//! never lost between the two, and the outbox survives a restart of bmsd.

use super::{audit, db_err, now_rfc3339, Actor, Catalog};
use bms_proto::api::AlertInfo;
use bms_proto::{ApiError, ErrorKind};
use rusqlite::{params, OptionalExtension, Transaction};

/// A condition seen now, as the alert router describes it.
#[derive(Debug, Clone)]
pub struct AlertChange {
    pub key: String,
    pub kind: String,
    pub severity: String,
    pub job: Option<String>,
    pub target: Option<String>,
    pub message: String,
    pub details: serde_json::Value,
}

/// A notification to queue: the channel's name and the rendered notice (no secrets).
#[derive(Debug, Clone)]
pub struct Notice {
    pub channel: String,
    pub event: String,
    pub payload: String,
}

/// (severity, count) of unresolved alerts, failed attempts, pending notifications.
pub type AlertFacts = (Vec<(String, u64)>, u64, u64);

/// A job's latest final backup run: (job, state, run id, error).
pub type LatestBackup = (String, String, i64, Option<String>);

/// A queued notification due for delivery.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub channel: String,
    pub alert_id: Option<i64>,
    pub event: String,
    pub payload: String,
    pub created_at: String,
    pub attempts: u32,
}

const ALERT_COLUMNS: &str = "id, key, kind, severity, state, job, target, message, details, \
     first_seen, last_seen, count, last_notified, acked_by, acked_at, ack_comment, resolved_at, \
     delivery_problem";

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertInfo> {
    let details: String = r.get(8)?;
    Ok(AlertInfo {
        id: r.get(0)?,
        key: r.get(1)?,
        kind: r.get(2)?,
        severity: r.get(3)?,
        state: r.get(4)?,
        job: r.get(5)?,
        target: r.get(6)?,
        message: r.get(7)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
        first_seen: r.get(9)?,
        last_seen: r.get(10)?,
        count: r.get::<_, i64>(11)?.max(0) as u64,
        last_notified: r.get(12)?,
        acked_by: r.get(13)?,
        acked_at: r.get(14)?,
        ack_comment: r.get(15)?,
        resolved_at: r.get(16)?,
        delivery_problem: r.get(17)?,
    })
}

fn by_id(conn: &rusqlite::Connection, id: i64) -> Result<AlertInfo, ApiError> {
    conn.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"),
        [id],
        alert_row,
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(|| ApiError::not_found("alert", &id.to_string()))
}

fn live_by_key(conn: &rusqlite::Connection, key: &str) -> Result<Option<AlertInfo>, ApiError> {
    conn.query_row(
        &format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE key = ?1 AND state != 'resolved'"),
        [key],
        alert_row,
    )
    .optional()
    .map_err(db_err)
}

fn silenced(conn: &rusqlite::Connection, job: Option<&str>, now: &str) -> Result<bool, ApiError> {
    let Some(job) = job else { return Ok(false) };
    conn.query_row(
        "SELECT count(*) FROM alert_silences WHERE job = ?1 AND until > ?2",
        params![job, now],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(db_err)
}

/// Queues `notices` of alert `alert_id` and marks the alert notified.
pub(super) fn enqueue(
    tx: &Transaction<'_>,
    alert_id: Option<i64>,
    notices: &[Notice],
    now: &str,
) -> Result<(), ApiError> {
    for n in notices {
        tx.execute(
            "INSERT INTO outbox(channel, alert_id, event, payload, state, created_at, next_attempt_at) \
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
            params![n.channel, alert_id, n.event, n.payload, now],
        )
        .map_err(db_err)?;
    }
    if let (Some(id), false) = (alert_id, notices.is_empty()) {
        tx.execute(
            "UPDATE alerts SET last_notified = ?2 WHERE id = ?1",
            params![id, now],
        )
        .map_err(db_err)?;
    }
    Ok(())
}

fn older_than(t: Option<&str>, secs: u64, now: jiff::Timestamp) -> bool {
    match t.and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        // To the millisecond: whole seconds of each time would call 2.1 s "3".
        Some(t) => now.as_millisecond() - t.as_millisecond() >= (secs as i64).saturating_mul(1000),
        None => true,
    }
}

impl Catalog {
    /// Records that a condition is seen: a new alert, or one more occurrence of the live alert
    /// with the same key. `notify(alert, event)` renders the notices of a new alert (`raised`)
    /// and of a reminder of an open critical one not notified for `renotify_secs` (`renotify`);
    /// nothing is queued while the alert's job is silenced. Returns the alert and the event
    /// notified, if any.
    pub fn raise_alert(
        &mut self,
        change: &AlertChange,
        renotify_secs: u64,
        notify: impl Fn(&AlertInfo, &str) -> Vec<Notice>,
    ) -> Result<(AlertInfo, Option<&'static str>), ApiError> {
        let now_ts = jiff::Timestamp::now();
        let now = now_rfc3339();
        let details = change.details.to_string();
        let tx = self.conn.transaction().map_err(db_err)?;
        let (id, event) = match live_by_key(&tx, &change.key)? {
            None => {
                tx.execute(
                    "INSERT INTO alerts(key, kind, severity, state, job, target, message, details, \
                     first_seen, last_seen, count) VALUES (?1, ?2, ?3, 'open', ?4, ?5, ?6, ?7, ?8, ?8, 1)",
                    params![
                        change.key,
                        change.kind,
                        change.severity,
                        change.job,
                        change.target,
                        change.message,
                        details,
                        now
                    ],
                )
                .map_err(db_err)?;
                (tx.last_insert_rowid(), Some("raised"))
            }
            Some(a) => {
                tx.execute(
                    "UPDATE alerts SET count = count + 1, last_seen = ?2, message = ?3, details = ?4, \
                     severity = ?5 WHERE id = ?1",
                    params![a.id, now, change.message, details, change.severity],
                )
                .map_err(db_err)?;
                let remind = a.state == "open"
                    && change.severity == "critical"
                    && renotify_secs > 0
                    && older_than(a.last_notified.as_deref(), renotify_secs, now_ts);
                (a.id, remind.then_some("renotify"))
            }
        };
        let alert = by_id(&tx, id)?;
        let event = match event {
            Some(e) if !silenced(&tx, alert.job.as_deref(), &now)? => {
                enqueue(&tx, Some(id), &notify(&alert, e), &now)?;
                Some(e)
            }
            _ => None,
        };
        tx.commit().map_err(db_err)?;
        Ok((alert, event))
    }

    /// Resolves the live alert with `key`, if there is one, queueing its `resolved` notices.
    pub fn resolve_alert_key(
        &mut self,
        key: &str,
        notify: impl Fn(&AlertInfo, &str) -> Vec<Notice>,
    ) -> Result<Option<AlertInfo>, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let Some(a) = live_by_key(&tx, key)? else {
            return Ok(None);
        };
        let alert = resolve_in(&tx, a.id, &notify)?;
        tx.commit().map_err(db_err)?;
        Ok(Some(alert))
    }

    /// Resolves an alert by hand (audited `alert.resolve`).
    pub fn resolve_alert(
        &mut self,
        actor: Actor,
        id: i64,
        notify: impl Fn(&AlertInfo, &str) -> Vec<Notice>,
    ) -> Result<AlertInfo, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let a = by_id(&tx, id)?;
        if a.state == "resolved" {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "alert {id} is already resolved (at {})",
                    a.resolved_at.unwrap_or_default()
                ),
            ));
        }
        let alert = resolve_in(&tx, id, &notify)?;
        audit::record(&tx, actor, "alert.resolve", &id.to_string(), Some(&a.key))?;
        tx.commit().map_err(db_err)?;
        Ok(alert)
    }

    /// Acknowledges an open alert (audited `alert.ack`): no more reminders.
    pub fn ack_alert(
        &mut self,
        actor: Actor,
        id: i64,
        comment: Option<&str>,
    ) -> Result<AlertInfo, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let a = by_id(&tx, id)?;
        if a.state != "open" {
            return Err(ApiError::new(
                ErrorKind::InvalidArgument,
                format!(
                    "alert {id} is {}, not open: only open alerts can be acknowledged",
                    a.state
                ),
            ));
        }
        tx.execute(
            "UPDATE alerts SET state = 'acked', acked_by = ?2, acked_at = ?3, ack_comment = ?4 \
             WHERE id = ?1",
            params![id, actor.uid, now_rfc3339(), comment],
        )
        .map_err(db_err)?;
        let detail = serde_json::json!({"key": a.key, "comment": comment}).to_string();
        audit::record(&tx, actor, "alert.ack", &id.to_string(), Some(&detail))?;
        let alert = by_id(&tx, id)?;
        tx.commit().map_err(db_err)?;
        Ok(alert)
    }

    /// Silences a job's notifications until `until` (audited `alert.silence`).
    pub fn silence_job(
        &mut self,
        actor: Actor,
        job: &str,
        until: &str,
        comment: Option<&str>,
    ) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO alert_silences(job, until, uid, comment, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![job, until, actor.uid, comment, now_rfc3339()],
        )
        .map_err(db_err)?;
        let detail = serde_json::json!({"until": until, "comment": comment}).to_string();
        audit::record(&tx, actor, "alert.silence", job, Some(&detail))?;
        tx.commit().map_err(db_err)
    }

    /// Alerts, newest first.
    pub fn list_alerts(&self, state: Option<&str>, limit: u32) -> Result<Vec<AlertInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ALERT_COLUMNS} FROM alerts WHERE ?1 IS NULL OR state = ?1 \
                 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![state, limit], alert_row)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// One alert.
    pub fn get_alert(&self, id: i64) -> Result<AlertInfo, ApiError> {
        by_id(&self.conn, id)
    }

    /// Keys of the alerts that are not resolved.
    pub fn live_alert_keys(&self) -> Result<Vec<String>, ApiError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key FROM alerts WHERE state != 'resolved'")
            .map_err(db_err)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// Queues a reminder (`renotify`) of every open critical alert not notified for
    /// `renotify_secs`, unless its job is silenced; returns their ids.
    pub fn remind_alerts(
        &mut self,
        renotify_secs: u64,
        notify: impl Fn(&AlertInfo, &str) -> Vec<Notice>,
    ) -> Result<Vec<i64>, ApiError> {
        if renotify_secs == 0 {
            return Ok(Vec::new());
        }
        let now_ts = jiff::Timestamp::now();
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db_err)?;
        let due: Vec<AlertInfo> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {ALERT_COLUMNS} FROM alerts WHERE state = 'open' AND severity = 'critical'"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([], alert_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?
                .into_iter()
                .filter(|a| older_than(a.last_notified.as_deref(), renotify_secs, now_ts))
                .collect()
        };
        let mut ids = Vec::new();
        for a in due {
            if silenced(&tx, a.job.as_deref(), &now)? {
                continue;
            }
            let notices = notify(&a, "renotify");
            if notices.is_empty() {
                continue;
            }
            enqueue(&tx, Some(a.id), &notices, &now)?;
            ids.push(a.id);
        }
        tx.commit().map_err(db_err)?;
        Ok(ids)
    }

    /// When the job last finished a backup that left a snapshot (succeeded or with warnings).
    pub fn last_good_backup(&self, job: &str) -> Result<Option<String>, ApiError> {
        self.conn
            .query_row(
                "SELECT max(finished_at) FROM runs WHERE job = ?1 AND kind = 'backup' \
                 AND state IN ('succeeded', 'warning')",
                [job],
                |r| r.get(0),
            )
            .map_err(db_err)
    }

    /// The latest final backup run of each job: (job, state, run id, error).
    pub fn latest_backup_states(&self) -> Result<Vec<LatestBackup>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT job, state, id, error FROM runs WHERE id IN (SELECT max(id) FROM runs \
                 WHERE kind = 'backup' AND state NOT IN ('queued', 'running') GROUP BY job)",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}

fn resolve_in(
    tx: &Transaction<'_>,
    id: i64,
    notify: &dyn Fn(&AlertInfo, &str) -> Vec<Notice>,
) -> Result<AlertInfo, ApiError> {
    let now = now_rfc3339();
    tx.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ?2 WHERE id = ?1",
        params![id, now],
    )
    .map_err(db_err)?;
    let alert = by_id(tx, id)?;
    if !silenced(tx, alert.job.as_deref(), &now)? {
        enqueue(tx, Some(id), &notify(&alert, "resolved"), &now)?;
    }
    Ok(alert)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str) -> AlertChange {
        AlertChange {
            key: key.into(),
            kind: "run_failed".into(),
            severity: "critical".into(),
            job: Some("home".into()),
            target: None,
            message: "failed".into(),
            details: serde_json::json!({"run": 1}),
        }
    }

    fn to(channel: &str) -> impl Fn(&AlertInfo, &str) -> Vec<Notice> + '_ {
        move |a, e| {
            vec![Notice {
                channel: channel.into(),
                event: e.into(),
                payload: a.id.to_string(),
            }]
        }
    }

    #[test]
    fn repeats_count_and_notify_once_then_resolve_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        for i in 0..10 {
            let (a, ev) = c
                .raise_alert(&change("run_failed:home"), 86400, to("m"))
                .unwrap();
            assert_eq!(a.count, i + 1);
            assert_eq!(ev.is_some(), i == 0);
        }
        let heads = c.outbox_heads().unwrap();
        assert_eq!(heads.len(), 1);
        c.record_attempt(&heads[0].0, true, "250 ok", None, None)
            .unwrap();
        let r = c
            .resolve_alert_key("run_failed:home", to("m"))
            .unwrap()
            .unwrap();
        assert_eq!(r.state, "resolved");
        assert!(c
            .resolve_alert_key("run_failed:home", to("m"))
            .unwrap()
            .is_none());
        let n = c.alert_notifications(r.id).unwrap();
        let events: Vec<_> = n.iter().map(|n| n.event.as_str()).collect();
        assert_eq!(events, ["raised", "resolved"]);
        // A new occurrence after resolution is a new alert.
        let (again, ev) = c
            .raise_alert(&change("run_failed:home"), 86400, to("m"))
            .unwrap();
        assert_ne!(again.id, r.id);
        assert_eq!(ev, Some("raised"));
    }

    #[test]
    fn critical_alerts_are_reminded_after_the_interval_unless_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (a, _) = c.raise_alert(&change("k"), 1, to("m")).unwrap();
        c.conn
            .execute(
                "UPDATE alerts SET last_notified = '2000-01-01T00:00:00.000Z'",
                [],
            )
            .unwrap();
        let (_, ev) = c.raise_alert(&change("k"), 1, to("m")).unwrap();
        assert_eq!(ev, Some("renotify"));
        c.ack_alert(Actor { uid: 0 }, a.id, Some("on it")).unwrap();
        c.conn
            .execute(
                "UPDATE alerts SET last_notified = '2000-01-01T00:00:00.000Z'",
                [],
            )
            .unwrap();
        let (acked, ev) = c.raise_alert(&change("k"), 1, to("m")).unwrap();
        assert_eq!((acked.state.as_str(), ev), ("acked", None));
    }

    #[test]
    fn a_notice_given_up_leaves_the_queue_and_says_so_on_its_alert() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (a, _) = c.raise_alert(&change("k"), 0, to("m")).unwrap();
        let (item, _) = c.outbox_heads().unwrap().remove(0);
        c.record_attempt(
            &item,
            false,
            "refused",
            Some("2000-01-01T00:00:00.000Z"),
            None,
        )
        .unwrap();
        assert_eq!(
            c.outbox_heads().unwrap().len(),
            1,
            "still pending after a failure"
        );
        c.record_attempt(&item, false, "refused", None, Some("gave up on m"))
            .unwrap();
        assert!(c.outbox_heads().unwrap().is_empty());
        assert_eq!(
            c.get_alert(a.id).unwrap().delivery_problem.as_deref(),
            Some("gave up on m")
        );
        let n = c.alert_notifications(a.id).unwrap();
        assert_eq!((n[0].state.as_str(), n[0].attempts.len()), ("failed", 2));
        let (_, failures, pending) = c.alert_facts().unwrap();
        assert_eq!((failures, pending), (2, 0));
    }

    #[test]
    fn a_head_read_before_its_attempt_was_recorded_is_no_longer_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        c.raise_alert(&change("k"), 0, to("m")).unwrap();
        let (stale, _) = c.outbox_heads().unwrap().remove(0);
        assert!(c.outbox_still_due(&stale).unwrap());
        // A failed attempt reschedules it: the copy read before is stale.
        c.record_attempt(&stale, false, "refused", None, None)
            .unwrap();
        assert!(!c.outbox_still_due(&stale).unwrap());
        let (fresh, _) = c.outbox_heads().unwrap().remove(0);
        assert!(c.outbox_still_due(&fresh).unwrap());
        c.record_attempt(&fresh, true, "ok", None, None).unwrap();
        assert!(!c.outbox_still_due(&fresh).unwrap(), "delivered once only");
    }

    #[test]
    fn pruning_keeps_pending_notices_and_live_alerts() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        let (a, _) = c.raise_alert(&change("k"), 0, to("m")).unwrap();
        assert_eq!(c.prune_alerts("2999-01-01T00:00:00.000Z").unwrap(), 0);
        let (item, _) = c.outbox_heads().unwrap().remove(0);
        c.record_attempt(&item, true, "ok", None, None).unwrap();
        c.resolve_alert_key("k", |_, _| Vec::new()).unwrap();
        assert_eq!(c.prune_alerts("2000-01-01T00:00:00.000Z").unwrap(), 0);
        assert_eq!(c.prune_alerts("2999-01-01T00:00:00.000Z").unwrap(), 2);
        assert!(c.get_alert(a.id).is_err());
    }

    #[test]
    fn a_silenced_job_records_but_does_not_notify() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("c.db")).unwrap();
        c.silence_job(Actor { uid: 0 }, "home", "2999-01-01T00:00:00.000Z", None)
            .unwrap();
        let (a, ev) = c.raise_alert(&change("k"), 1, to("m")).unwrap();
        assert_eq!((a.count, ev), (1, None));
        assert!(c.outbox_heads().unwrap().is_empty());
    }
}
