//! The metrics endpoint's HTTP server (docs/metrics.md): `GET /metrics` and `GET /healthz` on
//! `metrics_listen`, over HTTPS when `[metrics]` names a certificate and key, behind basic auth
//! when it names users ([`crate::metrics_web`]). The web options are read for each connection,
//! so a reload or a renewed certificate applies without a restart.

use crate::catalog::CatalogFacts;
use crate::metrics_web::AuthCache;
use crate::runner::RunnerRef;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// `/healthz` fails when the catalog thread takes longer than this to answer.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection may take, TLS handshake included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The catalog's figures of the last scrape, with the catalog's change count they were read at
/// and when: a scrape reads the catalog again only when a row changed since, a job's next run
/// passed, or the figures are older than [`FACTS_MAX_AGE`] (compliance depends on the time: a
/// copy leaves its RPO, a verification its window).
#[derive(Default)]
struct FactsCache {
    inner: tokio::sync::Mutex<Option<(u64, std::time::Instant, Arc<CatalogFacts>)>>,
}

/// The oldest figures a scrape is served.
const FACTS_MAX_AGE: Duration = Duration::from_secs(60);

impl FactsCache {
    async fn get(&self, runner: &RunnerRef) -> Result<Arc<CatalogFacts>, bms_proto::ApiError> {
        let mut g = self.inner.lock().await;
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        let known = g.as_ref().and_then(|(n, at, f)| {
            let passed = f.jobs.iter().any(|j| j.next_run.is_some_and(|t| t <= now));
            (!passed && at.elapsed() < FACTS_MAX_AGE).then_some(*n)
        });
        let read = runner
            .shared
            .catalog
            .call(move |c| {
                let n = c.change_count();
                if known == Some(n) {
                    return Ok((n, None));
                }
                c.gauge_facts().map(|f| (n, Some(f)))
            })
            .await?;
        match (read, g.as_ref()) {
            ((_, None), Some((_, _, f))) => Ok(f.clone()),
            ((n, Some(mut f)), _) => {
                f.compliance = compliance_gauges(runner).await;
                let f = Arc::new(f);
                *g = Some((n, std::time::Instant::now(), f.clone()));
                Ok(f)
            }
            ((_, None), None) => Err(bms_proto::ApiError::new(
                bms_proto::ErrorKind::Internal,
                "the metrics cache is empty",
            )),
        }
    }
}

/// Every job's rules as gauge values (docs/compliance.md); none when the evaluation fails.
async fn compliance_gauges(runner: &RunnerRef) -> Vec<crate::catalog::ComplianceGauges> {
    match crate::compliance::watch::evaluate_now(&runner.shared, None).await {
        Ok(jobs) => jobs
            .into_iter()
            .map(|j| {
                let v = j
                    .rules
                    .iter()
                    .map(|r| (r.rule.as_str().to_owned(), r.verdict.gauge()))
                    .collect();
                (j.job, v, j.compliant)
            })
            .collect(),
        Err(e) => {
            debug!("metrics: cannot evaluate compliance: {e}");
            Vec::new()
        }
    }
}

/// What each connection shares.
#[derive(Default)]
struct Server {
    auth: AuthCache,
    facts: FactsCache,
    rendered: RenderedCache,
    runs: RunsCache,
}

/// The text of `bms_runs_total` in both formats, for the run counters' generation it was
/// rendered at.
#[derive(Default)]
struct RunsCache {
    inner: std::sync::Mutex<Option<RunsText>>,
}

/// The generation, the OpenMetrics text and (once asked for) the 0.0.4 text.
type RunsText = (u64, Arc<String>, Option<Arc<String>>);

impl RunsCache {
    fn get(
        &self,
        counters: &crate::events::RunCounters,
        openmetrics: bool,
    ) -> Result<Arc<String>, std::fmt::Error> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // The generation is read before the counts: a change in between renders again next time.
        let generation = counters.generation();
        let entry = match g.take() {
            Some(e) if e.0 == generation => e,
            _ => (
                generation,
                Arc::new(crate::metrics::render_runs(&counters.snapshot())?),
                None,
            ),
        };
        let (_, om, text) = g.insert(entry);
        if openmetrics {
            return Ok(om.clone());
        }
        let om = om.clone();
        Ok(text
            .get_or_insert_with(|| Arc::new(crate::metrics_text::to_text_004(&om)))
            .clone())
    }
}

/// The text of the catalog's families ([`crate::metrics::render_catalog`]) for the facts it
/// was rendered from, in OpenMetrics and (once asked for) in the 0.0.4 format: scrapes of an
/// unchanged catalog render only the live families.
#[derive(Default)]
struct RenderedCache {
    inner: std::sync::Mutex<Option<Rendered>>,
}

struct Rendered {
    facts: Arc<CatalogFacts>,
    openmetrics: Arc<String>,
    text_004: Option<Arc<String>>,
}

