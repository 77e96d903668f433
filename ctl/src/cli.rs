//! The clap definition of bmsctl: nouns and verbs (DESIGN.md §2).

use crate::job::JobCmd;
use crate::repo::RepoCmd;
use crate::run::RunCmd;
use crate::snapshot::SnapshotCmd;
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
    /// Control socket of bmsd (default: /run/bms/bmsd.sock for root; for other users
    /// $XDG_RUNTIME_DIR/bms/bmsd.sock when their own bmsd runs, else /run/bms/bmsd.sock).
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
    /// Runs: list, show, watch progress, cancel.
    Run {
        #[command(subcommand)]
        cmd: RunCmd,
    },
    /// Snapshots recorded in the catalog.
    Snapshot {
        #[command(subcommand)]
        cmd: SnapshotCmd,
    },
    /// Restore a snapshot through the daemon (root or bms-admin).
    Restore {
        /// Snapshot id or unique prefix (8+ characters).
        snapshot: String,
        /// Directory to restore into.
        #[arg(long)]
        to: PathBuf,
        /// Restore only these paths of the snapshot (repeat for several).
        #[arg(long = "path", value_name = "PATH")]
        paths: Vec<String>,
        /// The target to restore from (default: the first holding the snapshot).
        #[arg(long)]
        target: Option<String>,
        /// Show what would be restored without writing.
        #[arg(long)]
        dry_run: bool,
        /// Existing files: never, if-changed or always replaced.
        #[arg(long, default_value = "never")]
        overwrite: String,
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
