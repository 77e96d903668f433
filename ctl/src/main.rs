//! bmsctl — the command-line client of bmsd.

mod apply;
mod calendar;
mod cli;
mod connect;
mod error;
mod gen;
mod job;
mod output;
mod repo;
mod run;
mod snapshot;
mod status;
mod target;

use clap::Parser;
use cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    bms_engine::fsutil::raise_open_file_limit();
    let json = cli.json;
    let result = match &cli.command {
        Command::Status => status::status(&cli),
        Command::Run { cmd } => run::run(&cli, cmd),
        Command::Snapshot { cmd } => snapshot::run(&cli, cmd),
        Command::Restore {
            snapshot,
            to,
            paths,
            target,
            dry_run,
            overwrite,
        } => snapshot::restore(&cli, snapshot, to, paths, target, *dry_run, overwrite),
        Command::Audit { limit } => status::audit(&cli, *limit),
        Command::Target { cmd } => target::run(&cli, cmd),
        Command::Job { cmd } => job::run(&cli, cmd),
        Command::Apply { file, dry_run } => apply::apply(&cli, file, *dry_run),
        Command::Calendar { expr, iterations } => calendar::run(expr, *iterations, json),
        Command::Completions { shell } => gen::completions(*shell),
        Command::Manpages { dir } => gen::manpages(dir),
        Command::Repo { cmd } => repo::run(cmd, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let kind = match &e {
                    error::CliError::Failure(_) => "failure",
                    error::CliError::Usage(_) => "usage",
                    error::CliError::Unreachable(_) => "unreachable",
                    error::CliError::Denied(_) => "permission_denied",
                };
                eprintln!(
                    "{}",
                    serde_json::json!({"error": kind, "message": e.to_string()})
                );
            } else {
                eprintln!("bmsctl: {e}");
            }
            e.exit_code()
        }
    }
}
