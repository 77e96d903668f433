//! Logging: journald when its socket exists (structured fields), else stderr. The filter can be
//! changed at run time (SIGHUP with a new `log_level`).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogTarget {
    /// journald when /run/systemd/journal/socket exists, else stderr.
    Auto,
    Journald,
    Stderr,
}

/// Changes the log filter of the running daemon.
pub struct LogHandle {
    handle: reload::Handle<EnvFilter, Registry>,
    /// Set when RUST_LOG or --log-level fixed the filter; then config reloads leave it alone.
    pinned: bool,
}

impl LogHandle {
    /// Applies a new filter from the config unless the filter was pinned at start.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        if self.pinned {
            return Ok(());
        }
        let filter = EnvFilter::builder()
            .parse(level)
            .map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Whether [`init`] chose journald (for `bmsctl doctor`, docs/operations.md).
static JOURNALD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the logs go to journald (else to stderr).
pub fn journald_in_use() -> bool {
    JOURNALD.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the global subscriber. `level` is the configured filter; RUST_LOG wins over it unless
/// `pinned_by_flag` (the --log-level flag was given).
pub fn init(target: LogTarget, level: &str, pinned_by_flag: bool) -> LogHandle {
    let env = std::env::var("RUST_LOG").ok().filter(|s| !s.is_empty());
    let (directives, pinned) = match (&env, pinned_by_flag) {
        (Some(e), false) => (e.clone(), true),
        _ => (level.to_owned(), pinned_by_flag),
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    let want_journal = match target {
        LogTarget::Stderr => false,
        LogTarget::Journald => true,
        LogTarget::Auto => std::path::Path::new(JOURNAL_SOCKET).exists(),
    };
    let journald = if want_journal {
        tracing_journald::layer().ok()
    } else {
        None
    };
    JOURNALD.store(journald.is_some(), std::sync::atomic::Ordering::Relaxed);
    match journald {
        Some(layer) => registry
            .with(layer.with_syslog_identifier("bmsd".into()))
            .init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
    }
    LogHandle { handle, pinned }
}

impl LogHandle {
    /// Whether RUST_LOG or --log-level fixed the filter.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }
}
