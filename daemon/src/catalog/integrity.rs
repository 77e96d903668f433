//! Catalog integrity (docs/operations.md, "A damaged catalog"): `PRAGMA quick_check` at start,
//! a health check for `/healthz` that fails once the catalog has reported damage, and the WAL
//! checkpoint of a clean shutdown.

use super::{db_err, Catalog};
use bms_proto::ApiError;
use rusqlite::{Connection, ErrorCode};
use std::path::Path;
use std::sync::Mutex;

/// The first damage the catalog reported while running; `/healthz` fails from then on.
static DAMAGE: Mutex<Option<String>> = Mutex::new(None);

/// Whether an SQLite error says the database file is damaged.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Remembers a corruption error, so that the health check reports it.
pub fn note_failure(e: &rusqlite::Error) {
    if is_corruption(e) {
        if let Ok(mut d) = DAMAGE.lock() {
            if d.is_none() {
                tracing::error!("the catalog is damaged: {e}");
                *d = Some(e.to_string());
            }
        }
    }
}

/// Runs `PRAGMA quick_check`; returns the problems it found.
pub fn quick_check(conn: &Connection) -> Result<(), String> {
    let mut stmt = conn
        .prepare("PRAGMA quick_check(20)")
        .map_err(|e| e.to_string())?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(())
    } else {
        Err(rows.join("; "))
    }
}

/// Runs `PRAGMA integrity_check` (the full variant, daily); a failure is remembered like damage
/// a query met, so that `/healthz` and `bmsctl doctor` report it.
pub fn integrity_check(conn: &Connection) -> Result<(), String> {
    let rows: Result<Vec<String>, rusqlite::Error> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
        });
    let detail = match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => return Ok(()),
        Ok(rows) => rows.join("; "),
        Err(e) => e.to_string(),
    };
    if let Ok(mut d) = DAMAGE.lock() {
        if d.is_none() {
            *d = Some(detail.clone());
        }
    }
    Err(detail)
}

/// Runs `PRAGMA quick_check` on the catalog file through a read-only connection of its own, so
/// that what is on disk is read rather than pages the daemon's connection holds in its cache
/// (`bmsctl doctor`, docs/operations.md).
pub fn quick_check_file(path: &Path) -> Result<(), String> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| e.to_string())?;
    quick_check(&conn).map_err(|e| e.to_string())
}

/// What bmsd says when it refuses to start on a damaged catalog.
pub fn damaged_message(path: &Path, detail: &str) -> String {
    let p = path.display();
    format!(
        "the catalog {p} is damaged ({detail}); bmsd does not start on it. To recover: move it \
         aside with its -wal and -shm files (mv {p} {p}.damaged; mv {p}-wal {p}-wal.damaged; \
         mv {p}-shm {p}-shm.damaged) and start bmsd again: it creates a fresh, empty catalog. \
         The backups themselves are in the repositories: `bmsctl repo snapshots <repository>` \
         lists what each one holds, and `bmsctl repo restore` restores from it without the \
         daemon. Add the targets and jobs again (or re-apply their file with `bmsctl apply`); \
         rebuilding the catalog from the repositories is not yet supported"
    )
}

impl Catalog {
    /// The daily full check (see [`integrity_check`]).
    pub fn integrity_check(&self) -> Result<(), String> {
        integrity_check(&self.conn)
    }

    /// A cheap query that proves the catalog answers, and no damage reported since start.
    pub fn health(&self) -> Result<(), ApiError> {
        if let Some(d) = DAMAGE.lock().ok().and_then(|d| d.clone()) {
            return Err(ApiError::internal(format!(
                "the catalog is damaged ({d}): see docs/operations.md, \"A damaged catalog\""
            )));
        }
        self.conn
            .query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
            .map(|_| ())
            .map_err(db_err)
    }

    /// Moves the WAL's content into the database file and truncates the WAL, so that a copy of
    /// `catalog.db` alone is whole. Called at clean shutdown.
    pub fn checkpoint(&self) -> Result<(), ApiError> {
        let (busy, _, _): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(db_err)?;
        if busy != 0 {
            return Err(ApiError::internal(
                "the WAL checkpoint could not complete: another connection holds the catalog",
            ));
        }
        Ok(())
    }
}

/// The health of the catalog as `/healthz` reports it: the catalog thread must answer the
/// health query within `timeout`.
pub async fn health_of(
    catalog: &super::CatalogHandle,
    timeout: std::time::Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, catalog.call(|c| c.health())).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.message),
        Err(_) => Err(format!(
            "the catalog thread did not answer within {} s",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_errors_are_recognised() {
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert!(is_corruption(&corrupt));
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(!is_corruption(&busy));
    }

    #[tokio::test]
    async fn health_fails_once_damage_was_reported_and_when_the_thread_is_stuck() {
        let dir = tempfile::tempdir().unwrap();
        let cat = Catalog::open(&dir.path().join("catalog.db")).unwrap();
        let (h, _join) = super::super::CatalogHandle::spawn(cat).unwrap();
        let t = std::time::Duration::from_secs(2);
        assert_eq!(health_of(&h, t).await, Ok(()));

        // A stuck catalog thread: health answers within its timeout, with a reason.
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let stuck = h.clone();
        let blocker = tokio::spawn(async move {
            stuck
                .call(move |_| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
        });
        started_rx.await.unwrap();
        let err = health_of(&h, std::time::Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("did not answer"), "{err}");
        release_tx.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        assert_eq!(health_of(&h, t).await, Ok(()));

        // A query that met a damaged page: health fails from then on, naming the damage.
        let corrupt = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("database disk image is malformed".into()),
        );
        let _ = db_err(corrupt);
        let err = health_of(&h, t).await.unwrap_err();
        assert!(err.contains("malformed"), "{err}");
    }
}