impl RenderedCache {
    fn get(
        &self,
        facts: &Arc<CatalogFacts>,
        openmetrics: bool,
    ) -> Result<Arc<String>, std::fmt::Error> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match g.take() {
            Some(r) if Arc::ptr_eq(&r.facts, facts) => r,
            _ => Rendered {
                facts: facts.clone(),
                openmetrics: Arc::new(crate::metrics::render_catalog(facts)?),
                text_004: None,
            },
        };
        let r = g.insert(fresh);
        if openmetrics {
            return Ok(r.openmetrics.clone());
        }
        let om = r.openmetrics.clone();
        Ok(r.text_004
            .get_or_insert_with(|| Arc::new(crate::metrics_text::to_text_004(&om)))
            .clone())
    }
}

/// The whole metrics text of one scrape: the live families rendered now, then the catalog's
/// from [`RenderedCache`].
fn scrape(
    runner: &RunnerRef,
    server: &Server,
    facts: &Arc<CatalogFacts>,
    openmetrics: bool,
) -> Result<String, std::fmt::Error> {
    let shared = &runner.shared;
    for ch in &shared.config().config.alerts.channels {
        for outcome in ["sent", "failed"] {
            shared.notifications.touch(&[&ch.name, outcome]);
        }
    }
    let live = CatalogFacts {
        usage: shared.usage.snapshot(),
        notifications: shared.notifications.snapshot(),
        ..CatalogFacts::default()
    };
    let (running, queued) = runner.snapshot();
    let config = shared.config().config;
    let started = shared
        .started_at
        .parse::<jiff::Timestamp>()
        .map_or(0.0, |t| t.as_millisecond() as f64 / 1000.0);
    let process = crate::metrics::ProcessFacts::read(&config.state_dir.join("catalog.db"), started);
    let live = crate::metrics::render_live(
        &live,
        &process,
        running.len(),
        queued.len(),
        shared.started.elapsed().as_secs_f64(),
    )?;
    let runs = server.runs.get(&shared.events.counters, openmetrics)?;
    let catalog = server.rendered.get(facts, openmetrics)?;
    let mut text = if openmetrics {
        live
    } else {
        crate::metrics_text::to_text_004(&live)
    };
    text.reserve(runs.len() + catalog.len() + crate::metrics::EOF.len());
    text.push_str(&runs);
    text.push_str(&catalog);
    if openmetrics {
        text.push_str(crate::metrics::EOF);
    }
    Ok(text)
}

/// Serves HTTP until `cancel` fires.
pub async fn serve(listener: TcpListener, runner: RunnerRef, cancel: CancellationToken) {
    let auth = Arc::new(Server::default());
    tokio::spawn(crate::usage::run(
        runner.shared.clone(),
        runner.shared.usage.clone(),
        cancel.clone(),
    ));
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => return,
            c = listener.accept() => c,
        };
        match conn {
            Ok((stream, _)) => {
                let (runner, auth) = (runner.clone(), auth.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(CONNECTION_TIMEOUT, connection(stream, runner, auth))
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

async fn connection(
    stream: TcpStream,
    runner: RunnerRef,
    auth: Arc<Server>,
) -> std::io::Result<()> {
    let web = runner.shared.config().config.metrics_web;
    let Some((cert, key)) = &web.tls else {
        return respond(stream, &runner, &auth).await;
    };
    let config = match crate::metrics_web::server_config(cert, key) {
        Ok(c) => c,
        Err(e) => {
            warn!("metrics endpoint: cannot use its certificate, connection refused: {e}");
            return Ok(());
        }
    };
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    match tls.accept(stream).await {
        Ok(s) => respond(s, &runner, &auth).await,
        Err(e) => {
            debug!("metrics endpoint: TLS handshake failed: {e}");
            Ok(())
        }
    }
}

async fn respond<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    runner: &RunnerRef,
    server: &Server,
) -> std::io::Result<()> {
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
    let users = shared.config().config.metrics_web.users;
    let mut extra = "";
    let (status, ctype, body) = if !server.auth.allows(&users, &head) {
        extra = "WWW-Authenticate: Basic realm=\"bms metrics\", charset=\"UTF-8\"\r\n";
        (
            "401 Unauthorized",
            "text/plain",
            "authentication required: give a user and password of [metrics] basic_auth_users\n"
                .to_owned(),
        )
    } else {
        route(runner, server, &head, method, path).await
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

async fn route(
    runner: &RunnerRef,
    server: &Server,
    head: &str,
    method: &str,
    path: &str,
) -> (&'static str, &'static str, String) {
    let shared = &runner.shared;
    match (method, path) {
        ("GET", "/metrics") => {
            let openmetrics = crate::metrics_text::wants_openmetrics(head);
            match server.facts.get(runner).await {
                Ok(facts) => match scrape(runner, server, &facts, openmetrics) {
                    Ok(text) if openmetrics => ("200 OK", OPENMETRICS, text),
                    Ok(text) => ("200 OK", crate::metrics_text::TEXT_004, text),
                    Err(e) => (
                        "500 Internal Server Error",
                        "text/plain",
                        format!("cannot encode metrics: {e}\n"),
                    ),
                },
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
    }
}
