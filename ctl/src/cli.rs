//! The clap definition of bmsctl: nouns and verbs (README.md, docs/operations.md).

use crate::alert::AlertCmd;
use crate::job::JobCmd;
use crate::media::{MediaCmd, PoolCmd};
use crate::repo::RepoCmd;
use crate::run::RunCmd;
use crate::snapshot::SnapshotCmd;
use crate::tape::TapeCmd;
use crate::target::TargetCmd;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// bmsctl — control the bms backup management daemon.
///
/// Exit codes: 0 ok, 1 failure, 2 usage error or invalid input, 3 daemon unreachable,
/// 4 permission denied.
#[derive(Debug, Parser)]
#[command(name = "bmsctl", version, about, long_about)]
pub struct Cli {
    /// Control socket of bmsd; not used by the offline commands (repo, calendar, completions,
    /// manpages) (default: /run/bms/bmsd.sock for root; for other users
    /// $XDG_RUNTIME_DIR/bms/bmsd.sock when their own bmsd runs, else /run/bms/bmsd.sock).
    #[arg(long, global = true, env = "BMS_SOCKET", value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON instead of tables (also for the offline repo and calendar
    /// commands); errors are then JSON on standard error.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon's version, uptime, catalog schema and counts.
    Status,
    /// Check that this host is set up right: one line per check, ✓ or ✗ with a fix.
    ///
    /// Checks the daemon (reachable, version), the caller's role, the socket's mode and owner,
    /// the groups bms and bms-admin, the clock's synchronisation, and from bmsd its capabilities
    /// against what its jobs and targets need, the catalog's integrity, free space of the state
    /// dir, logging to journald, the metrics endpoint, each target's pre-flight, the jobs'
    /// sources (missing or symlinks) and jobs with no successful backup. Exit 0 when every
    /// check passes, 1 otherwise (docs/operations.md, "bmsctl doctor").
    Doctor,
    /// Check the 3-2-1-1-0 rule per job: ✓ pass, ✗ fail, ? unknown for 3 copies, 2 media
    /// types, 1 offsite, 1 immutable or offline, 0 verification errors, with a fix per failure.
    ///
    /// A copy is a target holding a snapshot no older than the job's RPO (its rpo, else twice
    /// the longest gap of its schedule); "0" is unknown while a copy was never verified. Exit 0
    /// only when every job passes, 1 otherwise, so cron and CI can use it (docs/compliance.md).
    Compliance {
        /// Only this job.
        job: Option<String>,
        /// Print the evidence: per target the snapshot, media, location, immutability and the
        /// last verification.
        #[arg(long)]
        explain: bool,
        /// Print the recorded verdict changes instead (newest first).
        #[arg(long, conflicts_with = "explain")]
        history: bool,
    },
    /// A report of a period per job: runs by state, success rate, bytes read and added, last
    /// success, longest gap between successes against the RPO, compliance now and its changes,
    /// failed runs with their errors (docs/reports.md). Text, JSON, CSV (one row per job) or HTML (one self-contained file with inline SVG charts);
    /// --output writes a new file (mode 0600) and refuses to replace one without --force.
    Report(crate::report::ReportArgs),
    /// Verify repositories now, as verify runs of the daemon (root or bms-admin): of --job (or
    /// every job), of --target only (or every target of the job); with --drill, restore drills.
    Verify {
        #[arg(long)]
        job: Option<String>,
        #[arg(long)]
        target: Option<String>,
        /// Percentage of the packs to re-read and re-hash, 0 to 100 (default: the job's
        /// verify policy).
        #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(0..=100))]
        read_data: Option<u8>,
        /// Run restore drills instead (drill runs): a sample of files restored from the latest
        /// snapshot on each target and compared with the recorded hashes (docs/compliance.md).
        #[arg(long, conflicts_with = "read_data")]
        drill: bool,
        /// Follow the runs until they end; exit 0 when all succeed, else 1.
        #[arg(long)]
        wait: bool,
    },
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
    /// The catalog itself: rebuild its snapshot records from the repositories
    /// (docs/operations.md "Recovering the catalog").
    Catalog {
        #[command(subcommand)]
        cmd: crate::catalog::CatalogCmd,
    },
    /// Apply the retention policies and reclaim space: one prune run per target (of --job, or
    /// --target, or every disk/NAS target). --dry-run lists every snapshot with keep/remove and
    /// the rule that keeps it, and the bytes prune would reclaim (docs/retention.md).
    Prune(crate::prune::PruneCmd),
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
    /// Follow the daemon's events (runs queued, started, progressing, finished; target state
    /// changes) until interrupted: one line per event, JSON lines with --json.
    Events {
        /// Only events of this job.
        #[arg(long)]
        job: Option<String>,
    },
    /// Alerts: list, show, acknowledge, resolve, silence; test a notification channel.
    Alert {
        #[command(subcommand)]
        cmd: AlertCmd,
    },
    /// List the audit trail of configuration changes, newest first.
    Audit {
        /// Show at most this many entries, 1 to 10000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
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
    ///
    /// An expression that never elapses (e.g. `*-02-30`, or a date in the past) is refused with
    /// exit 2, as job schedules refuse it.
    Calendar {
        /// A systemd calendar expression such as `Mon..Fri 02:00` or `*:0/15`.
        expr: String,
        /// How many elapse times to show (1 to 10000).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        iterations: u64,
    },
    /// Offline commands on a repository path, without the daemon (disaster recovery).
    Repo {
        #[command(subcommand)]
        cmd: RepoCmd,
        #[command(flatten)]
        keys: crate::repo_key::KeyArgs,
    },
    /// The media manager: tapes and removable disks, their state, location and rotation.
    Media {
        #[command(subcommand)]
        cmd: MediaCmd,
    },
    /// Media pools: the media a tape target's copies go to, with their retention and vault.
    Pool {
        #[command(subcommand)]
        cmd: PoolCmd,
    },
    /// Offline commands on a virtual tape library directory, without the daemon (docs/tape.md).
    Tape {
        #[command(subcommand)]
        cmd: TapeCmd,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages for bmsctl and its subcommands into DIR.
    Manpages { dir: PathBuf },
}

/// Subcommands that work without the daemon, and the global options that do nothing there.
const OFFLINE: [(&str, &[&str]); 5] = [
    ("repo", &["socket"]),
    ("tape", &["socket"]),
    ("calendar", &["socket"]),
    ("completions", &["socket", "json"]),
    ("manpages", &["socket", "json"]),
];

/// The command line definition, with the global options that do nothing hidden from the help,
/// completions and man pages of the offline commands: each gets its own hidden copy of them,
/// which clap then hands down to its subcommands instead of the visible one.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (name, ids) in OFFLINE {
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| ids.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(name, |s| s.args(hidden));
    }
    cmd
}

/// Parses the command line (exits with a usage message on errors, as clap does).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}
