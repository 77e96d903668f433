//! The clap definition of bmsctl: nouns and verbs (DESIGN.md §2).

use crate::job::JobCmd;
use crate::repo::RepoCmd;
use crate::target::TargetCmd;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// bmsctl — control the bms backup management daemon.
///
/// Exit codes: 0 ok, 1 failure, 2 usage error or invalid input, 3 daemon unreachable,
/// 4 permission denied.
#[derive(Debug, Parser)]
#[command(name = "bmsctl", version, about, long_about)]
pub struct Cli {
    /// Control socket of bmsd (default: /run/bms/bmsd.sock for root, $XDG_RUNTIME_DIR/bms/bmsd.sock otherwise).
    #[arg(long, global = true, env = "BMS_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon's version, uptime, catalog schema and counts.
    Status,
    /// Manage backup targets (where backups are written).
    Target {
        #[command(subcommand)]
        cmd: TargetCmd,
    },
    /// Manage backup jobs (what, when and where to back up).
    Job {
        #[command(subcommand)]
        cmd: JobCmd,
    },
    /// List the audit trail of configuration changes, newest first.
    Audit {
        /// Show at most this many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Create or update targets and jobs from a TOML or JSON file (idempotent).
    Apply {
        /// The file (`-` for standard input); `.json` is read as JSON, anything else as TOML.
        file: PathBuf,
        /// Validate and show what would change without storing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show the next elapse times of a calendar expression (offline, like systemd-analyze calendar).
    Calendar {
        /// A systemd calendar expression such as `Mon..Fri 02:00` or `*:0/15`.
        expr: String,
        /// How many elapse times to show.
        #[arg(long, default_value_t = 1)]
        iterations: usize,
    },
    /// Offline commands on a repository path, without the daemon (disaster recovery).
    Repo {
        #[command(subcommand)]
        cmd: RepoCmd,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for bmsctl and its subcommands into DIR.
    Manpages { dir: PathBuf },
}
