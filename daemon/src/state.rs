//! State shared by the daemon's tasks: the catalog handle, the event bus and the configuration
//! in force. The runner holds this core (`runner::Runner::shared`); the core does not know the
//! runner (docs/architecture.md).

use crate::catalog::CatalogHandle;
use crate::config::Config;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The configuration in force and how often it was loaded.
#[derive(Debug, Clone)]
pub struct ConfigState {
    pub config: Config,
    pub generation: u32,
    pub loaded_at: String,
    /// The log filter actually in effect (RUST_LOG or --log-level may pin it).
    pub effective_log_level: String,
}

pub struct Shared {
    pub catalog: CatalogHandle,
    /// The event bus (docs/architecture.md, "Events").
    pub events: crate::events::Bus,
    /// Wakes the scheduler after job changes.
    pub scheduler_wake: tokio::sync::Notify,
    pub started: Instant,
    pub started_at: String,
    pub daemon_uid: u32,
    /// Where the metrics endpoint listens (none when it could not bind).
    pub metrics_address: std::sync::OnceLock<std::net::SocketAddr>,
    /// Alert notification attempts by (channel, outcome "sent" | "failed") (docs/metrics.md).
    pub notifications: crate::counters::LabelCounters,
    /// Fires when the daemon starts shutting down.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Repository figures per target (docs/metrics.md), measured while the metrics endpoint
    /// runs; the report reads the ratios from here.
    pub usage: Arc<crate::usage::UsageBook>,
    config: RwLock<ConfigState>,
}

pub type SharedRef = Arc<Shared>;

impl Shared {
    pub fn new(catalog: CatalogHandle, config: ConfigState) -> SharedRef {
        Arc::new(Shared {
            catalog,
            events: crate::events::Bus::new(),
            scheduler_wake: tokio::sync::Notify::new(),
            started: Instant::now(),
            started_at: crate::catalog::now_rfc3339(),
            daemon_uid: nix::unistd::geteuid().as_raw(),
            metrics_address: std::sync::OnceLock::new(),
            notifications: crate::counters::LabelCounters::default(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            usage: Arc::default(),
            config: RwLock::new(config),
        })
    }

    pub fn config(&self) -> ConfigState {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set_config(&self, new: ConfigState) {
        match self.config.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
