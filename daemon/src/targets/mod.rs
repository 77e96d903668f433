//! Targets by kind (docs/architecture.md, "Targets"). On the wire a target is the flat
//! [`TargetSpec`]; inside bmsd it is a [`Target`]: the fields every kind has, and a [`Kind`] that
//! holds only what that kind needs. [`Target::from_spec`] is the one place a definition is
//! checked, [`capabilities`] the one place that says what a kind supports, and [`open_target`]
//! the one place a target's repository is opened.

mod capabilities;
mod keys;
mod open;
mod s3;
pub mod tape;

pub use capabilities::{capabilities, Capabilities, Purpose};
pub use keys::{ensure_key_file, key_path, keys_dir, set_keys_dir};
pub use open::{open_target, OpenError};
pub use s3::s3_store;

use crate::validate::{name, text};
use bms_proto::api::{Location, MediaType, TargetKind, TargetSpec};
use bms_proto::ApiError;
use std::path::{Path, PathBuf};

/// Where a target's data lives, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory on a local filesystem.
    Disk { path: PathBuf },
    /// A directory that must be the mount point of a network (or removable) filesystem.
    Nas {
        path: PathBuf,
        /// The filesystem type the mount must have, e.g. "nfs4".
        fs_type: Option<String>,
        /// The mount source (or `UUID=`/`LABEL=`) the mount must have.
        fs_source: Option<String>,
    },
    /// A tape target (docs/tape.md, "Tape targets"): a virtual tape library directory (and
    /// the drive of it to use) or a Linux st device such as /dev/nst0, and the media pool its
    /// copies go to (none: copies fail and say to set one).
    Tape {
        device: PathBuf,
        pool: Option<String>,
        drive: u32,
    },
    /// A key prefix of an S3 bucket (docs/s3.md).
    S3(S3Place),
}

/// Where an S3 target's repository is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Place {
    /// `http(s)://host[:port]`.
    pub endpoint: String,
    pub bucket: String,
    /// Key prefix without leading or trailing `/` ("" for the bucket's root).
    pub prefix: String,
    pub region: String,
    pub virtual_host: bool,
    /// The shared-credentials file; None: bmsd's environment.
    pub credentials_file: Option<PathBuf>,
    /// The Object Lock mode of the retentions written when the target is immutable.
    pub lock_mode: bms_proto::api::ObjectLockMode,
    /// PEM CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Requests in flight at once.
    pub parallel: usize,
    /// Part size of multipart uploads (bytes); objects above four parts go in parts.
    pub part_size: usize,
}

/// A target as bmsd works with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
    /// The effective media type (the kind's unless told otherwise).
    pub media: MediaType,
    pub location: Location,
    pub site: Option<String>,
    /// Days a written snapshot stays immutable (0: not immutable), docs/operations.md
    /// "Immutability".
    pub immutable_days: u32,
    /// Runs fail before writing when less than this many bytes are free.
    pub min_free_bytes: u64,
    /// An encrypted target's key file (`None`: the repository is plain).
    pub key_file: Option<PathBuf>,
}

fn absolute_path(t: &TargetSpec) -> Result<PathBuf, ApiError> {
    if !Path::new(&t.path).is_absolute() {
        return Err(ApiError::invalid(
            "path",
            format!("path '{}' must be absolute (start with /)", t.path),
        ));
    }
    if t.path == "/" {
        return Err(ApiError::invalid(
            "path",
            "path must not be the root directory",
        ));
    }
    Ok(PathBuf::from(&t.path))
}

