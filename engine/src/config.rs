//! The repository `config` file: format version and parameters (JSON, written once at init).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Value of the `format` field, so that a stray JSON file is not mistaken for a config.
pub const FORMAT_NAME: &str = "bms-repository";

/// Chunker parameters; they decide cut points and therefore deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Always "fastcdc-v2020" in version 1.
    pub algorithm: ChunkerAlgorithm,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    /// FastCDC normalization level (0..=3).
    pub normalization: u8,
}

/// Chunking algorithms known to this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkerAlgorithm {
    #[serde(rename = "fastcdc-v2020")]
    FastCdcV2020,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            algorithm: ChunkerAlgorithm::FastCdcV2020,
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
            normalization: 1,
        }
    }
}

impl ChunkerParams {
    /// Checks the bounds that fastcdc accepts.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020 as f;
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&(self.min_size as usize))
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&(self.avg_size as usize))
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&(self.max_size as usize))
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "invalid chunker parameters {self:?}: need {}<=min<={}, {}<=avg<={}, {}<=max<={}, min<=avg<=max, normalization<=3",
                f::MINIMUM_MIN,
                f::MINIMUM_MAX,
                f::AVERAGE_MIN,
                f::AVERAGE_MAX,
                f::MAXIMUM_MIN,
                f::MAXIMUM_MAX
            )))
        }
    }
}

/// Compression settings for new blobs (readers use the per-blob flag, not this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionParams {
    /// "zstd" or "none".
    pub algorithm: CompressionAlgorithm,
    pub level: i32,
}

/// Compression algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompressionAlgorithm {
    None,
    Zstd,
}

impl Default for CompressionParams {
    fn default() -> Self {
        CompressionParams {
            algorithm: CompressionAlgorithm::Zstd,
            level: 3,
        }
    }
}

/// Encryption settings. Version 1 defines the fields; this build only writes `none`
/// and refuses to open repositories with anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct EncryptionParams {
    /// "none" or "xchacha20poly1305-blake3".
    pub algorithm: String,
    /// Hex id of the key file under `keys/` that wraps the master key (absent when "none").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// The parsed `config` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format: String,
    pub version: u32,
    /// Random 32-byte repository id, hex.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    pub chunker: ChunkerParams,
    pub compression: CompressionParams,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u64,
    pub encryption: EncryptionParams,
    /// Features a reader must implement to use this repository. Unknown entries → refuse.
    #[serde(default)]
    pub required_features: Vec<String>,
}

impl RepoConfig {
    /// Parses and checks a config file's bytes.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self> {
        // Look at the version first so that a future layout still gets a clear message.
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|_| Error::NotARepository {
                path: path.to_path_buf(),
            })?;
        if value.get("format").and_then(|v| v.as_str()) != Some(FORMAT_NAME) {
            return Err(Error::NotARepository {
                path: path.to_path_buf(),
            });
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedVersion {
                path: path.to_path_buf(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION.to_string(),
            });
        }
        let cfg: RepoConfig = serde_json::from_value(value).map_err(|e| {
            Error::corrupt(
                format!("repository config {}", path.display()),
                e.to_string(),
            )
        })?;
        if cfg.encryption.algorithm != "none"
            && cfg.encryption.algorithm != crate::crypto::ALGORITHM
        {
            return Err(Error::UnsupportedFeature {
                path: path.to_path_buf(),
                feature: format!("encryption ({})", cfg.encryption.algorithm),
            });
        }
        if let Some(f) = cfg.required_features.first() {
            return Err(Error::UnsupportedFeature {
                path: path.to_path_buf(),
                feature: f.clone(),
            });
        }
        cfg.chunker.validate()?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RepoConfig {
        RepoConfig {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            id: "00".repeat(32),
            created: "2026-01-01T00:00:00Z".into(),
            chunker: ChunkerParams::default(),
            compression: CompressionParams::default(),
            pack_size: 16 << 20,
            encryption: EncryptionParams {
                algorithm: "none".into(),
                key_id: None,
            },
            required_features: vec![],
        }
    }

    #[test]
    fn round_trip_and_version_refusal() {
        let c = sample();
        let bytes = serde_json::to_vec(&c).unwrap();
        assert_eq!(RepoConfig::parse(Path::new("x"), &bytes).unwrap(), c);
        let mut v = c.clone();
        v.version = 7;
        let err = RepoConfig::parse(Path::new("x"), &serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(err.to_string().contains("version 7"), "{err}");
        let mut e = c;
        e.encryption.algorithm = "aes256-unknown".into();
        let err = RepoConfig::parse(Path::new("x"), &serde_json::to_vec(&e).unwrap()).unwrap_err();
        assert!(err.to_string().contains("encryption"), "{err}");
    }
}
