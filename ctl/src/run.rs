//! `bmsctl run list|show|watch|cancel` and `bmsctl job run NAME [--wait]`.

use crate::cli::Cli;
use crate::connect::{call, call_more};
use crate::error::{CliError, CliResult};
use crate::output::{self, bytes};
use bms_proto::api::*;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum RunCmd {
    /// List runs, newest first.
    List {
        /// Only runs of this job.
        #[arg(long)]
        job: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one run with its log.
    Show { id: i64 },
    /// Follow a run's progress until it ends: a progress bar on a terminal, a progress line every
    /// 5 s (and at each phase) on stderr otherwise, JSON lines with --json.
    Watch { id: i64 },
    /// Stop a queued or running run.
    Cancel { id: i64 },
}

pub fn run(cli: &Cli, cmd: &RunCmd) -> CliResult {
    match cmd {
        RunCmd::List { job, limit } => {
            let reply = call(
                cli,
                &ListRuns {
                    job: job.clone(),
                    limit: Some(*limit),
                },
            )?;
            if cli.json {
                return output::json(&reply);
            }
            let mut t = output::table(&[
                "ID", "JOB", "KIND", "TRIGGER", "STATE", "TARGET", "STARTED", "DURATION", "ADDED",
            ]);
            for r in &reply.runs {
                t.add_row(vec![
                    r.id.to_string(),
                    r.job.clone(),
                    r.kind.as_str().into(),
                    r.trigger.as_str().into(),
                    r.state.as_str().into(),
                    r.target.clone().unwrap_or_default(),
                    r.started_at.clone().unwrap_or_else(|| "-".into()),
                    r.duration_secs
                        .map(|d| format!("{d:.1}s"))
                        .unwrap_or_else(|| "-".into()),
                    bytes(r.stats.bytes_added),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        RunCmd::Show { id } => {
            let d = call(cli, &GetRun { id: *id })?;
            if cli.json {
                return output::json(&d);
            }
            print_run(&d.run);
            if let Some(p) = &d.run.prune {
                output::fields(&[(
                    "prune",
                    format!(
                        "{} snapshot(s) removed, {} kept; {} pack(s) removed, {} repacked, {} written; reclaimed {} ({} -> {}){}",
                        p.snapshots_removed,
                        p.snapshots_kept,
                        p.packs_removed,
                        p.packs_repacked,
                        p.packs_written,
                        bytes(p.bytes_reclaimed),
                        bytes(p.bytes_before),
                        bytes(p.bytes_after),
                        if p.sealed_kept > 0 {
                            format!("; {} sealed object(s) kept", p.sealed_kept)
                        } else {
                            String::new()
                        }
                    ),
                )]);
            }
            if let Some(dr) = &d.run.drill {
                output::fields(&[(
                    "drill",
                    format!(
                        "snapshot {}: {} of {} file(s) restored ({} of {}), {} not intact; {:.2} s at {}/s; projected full restore (RTO) {}",
                        &dr.snapshot[..dr.snapshot.len().min(12)],
                        dr.files_sampled,
                        dr.files_total,
                        bytes(dr.bytes_sampled),
                        bytes(dr.bytes_total),
                        dr.files_failed,
                        dr.restore_secs,
                        bytes(dr.bytes_per_sec as u64),
                        crate::run::secs_text(dr.rto_secs)
                    ),
                )]);
            }
            if let (Some(p), false) = (&d.progress, d.run.state.is_final()) {
                output::fields(&[("now", progress_text(*id, p))]);
            }
            for line in &d.log {
                println!("  | {}", line.replace('\n', "\n  | "));
            }
            Ok(())
        }
        RunCmd::Watch { id } => watch(cli, *id),
        RunCmd::Cancel { id } => {
            // A run that has ended cannot be cancelled: that is a failure (exit 1), not a
            // usage error, although bmsd answers InvalidArgument.
            let r = call(cli, &CancelRun { id: *id }).map_err(CliError::into_failure)?;
            if cli.json {
                output::json(&r.run)
            } else {
                println!(
                    "run {id}: cancel requested (state {})",
                    r.run.state.as_str()
                );
                Ok(())
            }
        }
    }
}

/// `bmsctl job run NAME [--wait]`.
pub fn start(cli: &Cli, name: &str, wait: bool) -> CliResult {
    let r = call(cli, &RunJob { name: name.into() })?.run;
    if r.state == RunState::Skipped {
        return Err(CliError::failure(
            r.error
                .unwrap_or_else(|| format!("run {} was skipped", r.id)),
        ));
    }
    if wait {
        return watch(cli, r.id);
    }
    if cli.json {
        output::json(&r)
    } else {
        println!(
            "run {} of job '{name}' queued; follow it with: bmsctl run watch {}",
            r.id, r.id
        );
        Ok(())
    }
}

fn print_run(r: &RunInfo) {
    let s = &r.stats;
    output::fields(&[
        ("run", r.id.to_string()),
        ("job", r.job.clone()),
        (
            "kind",
            format!("{} ({})", r.kind.as_str(), r.trigger.as_str()),
        ),
        ("state", r.state.as_str().into()),
        ("target", r.target.clone().unwrap_or_default()),
        ("snapshot", r.snapshot.clone().unwrap_or_else(|| "-".into())),
        (
            "started",
            r.started_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "finished",
            r.finished_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "files",
            format!(
                "{} new, {} changed, {} unmodified",
                s.files_new, s.files_changed, s.files_unmodified
            ),
        ),
        (
            "data",
            format!(
                "{} read, {} added, {} in snapshot",
                bytes(s.bytes_read),
                bytes(s.bytes_added),
                bytes(s.bytes_total)
            ),
        ),
        ("error", r.error.clone().unwrap_or_else(|| "-".into())),
    ]);
}

/// How often a progress line is printed when stderr is not a terminal (a log file, cron mail).
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Progress lines for a stderr that is not a terminal: one at each change of phase and one every
/// [`PLAIN_PROGRESS_EVERY`] in between, the way `dd status=progress` reports into a log.
struct PlainProgress {
    started: Instant,
    last: Option<(Instant, String)>,
}

impl PlainProgress {
    fn update(&mut self, id: i64, p: &RunProgress) {
        let due = match &self.last {
            None => true,
            Some((at, phase)) => *phase != p.phase || at.elapsed() >= PLAIN_PROGRESS_EVERY,
        };
        if !due {
            return;
        }
        self.last = Some((Instant::now(), p.phase.clone()));
        let t = self.started.elapsed().as_secs();
        eprintln!(
            "[{:02}:{:02}:{:02}] {}",
            t / 3600,
            t / 60 % 60,
            t % 60,
            progress_text(id, p)
        );
    }
}

/// `run 7 backup: 1234 files, 1.2 GiB read, 300 MiB added, 45.0 MiB/s, ETA 20s`.
fn progress_text(id: i64, p: &RunProgress) -> String {
    let mut line = format!(
        "run {id} {}: {} files, {} read, {} added",
        p.phase,
        p.files,
        bytes(p.bytes_read),
        bytes(p.bytes_added)
    );
    if p.bytes_expected > 0 {
        let pct = (p.bytes_read as f64 * 100.0 / p.bytes_expected as f64).min(100.0);
        line.push_str(&format!(
            " of about {} ({pct:.0}%)",
            bytes(p.bytes_expected)
        ));
    }
    if p.bytes_per_sec > 0.0 {
        line.push_str(&format!(", {}/s", bytes(p.bytes_per_sec as u64)));
    }
    if let Some(eta) = p.eta_secs {
        line.push_str(&format!(", ETA {}", human_secs(eta)));
    }
    line
}

fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s / 60 % 60),
    }
}

pub fn watch(cli: &Cli, id: i64) -> CliResult {
    let tty = std::io::stderr().is_terminal();
    let bar = (!cli.json && tty).then(|| {
        let b = ProgressBar::new(0);
        b.enable_steady_tick(Duration::from_millis(200));
        b
    });
    let mut plain = (!cli.json && !tty).then(|| PlainProgress {
        started: Instant::now(),
        last: None,
    });
    let mut last: Option<RunInfo> = None;
    call_more(cli, &WatchRun { id }, |d: RunDetail| {
        if cli.json {
            if let Ok(line) = serde_json::to_string(&d) {
                println!("{line}");
            }
        } else if let (Some(plain), Some(p)) = (&mut plain, &d.progress) {
            plain.update(id, p);
        } else if let (Some(b), Some(p)) = (&bar, &d.progress) {
            let style = if p.bytes_expected > 0 {
                b.set_length(p.bytes_expected.max(p.bytes_read));
                ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
            } else {
                ProgressStyle::with_template("{spinner} {msg} {bytes} read, {bytes_per_sec}")
            };
            if let Ok(s) = style {
                b.set_style(s.progress_chars("=> "));
            }
            b.set_position(p.bytes_read);
            b.set_message(format!("run {id} {}: {} files", p.phase, p.files));
        }
        last = Some(d.run);
        true
    })?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let Some(run) = last else {
        return Err(CliError::failure(
            "the daemon ended the stream without a result",
        ));
    };
    if !cli.json {
        print_run(&run);
    }
    match run.state {
        RunState::Succeeded | RunState::Warning => Ok(()),
        s => Err(CliError::failure(format!(
            "run {id} {}: {}",
            s.as_str(),
            run.error.unwrap_or_else(|| "no details".into())
        ))),
    }
}

pub use bms_proto::units::secs_text;
