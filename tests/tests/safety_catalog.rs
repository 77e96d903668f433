//! Catalog integrity through the real bmsd: a catalog with garbage in its pages stops bmsd at
//! start-up (non-zero exit, no READY, instructions on stderr), a catalog damaged while bmsd runs
//! makes /healthz answer 503 with the reason, and a clean stop leaves the whole
//! catalog in catalog.db (the WAL checkpointed), so that a copy of that file alone is complete
//! (docs/operations.md, "A damaged catalog").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bms_tests::*;

const NEVER: &str = "2099-01-01 00:00:00";

fn healthz(addr: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_owned(), body.to_owned())
}

/// Overwrites a quarter of a database file's 4 KiB pages, from the middle on, with garbage.
fn garble_middle_pages(db: &std::path::Path) {
    let pages = fs::metadata(db).unwrap().len() / 4096;
    assert!(pages >= 10, "catalog has only {pages} pages");
    // Past the root pages of every table and index (the migrations made them first), so that
    // the schema and the small tables stay readable whatever tables the migrations add.
    let last_root: i64 = rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT max(rootpage) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    let last_root = last_root as u64;
    let start = (pages / 3).max(last_root + 1);
    assert!(start + pages / 3 <= pages, "catalog has only {pages} pages");
    let mut f = fs::OpenOptions::new().write(true).open(db).unwrap();
    f.seek(SeekFrom::Start(start * 4096)).unwrap();
    let garbage: Vec<u8> = (0..(pages / 3) * 4096)
        .map(|i| (i * 7 + 13) as u8)
        .collect();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
}

/// Adds `n` jobs with long exclude patterns, so that the catalog spans many pages.
fn add_jobs(d: &Daemon, n: usize) {
    let src = d.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    let long = format!("*{}", "x".repeat(1500));
    for i in 0..n {
        d.ctl_json([
            "job",
            "add",
            &format!("job-{i:03}"),
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            NEVER,
            "--exclude",
            &long,
            "--target",
            "local",
        ]);
    }
}

#[test]
fn garbage_in_catalog_pages_stops_bmsd_at_start_with_instructions() {
    let mut d = Daemon::start();
    add_jobs(&d, 40);
    assert!(d.stop().success());
    let db = d.state_dir().join("catalog.db");
    garble_middle_pages(&db);
    let damaged_bytes = fs::read(&db).unwrap();

    let notify_path = d.dir.join("notify-damaged");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_nonblocking(true).unwrap();
    let log = d.dir.join("bmsd-damaged.log");
    let mut child = clean_command(bin("bmsd"))
        .arg("--state-dir")
        .arg(d.state_dir())
        .arg("--socket")
        .arg(d.socket())
        .args(["--metrics-listen", "127.0.0.1:0", "--log-target", "stderr"])
        .env("NOTIFY_SOCKET", &notify_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "bmsd kept running on a damaged catalog; log:\n{}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = fs::read_to_string(&log).unwrap();
    assert!(!status.success(), "{status}: {err}");
    let mut buf = [0u8; 4096];
    while let Ok(n) = notify.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(!msg.lines().any(|l| l == "READY=1"), "sent READY: {msg}");
    }
    assert!(!err.contains(" ready"), "logged ready: {err}");
    for needle in [
        "is damaged",
        &*db.display().to_string(),
        "move it aside",
        "bmsctl repo snapshots",
        "fresh, empty catalog",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
    // Nothing was overwritten: the damaged file is byte for byte what it was.
    assert!(
        fs::read(&db).unwrap() == damaged_bytes,
        "bmsd changed the damaged catalog"
    );

    // Following the instructions brings bmsd back with a fresh catalog.
    fs::rename(&db, d.dir.join("catalog.db.damaged")).unwrap();
    let _ = fs::remove_file(d.state_dir().join("catalog.db-wal"));
    let _ = fs::remove_file(d.state_dir().join("catalog.db-shm"));
    d.spawn(&DaemonOpts {
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    assert_eq!(
        d.ctl_json(["job", "list"])["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn clean_stop_leaves_the_whole_catalog_in_catalog_db() {
    let mut d = Daemon::start();
    add_jobs(&d, 30);
    assert!(d.stop().success());
    assert!(d.log().contains("catalog checkpointed"), "{}", d.log());
    let wal = d.state_dir().join("catalog.db-wal");
    if let Ok(md) = fs::metadata(&wal) {
        assert_eq!(md.len(), 0, "the WAL still holds data after a clean stop");
    }
    // A copy of catalog.db alone holds every row.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join("catalog.db");
    fs::copy(d.state_dir().join("catalog.db"), &copy).unwrap();
    let conn = rusqlite::Connection::open(&copy).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let jobs: i64 = conn
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(jobs, 30);
}

#[test]
fn catalog_damaged_while_running_fails_healthz() {
    let mut d = Daemon::start();
    add_jobs(&d, 40);
    // After a clean stop every row is in catalog.db; the restarted bmsd reads it from there.
    assert!(d.stop().success());
    d.spawn(&DaemonOpts {
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let (head, _) = healthz(&addr);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let db = d.state_dir().join("catalog.db");
    garble_middle_pages(&db);
    // Another connection's write makes bmsd drop its page cache and read the pages again.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('test-poke', '1')",
        [],
    )
    .unwrap();
    drop(conn);
    let out = d.ctl(["job", "list"]);
    assert!(
        !out.status.success(),
        "job list read a damaged catalog: {out:?}"
    );
    let (head, body) = healthz(&addr);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}\n{body}");
    assert!(body.contains("malformed"), "{body}");
}

#[test]
fn bmsd_exports_jobs_and_targets_next_to_the_catalog_in_the_apply_format() {
    let mut d = Daemon::start();
    add_jobs(&d, 2);
    let export = d.state_dir().join("catalog-config.toml");
    // Written at every start (and daily): the restart makes it hold the two jobs.
    assert!(d.stop().success());
    d.spawn(&DaemonOpts {
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    let text = poll_until(Duration::from_secs(20), "the configuration export", || {
        fs::read_to_string(&export)
            .ok()
            .filter(|t| t.contains("job-001"))
    });
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(&export).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "export mode {mode:o}");
    assert!(text.contains("bmsctl apply"), "{text}");
    let before: Vec<_> = d.ctl_json(["job", "list"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(spec_of)
        .collect();

    // A fresh daemon given the export has the same jobs.
    let fresh = Daemon::start();
    let copy = write_file(&fresh.dir, "restored.toml", &text);
    assert_ok(&fresh.ctl(["apply", copy.to_str().unwrap()]));
    let after: Vec<_> = fresh.ctl_json(["job", "list"])["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(spec_of)
        .collect();
    assert_eq!(before, after);
}
