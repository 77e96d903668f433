//! `bmsctl status` and `bmsctl audit`.

use crate::cli::Cli;
use crate::connect::call;
use crate::error::CliResult;
use crate::output;
use bms_proto::api::{ListAudit, Status};

fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

pub fn status(cli: &Cli) -> CliResult {
    let s = call(cli, &Status {})?;
    if cli.json {
        return output::json(&s);
    }
    output::fields(&[
        ("bmsd", format!("{} (pid {})", s.version, s.pid)),
        (
            "uptime",
            format!("{} (since {})", duration(s.uptime_secs), s.started_at),
        ),
        ("catalog schema", s.schema_version.to_string()),
        ("targets", s.targets.to_string()),
        ("jobs", format!("{} ({} enabled)", s.jobs, s.jobs_enabled)),
        ("state dir", s.state_dir.clone()),
        ("socket", s.socket.clone()),
        (
            "config",
            format!(
                "{} (generation {}, loaded {})",
                s.config
                    .path
                    .clone()
                    .unwrap_or_else(|| "embedded defaults".into()),
                s.config.generation,
                s.config.loaded_at
            ),
        ),
        ("log level", s.config.log_level.clone()),
        (
            "metrics",
            match &s.metrics_address {
                Some(a) => format!("http://{a}/metrics"),
                None if s.config.metrics_listen.is_empty() => "off".into(),
                None => format!("not listening (could not bind {})", s.config.metrics_listen),
            },
        ),
        ("your role", s.role.clone()),
    ]);
    // The 3-2-1-1-0 summary (docs/compliance.md); left out when bmsd cannot tell.
    if let Ok(c) = call(cli, &bms_proto::api::Compliance { job: None }) {
        println!(
            "compliance: {} of {} jobs compliant (bmsctl compliance)",
            c.compliant, c.total
        );
    }
    for r in &s.running {
        println!(
            "running: run {} of job '{}' ({}, started {})",
            r.id,
            r.job,
            r.trigger.as_str(),
            r.started_at.clone().unwrap_or_default()
        );
    }
    for r in &s.queued {
        println!(
            " queued: run {} of job '{}' ({})",
            r.id,
            r.job,
            r.trigger.as_str()
        );
    }
    Ok(())
}

pub fn audit(cli: &Cli, limit: u32) -> CliResult {
    let reply = call(cli, &ListAudit { limit: Some(limit) })?;
    if cli.json {
        return output::json(&reply);
    }
    let mut t = output::table(&["ID", "TIME", "USER", "ACTION", "OBJECT"]);
    for e in &reply.entries {
        let who = match &e.user {
            Some(u) => format!("{u} ({})", e.uid),
            None => e.uid.to_string(),
        };
        t.add_row(vec![
            e.id.to_string(),
            e.time.clone(),
            who,
            e.action.clone(),
            e.object.clone(),
        ]);
    }
    println!("{t}");
    Ok(())
}
