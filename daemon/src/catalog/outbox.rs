//! The notification outbox in the catalog (docs/alerts.md, "Delivery"): notices queued with
//! their alert change, the oldest pending notice of each channel, and every delivery attempt.

use super::alerts::{enqueue, AlertFacts, Notice, OutboxItem};
use super::{db_err, now_rfc3339, Catalog};
use bms_proto::api::{DeliveryAttempt, NotificationInfo};
use bms_proto::ApiError;
use rusqlite::params;

impl Catalog {
    /// The notifications of an alert with their attempts, oldest first.
    pub fn alert_notifications(&self, id: i64) -> Result<Vec<NotificationInfo>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, channel, event, state, created_at, delivered_at, next_attempt_at \
                 FROM outbox WHERE alert_id = ?1 ORDER BY id",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([id], |r| {
                let state: String = r.get(3)?;
                let next: String = r.get(6)?;
                Ok(NotificationInfo {
                    id: r.get(0)?,
                    channel: r.get(1)?,
                    event: r.get(2)?,
                    next_attempt_at: (state == "pending").then_some(next),
                    state,
                    created_at: r.get(4)?,
                    delivered_at: r.get(5)?,
                    attempts: Vec::new(),
                })
            })
            .map_err(db_err)?;
        let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT time, ok, detail FROM outbox_attempts WHERE outbox_id = ?1 ORDER BY id",
            )
            .map_err(db_err)?;
        for n in &mut out {
            let rows = stmt
                .query_map([n.id], |r| {
                    Ok(DeliveryAttempt {
                        time: r.get(0)?,
                        ok: r.get(1)?,
                        detail: r.get(2)?,
                    })
                })
                .map_err(db_err)?;
            n.attempts = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
        }
        Ok(out)
    }

    /// Queues notifications that belong to no alert (pings of a job's run).
    pub fn queue_notices(&mut self, notices: &[Notice]) -> Result<(), ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        enqueue(&tx, None, notices, &now_rfc3339())?;
        tx.commit().map_err(db_err)
    }

    /// The oldest pending notification of each channel (delivery keeps each channel's order),
    /// and the earliest time one of them is due.
    pub fn outbox_heads(&self) -> Result<Vec<(OutboxItem, String)>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, channel, alert_id, event, payload, created_at, attempts, next_attempt_at \
                 FROM outbox WHERE id IN \
                 (SELECT min(id) FROM outbox WHERE state = 'pending' GROUP BY channel) ORDER BY id",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    OutboxItem {
                        id: r.get(0)?,
                        channel: r.get(1)?,
                        alert_id: r.get(2)?,
                        event: r.get(3)?,
                        payload: r.get(4)?,
                        created_at: r.get(5)?,
                        attempts: r.get(6)?,
                    },
                    r.get(7)?,
                ))
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }

    /// Whether `item` is still the pending notification the outbox handed out, with the same
    /// number of attempts. The delivery task asks this once it holds the channel, so a head read
    /// just before an earlier attempt was recorded is not delivered a second time.
    pub fn outbox_still_due(&self, item: &OutboxItem) -> Result<bool, ApiError> {
        self.conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE id = ?1 AND attempts = ?2 AND state = 'pending'",
                params![item.id, item.attempts],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(db_err)
    }

    /// Records one delivery attempt. `next` is when to try again after a failure; `gave_up`
    /// ends the notification as failed and notes why on its alert.
    pub fn record_attempt(
        &mut self,
        item: &OutboxItem,
        ok: bool,
        detail: &str,
        next: Option<&str>,
        gave_up: Option<&str>,
    ) -> Result<(), ApiError> {
        let now = now_rfc3339();
        let tx = self.conn.transaction().map_err(db_err)?;
        tx.execute(
            "INSERT INTO outbox_attempts(outbox_id, time, channel, ok, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![item.id, now, item.channel, ok, detail],
        )
        .map_err(db_err)?;
        let (state, next) = match (ok, gave_up) {
            (true, _) => ("delivered", now.clone()),
            (false, Some(_)) => ("failed", now.clone()),
            (false, None) => ("pending", next.unwrap_or(&now).to_owned()),
        };
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, state = ?2, next_attempt_at = ?3, \
             delivered_at = CASE WHEN ?2 = 'delivered' THEN ?4 ELSE delivered_at END WHERE id = ?1",
            params![item.id, state, next, now],
        )
        .map_err(db_err)?;
        if let (Some(problem), Some(alert)) = (gave_up, item.alert_id) {
            tx.execute(
                "UPDATE alerts SET delivery_problem = ?2 WHERE id = ?1",
                params![alert, problem],
            )
            .map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Open alerts by severity, failed delivery attempts and pending notifications (metrics).
    pub fn alert_facts(&self) -> Result<AlertFacts, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT severity, count(*) FROM alerts WHERE state != 'resolved' GROUP BY severity",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))
            .map_err(db_err)?;
        let open = rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?;
        let count = |sql: &str| -> Result<u64, ApiError> {
            self.conn
                .query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(db_err)
        };
        Ok((
            open,
            count("SELECT count(*) FROM outbox_attempts WHERE NOT ok")?,
            count("SELECT count(*) FROM outbox WHERE state = 'pending'")?,
        ))
    }

    /// Deletes resolved alerts and finished notifications older than `before` (RFC 3339):
    /// pending notifications always stay. Returns how many rows went.
    pub fn prune_alerts(&mut self, before: &str) -> Result<usize, ApiError> {
        let tx = self.conn.transaction().map_err(db_err)?;
        let n = tx
            .execute(
                "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?1",
                [before],
            )
            .map_err(db_err)?
            + tx.execute(
                "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?1 \
                     AND id NOT IN (SELECT alert_id FROM outbox WHERE alert_id IS NOT NULL)",
                [before],
            )
            .map_err(db_err)?;
        tx.commit().map_err(db_err)?;
        Ok(n)
    }
}
