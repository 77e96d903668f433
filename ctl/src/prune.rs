//! `bmsctl snapshot forget` and `bmsctl prune` through the daemon (docs/retention.md).

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output::{self, bytes};
use crate::retention::{print_rows, Row};
use bms_proto::api::*;

#[derive(Debug, clap::Args)]
pub struct ForgetCmd {
    /// Snapshots to forget (ids or unique prefixes of 8+ characters; every target holding one
    /// loses it unless --target is given).
    #[arg(value_name = "ID")]
    pub ids: Vec<String>,
    /// Forget what the retention policy of this job does not keep (with --apply-policy).
    #[arg(long)]
    pub job: Option<String>,
    /// Only on this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Apply the job's retention policy (the job's rules raised to each target's).
    #[arg(long, requires = "job")]
    pub apply_policy: bool,
    /// Show every snapshot with keep/remove and the rule that keeps it; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct PruneCmd {
    /// Only the snapshots of this job (and the targets it writes to).
    #[arg(long)]
    pub job: Option<String>,
    /// Only this target.
    #[arg(long)]
    pub target: Option<String>,
    /// List every snapshot with keep/remove and the rule that keeps it, and the bytes prune
    /// would reclaim; queue nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn print_target(t: &ForgetOnTarget, dry_run: bool) {
    println!(
        "target {}{}",
        t.target,
        t.policy
            .as_ref()
            .map(|p| format!(" ({p})"))
            .unwrap_or_default()
    );
    let rows: Vec<Row> = t
        .decisions
        .iter()
        .map(|d| Row {
            short_id: &d.id[..d.id.len().min(8)],
            time: &d.time,
            job: &d.job,
            keep: d.keep,
            reasons: &d.reasons,
        })
        .collect();
    print_rows(&rows);
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {} snapshot(s)", t.removed.len());
    if let Some(p) = &t.prune {
        println!(
            "prune {} {}: {} pack(s) removed, {} repacked ({} -> {})",
            if dry_run {
                "would reclaim"
            } else {
                "reclaimed"
            },
            bytes(p.bytes_reclaimed),
            p.packs_removed,
            p.packs_repacked,
            bytes(p.bytes_before),
            bytes(p.bytes_after)
        );
        println!(
            "{} {} pack(s), rescued {}; {} pack(s) ({}) wait for the grace period of {}; \
             after it: {} reclaimed",
            if dry_run {
                "would condemn"
            } else {
                "condemned"
            },
            p.packs_condemned,
            p.packs_rescued,
            p.packs_waiting,
            bytes(p.bytes_waiting),
            crate::repo_prune::grace_text(p.grace_secs),
            bytes(p.bytes_reclaimed_after_grace)
        );
    }
}

pub fn forget(cli: &Cli, c: &ForgetCmd) -> CliResult {
    if c.ids.is_empty() && !c.apply_policy {
        return Err(CliError::usage(
            "name the snapshots to forget, or use --job J --apply-policy",
        ));
    }
    let reply = call(
        cli,
        &ForgetSnapshots {
            ids: c.ids.clone(),
            job: c.job.clone(),
            target: c.target.clone(),
            apply_policy: c.apply_policy,
            dry_run: c.dry_run,
        },
    )?;
    if cli.json {
        return output::json(&reply);
    }
    for t in &reply.targets {
        print_target(t, reply.dry_run);
    }
    if !reply.dry_run {
        println!("the data of forgotten snapshots is reclaimed by the next prune (bmsctl prune)");
    }
    Ok(())
}

pub fn prune(cli: &Cli, c: &PruneCmd) -> CliResult {
    let reply = call(
        cli,
        &Prune {
            job: c.job.clone(),
            target: c.target.clone(),
            dry_run: c.dry_run,
        },
    )?;
    if cli.json {
        return output::json(&reply);
    }
    for t in &reply.targets {
        print_target(t, true);
    }
    for r in &reply.runs {
        println!(
            "queued prune run {} of target {} ({}): follow it with `bmsctl run watch {}`",
            r.id,
            r.target.as_deref().unwrap_or("-"),
            r.state.as_str(),
            r.id
        );
    }
    Ok(())
}
