//! bms tape: the [`TapeDrive`] trait with its two implementations — the Linux st driver
//! ([`st::StDrive`], `/dev/nst*`) and the file-backed virtual tape ([`virtual_tape`]) with its
//! virtual tape library ([`library::VirtualLibrary`]) — and the on-tape format ([`format`]),
//! described byte by byte in docs/tape-format.md. Operations are in docs/tape.md.

pub mod changer;
pub mod drive;
pub mod error;
pub mod format;
pub mod library;
pub mod st;
pub mod virtual_tape;

pub use drive::{DriveStatus, TapeDrive};
pub use error::{Result, TapeError};
