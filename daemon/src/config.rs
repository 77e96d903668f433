//! The daemon's configuration: embedded defaults, overlaid by an optional TOML file, overlaid by
//! command-line flags. The file is versioned and strict (`deny_unknown_fields`); every error names
//! the key and the line.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The config file format version this bmsd reads.
pub const CONFIG_VERSION: u32 = 1;

/// The config file as written by the user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Spanned<u32>,
    state_dir: Option<Spanned<PathBuf>>,
    socket: Option<Spanned<PathBuf>>,
    metrics_listen: Option<Spanned<String>>,
    metrics: Option<Spanned<crate::metrics_web::MetricsFile>>,
    log_level: Option<Spanned<String>>,
    max_connections: Option<Spanned<u32>>,
    max_concurrent_runs: Option<Spanned<u32>>,
    run_history_days: Option<Spanned<u32>>,
    media_wait_secs: Option<Spanned<u32>>,
    alerts: Option<Spanned<crate::alerts::config::AlertsFile>>,
    reports: Option<Spanned<Vec<crate::reports::config::ReportFile>>>,
    dbus: Option<Spanned<bool>>,
}

/// Overrides from the command line; they win over the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub state_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub metrics_listen: Option<String>,
    pub log_level: Option<String>,
    /// `--no-dbus`.
    pub no_dbus: bool,
}

/// The configuration in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub metrics_listen: SocketAddr,
    /// HTTPS and basic auth of the metrics endpoint (docs/metrics.md).
    pub metrics_web: crate::metrics_web::MetricsWeb,
    /// Filter directives (`info`, `bmsd=debug,warn`).
    pub log_level: String,
    pub max_connections: u32,
    pub max_concurrent_runs: u32,
    /// Run records older than this many days are deleted (0: kept for ever).
    pub run_history_days: u32,
    /// How long a tape copy waits for a medium after it published `MediaNeeded` (seconds;
    /// docs/tape.md, "Tape targets").
    pub media_wait_secs: u32,
    /// Alert channels, routes and delivery settings (docs/alerts.md).
    pub alerts: crate::alerts::config::AlertsConfig,
    /// Reports bmsd writes and mails on a calendar (docs/reports.md, "Scheduled reports").
    pub reports: Vec<crate::reports::config::ScheduledReport>,
    /// Serve `org.bms.Manager1` on D-Bus (docs/dbus.md).
    pub dbus: bool,
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

