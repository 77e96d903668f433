//! `bmsctl report` through the real binaries (docs/reports.md): two jobs with succeeded runs and
//! runs failed by their pre-hook; the CSV form parsed by Python's csv module agrees with
//! `bmsctl --json run list` for the same period, the JSON form has exactly the documented
//! fields, `--output` writes a new 0600 file and replaces one only with `--force`, and bad input
//! exits non-zero saying what was wrong; the HTML form is one file with inline SVG charts and no
//! URL.

use bms_tests::alerts_util::{run_once, set_failing};
use bms_tests::docs::{repo_file, table_rows};
use bms_tests::runner_util::daemon_with_job;
use bms_tests::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The first column of a docs/reports.md table, without its backticks.
fn documented(first_header: &str) -> Vec<String> {
    table_rows(&repo_file("docs/reports.md"), first_header)
        .into_iter()
        .map(|r| r[0].trim_matches('`').to_owned())
        .collect()
}

/// CSV text parsed by Python's csv module into one JSON object per row.
fn python_csv(text: &str) -> Vec<BTreeMap<String, String>> {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import csv, io, json, sys\n\
             rows = list(csv.DictReader(io.StringIO(sys.stdin.read(), newline='')))\n\
             print(json.dumps(rows))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("python3");
    assert!(out.status.success(), "python3 csv failed on:\n{text}");
    serde_json::from_slice(&out.stdout).expect("python3 printed JSON")
}

/// What the run list says about `job` in `[since, until)` (by `queued_at`, as docs/reports.md).
fn expected(d: &Daemon, job: &str, since: &str, until: &str) -> BTreeMap<String, u64> {
    let since: jiff::Timestamp = since.parse().expect("since");
    let until: jiff::Timestamp = until.parse().expect("until");
    let mut m = BTreeMap::new();
    for r in d.runs(Some(job)) {
        let q: jiff::Timestamp = r["queued_at"]
            .as_str()
            .expect("queued_at")
            .parse()
            .expect("time");
        if q < since || q >= until {
            continue;
        }
        *m.entry("runs".to_owned()).or_insert(0) += 1;
        *m.entry(r["state"].as_str().expect("state").to_owned())
            .or_insert(0) += 1;
        if r["kind"] == "backup" {
            *m.entry("backup_runs".to_owned()).or_insert(0) += 1;
            for k in ["bytes_read", "bytes_added"] {
                *m.entry(k.to_owned()).or_insert(0) += r["stats"][k].as_u64().expect("bytes");
            }
        }
    }
    m
}

