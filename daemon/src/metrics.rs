//! The metrics endpoint: `GET /metrics` (OpenMetrics text, namespace `bms_`) and `GET /healthz`
//! over plain HTTP on `metrics_listen` (default 127.0.0.1:9597). Gauges are read from the catalog
//! and the runner at scrape time; counters ([`crate::events::RunCounters`]) are fed from the event bus, so that
//! pruning the run history cannot make them fall (docs/metrics.md).

use crate::catalog::CatalogFacts;
use crate::runner::RunnerRef;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::debug;

type Labels = Vec<(String, String)>;

type FGauge = Gauge<f64, AtomicU64>;

/// `/healthz` fails when the catalog thread takes longer than this to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Renders the metrics text for the given facts.
pub fn render(
    facts: &CatalogFacts,
    running: usize,
    queued: usize,
    uptime: f64,
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("bms");
    reg.register(
        "build",
        "Version of bmsd",
        Info::new(vec![("version".to_owned(), bms_proto::VERSION.to_owned())]),
    );
    let gauge = |reg: &mut Registry, name: &str, help: &str, v: f64| {
        let g = FGauge::default();
        g.set(v);
        reg.register(name, help, g);
    };
    gauge(
        &mut reg,
        "uptime_seconds",
        "Seconds since bmsd started",
        uptime,
    );
    gauge(
        &mut reg,
        "targets",
        "Targets in the catalog",
        facts.targets as f64,
    );
    gauge(
        &mut reg,
        "jobs",
        "Jobs in the catalog",
        facts.jobs.len() as f64,
    );
    gauge(&mut reg, "runs_running", "Runs going now", running as f64);
    gauge(
        &mut reg,
        "runs_queued",
        "Runs waiting for a slot",
        queued as f64,
    );

    let enabled = Family::<Labels, FGauge>::default();
    let last_end = Family::<Labels, FGauge>::default();
    let last_ok = Family::<Labels, FGauge>::default();
    let last_state = Family::<Labels, FGauge>::default();
    let last_bytes = Family::<Labels, FGauge>::default();
    let last_duration = Family::<Labels, FGauge>::default();
    let verify_end = Family::<Labels, FGauge>::default();
    let verify_ok = Family::<Labels, FGauge>::default();
    for j in &facts.jobs {
        let l = labels(&[("job", &j.name)]);
        enabled
            .get_or_create(&l)
            .set(if j.enabled { 1.0 } else { 0.0 });
        if let Some((t, state)) = &j.last_run {
            last_end.get_or_create(&l).set(*t);
            last_state
                .get_or_create(&labels(&[("job", &j.name), ("state", state)]))
                .set(1.0);
        }
        if let Some(t) = j.last_success {
            last_ok.get_or_create(&l).set(t);
        }
        if let Some(b) = j.last_snapshot_bytes {
            last_bytes.get_or_create(&l).set(b as f64);
        }
        if let Some(d) = j.last_duration_secs {
            last_duration.get_or_create(&l).set(d);
        }
        if let Some((t, ok)) = j.last_verify {
            verify_end.get_or_create(&l).set(t);
            verify_ok.get_or_create(&l).set(if ok { 1.0 } else { 0.0 });
        }
    }
    reg.register("job_enabled", "1 when the job is enabled", enabled);
    reg.register(
        "job_last_run_end_timestamp_seconds",
        "End of the latest finished backup run",
        last_end,
    );
    reg.register(
        "job_last_success_timestamp_seconds",
        "End of the latest successful backup run",
        last_ok,
    );
    reg.register(
        "job_last_run_state",
        "State of the latest finished backup run (1 for that state)",
        last_state,
    );
    reg.register(
        "job_last_snapshot_bytes",
        "Logical bytes of the latest successful snapshot",
        last_bytes,
    );
    reg.register(
        "job_last_run_duration_seconds",
        "Duration of the latest finished backup run",
        last_duration,
    );
    reg.register(
        "job_last_verify_timestamp_seconds",
        "End of the latest verification of the job's primary target that reached a verdict",
        verify_end,
    );
    reg.register(
        "job_last_verify_ok",
        "1 when the latest verification found no problem, 0 when it found some",
        verify_ok,
    );

    let runs = Family::<Labels, Counter>::default();
    for (job, kind, state, n) in &facts.run_counts {
        runs.get_or_create(&labels(&[("job", job), ("kind", kind), ("state", state)]))
            .inc_by(*n);
    }
    reg.register(
        "runs",
        "Finished runs, by job, kind and final state (since bmsd started, seeded from the catalog)",
        runs,
    );

    let check_ok = Family::<Labels, FGauge>::default();
    let free = Family::<Labels, FGauge>::default();
    for (t, ok, bytes) in &facts.target_checks {
        let l = labels(&[("target", t)]);
        check_ok.get_or_create(&l).set(if *ok { 1.0 } else { 0.0 });
        if let Some(b) = bytes {
            free.get_or_create(&l).set(*b as f64);
        }
    }
    reg.register(
        "target_check_ok",
        "1 when the latest pre-flight check of the target passed",
        check_ok,
    );
    reg.register(
        "target_free_bytes",
        "Free bytes seen by the latest pre-flight check",
        free,
    );
    let open = Family::<Labels, FGauge>::default();
    for sev in crate::alerts::config::SEVERITIES {
        let n = facts
            .alerts_open
            .iter()
            .find(|(s, _)| s == sev)
            .map_or(0, |(_, n)| *n);
        open.get_or_create(&labels(&[("severity", sev)]))
            .set(n as f64);
    }
    reg.register(
        "alerts_open",
        "Alerts not resolved (open or acknowledged), by severity",
        open,
    );
    let failed: Counter<u64> = Counter::default();
    failed.inc_by(facts.notification_failures);
    reg.register(
        "notification_failures",
        "Failed attempts to deliver alert notifications",
        failed,
    );
    gauge(
        &mut reg,
        "notifications_pending",
        "Alert notifications waiting in the outbox for delivery",
        facts.notifications_pending as f64,
    );
    let rules = Family::<Labels, Gauge>::default();
    for (job, verdicts, _) in &facts.compliance {
        for (rule, v) in verdicts {
            rules
                .get_or_create(&labels(&[("job", job), ("rule", rule)]))
                .set(*v);
        }
    }
    reg.register(
        "compliance_rule",
        "Verdict of a 3-2-1-1-0 rule per job: 1 pass, 0 fail, -1 unknown",
        rules,
    );
    gauge(
        &mut reg,
        "jobs_compliant",
        "Jobs where every 3-2-1-1-0 rule passes",
        facts.compliance.iter().filter(|(_, _, ok)| *ok).count() as f64,
    );
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

/// Serves HTTP until `cancel` fires.
pub async fn serve(listener: TcpListener, runner: RunnerRef, cancel: CancellationToken) {
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => return,
            c = listener.accept() => c,
        };
        match conn {
            Ok((stream, _)) => {
                let runner = runner.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(10), respond(stream, runner))
                        .await;
                });
            }
            Err(e) => {
                debug!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn respond(mut stream: TcpStream, runner: RunnerRef) -> std::io::Result<()> {
    let shared = &runner.shared;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => {
            let mut facts = shared.catalog.call(|c| c.facts()).await.map(|mut f| {
                f.run_counts = shared.events.counters.snapshot();
                f
            });
            if let Ok(f) = facts.as_mut() {
                match crate::compliance::watch::evaluate_now(shared, None).await {
                    Ok(jobs) => {
                        f.compliance = jobs
                            .into_iter()
                            .map(|j| {
                                let v = j
                                    .rules
                                    .iter()
                                    .map(|r| (r.rule.as_str().to_owned(), r.verdict.gauge()))
                                    .collect();
                                (j.job, v, j.compliant)
                            })
                            .collect();
                    }
                    Err(e) => debug!("metrics: cannot evaluate compliance: {e}"),
                }
            }
            let (running, queued) = runner.snapshot();
            match facts.map(|f| {
                render(
                    &f,
                    running.len(),
                    queued.len(),
                    shared.started.elapsed().as_secs_f64(),
                )
            }) {
                Ok(Ok(text)) if crate::metrics_text::wants_openmetrics(&head) => {
                    ("200 OK", OPENMETRICS, text)
                }
                Ok(Ok(text)) => (
                    "200 OK",
                    crate::metrics_text::TEXT_004,
                    crate::metrics_text::to_text_004(&text),
                ),
                Ok(Err(e)) => (
                    "500 Internal Server Error",
                    "text/plain",
                    format!("cannot encode metrics: {e}\n"),
                ),
                Err(e) => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("catalog unavailable: {e}\n"),
                ),
            }
        }
        ("GET", "/healthz") => {
            match crate::catalog::health_of(&shared.catalog, HEALTH_TIMEOUT).await {
                Ok(()) => ("200 OK", "text/plain", "ok\n".to_owned()),
                Err(e) => (
                    "503 Service Unavailable",
                    "text/plain",
                    format!("catalog unavailable: {e}\n"),
                ),
            }
        }
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".to_owned(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::JobFacts;

    #[test]
    fn renders_openmetrics_with_labels_and_eof() {
        let facts = CatalogFacts {
            targets: 2,
            jobs: vec![JobFacts {
                name: "etc".into(),
                enabled: true,
                last_run: Some((1_764_000_000.0, "failed".into())),
                last_success: Some(1_763_000_000.0),
                last_snapshot_bytes: Some(4096),
                last_duration_secs: Some(1.5),
                last_verify: Some((1_764_000_100.0, false)),
            }],
            run_counts: vec![("etc".into(), "backup".into(), "failed".into(), 3)],
            target_checks: vec![("nas1".into(), false, Some(1024))],
            compliance: vec![(
                "etc".into(),
                vec![("copies".into(), 0), ("errors".into(), -1)],
                false,
            )],
            ..Default::default()
        };
        let text = render(&facts, 1, 0, 12.0).unwrap();
        for line in [
            "bms_targets 2.0",
            "bms_job_enabled{job=\"etc\"} 1.0",
            "bms_job_last_run_state{job=\"etc\",state=\"failed\"} 1.0",
            "bms_runs_total{job=\"etc\",kind=\"backup\",state=\"failed\"} 3",
            "bms_target_check_ok{target=\"nas1\"} 0.0",
            "bms_job_last_verify_ok{job=\"etc\"} 0.0",
            "bms_job_last_verify_timestamp_seconds{job=\"etc\"} 1764000100.0",
            "bms_build_info{version=",
            "bms_compliance_rule{job=\"etc\",rule=\"errors\"} -1",
            "bms_jobs_compliant 0.0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
