//! bms-engine: the data plane of bms, usable without the daemon.
//!
//! A repository is a directory (local disk or NAS mount) holding content-defined,
//! deduplicated, compressed chunks in immutable pack files, index files, trees and
//! snapshots. See docs/repository-format.md for every file and byte.
//!
//! Entry points: [`Repository::init`], [`Repository::open`], [`Repository::backup`],
//! [`Repository::restore`], [`Repository::verify`], [`Repository::snapshots`],
//! [`Repository::ls`]. All are blocking; call them from a blocking thread.

pub mod backup;
pub mod chunker;
pub mod codec;
pub mod config;
pub mod copy;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod fsutil;
pub mod id;
pub mod immutable;
pub mod index;
pub mod keyslot;
pub mod lock;
pub mod pack;
pub mod prune;
mod reader;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod snapshot;
pub mod store;
pub mod stream;
pub mod tree;
pub mod usage;
pub mod verify;

pub use backup::{BackupOptions, BackupSummary, Progress};
pub use config::{ChunkerParams, CompressionParams, RepoConfig};
pub use error::{Error, ErrorKind, Result};
pub use id::ObjectId;
pub use repo::{DamagedSnapshot, Entry, InitOptions, Repository};
pub use restore::{Overwrite, RestoreOptions, RestoreProgress, RestoreSummary};
pub use snapshot::{Snapshot, SnapshotInfo, SnapshotStats};
pub use verify::{Problem, VerifyOptions, VerifyProgress, VerifyReport};

/// Snapshot ids are the hex BLAKE3 of the snapshot file; accepted forms: full id,
/// unique prefix of at least 8 hex characters, or `latest`.
pub type SnapshotId = String;
