//! `bmsctl repo forget` and `bmsctl repo prune`: retention and space reclamation on a
//! repository path, without the daemon (docs/retention.md).

use std::path::PathBuf;
use std::time::Duration;

use bms_engine::prune::{
    effective_grace, ForgetSummary, PruneOptions, PruneSummary, DEFAULT_REPACK_BELOW_PERCENT,
};

use crate::error::{CliError, CliResult};
use crate::output;
use crate::repo::{fail, interrupt_flag, json_out, open, to_json};
use crate::retention::{print_rows, KeepArgs, Row};

#[derive(Debug, clap::Args)]
pub struct ForgetArgs {
    #[arg(value_name = "PATH")]
    pub repo: PathBuf,
    /// Snapshots to remove (ids, unique prefixes or `latest`); or give --keep-* rules instead.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// With --keep-*: only snapshots of this job.
    #[arg(long)]
    pub job: Option<String>,
    /// Show what would be removed, and why each kept snapshot is kept, without removing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub keep: KeepArgs,
}

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[arg(value_name = "PATH")]
    pub repo: PathBuf,
    /// Show what would be removed and how many bytes that reclaims, without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Repack a pack when its live data is below this percentage of it.
    #[arg(long, value_name = "PCT", default_value_t = DEFAULT_REPACK_BELOW_PERCENT,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub repack_below: u8,
    /// Seconds to wait for backups or other holders of the repository lock.
    #[arg(long, default_value_t = 0, value_name = "SECS")]
    pub lock_wait: u64,
    /// How long an unused pack stays condemned before a prune deletes it (90s, 30m, 2h, 1d;
    /// at least 5m, the lease of a run's lock).
    #[arg(long, default_value = "24h", value_name = "DURATION",
          value_parser = crate::alert::parse_duration)]
    pub grace: u64,
}

pub fn forget(a: &ForgetArgs, json: bool) -> CliResult {
    let policy = a.keep.policy()?;
    let mut r = open(&a.repo)?;
    r.set_lock_wait(Duration::from_secs(60));
    let cancel = interrupt_flag()?;
    let sum =
        match (a.snapshots.is_empty(), policy.is_empty()) {
            (false, true) => r.forget(&a.snapshots, a.dry_run, &cancel),
            (true, false) => {
                let job = a.job.clone();
                let tz = jiff::tz::TimeZone::system();
                r.forget_policy(
                    &policy,
                    &move |s| job.as_ref().is_none_or(|j| &s.snapshot.job == j),
                    &tz,
                    a.dry_run,
                    &cancel,
                )
            }
            (false, false) => {
                return Err(CliError::usage(
                    "give either snapshot ids or --keep-* rules, not both",
                ))
            }
            (true, true) => return Err(CliError::usage(
                "nothing to forget: give snapshot ids, or --keep-* rules (see docs/retention.md)",
            )),
        }
        .map_err(fail)?;
    print_forget(&sum, json)
}

pub fn print_forget(sum: &ForgetSummary, json: bool) -> CliResult {
    if json {
        return json_out(&to_json(sum)?);
    }
    let rows: Vec<Row> = sum
        .decisions
        .iter()
        .map(|d| Row {
            short_id: &d.short_id,
            time: &d.time,
            job: &d.job,
            keep: d.keep,
            reasons: &d.reasons,
        })
        .collect();
    print_rows(&rows);
    println!(
        "{} {} snapshot(s), kept {}; run prune to reclaim their space",
        if sum.dry_run {
            "would remove"
        } else {
            "removed"
        },
        sum.removed.len(),
        sum.decisions.len() - sum.removed.len()
    );
    Ok(())
}

pub fn prune(a: &PruneArgs, json: bool) -> CliResult {
    let mut r = open(&a.repo)?;
    r.set_lock_wait(Duration::from_secs(a.lock_wait));
    let opts = PruneOptions {
        dry_run: a.dry_run,
        repack_below_percent: a.repack_below,
        grace: effective_grace(Duration::from_secs(a.grace)).map_err(fail)?,
    };
    let sum = r.prune(&opts, &*interrupt_flag()?).map_err(fail)?;
    print_prune(&sum, json)
}

pub fn print_prune(s: &PruneSummary, json: bool) -> CliResult {
    if json {
        return json_out(&to_json(s)?);
    }
    for n in &s.notes {
        println!("note: {n}");
    }
    for o in &s.sealed_kept {
        println!("kept {} {}: immutable until {}", o.kind, o.id, o.until);
    }
    let verb = if s.dry_run { "would remove" } else { "removed" };
    println!(
        "{} snapshot(s), {} pack(s): {verb} {} pack(s), repack {} ({} blob(s) into {} new pack(s)), keep {}",
        s.snapshots,
        s.packs_before,
        s.packs_removed,
        s.packs_repacked,
        s.blobs_repacked,
        s.packs_written,
        s.packs_kept
    );
    println!(
        "{} {}: {} -> {}",
        if s.dry_run {
            "would reclaim"
        } else {
            "reclaimed"
        },
        output::bytes(s.bytes_reclaimed),
        output::bytes(s.bytes_before),
        output::bytes(s.bytes_after)
    );
    let condemn = if s.dry_run {
        "would condemn"
    } else {
        "condemned"
    };
    println!(
        "{condemn} {} pack(s), rescued {}; {} pack(s) ({}) wait for the grace period of {}; \
         after it: {} -> {}",
        s.packs_condemned,
        s.packs_rescued,
        s.packs_waiting,
        output::bytes(s.bytes_waiting),
        grace_text(s.grace_secs),
        output::bytes(s.bytes_reclaimed_after_grace),
        output::bytes(s.bytes_after_grace)
    );
    Ok(())
}

/// A grace period as given on the command line: `24h`, `30m`, `90s`.
pub fn grace_text(secs: u64) -> String {
    match secs {
        s if s > 0 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