#[test]
fn report_agrees_with_the_run_list_and_refuses_bad_input() {
    let since = jiff::Timestamp::now().to_string();
    let (d, src, _repo) = daemon_with_job("a", &[]);
    let hook = format!("test ! -e {}", d.dir.join("fail").display());
    for j in ["a", "b"] {
        if j == "b" {
            d.ctl_json([
                "job",
                "add",
                "b",
                "--source",
                src.to_str().expect("utf-8"),
                "--schedule",
                "2099-01-01",
                "--target",
                "t",
                "--pre-hook",
                &hook,
            ]);
        } else {
            d.ctl_json(["job", "edit", "a", "--pre-hook", &hook]);
        }
    }
    // a: two successes and a failure; b: a success and two failures.
    for (job, fail) in [
        ("a", false),
        ("a", true),
        ("a", false),
        ("b", true),
        ("b", false),
        ("b", true),
    ] {
        set_failing(&d, fail);
        let run = run_once(&d, job);
        let want = if fail { "failed" } else { "succeeded" };
        assert_eq!(run["state"], want, "run of {job}: {run}");
    }
    let until = (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1)).to_string();

    // CSV, parsed by Python, against the run list.
    let out = d.ctl([
        "report", "--since", &since, "--until", &until, "--format", "csv",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let header: Vec<String> = text
        .lines()
        .next()
        .expect("header")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        documented("csv column"),
        "CSV header vs docs/reports.md"
    );
    let rows = python_csv(&text);
    assert_eq!(rows.len(), 2, "one row per job: {rows:?}");
    for row in &rows {
        let job = row["job"].as_str();
        let want = expected(&d, job, &since, &until);
        for k in [
            "runs",
            "succeeded",
            "failed",
            "backup_runs",
            "bytes_read",
            "bytes_added",
        ] {
            let got: u64 = row[k].parse().expect("number");
            assert_eq!(
                got,
                want.get(k).copied().unwrap_or(0),
                "job {job} {k}: {row:?}"
            );
        }
        assert_eq!(row["runs"], "3", "{row:?}");
        assert_ne!(row["bytes_read"], "0", "backups read data: {row:?}");
        assert_eq!(
            row["failures"],
            if job == "a" { "1" } else { "2" },
            "{row:?}"
        );
        assert_eq!(
            row["success_rate"],
            if job == "a" { "0.6667" } else { "0.3333" }
        );
        assert!(!row["last_success"].is_empty(), "{row:?}");
        assert!(
            ["pass", "fail", "unknown"].contains(&row["copies"].as_str()),
            "{row:?}"
        );
    }

    // JSON: exactly the documented fields; failures carry the hook's error.
    let v: Value = {
        let out = d.ctl([
            "report", "--since", &since, "--until", &until, "--format", "json",
        ]);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).expect("report JSON")
    };
    let keys = |o: &Value| -> BTreeSet<String> {
        o.as_object().expect("object").keys().cloned().collect()
    };
    let set = |v: Vec<String>| -> BTreeSet<String> { v.into_iter().collect() };
    assert_eq!(keys(&v), set(documented("report field")));
    let jobs = v["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 2);
    for j in jobs {
        assert_eq!(keys(j), set(documented("job field")), "{j}");
        for f in j["failures"].as_array().expect("failures") {
            assert!(
                f["error"].as_str().is_some_and(|e| e.contains("hook")),
                "a failure names its error: {f}"
            );
        }
        assert_eq!(j["rules"].as_array().expect("rules").len(), 5, "{j}");
        assert!(j["rpo_secs"].as_u64().expect("rpo") > 0, "{j}");
    }
    // --job: only that job; --json alone means JSON.
    let one = d.ctl_json(["report", "--since", &since, "--until", &until, "--job", "b"]);
    assert_eq!(one["jobs"].as_array().expect("jobs").len(), 1);
    assert_eq!(one["jobs"][0]["job"], "b");
    // A period before any run: zero runs, the whole stretch is a gap.
    let empty = d.ctl_json([
        "report",
        "--since",
        "2020-01-01T00:00:00Z",
        "--until",
        "2020-01-02T00:00:00Z",
        "--job",
        "a",
    ]);
    assert_eq!(empty["jobs"][0]["runs"], 0, "{empty}");
    assert_eq!(empty["jobs"][0]["longest_gap_secs"], 86400, "{empty}");
    assert_eq!(empty["jobs"][0]["last_success"], Value::Null, "{empty}");
    // The default text form and --period.
    let out = d.ctl(["report", "--period", "day"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("hook"),
        "text lists failures: {}",
        stdout(&out)
    );

    // --output: a new 0600 file; an existing one only with --force.
    let file = d.dir.join("report.csv");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "report", "--since", &since, "--until", &until, "--format", "csv",
        ];
        a.push("--output");
        a.push(file.to_str().expect("utf-8"));
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    assert_ok(&d.ctl(args(&[])));
    let meta = std::fs::metadata(&file).expect("report file");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        python_csv(&std::fs::read_to_string(&file).expect("read")).len(),
        2
    );
    std::fs::write(&file, "keep").expect("write");
    assert_fails(&d.ctl(args(&[])), 1, "--force");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "keep");
    assert_ok(&d.ctl(args(&["--force"])));
    assert!(std::fs::read_to_string(&file)
        .expect("read")
        .starts_with("job,"));

    // HTML: one file, an inline SVG chart of the runs per day, no URL to fetch anything from.
    let page = d.dir.join("report.html");
    assert_ok(&d.ctl([
        "report",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "html",
        "--output",
        page.to_str().expect("utf-8"),
    ]));
    let html = std::fs::read_to_string(&page).expect("read html");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(
        html.matches("<svg").count(),
        6,
        "three charts per job: {html}"
    );
    assert_eq!(
        html.matches("aria-label=\"stored bytes over time of")
            .count(),
        2
    );
    assert_eq!(
        html.matches("aria-label=\"compliance timeline of").count(),
        2
    );
    assert!(html.contains("<polyline"), "stored bytes drawn: {html}");
    assert!(html.contains("dedup ratio") && html.contains("compression ratio"));
    assert!(html.contains("<rect"), "bars drawn: {html}");
    assert!(html.contains("succeeded") && html.contains("failed"));
    for scheme in ["http://", "https://", "src=", "href=", "url(", "@import"] {
        assert!(
            !html.contains(scheme),
            "external reference {scheme} in {html}"
        );
    }
    // Headless Chromium, with no network, renders it: the screenshot is not blank, and the
    // bars of succeeded (green) and failed (red) runs are on it.
    let png = d.dir.join("report.png");
    bms_tests::screenshot::render(&page, &png, 1000, 1600);
    let seen = bms_tests::screenshot::inspect(&png, &["#2e7d32", "#c62828"]);
    assert_eq!(
        (seen["width"].as_u64(), seen["height"].as_u64()),
        (Some(1000), Some(1600)),
        "{seen}"
    );
    assert!(
        seen["non_background"].as_f64().unwrap_or(0.0) > 0.01,
        "blank screenshot: {seen}"
    );
    assert!(seen["colours"].as_u64().unwrap_or(0) >= 4, "{seen}");
    assert!(
        seen["near"][0].as_u64().unwrap_or(0) > 50 && seen["near"][1].as_u64().unwrap_or(0) > 50,
        "the charts' bars are not on the screenshot: {seen}"
    );
    for j in jobs {
        let per_day: u64 = j["runs_by_day"]
            .as_object()
            .expect("runs_by_day")
            .values()
            .flat_map(|m| m.as_object().expect("states").values())
            .map(|n| n.as_u64().expect("count"))
            .sum();
        assert_eq!(per_day, j["runs"].as_u64().expect("runs"), "{j}");
    }

    // Bad input.
    assert_fails(
        &d.ctl(["report", "--since", &until, "--until", &since]),
        2,
        "must be before",
    );
    assert_fails(
        &d.ctl(["report", "--since", "yesterday", "--until", &until]),
        2,
        "RFC 3339",
    );
    assert_fails(
        &d.ctl(["report", "--job", "nope"]),
        1,
        "'nope' does not exist",
    );
    assert_fails(&d.ctl(["report", "--format", "xml"]), 2, "xml");
    assert_fails(
        &d.ctl(["report", "--period", "week", "--since", &since]),
        2,
        "cannot be used with",
    );
}
