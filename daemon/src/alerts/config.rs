//! The `[alerts]` section of bmsd.toml (docs/configuration.md, docs/alerts.md): channels,
//! routes, per-job pings and the delivery settings. Secrets (SMTP password, webhook URLs, HMAC
//! keys) are read from files at load time (mode 0600 or stricter), kept in [`Secret`], which
//! never prints, and are never stored in the catalog.

use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret value; `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How bmsd talks to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection, then STARTTLS (required).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// No TLS (only to a loopback address unless `allow_plain` is set).
    Plain,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Http {
    pub url: Secret,
    /// HMAC-SHA256 key of the generic webhook's signature header.
    pub secret: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    Email(Email),
    Teams(Http),
    Webhook(Http),
    /// A healthchecks-style ping URL of one job (channel name `ping:JOB`).
    Ping(Http),
}

impl ChannelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelKind::Email(_) => "email",
            ChannelKind::Teams(_) => "teams",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Ping(_) => "ping",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
}

/// Which channels get which alerts; an empty list matches everything.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub channels: Vec<String>,
    pub kinds: Vec<String>,
    pub jobs: Vec<String>,
    pub min_severity: u8,
}

/// The alert settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    /// Reminders of open critical alerts after this long without a notice (0: never).
    pub renotify: Duration,
    /// A notification not delivered after this long is given up (and the alert says so).
    pub give_up: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Each delivery attempt gets this long.
    pub attempt_timeout: Duration,
    /// How often the RPO (dead-man's switch) is checked.
    pub rpo_check: Duration,
    pub channels: Vec<Channel>,
    pub routes: Vec<Route>,
    pub pings: Vec<Channel>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            renotify: Duration::from_secs(24 * 3600),
            give_up: Duration::from_secs(24 * 3600),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            attempt_timeout: Duration::from_secs(15),
            rpo_check: Duration::from_secs(10),
            channels: Vec::new(),
            routes: Vec::new(),
            pings: Vec::new(),
        }
    }
}

/// Severity names in rising order.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];

pub fn severity_rank(s: &str) -> u8 {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(0) as u8
}

impl AlertsConfig {
    /// The channel (or ping) of that name.
    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels
            .iter()
            .chain(self.pings.iter())
            .find(|c| c.name == name)
    }

    /// The channels that get an alert of `kind` and `severity` about `job`.
    pub fn route(&self, kind: &str, severity: &str, job: Option<&str>) -> Vec<String> {
        if self.routes.is_empty() {
            return self.channels.iter().map(|c| c.name.clone()).collect();
        }
        let mut out: Vec<String> = Vec::new();
        for r in &self.routes {
            let kind_ok = r.kinds.is_empty() || r.kinds.iter().any(|k| k == kind);
            let job_ok = r.jobs.is_empty() || job.is_some_and(|j| r.jobs.iter().any(|x| x == j));
            if kind_ok && job_ok && severity_rank(severity) >= r.min_severity {
                for c in &r.channels {
                    if !out.contains(c) {
                        out.push(c.clone());
                    }
                }
            }
        }
        out
    }

    /// The channels for `bmsd --check-config` (`alert channels: ...`): name, kind and where
    /// they send, with every secret left out (URLs as `https://host/***`, passwords as `***`).
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .channels
            .iter()
            .chain(self.pings.iter())
            .map(|c| format!("{} ({} {})", c.name, c.kind.as_str(), c.kind.target()))
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

impl ChannelKind {
    /// Where the channel sends, redacted.
    fn target(&self) -> String {
        match self {
            ChannelKind::Email(e) => {
                let tls = match e.tls {
                    SmtpTls::StartTls => "starttls",
                    SmtpTls::Implicit => "tls",
                    SmtpTls::Plain => "plain",
                };
                let auth = match &e.username {
                    Some(u) => format!(", user {u}, password ***"),
                    None => String::new(),
                };
                format!(
                    "smtp://{}:{} {tls}, to {}{auth}",
                    e.host,
                    e.port,
                    e.to.join(" ")
                )
            }
            ChannelKind::Teams(h) | ChannelKind::Webhook(h) | ChannelKind::Ping(h) => {
                let signed = if h.secret.is_some() { ", signed" } else { "" };
                format!("{}{signed}", super::send::redact_url(h.url.expose()))
            }
        }
    }
}

