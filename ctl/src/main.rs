//! bmsctl — the command-line client of bmsd.

mod alert;
mod apply;
mod apply_batch;
mod apply_lines;
mod calendar;
mod catalog;
mod cli;
mod compliance;
mod connect;
mod doctor;
mod error;
mod events;
mod gen;
mod job;
mod media;
mod notes;
mod output;
mod prune;
mod repo;
mod repo_catalog;
mod repo_key;
mod repo_prune;
mod report;
mod retention;
mod run;
mod snapshot;
mod status;
mod tape;
mod target;

use cli::Command;
use std::process::ExitCode;

/// Restores the default action of SIGPIPE, which the Rust runtime ignores: `bmsctl … | head -1`
/// then ends quietly when `head` closes the pipe, as other command-line tools do, instead of
/// panicking on the failed write to standard output. Writes to the daemon's socket use
/// `MSG_NOSIGNAL`, so a daemon that closes the connection still gives an error message.
fn default_sigpipe() {
    // SAFETY: called first thing in main, before any other thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no Rust code relies on SIGPIPE being ignored for stdout.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
    let cli = cli::parse();
    bms_engine::fsutil::raise_open_file_limit();
    let json = cli.json;
    let result = match &cli.command {
        Command::Status => status::status(&cli),
        Command::Doctor => doctor::doctor(&cli),
        Command::Compliance {
            job,
            explain,
            history,
        } => compliance::compliance(&cli, job, *explain, *history),
        Command::Report(a) => report::report(&cli, a),
        Command::Verify {
            job,
            target,
            read_data,
            drill,
            wait,
        } => compliance::verify(&cli, job, target, *read_data, *drill, *wait),
        Command::Run { cmd } => run::run(&cli, cmd),
        Command::Snapshot { cmd } => snapshot::run(&cli, cmd),
        Command::Catalog { cmd } => catalog::run(&cli, cmd),
        Command::Restore {
            snapshot,
            to,
            paths,
            target,
            dry_run,
            overwrite,
        } => snapshot::restore(&cli, snapshot, to, paths, target, *dry_run, overwrite),
        Command::Events { job } => events::events(&cli, job),
        Command::Audit { limit } => status::audit(&cli, *limit),
        Command::Alert { cmd } => alert::run(&cli, cmd),
        Command::Target { cmd } => target::run(&cli, cmd),
        Command::Job { cmd } => job::run(&cli, cmd),
        Command::Apply { file, dry_run } => apply::apply(&cli, file, *dry_run),
        Command::Calendar { expr, iterations } => calendar::run(expr, *iterations, json),
        Command::Completions { shell } => gen::completions(*shell),
        Command::Manpages { dir } => gen::manpages(dir),
        Command::Repo { cmd, keys } => {
            repo_key::set(keys);
            repo::run(cmd, json)
        }
        Command::Tape { cmd } => tape::run(cmd, json),
        Command::Media { cmd } => media::run(&cli, cmd),
        Command::Pool { cmd } => media::pool(&cli, cmd),
        Command::Prune(c) => prune::prune(&cli, c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                eprintln!("{}", e.to_json());
            } else {
                eprintln!("bmsctl: {e}");
            }
            e.exit_code()
        }
    }
}
