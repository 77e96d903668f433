//! `bmsctl snapshot list|show` and `bmsctl restore` (`snapshot forget` is in prune.rs).

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
    /// Remove snapshots from their repositories and the catalog: by id, or with --job J
    /// --apply-policy those the job's retention policy does not keep (docs/retention.md).
    /// Sealed snapshots are refused (by id) or kept (by policy), with the date. Their data is
    /// reclaimed by the next prune.
    Forget(crate::prune::ForgetCmd),
}

pub fn run(cli: &Cli, cmd: &SnapshotCmd) -> CliResult {
    match cmd {
        SnapshotCmd::Forget(c) => crate::prune::forget(cli, c),
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
                    if s.job == CATALOG_JOB {
                        format!("{} (catalog copy)", s.job)
                    } else {
                        s.job.clone()
                    },
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
    let summary = r.summary.clone().unwrap_or_default();
    let list = |k: &str| {
        summary
            .get(k)
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default()
    };
    let errors = list("errors");
    let failed = list("failed");
    let skipped = summary.get("skipped").and_then(|v| v.as_u64()).unwrap_or(0);
    if cli.json {
        output::json(&r)?;
    } else {
        eprintln!();
        for w in list("warnings") {
            println!("warning: {}", w.as_str().unwrap_or_default());
        }
        print_failures(&to, &failed, &errors);
        println!(
            "{} {} files, {} into {}{}",
            if dry_run { "would restore" } else { "restored" },
            r.files,
            bytes(r.bytes),
            to.display(),
            if skipped > 0 {
                format!(" ({skipped} existing entries kept)")
            } else {
                String::new()
            }
        );
    }
    if !errors.is_empty() {
        return Err(CliError::failure(failure_message(
            &to,
            &failed,
            errors.len(),
        )));
    }
    Ok(())
}

/// Where a snapshot path lands below the restore directory.
pub fn dest(to: &std::path::Path, path: &str) -> PathBuf {
    to.join(path.trim_start_matches('/'))
}

/// Prints the entries that were not restored (with their destination path) and other errors.
fn print_failures(
    to: &std::path::Path,
    failed: &[serde_json::Value],
    errors: &[serde_json::Value],
) {
    let mut known = Vec::new();
    for f in failed {
        let path = f.get("path").and_then(|p| p.as_str()).unwrap_or_default();
        let error = f.get("error").and_then(|p| p.as_str()).unwrap_or_default();
        println!("not restored: {}: {error}", dest(to, path).display());
        known.push(error);
    }
    for e in errors.iter().filter_map(|e| e.as_str()) {
        if !known.contains(&e) {
            println!("error: {e}");
        }
    }
}

/// The closing error of an incomplete restore, naming the first paths not restored.
fn failure_message(to: &std::path::Path, failed: &[serde_json::Value], errors: usize) -> String {
    let paths: Vec<String> = failed
        .iter()
        .filter_map(|f| f.get("path").and_then(|p| p.as_str()))
        .take(5)
        .map(|p| dest(to, p).display().to_string())
        .collect();
    let more = if failed.len() > paths.len() {
        ", ..."
    } else {
        ""
    };
    if paths.is_empty() {
        format!("restore incomplete: {errors} error(s); see the lines above")
    } else {
        format!(
            "restore incomplete: {} file(s) not restored ({}{more}); an existing file of that name, if any, was kept as it was",
            failed.len(),
            paths.join(", ")
        )
    }
}
