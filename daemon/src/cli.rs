//! Command line of bmsd.

use crate::logging::LogTarget;
use clap::Parser;
use std::path::PathBuf;

/// bmsd — the bms backup management daemon.
///
/// Runs on embedded defaults when started without arguments: as root it uses /etc/bms/bmsd.toml,
/// /var/lib/bms and /run/bms/bmsd.sock; as another user the XDG directories.
#[derive(Debug, Parser)]
#[command(name = "bmsd", version, about, long_about, args_override_self = true)]
pub struct Args {
    /// Configuration file (TOML); without it /etc/bms/bmsd.toml is read if it exists.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the catalog and the default local repository.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Path of the control socket.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Address of the metrics endpoint (e.g. 127.0.0.1:9597).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Log filter (error, warn, info, debug, trace, or target=level,...); wins over RUST_LOG and the config.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Do not serve org.bms.Manager1 on D-Bus (as `dbus = false` in the config).
    #[arg(long)]
    pub no_dbus: bool,
    /// Where logs go.
    #[arg(long, value_enum, default_value_t = LogTarget::Auto)]
    pub log_target: LogTarget,
    /// Validate the configuration, print it, and exit (0 when valid, 1 when not).
    #[arg(long)]
    pub check_config: bool,
    /// Print the bmsd(8) man page (roff) and exit.
    #[arg(long)]
    pub print_manpage: bool,
}
