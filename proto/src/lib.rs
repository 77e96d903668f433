//! bms-proto: the one contract between bmsd, bmsctl and the tests.
//!
//! - [`varlink`]: the wire format (NUL-terminated JSON messages) and its limits.
//! - [`api`]: the request and reply types of interface `org.bms.Manager`; each request names its reply.
//! - [`error`]: typed errors as they travel on the wire.
//! - [`client`]: a small blocking client over the Unix socket.
//! - [`calendar`]: the systemd calendar expressions used by job schedules.
//! - [`report`]: the period report rendered as text, JSON, CSV or HTML.

pub mod api;
pub mod calendar;
pub mod client;
pub mod error;
pub mod interface;
pub mod paths;
pub mod report;
pub mod units;
pub mod varlink;

pub use error::{ApiError, ErrorKind};

/// The Varlink interface served by bmsd.
pub const INTERFACE: &str = "org.bms.Manager";
/// Version of this crate, reported by `GetInfo` and `Status`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
