//! `bmsctl snapshot list|show` and `bmsctl restore`.

use crate::cli::Cli;
use crate::connect::{call, call_more};
use crate::error::{CliError, CliResult};
use crate::output::{self, bytes};
use bms_proto::api::*;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// List snapshots the catalog knows, oldest first.
    List {
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        target: Option<String>,
    },
    /// Show one snapshot (id or unique prefix of 8+ characters).
    Show {
        id: String,
        #[arg(long)]
        target: Option<String>,
    },
}

pub fn run(cli: &Cli, cmd: &SnapshotCmd) -> CliResult {
    match cmd {
        SnapshotCmd::List { job, target } => {
            let reply = call(
                cli,
                &ListSnapshots {
                    job: job.clone(),
                    target: target.clone(),
                },
            )?;
            if cli.json {
                return output::json(&reply);
            }
            let mut t = output::table(&["ID", "JOB", "TARGET", "TIME", "FILES", "SIZE", "PARTIAL"]);
            for s in &reply.snapshots {
                t.add_row(vec![
                    s.id.chars().take(12).collect::<String>(),
                    s.job.clone(),
                    s.target.clone(),
                    s.time.clone(),
                    (s.stats.files_new + s.stats.files_changed + s.stats.files_unmodified)
                        .to_string(),
                    bytes(s.stats.bytes_total),
                    if s.partial { "yes" } else { "no" }.into(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        SnapshotCmd::Show { id, target } => {
            let s = call(
                cli,
                &GetSnapshot {
                    id: id.clone(),
                    target: target.clone(),
                },
            )?
            .snapshot;
            if cli.json {
                return output::json(&s);
            }
            output::fields(&[
                ("id", s.id.clone()),
                ("job", s.job.clone()),
                ("target", s.target.clone()),
                ("time", s.time.clone()),
                ("host", s.host.clone()),
                ("paths", s.paths.join(" ")),
                ("partial", if s.partial { "yes" } else { "no" }.into()),
                ("size", bytes(s.stats.bytes_total)),
                ("added", bytes(s.stats.bytes_added)),
                (
                    "run",
                    s.run_id
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                ),
            ]);
            Ok(())
        }
    }
}

/// `bmsctl restore SNAPSHOT --to DIR [--path P]...`.
pub fn restore(
    cli: &Cli,
    snapshot: &str,
    to: &PathBuf,
    paths: &[String],
    target: &Option<String>,
    dry_run: bool,
    overwrite: &str,
) -> CliResult {
    let to = std::path::absolute(to)
        .map_err(|e| CliError::usage(format!("bad --to {}: {e}", to.display())))?;
    let req = Restore {
        snapshot: snapshot.into(),
        target: target.clone(),
        to: to.to_string_lossy().into_owned(),
        paths: paths.to_vec(),
        dry_run,
        overwrite: Some(overwrite.into()),
    };
    let mut last = None;
    call_more(cli, &req, |r: RestoreReply| {
        if !r.done && !cli.json {
            eprint!("\rrestoring: {} files, {}   ", r.files, bytes(r.bytes));
        }
        if r.done {
            last = Some(r);
        }
        true
    })?;
    let Some(r) = last else {
        return Err(CliError::failure(
            "the daemon ended the restore without a result",
        ));
    };
    let errors = r
        .summary
        .as_ref()
        .and_then(|s| s.get("errors"))
        .and_then(|e| e.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    if cli.json {
        output::json(&r)?;
    } else {
        eprintln!();
        println!(
            "{} {} files, {} into {}",
            if dry_run { "would restore" } else { "restored" },
            r.files,
            bytes(r.bytes),
            to.display()
        );
    }
    if errors > 0 {
        return Err(CliError::failure(format!(
            "{errors} entries could not be restored (see --json for details)"
        )));
    }
    Ok(())
}
