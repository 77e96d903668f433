//! Catalog records of forget and prune: snapshot rows removed with their repository files,
//! prune statistics of runs, and the prune calendars' progress (docs/retention.md).

use super::{audit, db_err, Actor, Catalog};
use bms_proto::api::PruneStats;
use bms_proto::ApiError;
use rusqlite::{params, OptionalExtension};

impl Catalog {
    /// Removes the rows of snapshots the repository of `target` no longer holds, with an audit
    /// record (`snapshot.forget`) naming them.
    pub fn forget_snapshots(
        &mut self,
        actor: Actor,
        target: &str,
        ids: &[String],
        why: &str,
    ) -> Result<(), ApiError> {
        if ids.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(db_err)?;
        for id in ids {
            tx.execute(
                "DELETE FROM snapshots WHERE target = ?1 AND id = ?2",
                params![target, id],
            )
            .map_err(db_err)?;
        }
        let short: Vec<&str> = ids.iter().map(|i| &i[..i.len().min(8)]).collect();
        audit::record(
            &tx,
            actor,
            "snapshot.forget",
            target,
            Some(&format!("{why}: {}", short.join(" "))),
        )?;
        tx.commit().map_err(db_err)
    }

    /// Records what a prune run removed and reclaimed.
    pub fn set_prune_stats(&mut self, run_id: i64, stats: &PruneStats) -> Result<(), ApiError> {
        let json = serde_json::to_string(stats)
            .map_err(|e| ApiError::internal(format!("encoding prune statistics: {e}")))?;
        self.conn
            .execute(
                "UPDATE runs SET prune_stats = ?2 WHERE id = ?1",
                params![run_id, json],
            )
            .map(|_| ())
            .map_err(db_err)
    }

    /// The time up to which the scheduler has handled a target's prune calendar.
    pub fn prune_checked_until(&self, target: &str) -> Result<Option<jiff::Timestamp>, ApiError> {
        let v: Option<String> = self
            .conn
            .query_row(
                "SELECT checked_until FROM prune_schedule_state WHERE target = ?1",
                [target],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
        Ok(v.and_then(|s| s.parse().ok()))
    }

    pub fn set_prune_checked_until(
        &mut self,
        target: &str,
        t: jiff::Timestamp,
    ) -> Result<(), ApiError> {
        self.conn
            .execute(
                "INSERT INTO prune_schedule_state(target, checked_until) VALUES (?1, ?2) \
                 ON CONFLICT(target) DO UPDATE SET checked_until = ?2",
                params![target, t.to_string()],
            )
            .map(|_| ())
            .map_err(db_err)
    }
}
