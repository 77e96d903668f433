//! The audit trail: who (uid) changed what, when. Configuration changes are recorded in the same
//! transaction as the change; restores (writes anywhere on the machine) are recorded when they
//! start (`restore.start`) and when they end (`restore.succeeded`, `restore.failed`,
//! `restore.cancelled`), with the details as a JSON object
//! (docs/operations.md, "Restores").

use super::{db_err, now_rfc3339, Actor, Catalog};
use bms_proto::api::AuditEntry;
use bms_proto::ApiError;

pub(super) fn record(
    conn: &rusqlite::Connection,
    actor: Actor,
    action: &str,
    object: &str,
    detail: Option<&str>,
) -> Result<(), ApiError> {
    conn.execute(
        "INSERT INTO audit(time, uid, action, object, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        rusqlite::params![now_rfc3339(), actor.uid, action, object, detail],
    )
    .map(|_| ())
    .map_err(db_err)
}

impl Catalog {
    /// Records an action that is not a catalog change (e.g. a restore).
    pub fn record_audit(
        &mut self,
        actor: Actor,
        action: &str,
        object: &str,
        detail: Option<&str>,
    ) -> Result<(), ApiError> {
        record(&self.conn, actor, action, object, detail)
    }

    /// Newest first.
    pub fn list_audit(&self, limit: u32) -> Result<Vec<AuditEntry>, ApiError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, time, uid, action, object, detail FROM audit ORDER BY id DESC LIMIT ?1",
            )
            .map_err(db_err)?;
        let rows = stmt
            .query_map([limit], |r| {
                let uid: u32 = r.get(2)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    uid,
                    user: nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                        .ok()
                        .flatten()
                        .map(|u| u.name),
                    action: r.get(3)?,
                    object: r.get(4)?,
                    detail: r.get(5)?,
                })
            })
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
    }
}
