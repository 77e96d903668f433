//! D-Bus: `org.bms.Manager1` on the system bus (the session bus when bmsd runs as another user
//! than root), a second transport beside the control socket with no handler logic of its own
//! (docs/dbus.md, docs/architecture.md "The service layer").

mod error;
mod manager;
mod signals;

pub use error::Error;
pub use manager::Manager;

use crate::runner::RunnerRef;
use std::time::Duration;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

/// The bus name bmsd owns.
pub const NAME: &str = "org.bms.Manager1";
/// The manager object's path.
pub const PATH: &str = "/org/bms/Manager1";
/// How long connecting to the bus and taking the name may take before bmsd goes on without it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects to the bus, serves the manager object and owns [`NAME`]; returns the connection, or
/// None when D-Bus is off (disabled, no bus, or the name refused: logged once, bmsd runs on).
pub async fn start(
    runner: RunnerRef,
    enabled: bool,
    tracker: &TaskTracker,
) -> Option<zbus::Connection> {
    if !enabled {
        info!("D-Bus is off (dbus = false or --no-dbus)");
        return None;
    }
    let system = nix::unistd::geteuid().is_root();
    let which = if system { "system" } else { "session" };
    let builder = if system {
        zbus::connection::Builder::system()
    } else {
        zbus::connection::Builder::session()
    };
    let build = builder
        .serve_at(PATH, Manager::new(runner.clone()))
        .name(NAME)
        .build();
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, build).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            warn!("D-Bus is off: cannot serve {NAME} on the {which} bus: {e}; bmsd runs without it (set dbus = false in the config to say so)");
            return None;
        }
        Err(_) => {
            warn!("D-Bus is off: the {which} bus did not answer within {CONNECT_TIMEOUT:?}; bmsd runs without it");
            return None;
        }
    };
    match conn.object_server().interface::<_, Manager>(PATH).await {
        Ok(iface) => {
            tracker.spawn(signals::run(
                runner.clone(),
                iface,
                runner.shared.shutdown.clone(),
            ));
        }
        Err(e) => warn!("D-Bus signals are off: {e}"),
    }
    info!("D-Bus: {NAME} on the {which} bus");
    Some(conn)
}