impl Target {
    /// Checks a target definition and builds the target; every error names the field.
    pub fn from_spec(t: &TargetSpec) -> Result<Target, ApiError> {
        name("name", &t.name)?;
        text("path", &t.path, 4096)?;
        let path = match t.kind {
            TargetKind::Disk | TargetKind::Nas | TargetKind::Tape => {
                s3::refuse_s3_fields(t)?;
                Some(absolute_path(t)?)
            }
            TargetKind::S3 => None,
        };
        if let Some(site) = &t.site {
            text("site", site, 128)?;
        }
        if t.kind != TargetKind::Nas {
            for (field, v) in [("fs_type", &t.fs_type), ("fs_source", &t.fs_source)] {
                if v.is_some() {
                    return Err(ApiError::invalid(
                        field,
                        format!("{field} applies to nas targets only"),
                    ));
                }
            }
        }
        for (field, v) in [("fs_type", &t.fs_type), ("fs_source", &t.fs_source)] {
            if let Some(v) = v {
                text(field, v, 256)?;
            }
        }
        if let Some(f) = &t.key_file {
            text("key_file", f, 4096)?;
            if !t.encrypt {
                return Err(ApiError::invalid(
                    "key_file",
                    "key_file applies to encrypted targets only: add --encrypt",
                ));
            }
            if !Path::new(f).is_absolute() {
                return Err(ApiError::invalid(
                    "key_file",
                    format!("key_file '{f}' must be absolute (start with /)"),
                ));
            }
        }
        if t.kind != TargetKind::Tape {
            if t.pool.is_some() {
                return Err(ApiError::invalid(
                    "pool",
                    "pool applies to tape targets only",
                ));
            }
            if t.drive.is_some() {
                return Err(ApiError::invalid(
                    "drive",
                    "drive applies to tape targets only",
                ));
            }
        } else {
            if let Some(p) = &t.pool {
                name("pool", p)?;
            }
            if t.drive.is_some_and(|d| d > 98) {
                return Err(ApiError::invalid(
                    "drive",
                    "drive is the number of a library's drive, 0 to 98",
                ));
            }
            if t.encrypt {
                return Err(ApiError::invalid(
                    "encrypt",
                    "tape targets are not encrypted by bms (the tape holds plain tar archives so                      that GNU tar can read it): leave out --encrypt, or use the drive's own                      hardware encryption",
                ));
            }
            if t.immutable_days > 0 {
                return Err(ApiError::invalid(
                    "immutable_days",
                    "tape targets have no immutability of their own: leave out                      --immutable-days; a cartridge out of the drive counts as offline",
                ));
            }
        }
        if t.immutable_days > 36500 {
            return Err(ApiError::invalid(
                "immutable_days",
                "immutable_days must be at most 36500",
            ));
        }
        let kind = match (t.kind, path) {
            (TargetKind::Disk, Some(path)) => Kind::Disk { path },
            (TargetKind::Nas, Some(path)) => Kind::Nas {
                path,
                fs_type: t.fs_type.clone(),
                fs_source: t.fs_source.clone(),
            },
            (TargetKind::Tape, Some(device)) => Kind::Tape {
                device,
                pool: t.pool.clone(),
                drive: t.drive.unwrap_or(0),
            },
            _ => Kind::S3(s3::place(t)?),
        };
        Ok(Target {
            name: t.name.clone(),
            kind,
            media: t.media(),
            location: t.location,
            site: t.site.clone(),
            immutable_days: t.immutable_days,
            min_free_bytes: t.min_free_bytes,
            key_file: keys::key_path(t),
        })
    }

    /// The kind as the wire names it.
    pub fn kind(&self) -> TargetKind {
        match self.kind {
            Kind::Disk { .. } => TargetKind::Disk,
            Kind::Nas { .. } => TargetKind::Nas,
            Kind::Tape { .. } => TargetKind::Tape,
            Kind::S3 { .. } => TargetKind::S3,
        }
    }

    /// What this target supports.
    pub fn capabilities(&self) -> Capabilities {
        capabilities(self.kind())
    }

    /// The directory that holds the repository: disk and NAS targets only.
    pub fn dir(&self) -> Option<&Path> {
        match &self.kind {
            Kind::Disk { path } | Kind::Nas { path, .. } => Some(path),
            Kind::Tape { .. } | Kind::S3 { .. } => None,
        }
    }

    /// The directory, device or URL, for messages.
    pub fn place(&self) -> String {
        match &self.kind {
            Kind::Disk { path } | Kind::Nas { path, .. } => path.display().to_string(),
            Kind::Tape { device, .. } => device.display().to_string(),
            Kind::S3(p) => p.url(),
        }
    }
}

#[cfg(test)]
mod tests;
