//! Key files of encrypted targets (docs/operations.md, "Encrypted targets"). A target with
//! `encrypt` has one key file: its `key_file`, or `keys/NAME.key` in the directory of bmsd's
//! config file. bmsd creates a missing one (32 random bytes, 0600, in a 0700 directory) when the
//! target is added or changed, and every run opens the target's repository with it. The key's
//! bytes are never logged, returned or put into an error message: only the file's path is.

use super::{OpenError, Target};
use bms_engine::keyslot::{self, Secret};
use bms_proto::api::TargetSpec;
use bms_proto::ApiError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static KEYS_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Sets the directory of default key files (once, at start-up; later calls change nothing).
pub fn set_keys_dir(dir: PathBuf) {
    let _ = KEYS_DIR.set(dir);
}

/// The directory of default key files: `keys/` next to bmsd's config file.
pub fn keys_dir() -> PathBuf {
    KEYS_DIR.get().cloned().unwrap_or_else(|| {
        let config = bms_proto::paths::default_config();
        config
            .parent()
            .map_or_else(|| PathBuf::from("keys"), |d| d.join("keys"))
    })
}

/// The key file of an encrypted target (`None` for a plain one).
pub fn key_path(spec: &TargetSpec) -> Option<PathBuf> {
    if !spec.encrypt {
        return None;
    }
    Some(match &spec.key_file {
        Some(f) => PathBuf::from(f),
        None => keys_dir().join(format!("{}.key", spec.name)),
    })
}

/// Creates the key file of an encrypted target when it does not exist yet; an existing one is
/// kept as it is (it may open a repository already). Returns the file, for messages.
pub fn ensure_key_file(spec: &TargetSpec) -> Result<Option<PathBuf>, ApiError> {
    let Some(path) = key_path(spec) else {
        return Ok(None);
    };
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => return Ok(Some(path)),
        Ok(_) => {
            return Err(ApiError::invalid(
                "key_file",
                format!(
                    "the key file {} of target '{}' is not a regular file: give --key-file a \
                     file's path",
                    path.display(),
                    spec.name
                ),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ApiError::invalid(
                "key_file",
                format!(
                    "cannot read the key file {} of target '{}': {e}",
                    path.display(),
                    spec.name
                ),
            ))
        }
    }
    keyslot::create_key_file(&path).map_err(|e| {
        ApiError::invalid(
            "key_file",
            format!(
                "cannot create the key file of target '{}': {e}; check that bmsd may write \
                 there, or give an existing key file with --key-file",
                spec.name
            ),
        )
    })?;
    Ok(Some(path))
}

/// Reads the key file of `target` (whose path is `file`): a missing or unreadable file is a
/// clear error naming the target and the file.
pub(super) fn read_key(target: &Target, file: &Path) -> Result<Secret, OpenError> {
    keyslot::read_key_file(file).map_err(|e| {
        let why = match &e {
            bms_engine::Error::WrongKey(_) => "is not a bms key file (32 bytes)".to_owned(),
            _ => format!("cannot be read ({e})"),
        };
        OpenError::Key {
            target: target.name.clone(),
            message: format!(
                "the key file {} of target '{}' {why}: put the target's key file back (or \
                 name it with `bmsctl target edit {} --key-file FILE`); without it the \
                 repository cannot be opened",
                file.display(),
                target.name,
                target.name
            ),
        }
    })
}

/// The error for a key file that opens none of the repository's key slots.
pub(super) fn wrong_key(target: &Target, file: &Path, dir: &Path) -> OpenError {
    OpenError::Key {
        target: target.name.clone(),
        message: format!(
            "the key file {} does not open the repository of target '{}' in {}: give the \
             target the key file its repository was created with (`bmsctl target edit {} \
             --key-file FILE`), or one added with `bmsctl repo key add`",
            file.display(),
            target.name,
            dir.display(),
            target.name
        ),
    }
}
