//! The tape crate's typed errors. Every message says what went wrong and what to do about it.

use std::io;

/// Result alias of the tape crate.
pub type Result<T, E = TapeError> = std::result::Result<T, E>;

/// Everything a tape operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// The drive holds no cartridge.
    #[error("drive {drive} holds no cartridge: load one (with the library changer or by hand) and try again")]
    NoMedium { drive: String },
    /// The loaded cartridge refuses writes.
    #[error("cartridge {medium} is write-protected: move its write-protect tab to the writable position, or load another cartridge")]
    WriteProtected { medium: String },
    /// Writing reached the end of the medium (the kernel's ENOSPC after the early warning).
    #[error("end of medium on cartridge {medium}: it is full; continue on another cartridge of the pool")]
    EndOfMedium { medium: String },
    /// Reading went past the last recorded data (blank tape).
    #[error("no more data on cartridge {medium} (end of recorded data): the tape file asked for was never written")]
    EndOfData { medium: String },
    /// The drive or the medium reported a hardware or media error.
    #[error("I/O error on {what}: {source}; clean the drive, retry with another cartridge, and check the kernel log (`journalctl -k`)")]
    Io {
        /// The device or cartridge and the operation.
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// An argument the drive cannot honour (e.g. a block of the wrong size).
    #[error("{0}")]
    Invalid(String),
    /// Bytes on tape that are not in the bms tape format (docs/tape-format.md).
    #[error("tape file is not in the bms tape format: {0}; check that this tape was written by bms, or list it with `tar -t -b 512`")]
    Format(String),
    /// The medium filled in the middle of an archive volume: that volume is not complete.
    #[error("{0}")]
    IncompleteArchive(String),
    /// A virtual library or cartridge operation that does not fit the library's state.
    #[error("{0}")]
    Library(String),
}

impl TapeError {
    /// An I/O error on `what`.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        TapeError::Io {
            what: what.into(),
            source,
        }
    }
}