impl Config {
    /// Where encrypted targets' default key files are: `keys/` in the directory of the config
    /// file in force (of the default config file when none is read).
    pub fn keys_dir(&self) -> PathBuf {
        let file = self
            .path
            .clone()
            .unwrap_or_else(bms_proto::paths::default_config);
        match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.join("keys"),
            _ => PathBuf::from("keys"),
        }
    }

    /// Embedded defaults for this user (root or not).
    pub fn defaults() -> Config {
        Config {
            path: None,
            state_dir: bms_proto::paths::default_state_dir(),
            socket: bms_proto::paths::default_socket(),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9597)),
            metrics_web: Default::default(),
            log_level: "info".into(),
            max_connections: 64,
            max_concurrent_runs: 2,
            run_history_days: 400,
            media_wait_secs: 1800,
            alerts: crate::alerts::config::AlertsConfig::default(),
            reports: Vec::new(),
            dbus: true,
        }
    }

    /// Loads the configuration: `explicit` must exist when given; otherwise the default file is
    /// read when it exists and the embedded defaults are used when it does not.
    pub fn load(explicit: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = Config::defaults();
        let file = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => {
                let p = bms_proto::paths::default_config();
                p.exists().then_some(p)
            }
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError(format!(
                    "cannot read config file {}: {e}; fix the path or start without --config to use the defaults",
                    path.display()
                ))
            })?;
            cfg.apply_file(&path, &text)?;
            cfg.path = Some(path);
        }
        cfg.apply_overrides(overrides)?;
        Ok(cfg)
    }

    fn apply_file(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let at = |span: std::ops::Range<usize>, key: &str, msg: String| {
            ConfigError(format!(
                "{}: line {}: key '{key}': {msg}",
                path.display(),
                line_of(text, span.start)
            ))
        };
        let file: FileConfig = toml::from_str(text)
            .map_err(|e| ConfigError(format!("invalid config file {}: {e}", path.display())))?;
        if *file.version.get_ref() != CONFIG_VERSION {
            return Err(at(
                file.version.span(),
                "version",
                format!(
                    "config version {} is not supported; this bmsd reads version {CONFIG_VERSION}",
                    file.version.get_ref()
                ),
            ));
        }
        if let Some(v) = file.state_dir {
            let span = v.span();
            self.state_dir = absolute(v.into_inner()).map_err(|m| at(span, "state_dir", m))?;
        }
        if let Some(v) = file.socket {
            let span = v.span();
            self.socket = absolute(v.into_inner()).map_err(|m| at(span, "socket", m))?;
        }
        if let Some(v) = file.metrics_listen {
            self.metrics_listen =
                parse_listen(v.get_ref()).map_err(|m| at(v.span(), "metrics_listen", m))?;
        }
        if let Some(v) = file.metrics {
            let span = v.span();
            self.metrics_web = v
                .into_inner()
                .resolve()
                .map_err(|m| at(span, "metrics", m))?;
        }
        if let Some(v) = file.log_level {
            check_log_level(v.get_ref()).map_err(|m| at(v.span(), "log_level", m))?;
            self.log_level = v.into_inner();
        }
        if let Some(v) = file.max_connections {
            self.max_connections =
                in_range(*v.get_ref(), 1, 4096).map_err(|m| at(v.span(), "max_connections", m))?;
        }
        if let Some(v) = file.max_concurrent_runs {
            self.max_concurrent_runs = in_range(*v.get_ref(), 1, 64)
                .map_err(|m| at(v.span(), "max_concurrent_runs", m))?;
        }
        if let Some(v) = file.dbus {
            self.dbus = v.into_inner();
        }
        if let Some(v) = file.run_history_days {
            self.run_history_days = in_range(*v.get_ref(), 0, 36500)
                .map_err(|m| at(v.span(), "run_history_days", m))?;
        }
        if let Some(v) = file.media_wait_secs {
            self.media_wait_secs =
                in_range(*v.get_ref(), 0, 86400).map_err(|m| at(v.span(), "media_wait_secs", m))?;
        }
        if let Some(v) = file.alerts {
            let span = v.span();
            self.alerts = v
                .into_inner()
                .resolve()
                .map_err(|m| at(span, "alerts", m))?;
        }
        // After [alerts]: a report names its e-mail channel.
        if let Some(v) = file.reports {
            let span = v.span();
            self.reports = crate::reports::config::resolve(v.into_inner(), &self.alerts)
                .map_err(|m| at(span, "reports", m))?;
        }
        Ok(())
    }

    fn apply_overrides(&mut self, o: &Overrides) -> Result<(), ConfigError> {
        let flag = |name: &str, m: String| ConfigError(format!("option --{name}: {m}"));
        if let Some(p) = &o.state_dir {
            self.state_dir = absolute(p.clone()).map_err(|m| flag("state-dir", m))?;
        }
        if let Some(p) = &o.socket {
            self.socket = absolute(p.clone()).map_err(|m| flag("socket", m))?;
        }
        if let Some(l) = &o.metrics_listen {
            self.metrics_listen = parse_listen(l).map_err(|m| flag("metrics-listen", m))?;
        }
        if let Some(l) = &o.log_level {
            check_log_level(l).map_err(|m| flag("log-level", m))?;
            self.log_level = l.clone();
        }
        if o.no_dbus {
            self.dbus = false;
        }
        Ok(())
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf, String> {
    if p.is_absolute() {
        Ok(p)
    } else {
        std::env::current_dir()
            .map(|d| d.join(&p))
            .map_err(|e| format!("cannot resolve relative path {}: {e}", p.display()))
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not an address:port such as 127.0.0.1:9597"))
}

/// Checks a log filter: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`) or
/// comma-separated `target=level` directives such as `bmsd=debug,warn`.
pub fn check_log_level(s: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let bad = || {
        format!("'{s}' is not a log level: use error, warn, info, debug, trace or target=level directives")
    };
    if s.trim().is_empty() {
        return Err(bad());
    }
    for directive in s.split(',') {
        let level = match directive.split_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => return Err(bad()),
            None => directive,
        };
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(bad());
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", bad()))
}

fn in_range(v: u32, lo: u32, hi: u32) -> Result<u32, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is out of range {lo}..={hi}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut c = Config::defaults();
        c.apply_file(Path::new("/etc/bms/bmsd.toml"), text)
            .map(|_| c)
    }

    #[test]
    fn full_file_applies() {
        let c = parse(
            "version = 1\nstate_dir = \"/srv/bms\"\nsocket = \"/run/x.sock\"\nmetrics_listen = \"127.0.0.1:9100\"\nlog_level = \"debug\"\nmax_connections = 8\nmax_concurrent_runs = 3\n",
        )
        .unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/srv/bms"));
        assert_eq!(c.socket, PathBuf::from("/run/x.sock"));
        assert_eq!(c.metrics_listen.port(), 9100);
        assert_eq!(c.log_level, "debug");
        assert_eq!((c.max_connections, c.max_concurrent_runs), (8, 3));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("version = 1\n\nsockett = \"/x\"\n").unwrap_err().0;
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("sockett"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_line() {
        let e = parse("version = 1\nmax_connections = 0\n").unwrap_err().0;
        assert!(e.contains("line 2") && e.contains("max_connections"), "{e}");
        let e = parse("version = 1\nlog_level = \"verbose\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2") && e.contains("log_level"), "{e}");
        let e = parse("version = 1\n metrics_listen = \"nowhere\"\n")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2") && e.contains("metrics_listen"), "{e}");
    }

    #[test]
    fn version_is_required_and_checked() {
        let e = parse("socket = \"/x\"\n").unwrap_err().0;
        assert!(e.contains("version"), "{e}");
        let e = parse("version = 2\n").unwrap_err().0;
        assert!(e.contains("version 2 is not supported"), "{e}");
    }

    #[test]
    fn overrides_win() {
        let mut c = parse("version = 1\nlog_level = \"warn\"\n").unwrap();
        c.apply_overrides(&Overrides {
            log_level: Some("debug".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.log_level, "debug");
    }
}
