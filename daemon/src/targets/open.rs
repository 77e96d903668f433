//! Opening what runs write to and read from. For disk and NAS targets that is the repository in
//! the target's directory, for S3 targets the one under the bucket's prefix (docs/s3.md); tape
//! targets have no writer yet and are refused plainly.

use super::{keys, Purpose, Target};
use bms_engine::Repository;
use bms_proto::api::TargetKind;
use bms_proto::{ApiError, ErrorKind};
use std::path::Path;
use std::sync::Arc;

/// Why a target could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The kind has no reader or writer for this purpose yet.
    NotSupported {
        target: String,
        kind: TargetKind,
        purpose: Purpose,
        message: String,
    },
    /// An encrypted target's key file is missing, unreadable or does not open its repository.
    Key { target: String, message: String },
    /// An S3 target's store could not be set up (its credentials, its endpoint URL).
    Store { target: String, message: String },
    /// The target's repository could not be opened or created.
    Repository(bms_engine::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotSupported { message, .. }
            | OpenError::Key { message, .. }
            | OpenError::Store { message, .. } => f.write_str(message),
            OpenError::Repository(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<bms_engine::Error> for OpenError {
    fn from(e: bms_engine::Error) -> Self {
        OpenError::Repository(e)
    }
}

/// For the runner's engine calls, whose errors are the engine's: a kind that is not supported
/// is a request the engine cannot carry out, with the message that says so.
impl From<OpenError> for bms_engine::Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Repository(e) => e,
            OpenError::Key { message, .. } => bms_engine::Error::WrongKey(message),
            OpenError::Store { message, .. } => bms_engine::Error::InvalidArgument(message),
            e @ OpenError::NotSupported { .. } => bms_engine::Error::InvalidArgument(e.to_string()),
        }
    }
}

impl From<OpenError> for ApiError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::NotSupported { message, .. } => {
                ApiError::new(ErrorKind::NotSupported, message)
            }
            OpenError::Key { message, .. } | OpenError::Store { message, .. } => {
                ApiError::new(ErrorKind::InvalidArgument, message)
            }
            OpenError::Repository(e) => ApiError::internal(e.to_string()),
        }
    }
}

impl Target {
    /// `Ok` when the target's kind supports `purpose`, else the plain refusal.
    pub fn require(&self, purpose: Purpose) -> Result<(), OpenError> {
        let caps = self.capabilities();
        if caps.allows(purpose) {
            return Ok(());
        }
        Err(OpenError::NotSupported {
            target: self.name.clone(),
            kind: self.kind(),
            purpose,
            message: caps.refusal(&self.name, purpose),
        })
    }
}

/// Opens `target`'s repository for `purpose`, with its key file when it is encrypted: the one
/// place every kind of run (and every request that reads a repository) opens a target. Backups
/// and copies into a target create the repository in an empty directory (docs/operations.md);
/// everything else needs one there.
pub fn open_target(target: &Target, purpose: Purpose) -> Result<Repository, OpenError> {
    target.require(purpose)?;
    if let super::Kind::S3(place) = &target.kind {
        return open_s3(target, place, purpose);
    }
    let Some(dir) = target.dir() else {
        return Err(OpenError::Repository(bms_engine::Error::InvalidArgument(
            format!(
                "target '{}' ({}) has no directory to open a repository in",
                target.name,
                target.kind().as_str()
            ),
        )));
    };
    match &target.key_file {
        None => open_plain(target, dir, purpose),
        Some(file) => open_encrypted(target, dir, file, purpose),
    }
}

fn open_plain(target: &Target, dir: &Path, purpose: Purpose) -> Result<Repository, OpenError> {
    // Several runs may create one new target at once: open_or_init lets exactly one of them
    // publish the repository and the others open it (docs/repository-format.md).
    let repo = if purpose.creates() {
        Repository::open_or_init(dir, bms_engine::InitOptions::default())
    } else {
        Repository::open(dir)
    };
    repo.map_err(|e| match e {
        bms_engine::Error::InvalidArgument(m) if m.contains("is encrypted") => OpenError::Key {
            target: target.name.clone(),
            message: format!(
                "the repository of target '{}' in {} is encrypted, but the target is not: \
                 declare its key file (`bmsctl target edit {} --encrypt --key-file FILE`)",
                target.name,
                dir.display(),
                target.name
            ),
        },
        e => OpenError::Repository(e),
    })
}

fn open_encrypted(
    target: &Target,
    dir: &Path,
    file: &Path,
    purpose: Purpose,
) -> Result<Repository, OpenError> {
    let secret = keys::read_key(target, file)?;
    let repo = if purpose.creates() {
        Repository::open_or_init_encrypted(dir, bms_engine::InitOptions::default(), &secret)
    } else {
        Repository::open_with_key(dir, &secret)
    };
    let repo = repo.map_err(|e| match e {
        bms_engine::Error::WrongKey(_) => keys::wrong_key(target, file, dir),
        e => OpenError::Repository(e),
    })?;
    if !repo.store().encrypted() {
        return Err(OpenError::Key {
            target: target.name.clone(),
            message: format!(
                "target '{}' is encrypted, but the repository in {} is not: give the target an \
                 empty directory, or define it again without --encrypt",
                target.name,
                dir.display()
            ),
        });
    }
    Ok(repo)
}

/// Opens (or, for backups and copies into it, creates) the repository under an S3 target's
/// prefix. A prefix without a `config` object holds no repository yet.
fn open_s3(
    target: &Target,
    place: &super::S3Place,
    purpose: Purpose,
) -> Result<Repository, OpenError> {
    let store = super::s3_store(place).map_err(|message| OpenError::Store {
        target: target.name.clone(),
        message: format!("target '{}': {message}", target.name),
    })?;
    let store: Arc<dyn bms_engine::store::Store> = Arc::new(store);
    let opts = bms_engine::InitOptions::default();
    let repo = match &target.key_file {
        None if purpose.creates() => Repository::open_or_init_store(store, opts, None),
        None => Repository::open_store(store),
        Some(file) => {
            let secret = keys::read_key(target, file)?;
            let repo = if purpose.creates() {
                Repository::open_or_init_store(store, opts, Some(&secret))
            } else {
                Repository::open_store_with_key(store, &secret)
            };
            let repo = repo.map_err(|e| match e {
                bms_engine::Error::WrongKey(_) => OpenError::Key {
                    target: target.name.clone(),
                    message: format!(
                        "the key file {} does not open the repository of target '{}' at {}: \
                         give the target the key file its repository was made with",
                        file.display(),
                        target.name,
                        place.url()
                    ),
                },
                e => OpenError::Repository(e),
            })?;
            if !repo.store().encrypted() {
                return Err(OpenError::Key {
                    target: target.name.clone(),
                    message: format!(
                        "target '{}' is encrypted, but the repository at {} is not: give the \
                         target an empty prefix, or define it again without --encrypt",
                        target.name,
                        place.url()
                    ),
                });
            }
            return Ok(repo);
        }
    };
    repo.map_err(|e| match e {
        bms_engine::Error::InvalidArgument(m) if m.contains("is encrypted") => OpenError::Key {
            target: target.name.clone(),
            message: format!(
                "the repository of target '{}' at {} is encrypted, but the target is not: \
                 declare its key file (`bmsctl target edit {} --encrypt --key-file FILE`)",
                target.name,
                place.url(),
                target.name
            ),
        },
        e => OpenError::Repository(e),
    })
}