/// `[alerts]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsFile {
    renotify_hours: Option<f64>,
    give_up_hours: Option<f64>,
    retry_initial_ms: Option<u64>,
    retry_max_secs: Option<u64>,
    attempt_timeout_secs: Option<u64>,
    rpo_check_secs: Option<u64>,
    #[serde(default)]
    channels: Vec<ChannelFile>,
    #[serde(default)]
    routes: Vec<RouteFile>,
    #[serde(default)]
    pings: Vec<PingFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    name: String,
    kind: String,
    // e-mail
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    tls: Option<String>,
    #[serde(default)]
    allow_plain: bool,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    // both
    tls_ca_file: Option<PathBuf>,
    // Teams and webhooks
    url: Option<String>,
    url_file: Option<PathBuf>,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    channels: Vec<String>,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    jobs: Vec<String>,
    min_severity: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PingFile {
    job: String,
    url: Option<String>,
    url_file: Option<PathBuf>,
    tls_ca_file: Option<PathBuf>,
}

/// The alert kinds bmsd raises (docs/alerts.md).
pub const KINDS: [&str; 10] = [
    "run_failed",
    "run_partial",
    "run_missed",
    "rpo_exceeded",
    "verify_errors",
    "target_unavailable",
    "compliance_violated",
    "immutability_tamper",
    "media_needed",
    "report_failed",
];

/// Reads a secret file: it must be a regular file that only its owner may read.
fn secret_file(key: &str, path: &Path) -> Result<Secret, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{key} {} is readable by others (mode {mode:04o}): run `chmod 600 {}`",
            path.display(),
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("{key} {}: {e}", path.display()))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(format!("{key} {} is empty", path.display()));
    }
    Ok(Secret(text))
}

fn one_of(
    what: &str,
    value: Option<String>,
    file: Option<PathBuf>,
    file_key: &str,
) -> Result<Option<Secret>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!("give {what} or {file_key}, not both")),
        (Some(v), None) => Ok(Some(Secret(v))),
        (None, Some(p)) => secret_file(file_key, &p).map(Some),
        (None, None) => Ok(None),
    }
}

