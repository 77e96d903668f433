//! The engine's typed errors. Every message says what went wrong and what to do about it.

use std::io;
use std::path::PathBuf;

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can make an engine operation fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on the repository or a source/target file failed.
    #[error("{}", io_message(op, path, source))]
    Io {
        /// What the engine was doing, e.g. "writing pack".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The path holds no repository.
    #[error("{path} is not a bms repository (no readable `config` file): check the path, or create one with `bmsctl repo init`")]
    NotARepository { path: PathBuf },
    /// `init` on a directory that is not empty.
    #[error("{path} already exists and is not empty: choose an empty or new directory for a new repository")]
    AlreadyExists { path: PathBuf },
    /// The repository was written by a newer (or foreign) format.
    #[error("repository {path} has format version {found}, this bms supports only version(s) {supported}: upgrade bms to read it")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: String,
    },
    /// The repository needs a feature this build does not have (e.g. encryption).
    #[error("repository {path} requires {feature}, which this version of bms does not implement: upgrade bms to read it")]
    UnsupportedFeature { path: PathBuf, feature: String },
    /// A repository file failed its integrity check or could not be decoded.
    #[error(
        "corrupt {what}: {detail}; run `bmsctl repo verify --read-data` to see what is affected"
    )]
    Corrupt { what: String, detail: String },
    /// Another live process holds a conflicting lock.
    #[error("repository {repo} is locked by {holder}: wait for it to finish, or if that process is gone remove {lock_file}")]
    Locked {
        repo: PathBuf,
        holder: String,
        lock_file: PathBuf,
    },
    /// No snapshot matches the given id, prefix or `latest`.
    #[error("no snapshot matches {0:?}: list them with `bmsctl repo snapshots`")]
    SnapshotNotFound(String),
    /// A snapshot id prefix matched several snapshots.
    #[error(
        "snapshot prefix {prefix:?} is ambiguous ({count} snapshots match): give more characters"
    )]
    AmbiguousSnapshot { prefix: String, count: usize },
    /// A path was asked for that the snapshot does not contain.
    #[error("path {path:?} does not exist in snapshot {snapshot}: list the snapshot with `bmsctl repo ls`")]
    PathNotFound { snapshot: String, path: String },
    /// An object the snapshot needs is missing from the index.
    #[error("{what} {id} is missing from the repository index: run `bmsctl repo verify` to see what is affected")]
    MissingObject { what: &'static str, id: String },
    /// The caller gave an unusable argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// The operation was cancelled by the caller.
    #[error(
        "cancelled: no snapshot was written; data already stored will be reused by the next run"
    )]
    Cancelled,
    /// No source could be read at all.
    #[error("nothing was backed up: {0}")]
    NoSources(String),
    /// A bug in bms (a serialisation failure of its own data, a worker thread that panicked):
    /// never the caller's fault.
    #[error("internal error: {0}; this is a bug in bms, please report it")]
    Internal(String),
    /// An object (or the snapshot that needs it) is sealed and may not be removed or changed
    /// before `until` (RFC 3339), docs/repository-format.md "Immutability".
    #[error("{what} is immutable until {until}: it cannot be removed before then")]
    Immutable { what: String, until: String },
    /// No key slot of an encrypted repository opens with the key given (docs/repository-format.md
    /// "Encryption"); the text says which key ("the key file does not open this repository").
    #[error("{0}")]
    WrongKey(String),
}

/// The class of an [`Error`], for callers that map errors to protocol codes and exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A snapshot, a path in a snapshot, an object or the repository itself does not exist.
    NotFound,
    /// Stored data failed its integrity check.
    Corrupt,
    /// The storage is full (ENOSPC, EDQUOT).
    NoSpace,
    /// Any other I/O failure.
    Io,
    /// Another live process holds a conflicting lock.
    Locked,
    /// The caller cancelled the operation.
    Cancelled,
    /// The request was unusable (bad argument, ambiguous prefix, nothing to back up).
    InvalidArgument,
    /// The object to be created exists already.
    AlreadyExists,
    /// The repository needs a newer bms (format version or feature).
    Unsupported,
    /// A bug in bms.
    Internal,
    /// The object is sealed (immutable) until a later time.
    Immutable,
}

impl Error {
    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// The errno of an I/O error, if this is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } => match source.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
                _ => ErrorKind::Io,
            },
            Error::NotARepository { .. }
            | Error::SnapshotNotFound(_)
            | Error::PathNotFound { .. }
            | Error::MissingObject { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::UnsupportedVersion { .. } | Error::UnsupportedFeature { .. } => {
                ErrorKind::Unsupported
            }
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::AmbiguousSnapshot { .. }
            | Error::InvalidArgument(_)
            | Error::NoSources(_)
            | Error::WrongKey(_) => ErrorKind::InvalidArgument,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Immutable { .. } => ErrorKind::Immutable,
        }
    }

    /// Builds an [`Error::Internal`] from a serialisation failure of the engine's own data.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        Error::Internal(format!("{what}: {e}"))
    }

    /// True when a store object (or file) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// True when the error is "no space left on device" (or quota exceeded).
    pub fn is_no_space(&self) -> bool {
        matches!(self.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    }
}

