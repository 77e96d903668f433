//! Default locations (docs/configuration.md): system paths for root, XDG paths for everyone else.

use std::env;
use std::path::PathBuf;

/// Environment variable that names the control socket for bmsctl.
pub const SOCKET_ENV: &str = "BMS_SOCKET";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn home() -> PathBuf {
    env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match env::var_os(var) {
        Some(v) if PathBuf::from(&v).is_absolute() => PathBuf::from(v),
        _ => home().join(fallback),
    }
}

/// `/etc/bms/bmsd.toml` or `$XDG_CONFIG_HOME/bms/bmsd.toml`.
pub fn default_config() -> PathBuf {
    if is_root() {
        PathBuf::from("/etc/bms/bmsd.toml")
    } else {
        xdg("XDG_CONFIG_HOME", ".config").join("bms/bmsd.toml")
    }
}

/// `/var/lib/bms` or `$XDG_STATE_HOME/bms`.
pub fn default_state_dir() -> PathBuf {
    if is_root() {
        PathBuf::from("/var/lib/bms")
    } else {
        xdg("XDG_STATE_HOME", ".local/state").join("bms")
    }
}

/// The socket of the system daemon.
pub const SYSTEM_SOCKET: &str = "/run/bms/bmsd.sock";

/// `/run/bms/bmsd.sock` or `$XDG_RUNTIME_DIR/bms/bmsd.sock` (the state dir when there is no runtime dir).
pub fn default_socket() -> PathBuf {
    if is_root() {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    match env::var_os("XDG_RUNTIME_DIR") {
        Some(v) if PathBuf::from(&v).is_absolute() => PathBuf::from(v).join("bms/bmsd.sock"),
        _ => default_state_dir().join("bmsd.sock"),
    }
}

/// The metrics endpoint's default address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9597";

/// The socket a client uses by default: the user's own daemon when one is running, else the
/// system daemon (members of groups bms and bms-admin talk to it without --socket).
pub fn client_socket() -> PathBuf {
    let own = default_socket();
    if !own.exists() && std::path::Path::new(SYSTEM_SOCKET).exists() {
        return PathBuf::from(SYSTEM_SOCKET);
    }
    own
}
