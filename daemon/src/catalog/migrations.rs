//! Numbered schema migrations. Each runs once, in order, in its own transaction, and is recorded in
//! `schema_version`. Never edit a released migration: add a new one.

use rusqlite::Connection;

/// (version, SQL). Versions are consecutive from 1.
const MIGRATIONS: &[(u32, &str)] = &[
    (
        1,
        r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE targets (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    kind           TEXT NOT NULL,
    path           TEXT NOT NULL,
    media_type     TEXT,
    location       TEXT NOT NULL,
    site           TEXT,
    immutable_days INTEGER NOT NULL DEFAULT 0,
    min_free_bytes INTEGER NOT NULL DEFAULT 0,
    fs_type        TEXT,
    fs_source      TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE TABLE jobs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    enabled    INTEGER NOT NULL,
    schedule   TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE job_targets (
    job_id    INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    target_id INTEGER NOT NULL REFERENCES targets(id) ON DELETE RESTRICT,
    position  INTEGER NOT NULL,
    PRIMARY KEY (job_id, position)
);
CREATE INDEX job_targets_target ON job_targets(target_id);
CREATE TABLE audit (
    id     INTEGER PRIMARY KEY,
    time   TEXT NOT NULL,
    uid    INTEGER NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    detail TEXT
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    job              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    trigger          TEXT NOT NULL,
    state            TEXT NOT NULL,
    target           TEXT,
    source_target    TEXT,
    snapshot         TEXT,
    parent_run       INTEGER,
    queued_at        TEXT NOT NULL,
    started_at       TEXT,
    finished_at      TEXT,
    duration_secs    REAL,
    files_new        INTEGER NOT NULL DEFAULT 0,
    files_changed    INTEGER NOT NULL DEFAULT 0,
    files_unmodified INTEGER NOT NULL DEFAULT 0,
    bytes_read       INTEGER NOT NULL DEFAULT 0,
    bytes_total      INTEGER NOT NULL DEFAULT 0,
    bytes_added      INTEGER NOT NULL DEFAULT 0,
    chunks_new       INTEGER NOT NULL DEFAULT 0,
    chunks_total     INTEGER NOT NULL DEFAULT 0,
    warnings         INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    log              TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX runs_job ON runs(job, id);
CREATE INDEX runs_state ON runs(state);
CREATE TABLE snapshots (
    id      TEXT NOT NULL,
    target  TEXT NOT NULL,
    job     TEXT NOT NULL,
    time    TEXT NOT NULL,
    host    TEXT NOT NULL,
    paths   TEXT NOT NULL,
    partial INTEGER NOT NULL,
    run_id  INTEGER,
    stats   TEXT NOT NULL,
    PRIMARY KEY (target, id)
);
CREATE INDEX snapshots_job ON snapshots(job, time);
CREATE TABLE schedule_state (
    job           TEXT PRIMARY KEY,
    checked_until TEXT NOT NULL
);
CREATE TABLE target_checks (
    target     TEXT PRIMARY KEY,
    result     TEXT NOT NULL
);
"#,
    ),
    (
        3,
        r#"
ALTER TABLE runs ADD COLUMN hook_group INTEGER;
ALTER TABLE runs ADD COLUMN hook_identity TEXT;
"#,
    ),
    (
        4,
        r#"
ALTER TABLE targets ADD COLUMN retention TEXT;
ALTER TABLE targets ADD COLUMN prune_schedule TEXT;
ALTER TABLE runs ADD COLUMN prune_stats TEXT;
CREATE TABLE prune_schedule_state (
    target        TEXT PRIMARY KEY,
    checked_until TEXT NOT NULL
);
"#,
    ),
    (
        5,
        r#"
CREATE TABLE seals (
    target     TEXT NOT NULL,
    snapshot   TEXT NOT NULL,
    until      TEXT NOT NULL,
    sealed_at  TEXT NOT NULL,
    objects    INTEGER NOT NULL,
    PRIMARY KEY (target, snapshot)
);
"#,
    ),
    (
        6,
        r#"
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    key              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    severity         TEXT NOT NULL,
    state            TEXT NOT NULL,
    job              TEXT,
    target           TEXT,
    message          TEXT NOT NULL,
    details          TEXT NOT NULL DEFAULT '{}',
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL,
    count            INTEGER NOT NULL DEFAULT 1,
    last_notified    TEXT,
    acked_by         INTEGER,
    acked_at         TEXT,
    ack_comment      TEXT,
    resolved_at      TEXT,
    delivery_problem TEXT
);
CREATE UNIQUE INDEX alerts_live_key ON alerts(key) WHERE state != 'resolved';
CREATE INDEX alerts_state ON alerts(state, id);
CREATE TABLE alert_silences (
    id         INTEGER PRIMARY KEY,
    job        TEXT NOT NULL,
    until      TEXT NOT NULL,
    uid        INTEGER NOT NULL,
    comment    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX alert_silences_job ON alert_silences(job, until);
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    alert_id        INTEGER REFERENCES alerts(id) ON DELETE SET NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    delivered_at    TEXT
);
CREATE INDEX outbox_pending ON outbox(state, channel, id);
CREATE INDEX outbox_alert ON outbox(alert_id);
CREATE TABLE outbox_attempts (
    id        INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
    time      TEXT NOT NULL,
    channel   TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX outbox_attempts_outbox ON outbox_attempts(outbox_id);
"#,
    ),
    (
        7,
        r#"
CREATE TABLE compliance_history (
    id     INTEGER PRIMARY KEY,
    time   TEXT NOT NULL,
    job    TEXT NOT NULL,
    rule   TEXT NOT NULL,
    "from" TEXT,
    "to"   TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX compliance_history_job ON compliance_history(job, id);
ALTER TABLE runs ADD COLUMN read_data_percent INTEGER;
ALTER TABLE runs ADD COLUMN verify_errors INTEGER;
"#,
    ),
    (
        8,
        r#"
CREATE TABLE media_pools (
    name           TEXT PRIMARY KEY,
    media_type     TEXT NOT NULL,
    retention_days INTEGER NOT NULL,
    vault          TEXT,
    vault_days     INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
);
CREATE TABLE media (
    barcode         TEXT PRIMARY KEY,
    media_type      TEXT NOT NULL,
    pool            TEXT REFERENCES media_pools(name),
    media_set       TEXT,
    sequence        INTEGER,
    state           TEXT NOT NULL,
    location_kind   TEXT NOT NULL,
    location_name   TEXT NOT NULL DEFAULT '',
    expected_return TEXT,
    write_count     INTEGER NOT NULL DEFAULT 0,
    bytes_written   INTEGER NOT NULL DEFAULT 0,
    last_written    TEXT,
    expires_at      TEXT,
    labelled_at     TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX media_pool_state ON media(pool, state);
CREATE TABLE media_moves (
    id              INTEGER PRIMARY KEY,
    barcode         TEXT NOT NULL REFERENCES media(barcode) ON DELETE CASCADE,
    from_kind       TEXT NOT NULL,
    from_name       TEXT NOT NULL,
    to_kind         TEXT NOT NULL,
    to_name         TEXT NOT NULL,
    expected_return TEXT,
    uid             INTEGER NOT NULL,
    moved_at        TEXT NOT NULL
);
CREATE TABLE tape_archives (
    id          INTEGER PRIMARY KEY,
    job         TEXT NOT NULL,
    target      TEXT NOT NULL,
    snapshot    TEXT NOT NULL,
    state       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    error       TEXT
);
CREATE INDEX tape_archives_job ON tape_archives(job, state);
CREATE TABLE tape_volumes (
    archive_id INTEGER NOT NULL REFERENCES tape_archives(id) ON DELETE CASCADE,
    volume     INTEGER NOT NULL,
    barcode    TEXT NOT NULL,
    tape_file  INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    files      INTEGER NOT NULL,
    last       INTEGER NOT NULL,
    PRIMARY KEY (archive_id, volume)
);
CREATE INDEX tape_volumes_barcode ON tape_volumes(barcode);
CREATE TABLE tape_files (
    archive_id INTEGER NOT NULL REFERENCES tape_archives(id) ON DELETE CASCADE,
    volume     INTEGER NOT NULL,
    path       BLOB NOT NULL,
    kind       TEXT NOT NULL,
    offset     INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX tape_files_path ON tape_files(archive_id, path);
"#,
    ),
    (
        9,
        r#"
ALTER TABLE runs ADD COLUMN drill_stats TEXT;
"#,
    ),
    (
        10,
        r#"
ALTER TABLE targets ADD COLUMN prune_grace TEXT;
"#,
    ),
    (
        11,
        r#"
ALTER TABLE targets ADD COLUMN encrypt INTEGER NOT NULL DEFAULT 0;
ALTER TABLE targets ADD COLUMN key_file TEXT;
"#,
    ),
    (
        12,
        r#"
ALTER TABLE targets ADD COLUMN pool TEXT;
ALTER TABLE targets ADD COLUMN drive INTEGER;
"#,
    ),
    (
        13,
        r#"
ALTER TABLE targets ADD COLUMN bucket TEXT;
ALTER TABLE targets ADD COLUMN prefix TEXT;
ALTER TABLE targets ADD COLUMN region TEXT;
ALTER TABLE targets ADD COLUMN credentials_file TEXT;
ALTER TABLE targets ADD COLUMN virtual_host INTEGER NOT NULL DEFAULT 0;
"#,
    ),
    (
        14,
        r#"
ALTER TABLE targets ADD COLUMN object_lock_mode TEXT;
"#,
    ),
    (
        15,
        r#"
ALTER TABLE targets ADD COLUMN ca_file TEXT;
ALTER TABLE targets ADD COLUMN s3_parallel INTEGER;
ALTER TABLE targets ADD COLUMN s3_part_size INTEGER;
"#,
    ),
];

/// The schema version this bmsd creates and understands: the highest migration's number.
pub const SCHEMA_VERSION: u32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

pub fn current_version(conn: &Connection) -> Result<u32, String> {
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(|e| format!("cannot read schema version: {e}"))
}

/// Creates the version table and applies every migration newer than the database.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);",
    )
    .map_err(|e| format!("cannot create schema_version table: {e}"))?;
    let have = current_version(conn)?;
    if have > SCHEMA_VERSION {
        return Err(format!(
            "schema version {have} is newer than this bmsd understands ({SCHEMA_VERSION}); \
             install the newer bmsd that wrote it"
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > have) {
        let tx = conn
            .transaction()
            .map_err(|e| format!("migration {version}: {e}"))?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration {version} failed: {e}"))?;
        tx.execute(
            "INSERT INTO schema_version(version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, super::now_rfc3339()],
        )
        .map_err(|e| format!("migration {version}: {e}"))?;
        tx.commit()
            .map_err(|e| format!("migration {version}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v as usize, i + 1);
        }
    }

    #[test]
    fn migrate_is_idempotent_and_refuses_newer() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(current_version(&conn).unwrap(), SCHEMA_VERSION);
        migrate(&mut conn).unwrap();
        assert_eq!(current_version(&conn).unwrap(), SCHEMA_VERSION);
        conn.execute(
            "INSERT INTO schema_version(version, applied_at) VALUES (?1, 'x')",
            [SCHEMA_VERSION + 1],
        )
        .unwrap();
        let e = migrate(&mut conn).unwrap_err();
        assert!(e.contains("newer"), "{e}");
    }
}
