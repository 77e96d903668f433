//! Producing one scheduled report: build it, render each form, write the files (temp file and
//! rename, mode 0600, in a directory of mode 0700), mail it, and record the outcome as an alert.

use super::config::ScheduledReport;
use crate::catalog::AlertChange;
use crate::state::SharedRef;
use bms_engine::fsutil;
use bms_proto::report::{render, Format};
use jiff::Timestamp;
use serde_json::json;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use tracing::{info, warn};

/// `20261203T060000Z`: a time for file names (sorts, no ':').
fn stamp(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// `NAME_SINCE_UNTIL` (docs/reports.md, "Scheduled reports").
pub fn base_name(name: &str, since: Timestamp, until: Timestamp) -> String {
    format!("{name}_{}_{}", stamp(since), stamp(until))
}

fn alert_key(name: &str) -> String {
    format!("report_failed:{name}")
}

/// Produces `r` for the period ending at `until`; never fails: the outcome is logged and
/// recorded as the report's alert.
pub async fn produce(shared: &SharedRef, r: &ScheduledReport, until: Timestamp) {
    match attempt(shared, r, until).await {
        Ok(done) => {
            info!(report = %r.name, "scheduled report produced: {done}");
            crate::alerts::clear(shared, alert_key(&r.name)).await;
        }
        Err(why) => {
            warn!(report = %r.name, "scheduled report failed: {why}");
            crate::alerts::raise(
                shared,
                AlertChange {
                    key: alert_key(&r.name),
                    kind: "report_failed".into(),
                    severity: "warning".into(),
                    job: None,
                    target: None,
                    message: format!("scheduled report '{}' failed: {why}", r.name),
                    details: json!({"report": r.name, "until": until.to_string(), "reason": why}),
                },
            )
            .await;
        }
    }
}

async fn attempt(
    shared: &SharedRef,
    r: &ScheduledReport,
    until: Timestamp,
) -> Result<String, String> {
    let since = r
        .period
        .since(until)
        .map_err(|e| format!("cannot compute the period: {e}"))?;
    let only = (!r.jobs.is_empty()).then_some(&r.jobs[..]);
    let reply = crate::service::build_report(shared, since, until, only)
        .await
        .map_err(|e| format!("cannot build the report: {}", e.message))?;
    let formats = r.formats.clone();
    let mail = r.email.is_some();
    // Rendering a report of thousands of jobs takes a while: off the async threads.
    let rendered = tokio::task::spawn_blocking(move || {
        let mut out: Vec<(Format, String)> =
            formats.iter().map(|f| (*f, render(&reply, *f))).collect();
        if mail && !formats.contains(&Format::Text) {
            // The mail's plain-text body.
            out.push((Format::Text, render(&reply, Format::Text)));
        }
        out
    })
    .await
    .map_err(|e| format!("rendering failed: {e}"))?;
    let base = base_name(&r.name, since, until);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    if let Some(dir) = &r.directory {
        let (dir, base2, name) = (dir.clone(), base.clone(), r.name.clone());
        let files: Vec<(Format, String)> = rendered
            .iter()
            .filter(|(f, _)| r.formats.contains(f))
            .cloned()
            .collect();
        let wrote =
            tokio::task::spawn_blocking(move || write_files(&name, &dir, &base2, &files)).await;
        match wrote {
            Ok(Ok(paths)) => done.push(format!(
                "wrote {}",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(format!("writing failed: {e}")),
        }
    }
    if let Some(ch) = &r.email {
        match mail_it(shared, r, ch, &base, since, until, &rendered).await {
            Ok(reply) => done.push(format!("mailed via '{ch}' ({reply})")),
            Err(e) => failed.push(format!("cannot mail it via channel '{ch}': {e}")),
        }
    }
    if failed.is_empty() {
        Ok(done.join("; "))
    } else {
        Err(failed.join("; "))
    }
}

/// Writes each form as `BASE.EXT` into `dir`, creating `dir` (mode 0700) when its parent
/// exists; a missing parent is an error (an unmounted file system, a wrong path).
fn write_files(
    name: &str,
    dir: &Path,
    base: &str,
    files: &[(Format, String)],
) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        fsutil::ensure_dir_private(dir).map_err(|e| {
            format!(
                "directory {} does not exist and cannot be created ({e}); create it (mode 0700, owned by bmsd's user) or fix `directory` of report '{name}' in bmsd.toml",
                dir.display()
            )
        })?;
    }
    let mut out = Vec::new();
    for (format, text) in files {
        let dest = dir.join(format!("{base}.{}", format.extension()));
        let write = || -> Result<(), String> {
            let (mut f, tmp) =
                fsutil::create_temp(dir, ".bms-report-").map_err(|e| e.to_string())?;
            if let Err(e) = f.write_all(text.as_bytes()) {
                let _ = std::fs::remove_file(&tmp);
                return Err(format!("writing {}: {e}", tmp.display()));
            }
            fsutil::commit_temp(f, &tmp, &dest, "writing a report").map_err(|e| e.to_string())
        };
        write().map_err(|e| {
            format!(
                "cannot write {} ({e}); check that bmsd's user may write into {}",
                dest.display(),
                dir.display()
            )
        })?;
        out.push(dest);
    }
    Ok(out)
}

async fn mail_it(
    shared: &SharedRef,
    r: &ScheduledReport,
    channel: &str,
    base: &str,
    since: Timestamp,
    until: Timestamp,
    rendered: &[(Format, String)],
) -> Result<String, String> {
    let cfg = shared.config().config.alerts;
    let Some(crate::alerts::config::ChannelKind::Email(e)) =
        cfg.channel(channel).map(|c| c.kind.clone())
    else {
        return Err("it is not an e-mail channel of [alerts] any more (reloaded?)".into());
    };
    let get = |f: Format| {
        rendered
            .iter()
            .find(|(x, _)| *x == f)
            .map(|(_, t)| t.clone())
    };
    let text = get(Format::Text).unwrap_or_default();
    let html = get(Format::Html);
    // The HTML report is the body (text as its alternative); the other forms are attached.
    let attachments = r
        .formats
        .iter()
        .filter(|f| !matches!(f, Format::Html | Format::Text))
        .filter_map(|f| {
            get(*f).map(|t| {
                (
                    format!("{base}.{}", f.extension()),
                    f.content_type(),
                    t.into_bytes(),
                )
            })
        })
        .collect();
    let subject = format!(
        "[bms] {}: report {}, {} to {}",
        fsutil::hostname(),
        r.name,
        since.strftime("%Y-%m-%d %H:%M UTC"),
        until.strftime("%Y-%m-%d %H:%M UTC")
    );
    let timeout = cfg.attempt_timeout;
    let send =
        crate::alerts::send::mail_report(&e, &r.to, &subject, text, html, attachments, timeout);
    match tokio::time::timeout(timeout + std::time::Duration::from_secs(1), send).await {
        Ok(res) => res,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}
