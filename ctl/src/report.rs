//! `bmsctl report`: the daemon's period report (docs/reports.md) as text, JSON or CSV, on
//! standard output or into a new file (mode 0600; an existing file only with `--force`).

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output::{self, bytes};
use bms_proto::api::*;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    Day,
    Week,
    Month,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Csv,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

/// The command line of `bmsctl report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The period ending now: the last day, week (the default) or month (30 days).
    #[arg(long, value_enum, conflicts_with_all = ["since", "until"])]
    pub period: Option<Period>,
    /// Start of the period, RFC 3339 (e.g. 2026-11-01T00:00:00Z); needs --until.
    #[arg(long, requires = "until", value_name = "TIME")]
    pub since: Option<String>,
    /// End of the period (exclusive), RFC 3339; needs --since.
    #[arg(long, requires = "since", value_name = "TIME")]
    pub until: Option<String>,
    /// Only this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Output format (default text; json with the global --json).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the report into this new file (mode 0600) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace --output if it exists.
    #[arg(long, requires = "output")]
    pub force: bool,
}

pub fn report(cli: &Cli, a: &ReportArgs) -> CliResult {
    let (since, until) = match (&a.since, &a.until) {
        (Some(s), Some(u)) => (check_time("--since", s)?, check_time("--until", u)?),
        _ => {
            let now = jiff::Timestamp::now();
            let days = match a.period.unwrap_or(Period::Week) {
                Period::Day => 1,
                Period::Week => 7,
                Period::Month => 30,
            };
            let since = now
                .checked_sub(jiff::SignedDuration::from_hours(24 * days))
                .map_err(|e| CliError::failure(format!("cannot compute the period: {e}")))?;
            (since.to_string(), now.to_string())
        }
    };
    let reply = call(
        cli,
        &Report {
            since,
            until,
            job: a.job.clone(),
        },
    )?;
    let format = a
        .format
        .unwrap_or(if cli.json { Format::Json } else { Format::Text });
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&reply)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| CliError::failure(format!("cannot encode the report: {e}")))?,
        Format::Csv => csv(&reply),
        Format::Text => text(&reply),
        Format::Html => crate::report_html::html(&reply),
    };
    match &a.output {
        None => {
            print!("{text}");
            Ok(())
        }
        Some(path) => write_file(path, text.as_bytes(), a.force),
    }
}

fn check_time(flag: &str, s: &str) -> Result<String, CliError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.to_string())
        .map_err(|e| {
            CliError::usage(format!(
                "{flag} '{s}' is not an RFC 3339 time such as 2026-12-01T00:00:00Z: {e}"
            ))
        })
}

/// Writes the report into `path`, mode 0600: a new file, or with `force` over an existing one.
fn write_file(path: &PathBuf, data: &[u8], force: bool) -> CliResult {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).mode(0o600);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            CliError::failure(format!(
                "{} exists; pick another --output or add --force to replace it",
                path.display()
            ))
        } else {
            CliError::failure(format!("cannot create {}: {e}", path.display()))
        }
    })?;
    let done = f
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|_| f.write_all(data))
        .and_then(|_| f.sync_all());
    done.map_err(|e| {
        CliError::failure(format!(
            "cannot write the report to {}: {e}",
            path.display()
        ))
    })?;
    eprintln!("report written to {}", path.display());
    Ok(())
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

fn csv(r: &ReportReply) -> String {
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

fn text(r: &ReportReply) -> String {
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
    let mut t = output::table(&[
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
            bytes(j.bytes_read),
            bytes(j.bytes_added),
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
                bytes(d.bytes_sampled),
                bytes(d.bytes_per_sec as u64),
                crate::run::secs_text(d.rto_secs)
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
