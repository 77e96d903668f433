//! The CSV and text forms of the period report (docs/reports.md).

use crate::api::*;
use crate::units::{human_bytes, secs_text};
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use std::fmt::Write as _;

/// A table without borders whose columns fit the terminal, as bmsctl prints its tables.
fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

/// The header of the CSV form: one row per job (docs/reports.md).
pub const CSV_HEADER: &str = "job,since,until,runs,queued,running,succeeded,warning,failed,\
cancelled,interrupted,skipped,success_rate,backup_runs,bytes_read,bytes_added,dedup_ratio,\
compression_ratio,last_success,longest_gap_secs,rpo_secs,rpo_met,compliant,copies,media,offsite,\
immutable_or_offline,errors,compliance_changes,failures,drills,rto_secs";

const STATES: [&str; 8] = [
    "queued",
    "running",
    "succeeded",
    "warning",
    "failed",
    "cancelled",
    "interrupted",
    "skipped",
];

fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn verdict(j: &JobReport, rule: Rule) -> &'static str {
    j.rules
        .iter()
        .find(|r| r.rule == rule)
        .map(|r| r.verdict.as_str())
        .unwrap_or("")
}

pub fn csv(r: &ReportReply) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push_str("\r\n");
    for j in &r.jobs {
        let mut row = vec![
            field(&j.job),
            field(&r.since),
            field(&r.until),
            j.runs.to_string(),
        ];
        for s in STATES {
            row.push(j.runs_by_state.get(s).copied().unwrap_or(0).to_string());
        }
        row.push(
            j.success_rate
                .map(|x| format!("{x:.4}"))
                .unwrap_or_default(),
        );
        row.push(j.backup_runs.to_string());
        row.push(j.bytes_read.to_string());
        row.push(j.bytes_added.to_string());
        for r in [j.dedup_ratio, j.compression_ratio] {
            row.push(r.map(|x| format!("{x:.4}")).unwrap_or_default());
        }
        row.push(field(j.last_success.as_deref().unwrap_or("")));
        row.push(j.longest_gap_secs.to_string());
        row.push(j.rpo_secs.to_string());
        row.push(j.rpo_met.to_string());
        row.push(j.compliant.to_string());
        for rule in RULES {
            row.push(verdict(j, rule).to_owned());
        }
        row.push(j.compliance_changes.len().to_string());
        row.push(j.failures.len().to_string());
        row.push(j.drills.len().to_string());
        row.push(
            j.drills
                .iter()
                .find(|d| d.state == RunState::Succeeded)
                .map(|d| format!("{:.0}", d.rto_secs))
                .unwrap_or_default(),
        );
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

fn gap(secs: i64) -> String {
    if secs >= 86400 {
        format!("{:.1}d", secs as f64 / 86400.0)
    } else if secs >= 3600 {
        format!("{:.1}h", secs as f64 / 3600.0)
    } else {
        format!("{}m", (secs + 59) / 60)
    }
}

pub fn text(r: &ReportReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "report from {} until {} (generated {})",
        r.since, r.until, r.generated_at
    );
    if r.jobs.is_empty() {
        let _ = writeln!(out, "there are no jobs; add one with 'bmsctl job add'");
        return out;
    }
    let mut t = table(&[
        "JOB",
        "RUNS",
        "OK",
        "FAILED",
        "SUCCESS",
        "READ",
        "ADDED",
        "LAST SUCCESS",
        "LONGEST GAP",
        "RPO",
        "3-2-1-1-0",
    ]);
    for j in &r.jobs {
        let n = |s: &str| j.runs_by_state.get(s).copied().unwrap_or(0);
        t.add_row(vec![
            j.job.clone(),
            j.runs.to_string(),
            (n("succeeded") + n("warning")).to_string(),
            (n("failed") + n("cancelled") + n("interrupted")).to_string(),
            j.success_rate
                .map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            human_bytes(j.bytes_read),
            human_bytes(j.bytes_added),
            j.last_success.clone().unwrap_or_else(|| "never".into()),
            format!(
                "{}{}",
                gap(j.longest_gap_secs),
                if j.rpo_met { "" } else { " (over RPO)" }
            ),
            gap(j.rpo_secs as i64),
            RULES
                .iter()
                .map(|rule| {
                    j.rules
                        .iter()
                        .find(|x| x.rule == *rule)
                        .map(|x| x.verdict.mark())
                        .unwrap_or(" ")
                })
                .collect::<Vec<_>>()
                .join(""),
        ]);
    }
    let _ = writeln!(out, "{t}");
    for j in &r.jobs {
        if j.failures.is_empty() && j.compliance_changes.is_empty() && j.drills.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\njob '{}':", j.job);
        for c in &j.compliance_changes {
            let _ = writeln!(
                out,
                "  {} {}: {} -> {}: {}",
                c.time,
                c.rule.as_str(),
                c.from.map(Verdict::as_str).unwrap_or("none"),
                c.to.as_str(),
                c.reason
            );
        }
        for d in &j.drills {
            let _ = writeln!(
                out,
                "  drill run {} on {} ({}): {} file(s), {} restored at {}/s; projected full restore {}",
                d.run,
                d.target.as_deref().unwrap_or("-"),
                d.state.as_str(),
                d.files_sampled,
                human_bytes(d.bytes_sampled),
                human_bytes(d.bytes_per_sec as u64),
                secs_text(d.rto_secs)
            );
        }
        for f in &j.failures {
            let _ = writeln!(
                out,
                "  run {} ({}, {}) queued {}: {}",
                f.run,
                f.kind.as_str(),
                f.state.as_str(),
                f.queued_at,
                f.error.as_deref().unwrap_or("no error recorded")
            );
        }
    }
    out
}
