//! Benchmark of the 3-2-1-1-0 checker (docs/compliance.md, "Performance"); run it with
//! `bench/compliance.sh`. Fills a catalog in a temporary directory with synthetic rows —
//! N jobs (default 10,000) on 3 targets each, a snapshot per job and target, seals, and a
//! verification per job and target — then times loading the facts and evaluating every job.

use bmsd::catalog::Catalog;
use rusqlite::params;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("catalog.db");
    drop(Catalog::open(&path)?);
    let now = jiff::Timestamp::now();
    let at = |secs_ago: i64| -> String {
        jiff::Timestamp::from_second(now.as_second() - secs_ago)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_default()
    };
    let fill = Instant::now();
    let mut conn = rusqlite::Connection::open(&path)?;
    let tx = conn.transaction()?;
    let targets = [
        ("local", "disk", "onsite", 0),
        ("nas", "nas", "offsite", 14),
        ("vault", "disk", "offsite", 30),
    ];
    for (name, kind, loc, days) in targets {
        tx.execute(
            "INSERT INTO targets(name, kind, path, location, immutable_days, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![name, kind, format!("/srv/{name}"), loc, days, at(0)],
        )?;
    }
    let schedules = ["daily", "*-*-* 02:00", "Mon..Fri 02:00", "hourly", "weekly"];
    let mut run_id = 0i64;
    for i in 0..jobs {
        let name = format!("job{i:05}");
        let spec = serde_json::json!({
            "name": name, "sources": ["/srv/data"], "schedule": schedules[i % schedules.len()],
            "targets": ["local", "nas", "vault"]
        });
        tx.execute(
            "INSERT INTO jobs(name, enabled, schedule, spec, created_at, updated_at) \
             VALUES (?1, 1, ?2, ?3, ?4, ?4)",
            params![
                name,
                schedules[i % schedules.len()],
                spec.to_string(),
                at(0)
            ],
        )?;
        for (t, _, _, _) in targets {
            for age in [3600 * 30, 3600] {
                run_id += 1;
                let snap = format!("{run_id:064x}");
                tx.execute(
                    "INSERT INTO snapshots(id, target, job, time, host, paths, partial, run_id, stats) \
                     VALUES (?1, ?2, ?3, ?4, 'h', '[]', 0, ?5, '{}')",
                    params![snap, t, name, at(age), run_id],
                )?;
                if t == "vault" {
                    tx.execute(
                        "INSERT INTO seals(target, snapshot, until, sealed_at, objects) \
                         VALUES (?1, ?2, ?3, ?4, 3)",
                        params![t, snap, at(-86400 * 30), at(age)],
                    )?;
                }
            }
            run_id += 1;
            tx.execute(
                "INSERT INTO runs(id, job, kind, trigger, state, target, queued_at, finished_at, \
                 read_data_percent, verify_errors) \
                 VALUES (?1, ?2, 'verify', 'schedule', 'succeeded', ?3, ?4, ?4, 10, 0)",
                params![run_id, name, t, at(7200)],
            )?;
        }
    }
    tx.commit()?;
    drop(conn);
    eprintln!(
        "filled {jobs} jobs x 3 targets ({run_id} rows) in {:.1?}",
        fill.elapsed()
    );
    let cat = Catalog::open(&path)?;
    for round in 1..=3 {
        let t0 = Instant::now();
        let facts = cat.compliance_facts(now.as_second())?;
        let loaded = t0.elapsed();
        let result = bmsd::compliance::evaluate(&facts, None);
        let total = t0.elapsed();
        let compliant = result.iter().filter(|j| j.compliant).count();
        let t1 = Instant::now();
        let json = serde_json::to_vec(&result)?;
        println!(
            "round {round}: {} jobs evaluated in {total:.1?} (facts {loaded:.1?}, rules {:.1?}); \
             {compliant} compliant; reply {} KiB encoded in {:.1?}",
            result.len(),
            total - loaded,
            json.len() / 1024,
            t1.elapsed()
        );
    }
    Ok(())
}
