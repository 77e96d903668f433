//! `bmsctl alert list|show|ack|resolve|test|silence` (docs/alerts.md).

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::api::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AlertCmd {
    /// List alerts, newest first.
    List {
        /// Only alerts in this state: open, acked or resolved.
        #[arg(long)]
        state: Option<String>,
        /// Show at most this many, 1 to 10000.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Show one alert with its notifications and every delivery attempt.
    Show { id: i64 },
    /// Acknowledge an open alert: no more reminders (it still resolves by itself).
    Ack {
        id: i64,
        /// Why, or who is on it (recorded in the audit trail).
        #[arg(long)]
        comment: Option<String>,
    },
    /// Resolve an alert by hand; one "resolved" notice goes out.
    Resolve { id: i64 },
    /// Send a test notification to a channel now and report the outcome (exit 1 when it fails).
    Test {
        /// A channel name from [alerts] in bmsd.toml, or ping:JOB.
        channel: String,
    },
    /// Keep a job's alerts from notifying until a time; alerts are still recorded.
    Silence {
        #[arg(long)]
        job: String,
        /// RFC 3339 time (2026-12-24T08:00:00Z) or a duration from now (30m, 2h, 1d).
        #[arg(long)]
        until: String,
        #[arg(long)]
        comment: Option<String>,
    },
}

pub use bms_proto::units::parse_duration;

fn show(a: &AlertInfo) {
    let mut rows = vec![
        ("id", a.id.to_string()),
        ("kind", a.kind.clone()),
        ("severity", a.severity.clone()),
        ("state", a.state.clone()),
        ("key", a.key.clone()),
        ("message", a.message.clone()),
        ("count", a.count.to_string()),
        ("first seen", a.first_seen.clone()),
        ("last seen", a.last_seen.clone()),
    ];
    for (k, v) in [
        ("job", &a.job),
        ("target", &a.target),
        ("notified", &a.last_notified),
        ("acked at", &a.acked_at),
        ("comment", &a.ack_comment),
        ("resolved", &a.resolved_at),
        ("delivery", &a.delivery_problem),
    ] {
        if let Some(v) = v {
            rows.push((k, v.clone()));
        }
    }
    if a.details.as_object().is_some_and(|o| !o.is_empty()) {
        rows.push(("details", a.details.to_string()));
    }
    output::fields(&rows);
}

pub fn run(cli: &Cli, cmd: &AlertCmd) -> CliResult {
    match cmd {
        AlertCmd::List { state, limit } => {
            let reply = call(
                cli,
                &ListAlerts {
                    state: state.clone(),
                    limit: Some(*limit),
                },
            )?;
            if cli.json {
                return output::json(&reply);
            }
            let mut t = output::table(&[
                "ID",
                "STATE",
                "SEVERITY",
                "KIND",
                "JOB/TARGET",
                "COUNT",
                "LAST SEEN",
                "MESSAGE",
            ]);
            for a in &reply.alerts {
                t.add_row(vec![
                    a.id.to_string(),
                    a.state.clone(),
                    a.severity.clone(),
                    a.kind.clone(),
                    a.job.clone().or(a.target.clone()).unwrap_or_default(),
                    a.count.to_string(),
                    a.last_seen.clone(),
                    a.message.clone(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        AlertCmd::Show { id } => {
            let d = call(cli, &GetAlert { id: *id })?;
            if cli.json {
                return output::json(&d);
            }
            show(&d.alert);
            for n in &d.notifications {
                println!(
                    "notification {} to '{}' ({}): {}, {} attempt(s)",
                    n.id,
                    n.channel,
                    n.event,
                    n.state,
                    n.attempts.len()
                );
                for a in &n.attempts {
                    println!(
                        "  {} {} {}",
                        a.time,
                        if a.ok { "ok    " } else { "failed" },
                        a.detail
                    );
                }
            }
            Ok(())
        }
        AlertCmd::Ack { id, comment } => {
            let r = call(
                cli,
                &AckAlert {
                    id: *id,
                    comment: comment.clone(),
                },
            )
            .map_err(CliError::into_failure)?;
            if cli.json {
                return output::json(&r);
            }
            println!("alert {} acknowledged", r.alert.id);
            Ok(())
        }
        AlertCmd::Resolve { id } => {
            let r = call(cli, &ResolveAlert { id: *id }).map_err(CliError::into_failure)?;
            if cli.json {
                return output::json(&r);
            }
            println!("alert {} resolved", r.alert.id);
            Ok(())
        }
        AlertCmd::Test { channel } => {
            let r = call(
                cli,
                &TestChannel {
                    channel: channel.clone(),
                },
            )?;
            if cli.json {
                output::json(&r)?;
            } else {
                println!(
                    "{} ({}): {} — {}",
                    r.channel,
                    r.kind,
                    if r.ok { "delivered" } else { "FAILED" },
                    r.detail
                );
            }
            if r.ok {
                Ok(())
            } else {
                Err(CliError::Failure(format!(
                    "test notification to '{}' failed: {}",
                    r.channel, r.detail
                )))
            }
        }
        AlertCmd::Silence {
            job,
            until,
            comment,
        } => {
            let r = call(
                cli,
                &SilenceAlerts {
                    job: job.clone(),
                    until: until.clone(),
                    comment: comment.clone(),
                },
            )?;
            if cli.json {
                return output::json(&r);
            }
            println!("alerts of job '{}' silenced until {}", r.job, r.until);
            Ok(())
        }
    }
}
