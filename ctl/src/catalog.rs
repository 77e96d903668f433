//! `bmsctl catalog rebuild`: the catalog's snapshot records taken back from the repositories
//! (docs/operations.md "Recovering the catalog").

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::api::RebuildCatalog;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum CatalogCmd {
    /// Re-read the repositories and add the snapshot records the catalog lacks (root or
    /// bms-admin).
    ///
    /// Every disk and NAS target's repository (or --target's) is read; each snapshot becomes a
    /// record with its id, time, statistics, job and host, on every target that holds it, with
    /// the seal (immutability end) its files carry. Records the catalog has are kept as they
    /// are, so running it twice changes nothing. Snapshots of jobs the catalog does not know are
    /// recorded and named: apply the jobs' declaration to see them in `job list`. Exit 1 when a
    /// target's repository could not be read.
    Rebuild {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
}

pub fn run(cli: &Cli, cmd: &CatalogCmd) -> CliResult {
    match cmd {
        CatalogCmd::Rebuild { target } => {
            let reply = call(
                cli,
                &RebuildCatalog {
                    target: target.clone(),
                },
            )?;
            if cli.json {
                output::json(&reply)?;
            } else {
                let mut t =
                    output::table(&["TARGET", "ADDED", "KEPT", "SEALS", "UNKNOWN JOB", "ERROR"]);
                for r in &reply.targets {
                    t.add_row(vec![
                        r.target.clone(),
                        r.added.to_string(),
                        r.kept.to_string(),
                        r.seals.to_string(),
                        r.unknown_job.to_string(),
                        r.error.clone().unwrap_or_else(|| "-".into()),
                    ]);
                }
                println!("{t}");
                println!(
                    "{} snapshot records added, {} kept, {} seals added",
                    reply.added, reply.kept, reply.seals
                );
                if !reply.unknown_jobs.is_empty() {
                    println!(
                        "jobs not in the catalog: {} (their snapshots are recorded; `bmsctl \
                         apply` their declaration to manage them)",
                        reply.unknown_jobs.join(", ")
                    );
                }
            }
            let bad: Vec<String> = reply
                .targets
                .iter()
                .filter_map(|r| {
                    r.error
                        .as_ref()
                        .map(|e| format!("target '{}': {e}", r.target))
                })
                .collect();
            if bad.is_empty() {
                Ok(())
            } else {
                Err(CliError::failure(format!(
                    "some repositories could not be read, nothing of them was rebuilt: {}; \
                     fix the target (mounted? `bmsctl target check NAME`) and run `bmsctl \
                     catalog rebuild --target NAME` again",
                    bad.join("; ")
                )))
            }
        }
    }
}
