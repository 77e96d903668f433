//! S3 targets (docs/s3.md): checking their definition and building their store.

use super::S3Place;
use crate::validate::text;
use bms_proto::api::{ObjectLockMode, TargetSpec};
use bms_proto::ApiError;
use bms_s3::{Config, Credentials, LockMode, S3Store};
use std::path::{Path, PathBuf};

/// The profile read from a credentials file.
const PROFILE: &str = "default";

/// Refuses the S3 fields on a target of another kind.
pub(super) fn refuse_s3_fields(t: &TargetSpec) -> Result<(), ApiError> {
    for (field, set) in [
        ("bucket", t.bucket.is_some()),
        ("prefix", t.prefix.is_some()),
        ("region", t.region.is_some()),
        ("credentials_file", t.credentials_file.is_some()),
        ("virtual_host", t.virtual_host),
        ("object_lock_mode", t.object_lock_mode.is_some()),
        ("ca_file", t.ca_file.is_some()),
        ("s3_parallel", t.s3_parallel.is_some()),
        ("s3_part_size", t.s3_part_size.is_some()),
    ] {
        if set {
            return Err(ApiError::invalid(
                field,
                format!("{field} applies to s3 targets only"),
            ));
        }
    }
    Ok(())
}

/// Bucket names as S3 allows them: 3 to 63 characters of a-z 0-9 . -, starting and ending
/// with a letter or digit.
fn bucket_ok(b: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(b.chars().next())
        && edge(b.chars().last())
}

/// Checks an S3 target's definition: `path` is the endpoint URL (`http(s)://host[:port]`) with
/// `bucket` (and optional `prefix`), or `s3://bucket[/prefix]` for AWS itself.
pub(super) fn place(t: &TargetSpec) -> Result<S3Place, ApiError> {
    let region = t.region.clone().unwrap_or_else(|| "us-east-1".into());
    if region.is_empty()
        || region.len() > 64
        || !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(ApiError::invalid(
            "region",
            "region must be a region name such as us-east-1 (a-z 0-9 -)",
        ));
    }
    let (endpoint, url_bucket, url_prefix, aws) = if let Some(rest) = t.path.strip_prefix("s3://") {
        let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
        (
            format!("https://s3.{region}.amazonaws.com"),
            Some(b.to_owned()),
            Some(p.to_owned()),
            true,
        )
    } else if t.path.starts_with("http://") || t.path.starts_with("https://") {
        let after = t.path.split_once("://").map_or("", |(_, a)| a);
        let (authority, path) = after.split_once('/').unwrap_or((after, ""));
        if !path.is_empty() || authority.is_empty() || authority.contains(['@', '?', '#']) {
            return Err(ApiError::invalid(
                "path",
                format!(
                    "s3 endpoint '{}' must be http(s)://host[:port] only: give the bucket with \
                     --bucket and the key prefix with --prefix",
                    t.path
                ),
            ));
        }
        (t.path.trim_end_matches('/').to_owned(), None, None, false)
    } else {
        return Err(ApiError::invalid(
            "path",
            format!(
                "s3 target path '{}' must be the endpoint URL (http(s)://host[:port], with \
                 --bucket) or s3://bucket/prefix for AWS",
                t.path
            ),
        ));
    };
    let bucket = match (&url_bucket, &t.bucket) {
        (Some(u), Some(b)) if u != b => {
            return Err(ApiError::invalid(
                "bucket",
                format!("bucket '{b}' differs from the bucket '{u}' of the URL: give one"),
            ))
        }
        (Some(b), _) | (None, Some(b)) => b.clone(),
        (None, None) => {
            return Err(ApiError::invalid(
                "bucket",
                "an s3 target needs a bucket: add --bucket NAME",
            ))
        }
    };
    if !bucket_ok(&bucket) {
        return Err(ApiError::invalid(
            "bucket",
            format!(
                "bucket '{}' is not a valid bucket name: 3 to 63 characters of a-z 0-9 . -, \
                 starting and ending with a letter or digit",
                crate::validate::echo(&bucket)
            ),
        ));
    }
    let prefix = match (url_prefix.filter(|p| !p.is_empty()), &t.prefix) {
        (Some(u), Some(p)) if u.trim_matches('/') != p.trim_matches('/') => {
            return Err(ApiError::invalid(
                "prefix",
                format!("prefix '{p}' differs from the prefix '{u}' of the URL: give one"),
            ))
        }
        (Some(p), _) => p.trim_matches('/').to_owned(),
        (None, Some(p)) => p.trim_matches('/').to_owned(),
        (None, None) => String::new(),
    };
    text("prefix", &prefix, 512)?;
    if prefix
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
        && !prefix.is_empty()
    {
        return Err(ApiError::invalid(
            "prefix",
            format!(
                "prefix '{prefix}' must be key segments separated by single '/', without . or .."
            ),
        ));
    }
    let credentials_file = absolute_file("credentials_file", t.credentials_file.as_deref())?;
    let ca_file = absolute_file("ca_file", t.ca_file.as_deref())?;
    let parallel = match t.s3_parallel {
        None => DEFAULT_PARALLEL,
        Some(n) if PARALLEL.contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(
                "s3_parallel",
                format!(
                    "s3_parallel {n} is out of range: give {} to {} requests in flight \
                     (default {DEFAULT_PARALLEL})",
                    PARALLEL.start(),
                    PARALLEL.end()
                ),
            ))
        }
    };
    let part_size = match t.s3_part_size {
        None => DEFAULT_PART_SIZE,
        Some(n) if PART_SIZE.contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(
                "s3_part_size",
                format!(
                    "s3_part_size {n} is out of range: give 5MiB to 512MiB (S3 refuses parts \
                     below 5 MiB; a part is held in memory; default 16MiB)"
                ),
            ))
        }
    };
    Ok(S3Place {
        endpoint,
        bucket,
        prefix,
        region,
        virtual_host: t.virtual_host || aws,
        credentials_file,
        lock_mode: t.object_lock_mode.unwrap_or_default(),
        ca_file,
        parallel,
        part_size,
    })
}

