//! `bmsctl events [--job J]`: follows the daemon's event stream (docs/protocol.md,
//! `WatchEvents`) until interrupted; one line per event, JSON lines with --json.

use crate::cli::Cli;
use crate::connect::call_more;
use crate::error::CliResult;
use crate::output::bytes;
use bms_proto::api::*;

fn line(e: &Event) -> String {
    match e {
        Event::RunQueued { run } => format!(
            "run {} queued: {} of job '{}'",
            run.id,
            run.kind.as_str(),
            run.job
        ),
        Event::RunStarted { run } => format!(
            "run {} started: {} of job '{}'",
            run.id,
            run.kind.as_str(),
            run.job
        ),
        Event::RunProgress { run, progress, .. } => format!(
            "run {run} {}: {} files, {} read, {} added",
            progress.phase,
            progress.files,
            bytes(progress.bytes_read),
            bytes(progress.bytes_added)
        ),
        Event::RunFinished {
            run, state, error, ..
        } => match error {
            Some(e) => format!("run {} {}: {e}", run.id, state.as_str()),
            None => format!("run {} {}", run.id, state.as_str()),
        },
        Event::TargetStateChanged {
            target,
            state,
            reason,
            ..
        } => format!(
            "target '{target}' {}: {reason}",
            serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
        Event::AlertRaised { alert, message, .. } => format!("alert {alert}: {message}"),
        Event::ComplianceChanged {
            job,
            compliant,
            reason,
            ..
        } => format!(
            "job '{job}' {}: {reason}",
            if *compliant {
                "compliant"
            } else {
                "not compliant"
            }
        ),
        Event::MediaNeeded { target, message } => {
            format!("target '{target}' needs media: {message}")
        }
        Event::TamperDetected {
            target,
            what,
            detail,
        } => match target {
            Some(t) => format!("TAMPER on target '{t}': {what}: {detail}"),
            None => format!("TAMPER: {what}: {detail}"),
        },
    }
}

pub fn events(cli: &Cli, job: &Option<String>) -> CliResult {
    let req = WatchEvents { job: job.clone() };
    call_more(cli, &req, |r: EventReply| {
        if cli.json {
            if let Ok(l) = serde_json::to_string(&r) {
                println!("{l}");
            }
        } else {
            if let Some(n) = r.missed {
                eprintln!("bmsctl: {n} event(s) were missed (this reader fell behind)");
            }
            if let Some(e) = &r.event {
                println!("{}", line(e));
            }
        }
        true
    })
}
