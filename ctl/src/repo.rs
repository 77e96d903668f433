//! `bmsctl repo ...`: offline commands on a repository path, without the daemon
//! (disaster recovery: only bmsctl and the repository are needed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bms_engine::{
    BackupOptions, Error as EngineError, InitOptions, Overwrite, Repository, RestoreOptions,
    VerifyOptions,
};

use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Subcommand)]
pub enum RepoCmd {
    /// Create a new, empty repository in PATH (a new or empty directory). The repository is
    /// private to its owner (directories 0700, files 0600, whatever the umask); an existing
    /// directory that others may access is restricted to 0700, with a note saying so.
    Init {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Target size of pack files (e.g. 16M).
        #[arg(long, value_parser = output::parse_size)]
        pack_size: Option<u64>,
        /// Encrypt the repository under a new random master key, wrapped by the key file given
        /// with --key-file (created if missing; default: the config dir's keys/PATHNAME.key) or
        /// by the passphrase of --passphrase-file. Losing every key means losing the data.
        #[arg(long)]
        encrypt: bool,
    },
    /// Key slots of an encrypted repository: list, add, remove, rotate-passphrase, export.
    Key {
        #[command(subcommand)]
        cmd: crate::repo_key::KeyCmd,
    },
    /// List the snapshots of a repository. Snapshot files that are damaged (unreadable or
    /// failing their integrity check) are listed as damaged, with the reason, and make the exit
    /// status 1.
    Snapshots {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Only snapshots of this job.
        #[arg(long)]
        job: Option<String>,
    },
    /// List the entries of a snapshot (a directory's children, or with -r everything below).
    Ls {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Snapshot id, unique prefix (8+ hex characters) or `latest`.
        snapshot: String,
        /// Path inside the snapshot (default: its root).
        subpath: Option<PathBuf>,
        #[arg(short, long)]
        recursive: bool,
    },
    /// Back up files and directories into the repository.
    Backup {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        #[arg(required = true, value_name = "SOURCE")]
        sources: Vec<PathBuf>,
        /// Glob to exclude; without `/` it matches names anywhere, with `/` absolute paths.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Do not cross into other filesystems.
        #[arg(long, short = 'x')]
        one_file_system: bool,
        #[arg(long, default_value = "default")]
        job: String,
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// Host name recorded in the snapshot (default: this machine's).
        #[arg(long)]
        host: Option<String>,
        /// Compare against this snapshot instead of the latest one of the same job and paths.
        #[arg(long)]
        parent: Option<String>,
        /// Read every file, ignoring any parent snapshot.
        #[arg(long)]
        force: bool,
        /// Seconds to wait for another backup holding the repository lock.
        #[arg(long, default_value_t = 0, value_name = "SECS")]
        lock_wait: u64,
    },
    /// Restore a snapshot, or selected paths of it, into a directory.
    Restore {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Snapshot id, unique prefix (8+ hex characters) or `latest`.
        snapshot: String,
        /// Target directory (created if missing).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Only this path of the snapshot (repeatable).
        #[arg(long = "path", value_name = "P")]
        paths: Vec<PathBuf>,
        /// Show what would be restored without writing anything.
        #[arg(long)]
        dry_run: bool,
        /// What to do with entries that already exist in the target (directories above a --path
        /// are never changed; a file that cannot be restored leaves the existing one as it was).
        #[arg(long, value_enum, default_value = "never")]
        overwrite: OverwriteArg,
    },
    /// Put bmsd's catalog back from the newest catalog snapshot (job `_catalog`) of the
    /// repository into STATE_DIR/catalog.db (mode 0600), for a machine that lost its state dir;
    /// then start bmsd on it (docs/operations.md "Recovering the catalog").
    RestoreCatalog(crate::repo_catalog::RestoreCatalogArgs),
    /// Check the repository; exit status 1 when problems are found.
    Verify {
        #[arg(value_name = "PATH")]
        repo: PathBuf,
        /// Also read, decompress and re-hash all data.
        #[arg(long)]
        read_data: bool,
        /// Read only this percentage of the data (a random subset each time).
        #[arg(long, value_name = "PCT", value_parser = clap::value_parser!(u8).range(1..=100))]
        read_data_subset: Option<u8>,
    },
    /// Remove snapshots by id, or those a retention policy (--keep-*) does not keep; their data
    /// stays until `repo prune`. Sealed (immutable) snapshots are refused (by id) or kept (by
    /// policy), with the date.
    Forget(crate::repo_prune::ForgetArgs),
    /// Remove the data no snapshot needs and repack mostly unused packs (takes the exclusive
    /// lock; a backup waits for it or fails as locked). Sealed packs are kept and reported.
    Prune(crate::repo_prune::PruneArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OverwriteArg {
    /// Keep every existing entry as it is, directories included.
    Never,
    /// Replace files whose size or mtime differ; existing directories get the snapshot's metadata.
    IfChanged,
    /// Replace all existing non-directories; existing directories get the snapshot's metadata.
    Always,
}

pub(crate) fn fail(e: EngineError) -> CliError {
    CliError::from_engine(e)
}

/// A flag set by the first SIGINT or SIGTERM, so that a long operation stops cleanly (locks
/// released, no half-written snapshot); a second one ends the process at once (status 130).
pub(crate) fn interrupt_flag() -> CliResult<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())
            .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
            .map_err(|e| CliError::failure(format!("cannot handle signals: {e}")))?;
    }
    Ok(flag)
}

