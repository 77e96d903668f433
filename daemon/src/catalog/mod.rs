//! The catalog: a SQLite file (WAL) in the state dir with numbered migrations. It lives on its own
//! thread; async code reaches it through [`CatalogHandle::call`].

mod alerts;
mod audit;
mod compliance;
mod history;
mod integrity;
mod jobs;
mod media;
mod media_use;
mod migrations;
mod outbox;
mod rebuild;
mod reports;
mod retention;
mod runs;
mod seals;
mod stats;
mod tape_archives;
mod targets;

pub use alerts::{AlertChange, Notice, OutboxItem};
pub use compliance::NewChange;
pub use integrity::{health_of, quick_check_file};
pub use media::{Location, MediaDue, MediaState, Medium, Pool, MEDIA_TYPES};
pub use media_use::Offered;
pub use migrations::SCHEMA_VERSION;
pub use rebuild::Found;
pub use runs::NewRun;
pub use seals::SealRecord;
pub use stats::{CatalogFacts, ComplianceGauges, JobFacts};
pub use tape_archives::{MediaEvidence, TapeFileLocation};
pub use targets::{Change, Upsert};

use bms_proto::ApiError;
use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Who asked for a change; recorded in the audit table.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub uid: u32,
}

/// Errors of opening the catalog.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot open catalog {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("catalog {path}: {message}")]
    Schema { path: PathBuf, message: String },
    #[error("{}", integrity::damaged_message(path, detail))]
    Damaged { path: PathBuf, detail: String },
}

/// The catalog database.
pub struct Catalog {
    conn: Connection,
}

/// Current time as RFC 3339 in UTC with exactly three fraction digits, so that the text sorts
/// like the time (`2026-11-29T18:30:33.120Z`).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A repository's RFC 3339 time (nanoseconds) in the catalog's form, three fraction digits, so
/// that a record written at backup time and one rebuilt from the repository agree.
pub fn catalog_time(t: &str) -> String {
    t.parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|_| t.to_owned())
}

pub(crate) fn db_err(e: rusqlite::Error) -> ApiError {
    integrity::note_failure(&e);
    ApiError::internal(format!("catalog error: {e}"))
}

impl Catalog {
    /// Opens (creating if needed) the catalog and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Catalog, CatalogError> {
        let open_err = |source| CatalogError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        let damaged = |detail: String| CatalogError::Damaged {
            path: path.to_owned(),
            detail,
        };
        // A 32 MiB page cache (SQLite's default is 2 MB): listing every job beside 100k runs
        // re-read the same pages from the file (docs/performance.md).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
             PRAGMA cache_size = -32768;",
        )
        .map_err(|e| {
            if integrity::is_corruption(&e) {
                damaged(e.to_string())
            } else {
                open_err(e)
            }
        })?;
        integrity::quick_check(&conn).map_err(damaged)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        let mut cat = Catalog { conn };
        migrations::migrate(&mut cat.conn).map_err(|message| CatalogError::Schema {
            path: path.to_owned(),
            message,
        })?;
        Ok(cat)
    }

    pub fn schema_version(&self) -> Result<u32, ApiError> {
        migrations::current_version(&self.conn).map_err(ApiError::internal)
    }

    /// A value of the key/value meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, ApiError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db_err)
    }

    /// Counts of targets, jobs and enabled jobs.
    pub fn counts(&self) -> Result<(u32, u32, u32), ApiError> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM targets), (SELECT count(*) FROM jobs), \
                 (SELECT count(*) FROM jobs WHERE enabled)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db_err)
    }
}

type Work = Box<dyn FnOnce(&mut Catalog) + Send>;

/// A cloneable handle to the catalog thread.
#[derive(Clone)]
pub struct CatalogHandle {
    tx: mpsc::Sender<Work>,
}

impl CatalogHandle {
    /// Moves the catalog onto its own thread.
    pub fn spawn(
        mut catalog: Catalog,
    ) -> std::io::Result<(CatalogHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Work>();
        let join = std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || {
                while let Ok(work) = rx.recv() {
                    work(&mut catalog);
                }
            })?;
        Ok((CatalogHandle { tx }, join))
    }

    /// Runs `f` on the catalog thread and returns its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, ApiError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Catalog) -> Result<R, ApiError> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let work: Work = Box::new(move |cat| {
            let _ = reply_tx.send(f(cat));
        });
        self.tx
            .send(work)
            .map_err(|_| ApiError::internal("the catalog thread has stopped"))?;
        reply_rx
            .await
            .map_err(|_| ApiError::internal("the catalog thread dropped a request"))?
    }
}
