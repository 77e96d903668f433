//! The storage seam: every object of a repository (config, packs, index files, snapshots, lock
//! files, keys) is read and written through a [`Store`]. No repository layout path is built
//! outside a store; the engine names objects by their kind and name only. What a store must
//! guarantee is described in docs/architecture.md ("Storage seam") and the on-disk layout of
//! [`LocalStore`] in docs/repository-format.md.

pub mod encrypted;
mod fault;
mod local;
pub mod seal;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::Result;

pub use fault::{Fault, FaultStore, Op, Rule, Trigger};
pub use local::{LocalStore, DIRS, LOCK_STAGE_PREFIX};

/// The kinds of objects a repository holds. Temporary files are not a kind: staging writes is
/// each store's own business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The repository's `config` (named [`CONFIG`]) and prune's condemned list ([`CONDEMNED`]).
    Config,
    /// Pack files, named by the hex id of their content.
    Packs,
    /// Index files, named by the hex id of their content.
    Index,
    /// Snapshot files, named by the hex id of their content.
    Snapshots,
    /// Lock (lease) files; see [`Store`] "Locks".
    Locks,
    /// Key files (reserved for encryption).
    Keys,
}

/// Name of the single [`Kind::Config`] object.
pub const CONFIG: &str = "config";

/// Name of prune's list of condemned packs, the other [`Kind::Config`] object (plain like the
/// config; docs/repository-format.md "Prune").
pub const CONDEMNED: &str = "condemned";

impl Kind {
    /// Every kind, in layout order.
    pub const ALL: [Kind; 6] = [
        Kind::Config,
        Kind::Packs,
        Kind::Index,
        Kind::Snapshots,
        Kind::Locks,
        Kind::Keys,
    ];

    /// A short name for messages ("pack", "index file", ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Config => "config",
            Kind::Packs => "pack",
            Kind::Index => "index file",
            Kind::Snapshots => "snapshot",
            Kind::Locks => "lock file",
            Kind::Keys => "key file",
        }
    }
}

/// How [`Store::put`] treats an object that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Never replace: the write is refused (returns false, nothing written) if the name exists.
    New,
    /// Replace atomically: readers see the old or the new content, never a mix.
    Replace,
}

/// Size and age of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStat {
    pub size: u64,
    /// Last modification, when the store knows it.
    pub modified: Option<SystemTime>,
}

/// What [`Store::seal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// The object cannot be deleted or changed before the given time.
    Sealed,
    /// This store cannot make objects immutable; nothing was changed.
    NotSupported,
}

/// An object opened for reads at offsets (packs are read blob by blob).
pub trait ObjectReader: Send + Sync {
    /// Fills `buf` from `offset`; a short object is an error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()>;
    /// The object's size in bytes.
    fn size(&self) -> Result<u64>;
    /// Where the object is, for messages.
    fn location(&self) -> &Path;
}

/// An object being written; it exists under its name only after [`ObjectWriter::commit`].
pub trait ObjectWriter: Send {
    /// Appends `data` (buffered by the store).
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    /// Makes the object durable under `name` (write-once: an existing object of that name,
    /// which has the same content as objects are named by their hash, is replaced atomically).
    fn commit(self: Box<Self>, name: &str) -> Result<()>;
    /// Discards what was written.
    fn abort(self: Box<Self>);
}

/// A repository's storage.
///
/// Durability: an object that [`Store::put`] or [`ObjectWriter::commit`] returned for is
/// complete and survives a crash; an interrupted write leaves no object under the name (at most
/// a temporary file that the store recognises as abandoned later).
///
/// Locks: lock files are objects of [`Kind::Locks`]: created with [`Put::New`], renewed by
/// their owner with [`Put::Replace`], listed, read and deleted like any object. Staging a lock
/// write must never race a cleanup of abandoned temporary files ([`Store::clean_tmp`]).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where the repository is (for messages; for a [`LocalStore`] its directory).
    fn location(&self) -> &Path;
    /// Where one object is, for messages (a path users may act on, e.g. a lock to remove).
    fn locate(&self, kind: Kind, name: &str) -> PathBuf;
    /// Checks that the store's layout is complete (called when a repository is opened).
    fn check(&self) -> Result<()>;
    /// Names of all objects of `kind`, sorted.
    fn list(&self, kind: Kind) -> Result<Vec<String>>;
    /// The whole object. A missing object is an error for which
    /// [`crate::Error::is_not_found`] is true.
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;
    /// Opens an object for reads at offsets.
    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ObjectReader>>;
    /// Size and age of an object, None if it does not exist.
    fn stat(&self, kind: Kind, name: &str) -> Result<Option<ObjectStat>>;
    /// Writes a whole object durably; false (nothing written) for [`Put::New`] on an existing name.
    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> Result<bool>;
    /// Starts a streamed object (a pack).
    fn create(&self, kind: Kind) -> Result<Box<dyn ObjectWriter>>;
    /// Removes an object; false if it did not exist.
    fn delete(&self, kind: Kind, name: &str) -> Result<bool>;
    /// Makes an object immutable until `until` where the storage supports it (object lock,
    /// WORM). A store that cannot says [`Seal::NotSupported`] and changes nothing.
    fn seal(&self, kind: Kind, name: &str, until: SystemTime) -> Result<Seal>;
    /// Until when an object is sealed, None when it is not (or the store cannot seal). Forget and
    /// prune ask this before they remove anything and refuse with [`crate::Error::Immutable`].
    fn sealed_until(&self, kind: Kind, name: &str) -> Result<Option<SystemTime>> {
        let _ = (kind, name);
        Ok(None)
    }
    /// Lifts the seal of an object (after its time has passed: the caller decides that on a
    /// trusted clock): the object may be removed again. True if it was sealed.
    fn unseal(&self, kind: Kind, name: &str) -> Result<bool> {
        let _ = (kind, name);
        Ok(false)
    }
    /// Whether an object's immutability is in force now (for a [`LocalStore`], its immutable
    /// attribute is set); None when the store cannot tell. Verify compares this with
    /// [`Store::sealed_until`] to find seals lifted behind bms's back.
    fn seal_intact(&self, kind: Kind, name: &str) -> Result<Option<bool>> {
        let _ = (kind, name);
        Ok(None)
    }
    /// Removes the temporary files of writers that are provably gone, or (writers of other
    /// hosts) untouched for longer than `max_age` (docs/repository-format.md "Temporary
    /// files"); returns how many. Called by writers holding the write lock.
    fn clean_tmp(&self, max_age: Duration) -> usize;
    /// Removes abandoned staged lock writes by the same rule; returns how many. Called when a
    /// lock is acquired.
    fn clean_lock_staging(&self, max_age: Duration) -> usize;

    /// Whether this store seals objects under a repository key
    /// ([`encrypted::EncryptedStore`]).
    fn encrypted(&self) -> bool {
        false
    }
}

/// Whether objects of `kind` are ever sealed: packs, index files and snapshots. The config,
/// lock files and key files stay mutable (docs/repository-format.md "Immutability").
pub fn sealable(kind: Kind) -> bool {
    matches!(kind, Kind::Packs | Kind::Index | Kind::Snapshots)
}

/// Whether `name` is a valid object name: non-empty, no `/`, not `.` or `..`, no NUL.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

#[cfg(test)]
mod tests;
