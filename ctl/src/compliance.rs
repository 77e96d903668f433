//! `bmsctl compliance` and `bmsctl verify` (docs/compliance.md).

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::api::*;

/// `bmsctl compliance [JOB] [--explain] [--history]`: exit 0 only when every job passes.
pub fn compliance(cli: &Cli, job: &Option<String>, explain: bool, history: bool) -> CliResult {
    if history {
        return show_history(cli, job);
    }
    let reply = call(cli, &Compliance { job: job.clone() })?;
    if cli.json {
        output::json(&reply)?;
    } else {
        print_table(&reply);
        for j in &reply.jobs {
            print_job(j, explain);
        }
    }
    if reply.total > 0 && reply.compliant == reply.total {
        Ok(())
    } else if reply.total == 0 {
        Err(CliError::failure(
            "there are no jobs, so nothing is protected; add one with 'bmsctl job add'",
        ))
    } else {
        Err(CliError::failure(format!(
            "{} of {} jobs meet 3-2-1-1-0",
            reply.compliant, reply.total
        )))
    }
}

fn print_table(reply: &ComplianceReply) {
    let mut t = output::table(&["JOB", "3", "2", "1", "1", "0", "COMPLIANT"]);
    for j in &reply.jobs {
        let mut row = vec![j.job.clone()];
        for rule in RULES {
            row.push(
                j.rule(rule)
                    .map(|r| r.verdict.mark().to_owned())
                    .unwrap_or_default(),
            );
        }
        row.push(if j.compliant { "yes" } else { "no" }.into());
        t.add_row(row);
    }
    println!("{t}");
}

fn print_job(j: &JobCompliance, explain: bool) {
    let failing: Vec<&RuleResult> = j
        .rules
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .collect();
    if !explain && failing.is_empty() {
        return;
    }
    println!();
    println!(
        "job '{}' (RPO {} from {}, verification window {} days):",
        j.job,
        human(j.rpo_secs),
        j.rpo_source,
        j.verify_window_days
    );
    let shown: Vec<&RuleResult> = if explain {
        j.rules.iter().collect()
    } else {
        failing
    };
    for r in shown {
        println!(
            "  {} {} {}: {}",
            r.verdict.mark(),
            r.rule.digit(),
            r.rule.as_str(),
            r.reason
        );
        if let Some(h) = &r.hint {
            println!("      fix: {h}");
        }
    }
    if explain {
        println!("  evidence:");
        for c in &j.copies {
            print_copy(c);
        }
    }
}

fn print_copy(c: &CopyEvidence) {
    let snap = match (&c.snapshot, &c.snapshot_time) {
        (Some(s), Some(t)) => format!(
            "snapshot {} at {t}{}{}",
            &s[..s.len().min(12)],
            c.snapshot_run
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default(),
            if c.is_copy {
                ""
            } else {
                ", older than the RPO"
            }
        ),
        _ => "no snapshot".into(),
    };
    println!("    target {}: {snap}", c.target);
    for m in &c.media {
        let drive = match m.in_drive {
            Some(true) => ", in a drive",
            Some(false) => ", out of any drive (offline)",
            None => "",
        };
        let label = m
            .label
            .as_ref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        println!(
            "      medium {}{label}: {}{drive}",
            m.media_type, m.location
        );
    }
    match &c.immutable_until {
        Some(u) => println!("      immutable until {u}"),
        None if c.immutable_days > 0 => println!(
            "      immutable_days {}, but the snapshot is not sealed now",
            c.immutable_days
        ),
        None => println!("      not immutable"),
    }
    match &c.verification {
        Some(v) => println!(
            "      last verification: run {} ({}) {} at {} ({} days ago), {}{}",
            v.run,
            v.kind,
            v.state,
            v.finished_at,
            v.age_days,
            if v.errors {
                "errors found"
            } else {
                "no errors"
            },
            v.read_data_percent
                .map(|p| format!(", read data {p}%"))
                .unwrap_or_default()
        ),
        None => println!("      never verified"),
    }
}

fn human(secs: u64) -> String {
    if secs.is_multiple_of(86400) {
        format!("{}d", secs / 86400)
    } else if secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{}m", secs.div_ceil(60))
    }
}

fn show_history(cli: &Cli, job: &Option<String>) -> CliResult {
    let reply = call(
        cli,
        &ComplianceHistory {
            job: job.clone(),
            limit: None,
        },
    )?;
    if cli.json {
        return output::json(&reply);
    }
    let mut t = output::table(&["TIME", "JOB", "RULE", "FROM", "TO", "REASON"]);
    for c in &reply.changes {
        t.add_row(vec![
            c.time.clone(),
            c.job.clone(),
            c.rule.as_str().into(),
            c.from.map(Verdict::as_str).unwrap_or("-").into(),
            c.to.as_str().into(),
            c.reason.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// `bmsctl verify [--job J] [--target T] [--read-data PCT | --drill] [--wait]`.
pub fn verify(
    cli: &Cli,
    job: &Option<String>,
    target: &Option<String>,
    read_data: Option<u8>,
    drill: bool,
    wait: bool,
) -> CliResult {
    let reply = call(
        cli,
        &Verify {
            job: job.clone(),
            target: target.clone(),
            read_data_percent: read_data,
            drill,
        },
    )?;
    let mut failed = Vec::new();
    for r in &reply.runs {
        if r.state == RunState::Skipped {
            failed.push(
                r.error
                    .clone()
                    .unwrap_or_else(|| format!("run {} was skipped", r.id)),
            );
        }
    }
    if wait {
        for r in reply.runs.iter().filter(|r| r.state != RunState::Skipped) {
            if let Err(e) = crate::run::watch(cli, r.id) {
                failed.push(e.to_string());
            }
        }
    } else if cli.json {
        output::json(&reply)?;
    } else {
        for r in &reply.runs {
            if r.state != RunState::Skipped {
                println!(
                    "{} run {} of job '{}' queued; follow it with: bmsctl run watch {}",
                    r.kind.as_str(),
                    r.id,
                    r.job,
                    r.id
                );
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::failure(failed.join("; ")))
    }
}
