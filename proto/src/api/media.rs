//! The media manager (docs/tape.md, "Media manager"): pools of removable media and the media
//! themselves (tapes, RDX, removable disks), their lifecycle and their locations.

use serde::{Deserialize, Serialize};

/// A media pool as bmsd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub name: String,
    /// lto5 … lto9, rdx or disk.
    pub media_type: String,
    /// Days a medium is kept after its last write before it expires.
    pub retention_days: u32,
    /// The offsite vault full media of this pool go to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<String>,
    /// Days a medium stays in the vault before it is due back (0: until it expires).
    pub vault_days: u32,
    /// Media in the pool, by state.
    pub scratch: u32,
    pub writable: u32,
    pub full: u32,
    pub expired: u32,
}

/// A medium as bmsd reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediumInfo {
    pub barcode: String,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u32>,
    /// scratch, writable, full, expired, retired or damaged.
    pub state: String,
    /// Where it is, as `kind:name`: `drive:…`, `slot:…`, `shelf` or `shelf:…`, `vault:…`.
    pub location: String,
    /// The medium is in an offsite vault.
    pub offsite: bool,
    /// The medium is in a drive (online); anywhere else it is offline.
    pub in_drive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_return: Option<String>,
    pub write_count: u64,
    pub bytes_written: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_written: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_at: Option<String>,
}

/// One archive volume on a medium.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediumArchive {
    pub job: String,
    pub target: String,
    pub snapshot: String,
    /// writing, complete, failed, partial or overwritten.
    pub state: String,
    pub volume: u32,
    /// The tape file holding the volume's archive.
    pub tape_file: u64,
    pub bytes: u64,
    pub files: u64,
    /// Whether this is the archive's last volume.
    pub last: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListPools {}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolList {
    pub pools: Vec<PoolInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetPool {
    pub name: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoolReply {
    pub pool: PoolInfo,
    pub media: Vec<MediumInfo>,
}

/// Adds a media pool. Needs the admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPool {
    pub name: String,
    pub media_type: String,
    #[serde(default)]
    pub retention_days: u32,
    #[serde(default)]
    pub vault: Option<String>,
    #[serde(default)]
    pub vault_days: u32,
}

/// Lists media, optionally of one pool or in one state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMedia {
    #[serde(default)]
    pub pool: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaList {
    pub media: Vec<MediumInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMedium {
    pub barcode: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediumReply {
    pub medium: MediumInfo,
    /// The archive volumes on it, oldest first.
    #[serde(default)]
    pub archives: Vec<MediumArchive>,
}

/// Adds a new medium to the inventory, as scratch. Needs the admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMedium {
    pub barcode: String,
    pub media_type: String,
    /// `slot:NAME`, `shelf[:NAME]`, `vault:NAME` or `drive:NAME` (default `shelf`).
    #[serde(default)]
    pub location: Option<String>,
}

/// Labels a scratch medium for a pool: it becomes writable. With `target`, bmsd also writes
/// the label onto the cartridge in that tape target's library (erasing it); without, the label
/// is written when a copy first uses the medium. Needs the admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelMedium {
    pub barcode: String,
    pub pool: String,
    #[serde(default)]
    pub target: Option<String>,
}

/// Records a move of a medium; `expected_return` is RFC 3339, a date, or a duration from now
/// such as 14d. Needs the admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveMedium {
    pub barcode: String,
    /// `vault:NAME`, `shelf[:NAME]`, `slot:NAME` or `drive:NAME`.
    pub to: String,
    #[serde(default)]
    pub expected_return: Option<String>,
}

/// Retires a medium: it is never written again. Needs the admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetireMedium {
    pub barcode: String,
}

/// Returns a medium to scratch whatever it holds (its archives stop counting). Needs the
/// admin role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EraseMedium {
    pub barcode: String,
}

/// Applies the pools' retention now: media whose retention ended expire, and expired media
/// that are not in a vault return to scratch. Needs the admin role.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpireMedia {}
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExpireReply {
    pub expired: Vec<String>,
    pub scratch: Vec<String>,
}

/// The rotation plan for a day (default today).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaDue {
    /// RFC 3339 time or a date (YYYY-MM-DD).
    #[serde(default)]
    pub at: Option<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueToVault {
    pub barcode: String,
    pub vault: String,
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaDueReply {
    pub at: String,
    /// Full media of pools with a vault that are not offsite yet.
    pub to_vault: Vec<DueToVault>,
    /// Media in a vault whose expected return has come, or that expired.
    pub come_back: Vec<String>,
}