fn io_message(op: &str, path: &std::path::Path, err: &io::Error) -> String {
    let hint = match err.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "no space left on device: free space on the target and run the backup again; data already written will be reused"
        }
        Some(libc::EIO) => "I/O error: the storage may be failing or a network mount is gone; check `dmesg` and the mount, then run `bmsctl repo verify`",
        Some(libc::EACCES) | Some(libc::EPERM) => "permission denied: run as a user that may access this path",
        Some(libc::EROFS) => "the filesystem is read-only: remount it read-write or choose another path; under the systemd unit (ProtectSystem=strict) allow the path with a drop-in: `systemctl edit bmsd`, add `[Service]` `ReadWritePaths=PATH`, then `systemctl restart bmsd` (docs/operations.md)",
        Some(libc::ENOENT) => "no such file or directory: check the path",
        Some(libc::ESTALE) => "stale network file handle: remount the NAS share and try again",
        _ => "",
    };
    if hint.is_empty() {
        format!("{op} {}: {err}", path.display())
    } else {
        format!("{op} {}: {err}; {hint}", path.display())
    }
}

/// Adds path context to `std::io::Result`s.
pub trait IoContext<T> {
    /// Wraps the error with the operation and path.
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(errno: i32) -> Error {
        Error::io("writing pack", "/r/p", io::Error::from_raw_os_error(errno))
    }

    #[test]
    fn every_error_has_its_kind() {
        let p = PathBuf::from("/r");
        let cases = [
            (io(libc::ENOSPC), ErrorKind::NoSpace),
            (io(libc::EDQUOT), ErrorKind::NoSpace),
            (io(libc::EIO), ErrorKind::Io),
            (io(libc::ENOENT), ErrorKind::Io),
            (
                Error::NotARepository { path: p.clone() },
                ErrorKind::NotFound,
            ),
            (Error::SnapshotNotFound("x".into()), ErrorKind::NotFound),
            (
                Error::PathNotFound {
                    snapshot: "s".into(),
                    path: "/a".into(),
                },
                ErrorKind::NotFound,
            ),
            (
                Error::MissingObject {
                    what: "chunk",
                    id: "ab".into(),
                },
                ErrorKind::NotFound,
            ),
            (Error::corrupt("pack", "bad"), ErrorKind::Corrupt),
            (
                Error::Locked {
                    repo: p.clone(),
                    holder: "h".into(),
                    lock_file: p.clone(),
                },
                ErrorKind::Locked,
            ),
            (Error::Cancelled, ErrorKind::Cancelled),
            (
                Error::InvalidArgument("x".into()),
                ErrorKind::InvalidArgument,
            ),
            (
                Error::AmbiguousSnapshot {
                    prefix: "ab".into(),
                    count: 2,
                },
                ErrorKind::InvalidArgument,
            ),
            (Error::NoSources("x".into()), ErrorKind::InvalidArgument),
            (
                Error::AlreadyExists { path: p.clone() },
                ErrorKind::AlreadyExists,
            ),
            (
                Error::UnsupportedVersion {
                    path: p.clone(),
                    found: 9,
                    supported: "1".into(),
                },
                ErrorKind::Unsupported,
            ),
            (
                Error::UnsupportedFeature {
                    path: p,
                    feature: "x".into(),
                },
                ErrorKind::Unsupported,
            ),
            (Error::Internal("bug".into()), ErrorKind::Internal),
        ];
        for (e, k) in cases {
            assert_eq!(e.kind(), k, "{e}");
        }
    }

    #[test]
    fn serialisation_bugs_are_internal_not_invalid_arguments() {
        let bad = serde_json::from_str::<u32>("x").unwrap_err();
        let e = Error::internal("encoding snapshot", bad);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(
            e.to_string()
                .starts_with("internal error: encoding snapshot"),
            "{e}"
        );
    }

    #[test]
    fn not_found_is_told_apart_from_other_io_errors() {
        assert!(io(libc::ENOENT).is_not_found());
        assert!(!io(libc::EIO).is_not_found());
        assert!(!Error::Cancelled.is_not_found());
    }
}

#[cfg(test)]
mod read_only_tests {
    use super::*;

    #[test]
    fn a_read_only_path_says_how_to_allow_it_under_the_unit() {
        let e = Error::io(
            "creating restore target",
            "/opt/restore",
            io::Error::from_raw_os_error(libc::EROFS),
        )
        .to_string();
        assert!(e.contains("/opt/restore") && e.contains("read-only"), "{e}");
        assert!(
            e.contains("ReadWritePaths=") && e.contains("systemctl edit bmsd"),
            "{e}"
        );
    }
}
