//! Requests against the socket's 1 MiB message limit (docs/protocol.md, "Limits"): a file of
//! 10,000 jobs applies (in batches), and a request that cannot be split gets a message naming
//! the limit, never "Broken pipe".

use bms_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn apply_file(d: &Daemon, jobs: Vec<Value>) -> std::path::PathBuf {
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let doc = json!({
        "targets": [{"name": "t", "path": repo}],
        "jobs": jobs,
    });
    write_file(&d.dir, "big.json", &doc.to_string())
}

fn job(i: usize, src: &std::path::Path) -> Value {
    json!({"name": format!("job-{i:05}"), "sources": [src], "schedule": "daily",
           "excludes": ["*.tmp", "*.cache", "node_modules"], "targets": ["t"]})
}

#[test]
fn apply_of_ten_thousand_jobs_works() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let file = apply_file(&d, (0..10_000).map(|i| job(i, &src)).collect());
    assert!(
        std::fs::metadata(&file).unwrap().len() > 1 << 20,
        "the file must exceed 1 MiB"
    );
    let started = Instant::now();
    let v = d.ctl_json(["apply", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(v["created"].as_array().unwrap().len(), 10_001, "dry run");
    assert_eq!(d.status_json()["jobs"], 0, "a dry run stores nothing");
    let v = d.ctl_json(["apply", file.to_str().unwrap()]);
    let created = v["created"].as_array().unwrap();
    assert_eq!(created.len(), 10_001, "every job and the target, each once");
    assert_eq!(created.iter().filter(|e| *e == "target:t").count(), 1);
    assert_eq!(d.status_json()["jobs"], 10_000);
    // Applying again changes nothing.
    let v = d.ctl_json(["apply", file.to_str().unwrap()]);
    assert_eq!(
        v["unchanged"].as_array().unwrap().len(),
        10_001,
        "second apply"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_batched_apply_with_a_bad_job_late_in_the_file_stores_nothing() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut jobs: Vec<Value> = (0..10_000).map(|i| job(i, &src)).collect();
    jobs[9_990]["schedule"] = json!("not a schedule");
    let file = apply_file(&d, jobs);
    let targets_before = d.status_json()["targets"].clone();
    let out = d.ctl(["apply", file.to_str().unwrap()]);
    assert_fails(&out, 2, "jobs[9990]");
    assert_eq!(d.status_json()["jobs"], 0, "nothing stored");
    assert_eq!(d.status_json()["targets"], targets_before, "nothing stored");
}

#[test]
fn a_request_over_the_limit_names_the_limit_not_a_broken_pipe() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut one = job(0, &src);
    one["excludes"] = json!((0..100_000)
        .map(|i| format!("*.tmp{i:06}"))
        .collect::<Vec<_>>());
    let file = apply_file(&d, vec![one]);
    let out = d.ctl(["apply", file.to_str().unwrap()]);
    assert_fails(&out, 1, "1048576 bytes");
    assert!(!stderr(&out).contains("Broken pipe"), "{}", stderr(&out));
    assert_eq!(d.status_json()["jobs"], 0);
}