/// Requests in flight at once: the bounds and the default (docs/s3.md "Parallelism").
const PARALLEL: std::ops::RangeInclusive<u32> = 1..=64;
const DEFAULT_PARALLEL: usize = 8;
/// Part size of multipart uploads: the bounds and the default.
const PART_SIZE: std::ops::RangeInclusive<u64> = (5 << 20)..=(512 << 20);
const DEFAULT_PART_SIZE: usize = 16 << 20;

/// An optional file of the definition, which must be an absolute path.
fn absolute_file(field: &str, f: Option<&str>) -> Result<Option<PathBuf>, ApiError> {
    let Some(f) = f else { return Ok(None) };
    text(field, f, 4096)?;
    if !Path::new(f).is_absolute() {
        return Err(ApiError::invalid(
            field,
            format!("{field} '{f}' must be absolute (start with /)"),
        ));
    }
    Ok(Some(PathBuf::from(f)))
}

impl S3Place {
    /// The repository's place for messages: endpoint, bucket and prefix (never a credential).
    pub fn url(&self) -> String {
        let mut s = format!("{}/{}", self.endpoint, self.bucket);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        s
    }
}

/// A number from a test hook variable; debug builds only (docs/protocol.md "Test hooks").
fn env_size(name: &str) -> Option<usize> {
    if !cfg!(debug_assertions) {
        return None;
    }
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The store of an S3 target, with its credentials and CA file read now. The tests may lower
/// the multipart threshold and part size (`BMS_TEST_S3_PART_SIZE`, bytes) and the retries
/// (`BMS_TEST_S3_RETRIES`) to exercise them quickly (debug builds only).
pub fn s3_store(p: &S3Place) -> Result<S3Store, String> {
    let creds = match &p.credentials_file {
        Some(f) => Credentials::from_file(f, PROFILE)?,
        None => Credentials::from_env()?,
    };
    let mut cfg = Config::new(&p.endpoint, &p.bucket, &p.prefix, creds);
    cfg.region = p.region.clone();
    cfg.virtual_host = p.virtual_host;
    cfg.lock_mode = match p.lock_mode {
        ObjectLockMode::Compliance => LockMode::Compliance,
        ObjectLockMode::Governance => LockMode::Governance,
    };
    cfg.ca_file = p.ca_file.clone();
    cfg.parallel = p.parallel;
    cfg.part_size = p.part_size;
    cfg.multipart_threshold = p.part_size.saturating_mul(4);
    if let Some(n) = env_size("BMS_TEST_S3_PART_SIZE").filter(|n| *n > 0) {
        cfg.part_size = n;
        cfg.multipart_threshold = n;
    }
    if let Some(n) = env_size("BMS_TEST_S3_RETRIES") {
        cfg.retries = n as u32;
    }
    S3Store::new(cfg)
}