pub(crate) fn open(path: &PathBuf) -> CliResult<Repository> {
    #[cfg(debug_assertions)]
    if std::env::var_os("BMSCTL_TEST_INTERNAL_FAULT").is_some() {
        // A test hook of debug builds (docs/protocol.md, "Test hooks"): the engine's own
        // report of an internal fault.
        return Err(fail(EngineError::Internal(
            "fault injected by BMSCTL_TEST_INTERNAL_FAULT".into(),
        )));
    }
    match crate::repo_key::secret()? {
        Some(secret) => Repository::open_with_key(path, &secret).map_err(fail),
        None => Repository::open(path).map_err(fail),
    }
}

pub(crate) fn json_out(v: &serde_json::Value) -> CliResult {
    output::json(v)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> CliResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| CliError::failure(e.to_string()))
}

pub fn run(cmd: &RepoCmd, json: bool) -> CliResult {
    match cmd {
        RepoCmd::Forget(a) => crate::repo_prune::forget(a, json),
        RepoCmd::Prune(a) => crate::repo_prune::prune(a, json),
        RepoCmd::Key { cmd } => crate::repo_key::run(cmd, json),
        RepoCmd::RestoreCatalog(a) => crate::repo_catalog::restore_catalog(a, json),
        RepoCmd::Init {
            repo,
            pack_size,
            encrypt,
        } => {
            let mut opts = InitOptions::default();
            if let Some(s) = pack_size {
                opts.pack_size = *s;
            }
            let r = if *encrypt {
                crate::repo_key::init_encrypted(repo, opts)?
            } else {
                Repository::init(repo, opts).map_err(fail)?
            };
            if json {
                json_out(&serde_json::json!({
                    "path": repo, "id": r.config().id, "version": r.config().version,
                    "notes": r.notes(),
                }))
            } else {
                for n in r.notes() {
                    println!("note: {n}");
                }
                println!(
                    "created repository {} (id {})",
                    repo.display(),
                    &r.config().id[..16]
                );
                Ok(())
            }
        }
        RepoCmd::Snapshots { repo, job } => {
            let r = open(repo)?;
            let (all, damaged) = r.snapshots_checked().map_err(fail)?;
            let list: Vec<_> = all
                .into_iter()
                .filter(|s| job.as_ref().is_none_or(|j| &s.snapshot.job == j))
                .collect();
            let damaged_error = || {
                CliError::failure(format!(
                    "{} snapshot file(s) in {} are damaged and were not listed: run `bmsctl repo verify {}` to see what is affected",
                    damaged.len(),
                    repo.join("snapshots").display(),
                    repo.display()
                ))
            };
            if json {
                json_out(&serde_json::json!({
                    "snapshots": to_json(&list)?,
                    "damaged": to_json(&damaged)?,
                }))?;
                return if damaged.is_empty() {
                    Ok(())
                } else {
                    Err(damaged_error())
                };
            }
            let mut t = output::table(&[
                "ID", "TIME", "JOB", "HOST", "PATHS", "FILES", "SIZE", "ADDED", "STATE",
            ]);
            for s in &list {
                let st = &s.snapshot.stats;
                t.add_row(vec![
                    s.short_id.clone(),
                    s.snapshot
                        .time
                        .chars()
                        .take(19)
                        .collect::<String>()
                        .replace('T', " "),
                    s.snapshot.job.clone(),
                    s.snapshot.host.clone(),
                    s.snapshot.paths.join(" "),
                    (st.files_new + st.files_changed + st.files_unmodified).to_string(),
                    output::bytes(st.bytes_total),
                    output::bytes(st.bytes_added),
                    if s.snapshot.partial {
                        format!("partial ({} warnings)", st.warnings_count)
                    } else {
                        "complete".into()
                    },
                ]);
            }
            for d in &damaged {
                t.add_row(vec![
                    d.id.chars().take(16).collect::<String>(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("damaged: {}", d.reason),
                ]);
            }
            println!("{t}");
            println!("{} snapshot(s)", list.len());
            if damaged.is_empty() {
                Ok(())
            } else {
                Err(damaged_error())
            }
        }
        RepoCmd::Ls {
            repo,
            snapshot,
            subpath,
            recursive,
        } => {
            let r = open(repo)?;
            let p = subpath
                .as_ref()
                .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
                .unwrap_or_default();
            let entries = r.ls_with(snapshot, &p, *recursive).map_err(fail)?;
            if json {
                return json_out(&serde_json::json!({ "entries": to_json(&entries)? }));
            }
            for e in &entries {
                let kind = match e.kind {
                    bms_engine::tree::NodeKind::File => '-',
                    k => k.letter(),
                };
                let link = e
                    .target
                    .as_ref()
                    .map(|t| format!(" -> {t}"))
                    .unwrap_or_default();
                println!(
                    "{kind}{:04o} {:>8} {:>8} {:>10} {} {}{link}",
                    e.mode,
                    user(&e.user, e.uid),
                    user(&e.group, e.gid),
                    e.size,
                    e.mtime.chars().take(19).collect::<String>(),
                    e.path.escape_debug()
                );
            }
            Ok(())
        }
        RepoCmd::Backup {
            repo,
            sources,
            exclude,
            one_file_system,
            job,
            tags,
            host,
            parent,
            force,
            lock_wait,
        } => {
            let mut r = open(repo)?;
            r.set_lock_wait(Duration::from_secs(*lock_wait));
            let opts = BackupOptions {
                sources: sources.clone(),
                excludes: exclude.clone(),
                one_file_system: *one_file_system,
                job: job.clone(),
                host: host.clone().unwrap_or_default(),
                tags: tags.clone(),
                parent: parent.clone(),
                force_full: *force,
            };
            let tty = !json && std::io::stderr().is_terminal();
            let progress = |p: &bms_engine::Progress| {
                if tty {
                    eprint!(
                        "\r{} files, {} read, {} added   ",
                        p.files,
                        output::bytes(p.bytes_read),
                        output::bytes(p.bytes_added)
                    );
                }
            };
            let cancel = interrupt_flag()?;
            let s = r.backup(&opts, &progress, &cancel).map_err(fail)?;
            if tty {
                eprintln!();
            }
            if json {
                return json_out(&to_json(&s)?);
            }
            for n in &s.notes {
                println!("note: {n}");
            }
            for w in &s.warnings {
                println!("warning: {w}");
            }
            println!(
                "snapshot {} saved{}",
                &s.snapshot_id[..8],
                if s.partial {
                    " (partial: some files could not be read)"
                } else {
                    ""
                }
            );
            output::fields(&[
                (
                    "files",
                    format!(
                        "{} new, {} changed, {} unmodified",
                        s.files_new, s.files_changed, s.files_unmodified
                    ),
                ),
                (
                    "dirs",
                    format!(
                        "{} new, {} changed, {} unmodified",
                        s.dirs_new, s.dirs_changed, s.dirs_unmodified
                    ),
                ),
                ("read", output::bytes(s.bytes_read)),
                (
                    "added",
                    format!(
                        "{} in {} new chunks",
                        output::bytes(s.bytes_added),
                        s.chunks_new
                    ),
                ),
                ("duration", format!("{:.1}s", s.duration.as_secs_f64())),
            ]);
            Ok(())
        }
        RepoCmd::Restore {
            repo,
            snapshot,
            to,
            paths,
            dry_run,
            overwrite,
        } => {
            let r = open(repo)?;
            let opts = RestoreOptions {
                snapshot: snapshot.clone(),
                target: to.clone(),
                paths: paths.clone(),
                dry_run: *dry_run,
                overwrite: match overwrite {
                    OverwriteArg::Never => Overwrite::Never,
                    OverwriteArg::IfChanged => Overwrite::IfChanged,
                    OverwriteArg::Always => Overwrite::Always,
                },
            };
            let s = r
                .restore(&opts, &|_| {}, &*interrupt_flag()?)
                .map_err(fail)?;
            if json {
                json_out(&to_json(&s)?)?;
            } else {
                for w in &s.warnings {
                    println!("warning: {w}");
                }
                for f in &s.failed {
                    println!(
                        "not restored: {}: {}",
                        crate::snapshot::dest(to, &f.path).display(),
                        f.error
                    );
                }
                for e in s
                    .errors
                    .iter()
                    .filter(|e| !s.failed.iter().any(|f| &f.error == *e))
                {
                    println!("error: {e}");
                }
                println!(
                    "{}{} files ({}), {} dirs, {} symlinks, {} hard links, {} special, {} skipped",
                    if s.dry_run {
                        "would restore "
                    } else {
                        "restored "
                    },
                    s.files,
                    output::bytes(s.bytes),
                    s.dirs,
                    s.symlinks,
                    s.hardlinks,
                    s.special,
                    s.skipped
                );
            }
            if s.errors.is_empty() {
                Ok(())
            } else {
                let failed: Vec<String> = s
                    .failed
                    .iter()
                    .take(5)
                    .map(|f| crate::snapshot::dest(to, &f.path).display().to_string())
                    .collect();
                Err(CliError::failure(if failed.is_empty() {
                    format!("restore incomplete: {} error(s)", s.errors.len())
                } else {
                    format!(
                        "restore incomplete: {} file(s) not restored ({}{}); an existing file of that name, if any, was kept as it was",
                        s.failed.len(),
                        failed.join(", "),
                        if s.failed.len() > failed.len() { ", ..." } else { "" }
                    )
                }))
            }
        }
        RepoCmd::Verify {
            repo,
            read_data,
            read_data_subset,
        } => {
            let r = open(repo)?;
            let opts = VerifyOptions {
                read_data: *read_data,
                read_data_percent: *read_data_subset,
            };
            let rep = r
                .verify_cancellable(&opts, &|_| {}, &*interrupt_flag()?)
                .map_err(fail)?;
            if json {
                json_out(&to_json(&rep)?)?;
            } else {
                for n in &rep.notes {
                    println!("note: {n}");
                }
                for p in &rep.problems {
                    println!("problem ({}): {}", p.kind, p.message);
                    if let Some(pack) = &p.pack {
                        println!("  pack: {pack}");
                    }
                    for c in p.chunks.iter().take(20) {
                        println!("  blob: {c}");
                    }
                    for s in &p.snapshots {
                        println!("  snapshot: {s}");
                    }
                    for f in &p.files {
                        println!("  file: {}", f.escape_debug());
                    }
                }
                println!(
                    "checked {} snapshot(s), {} index file(s), {} pack(s), {} blob(s); read {} pack(s), {}",
                    rep.snapshots,
                    rep.index_files,
                    rep.packs,
                    rep.blobs_checked,
                    rep.packs_read,
                    output::bytes(rep.bytes_read)
                );
                println!(
                    "{}",
                    if rep.ok {
                        "no problems found".to_string()
                    } else {
                        format!("{} problem(s) found", rep.problems.len())
                    }
                );
            }
            if rep.ok {
                Ok(())
            } else {
                Err(CliError::failure(format!(
                    "verification found {} problem(s)",
                    rep.problems.len()
                )))
            }
        }
    }
}

fn user(name: &str, id: u32) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        name.to_string()
    }
}