fn http_url(name: &str, url: &Secret) -> Result<(), String> {
    let u = url.expose();
    if !(u.starts_with("https://") || u.starts_with("http://")) {
        return Err(format!(
            "channel '{name}': the URL must start with https:// or http:// (it is not shown here)"
        ));
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn channel(c: ChannelFile) -> Result<Channel, String> {
    let name = c.name.clone();
    if name.is_empty() || name.starts_with("ping:") || name.contains(char::is_whitespace) {
        return Err(format!(
            "channel name '{name}' is not allowed: use a short name without spaces or 'ping:'"
        ));
    }
    let ctx = |m: String| format!("channel '{name}': {m}");
    let kind = match c.kind.as_str() {
        "email" => {
            let host = c
                .smtp_host
                .ok_or_else(|| ctx("an email channel needs smtp_host".into()))?;
            let tls = match c.tls.as_deref().unwrap_or("starttls") {
                "starttls" => SmtpTls::StartTls,
                "tls" => SmtpTls::Implicit,
                "plain" => SmtpTls::Plain,
                other => {
                    return Err(ctx(format!(
                        "tls = '{other}' is not one of starttls, tls, plain"
                    )))
                }
            };
            if tls == SmtpTls::Plain && !is_loopback(&host) && !c.allow_plain {
                return Err(ctx(format!(
                    "tls = 'plain' sends mail unencrypted to {host}: use starttls or tls, or set allow_plain = true"
                )));
            }
            let port = c.smtp_port.unwrap_or(match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Implicit => 465,
                SmtpTls::Plain => 25,
            });
            let password =
                one_of("password", c.password, c.password_file, "password_file").map_err(ctx)?;
            if password.is_some() != c.username.is_some() {
                return Err(ctx(
                    "username and password (or password_file) go together".into()
                ));
            }
            let from = c
                .from
                .ok_or_else(|| ctx("an email channel needs from = \"bms@example.org\"".into()))?;
            if c.to.is_empty() {
                return Err(ctx(
                    "an email channel needs to = [\"ops@example.org\"]".into()
                ));
            }
            for a in std::iter::once(&from).chain(c.to.iter()) {
                a.parse::<lettre::message::Mailbox>()
                    .map_err(|e| ctx(format!("'{a}' is not an e-mail address: {e}")))?;
            }
            ChannelKind::Email(Email {
                host,
                port,
                tls,
                ca_file: c.tls_ca_file,
                username: c.username,
                password,
                from,
                to: c.to,
            })
        }
        "teams" | "webhook" => {
            let url = one_of("url", c.url, c.url_file, "url_file")
                .map_err(ctx)?
                .ok_or_else(|| ctx("needs url_file (or url)".into()))?;
            http_url(&name, &url)?;
            let secret = one_of("secret", c.secret, c.secret_file, "secret_file").map_err(ctx)?;
            if secret.is_some() && c.kind == "teams" {
                return Err(ctx(
                    "secret is for webhook channels; Teams does not check it".into(),
                ));
            }
            let http = Http {
                url,
                secret,
                ca_file: c.tls_ca_file,
            };
            if c.kind == "teams" {
                ChannelKind::Teams(http)
            } else {
                ChannelKind::Webhook(http)
            }
        }
        other => {
            return Err(ctx(format!(
                "kind = '{other}' is not one of email, teams, webhook"
            )))
        }
    };
    if let ChannelKind::Email(Email {
        ca_file: Some(p), ..
    })
    | ChannelKind::Teams(Http {
        ca_file: Some(p), ..
    })
    | ChannelKind::Webhook(Http {
        ca_file: Some(p), ..
    }) = &kind
    {
        crate::alerts::tls::read_ca_file(p).map_err(ctx)?;
    }
    Ok(Channel { name, kind })
}

/// A setting in hours, which may be a fraction (`0.5` is 30 minutes), at least one second;
/// 0 stays 0 when `zero_ok` (where it means "never").
fn hours(
    key: &str,
    value: Option<f64>,
    default: Duration,
    zero_ok: bool,
) -> Result<Duration, String> {
    let Some(h) = value else {
        return Ok(default);
    };
    if !h.is_finite() || !(0.0..=87_600.0).contains(&h) {
        return Err(format!(
            "{key} = {h} is not a number of hours from 0 to 87600 (fractions allowed: 0.5 is 30 minutes)"
        ));
    }
    let secs = h * 3600.0;
    Ok(Duration::from_secs_f64(if secs == 0.0 && zero_ok {
        0.0
    } else {
        secs.max(1.0)
    }))
}

impl AlertsFile {
    /// Checks the section and reads its secret files.
    pub fn resolve(self) -> Result<AlertsConfig, String> {
        let d = AlertsConfig::default();
        let mut cfg = AlertsConfig {
            renotify: hours("renotify_hours", self.renotify_hours, d.renotify, true)?,
            give_up: hours("give_up_hours", self.give_up_hours, d.give_up, false)?,
            retry_initial: self.retry_initial_ms.map_or(d.retry_initial, |m| {
                Duration::from_millis(m.clamp(10, 3_600_000))
            }),
            retry_max: self
                .retry_max_secs
                .map_or(d.retry_max, |s| Duration::from_secs(s.clamp(1, 86400))),
            attempt_timeout: self
                .attempt_timeout_secs
                .map_or(d.attempt_timeout, |s| Duration::from_secs(s.clamp(1, 600))),
            rpo_check: self
                .rpo_check_secs
                .map_or(d.rpo_check, |s| Duration::from_secs(s.clamp(1, 3600))),
            ..d
        };
        for c in self.channels {
            let c = channel(c)?;
            if cfg.channels.iter().any(|x| x.name == c.name) {
                return Err(format!("channel '{}' is defined twice", c.name));
            }
            cfg.channels.push(c);
        }
        for r in self.routes {
            for c in &r.channels {
                if !cfg.channels.iter().any(|x| &x.name == c) {
                    return Err(format!("a route names channel '{c}', which is not defined"));
                }
            }
            for k in &r.kinds {
                if !KINDS.contains(&k.as_str()) {
                    return Err(format!(
                        "a route names kind '{k}': use one of {}",
                        KINDS.join(", ")
                    ));
                }
            }
            let min = r.min_severity.unwrap_or_else(|| "info".into());
            if !SEVERITIES.contains(&min.as_str()) {
                return Err(format!(
                    "min_severity = '{min}' is not one of info, warning, critical"
                ));
            }
            cfg.routes.push(Route {
                channels: r.channels,
                kinds: r.kinds,
                jobs: r.jobs,
                min_severity: severity_rank(&min),
            });
        }
        for p in self.pings {
            let name = format!("ping:{}", p.job);
            let url = one_of("url", p.url, p.url_file, "url_file")
                .map_err(|m| format!("ping of job '{}': {m}", p.job))?
                .ok_or_else(|| format!("ping of job '{}' needs url_file (or url)", p.job))?;
            http_url(&name, &url)?;
            if cfg.pings.iter().any(|x| x.name == name) {
                return Err(format!("job '{}' has two pings", p.job));
            }
            cfg.pings.push(Channel {
                name,
                kind: ChannelKind::Ping(Http {
                    url,
                    secret: None,
                    ca_file: p.tls_ca_file,
                }),
            });
        }
        Ok(cfg)
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
