//! `bmsctl report`: the daemon's period report (docs/reports.md) as text, JSON, CSV or HTML
//! (rendered by bms-proto's `report` module, which bmsd's scheduled reports use too), on
//! standard output or into a new file (mode 0600; an existing file only with `--force`).

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use bms_proto::api::*;
use bms_proto::report;
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
            let period = match a.period.unwrap_or(Period::Week) {
                Period::Day => report::Period::Day,
                Period::Week => report::Period::Week,
                Period::Month => report::Period::Month,
            };
            let since = period
                .since(now)
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
    let format = match a
        .format
        .unwrap_or(if cli.json { Format::Json } else { Format::Text })
    {
        Format::Text => report::Format::Text,
        Format::Json => report::Format::Json,
        Format::Csv => report::Format::Csv,
        Format::Html => report::Format::Html,
    };
    let text = report::render(&reply, format);
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
