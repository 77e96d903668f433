//! Targets: where backups are written.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    #[default]
    Disk,
    Nas,
    Tape,
    S3,
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Disk => "disk",
            TargetKind::Nas => "nas",
            TargetKind::Tape => "tape",
            TargetKind::S3 => "s3",
        }
    }
    /// The media type a target of this kind has unless told otherwise (a NAS is disk).
    pub fn default_media(self) -> MediaType {
        match self {
            TargetKind::Disk | TargetKind::Nas => MediaType::Disk,
            TargetKind::Tape => MediaType::Tape,
            TargetKind::S3 => MediaType::Object,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Disk,
    Tape,
    Object,
    Optical,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Disk => "disk",
            MediaType::Tape => "tape",
            MediaType::Object => "object",
            MediaType::Optical => "optical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Location {
    #[default]
    Onsite,
    Offsite,
}

impl Location {
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Onsite => "onsite",
            Location::Offsite => "offsite",
        }
    }
}

/// The S3 Object Lock mode of an immutable S3 target's retentions (docs/s3.md "Object Lock").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ObjectLockMode {
    /// Nobody can delete a locked version or shorten its retention before it ends.
    #[default]
    Compliance,
    /// Users allowed to bypass governance retention can; bms never does.
    Governance,
}

impl ObjectLockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectLockMode::Compliance => "compliance",
            ObjectLockMode::Governance => "governance",
        }
    }
}

/// A place backups are written to, as the user describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    pub name: String,
    #[serde(default)]
    pub kind: TargetKind,
    /// Directory (disk, nas), device (tape) or bucket URL (s3).
    pub path: String,
    /// Defaults to the kind's media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(default)]
    pub location: Location,
    /// Free-form site label, e.g. "dc-2" or "bank vault".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    /// Days a written snapshot stays immutable (0: not immutable).
    #[serde(default)]
    pub immutable_days: u32,
    /// Runs fail before writing when less than this many bytes are free.
    #[serde(default)]
    pub min_free_bytes: u64,
    /// NAS only: the filesystem type the mount must have (e.g. "nfs4", "cifs", "ext4").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    /// NAS only: the mount source or filesystem UUID/label the mount must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_source: Option<String>,
    /// Retention rules this target adds to the policies of the jobs writing to it: each rule
    /// is the larger of the job's and this (a target may keep more, never less;
    /// docs/retention.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<super::Retention>,
    /// Calendar of the target's `prune` runs (default `weekly`; `never` turns them off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_schedule: Option<String>,
    /// How long a pack that no snapshot uses stays condemned before a prune of this target
    /// deletes it (`90m`, `36h`, `7d`; default 24h, never below the lease of a run's lock;
    /// docs/retention.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_grace: Option<String>,
    /// Encrypted repository (docs/repository-format.md, "Encryption"): bmsd creates it with a
    /// random master key wrapped by the target's key file, and opens it with that file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypt: bool,
    /// The key file of an encrypted target (absolute path); default `keys/NAME.key` in the
    /// directory of bmsd's config file, created by bmsd when missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
    /// Tape only: the media pool whose media the target's copies are written to
    /// (docs/tape.md, "Tape targets").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Tape only, a virtual tape library: the library's drive the target writes with
    /// (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<u32>,
    /// S3 only: the bucket (docs/s3.md); `path` is then the endpoint URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// S3 only: the key prefix the repository lives under (none: the bucket's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// S3 only: the region requests are signed for (default us-east-1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3 only: a file in the AWS shared-credentials format (mode 0600), absolute path; none:
    /// bmsd's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<String>,
    /// S3 only: virtual-host style requests (`bucket.host`) instead of path style.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub virtual_host: bool,
    /// S3 only: the Object Lock mode of the retentions an immutable target writes (none:
    /// compliance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// S3 only: a PEM file of CA certificates trusted for the endpoint besides the system's
    /// (absolute path), for endpoints with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// S3 only: requests in flight at once, 1 to 64 (default 8; docs/s3.md "Parallelism").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_parallel: Option<u32>,
    /// S3 only: part size of multipart uploads in bytes, 5 MiB to 512 MiB (default 16 MiB);
    /// objects larger than four parts are uploaded in parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_part_size: Option<u64>,
}

impl TargetSpec {
    /// An onsite disk target with no limits: the defaults of `bmsctl target add`.
    pub fn disk(name: impl Into<String>, path: impl Into<String>) -> TargetSpec {
        TargetSpec {
            name: name.into(),
            kind: TargetKind::Disk,
            path: path.into(),
            media_type: None,
            location: Location::Onsite,
            site: None,
            immutable_days: 0,
            min_free_bytes: 0,
            fs_type: None,
            fs_source: None,
            retention: None,
            prune_schedule: None,
            prune_grace: None,
            encrypt: false,
            key_file: None,
            pool: None,
            drive: None,
            bucket: None,
            prefix: None,
            region: None,
            credentials_file: None,
            virtual_host: false,
            object_lock_mode: None,
            ca_file: None,
            s3_parallel: None,
            s3_part_size: None,
        }
    }

    pub fn media(&self) -> MediaType {
        self.media_type.unwrap_or(self.kind.default_media())
    }
}

/// A target as the catalog holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    #[serde(flatten)]
    pub spec: TargetSpec,
    /// The effective media type.
    pub media: MediaType,
    /// False for kinds this version cannot write yet.
    pub supported: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What bmsd can do with a target of this kind, e.g. "backup", "restore", "mount check".
    #[serde(default)]
    pub supports: Vec<String>,
    /// Jobs that use this target.
    pub used_by: Vec<String>,
    /// The last pre-flight check, if any.
    #[serde(default)]
    pub last_check: Option<super::TargetCheck>,
    /// An encrypted target's key file as bmsd finds it (the default when `key_file` is not set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTargets {}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetList {
    pub targets: Vec<TargetInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTarget {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetReply {
    pub target: TargetInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddTarget {
    pub target: TargetSpec,
}

/// Replaces a target's definition; the name selects it and cannot change.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTarget {
    pub target: TargetSpec,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveTarget {
    pub name: String,
}
