//! S3 Object Lock as the immutability of an S3 target (docs/s3.md "Object Lock"): a sealed
//! object gets a retention (mode COMPLIANCE or GOVERNANCE) until its seal's time, extended and
//! never shortened; the retention is read back from the object's HEAD; and on a versioned bucket
//! an object is removed by deleting each of its versions, which S3 refuses for a version whose
//! retention has not passed. A DELETE without a version id would only hide a locked object behind
//! a delete marker, so bms never relies on one there.

use std::sync::OnceLock;
use std::time::SystemTime;

use base64::Engine;
use bms_engine::store::{Kind, Store};
use bms_engine::{Error, Result};
use reqwest::Method;
use sha2::{Digest, Sha256};

use crate::client::{describe, Req, S3Error};
use crate::store::{io_error, S3Store};
use crate::xml;

/// The Object Lock retention mode bms writes (docs/s3.md "Object Lock").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LockMode {
    /// Nobody, the account's root user included, can delete the object version or shorten its
    /// retention before it ends.
    #[default]
    Compliance,
    /// Users with `s3:BypassGovernanceRetention` can delete or shorten (with the
    /// `x-amz-bypass-governance-retention` header); bms never does.
    Governance,
}

impl LockMode {
    /// The mode as S3 spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// An object version's retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    pub until: SystemTime,
}

/// One version of a key (or a delete marker) on a versioned bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub id: String,
    pub delete_marker: bool,
    /// The key's current version (or marker).
    pub latest: bool,
    /// Bytes (0 for a delete marker).
    pub size: u64,
}

/// `until` as S3 takes it: RFC 3339 in UTC, whole seconds, rounded up (a retention is never
/// shorter than the seal asked for).
pub fn s3_time(until: SystemTime) -> String {
    let secs = match until.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
        Err(_) => 0,
    };
    jiff::Timestamp::from_second(i64::try_from(secs).unwrap_or(i64::MAX))
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "9999-12-31T23:59:59Z".into())
}

fn parse_time(s: &str) -> Option<SystemTime> {
    s.trim()
        .parse::<jiff::Timestamp>()
        .ok()
        .map(SystemTime::from)
}

/// The bucket's versioning state, read once per store.
#[derive(Debug, Default)]
pub(crate) struct Versioning(OnceLock<bool>);

impl S3Store {
    /// Whether the bucket keeps versions (versioning Enabled or Suspended: a plain DELETE then
    /// leaves the bytes behind). Read once (GetBucketVersioning); a server that does not know the
    /// request has no versioning.
    pub fn versioned(&self) -> std::result::Result<bool, S3Error> {
        if let Some(v) = self.versioning().0.get() {
            return Ok(*v);
        }
        let v = match self.versioning_status() {
            Ok(s) => s.is_some(),
            Err(S3Error::Http {
                status: 400 | 404 | 405 | 501,
                ..
            }) => false,
            Err(e) => return Err(e),
        };
        Ok(*self.versioning().0.get_or_init(|| v))
    }

    /// `Enabled`, `Suspended`, or None for a bucket that never had versioning.
    fn versioning_status(&self) -> std::result::Result<Option<String>, S3Error> {
        let r = self
            .client()
            .send(&Req::new(Method::GET, None).query("versioning", ""))?;
        Ok(xml::first(&r.text(), "Status").filter(|s| !s.is_empty()))
    }

    /// The check before `--immutable-days` is accepted on an S3 target (docs/s3.md "Object
    /// Lock"): Object Lock is enabled on the bucket (GetObjectLockConfiguration) without a
    /// default retention (which would lock bms's lock files and config too), the bucket is
    /// reachable and writable ([`S3Store::probe`]), and its versioning is Enabled. The error says
    /// which failed.
    pub fn lock_check(&self) -> std::result::Result<(), String> {
        let b = &self.client().cfg.bucket;
        let ep = self.endpoint();
        let req = Req::new(Method::GET, None).query("object-lock", "");
        let conf = match self.client().send(&req) {
            Ok(r) => r.text(),
            Err(S3Error::Http { code, .. }) if code == "ObjectLockConfigurationNotFoundError" => {
                String::new()
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the Object Lock configuration of bucket '{b}' at {ep}: {}",
                    describe(&e)
                ))
            }
        };
        if xml::first(&conf, "ObjectLockEnabled").as_deref() != Some("Enabled") {
            return Err(format!(
                "bucket '{b}' has no Object Lock configuration: S3 immutability needs a bucket \
                 created with Object Lock enabled; use such a bucket, or set immutable days to 0"
            ));
        }
        if let Some(rule) = xml::blocks(&conf, "DefaultRetention").first() {
            let mode = xml::first(rule, "Mode").unwrap_or_default();
            let days = xml::first(rule, "Days")
                .map(|d| format!("{d} days"))
                .or_else(|| xml::first(rule, "Years").map(|y| format!("{y} years")))
                .unwrap_or_default();
            return Err(format!(
                "bucket '{b}' has a default retention ({mode} {days}): it would lock bms's lock \
                 files and repository config too, so that they could not be removed or replaced; \
                 remove the bucket's default retention rule (bms gives each sealed object its own \
                 retention)"
            ));
        }
        // Reachable and writable (after the configuration: on a bucket with a default retention
        // even the probe's write would need a checksum header).
        self.probe()?;
        let status = self.versioning_status().map_err(|e| {
            format!(
                "cannot read the versioning state of bucket '{b}' at {ep}: {}",
                describe(&e)
            )
        })?;
        if status.as_deref() != Some("Enabled") {
            return Err(format!(
                "versioning of bucket '{b}' is {}: Object Lock needs versioning Enabled; enable \
                 it on the bucket, or set immutable days to 0",
                status.as_deref().unwrap_or("off")
            ));
        }
        Ok(())
    }

    /// The retention of `key` (its current version, or `version`), from the object's HEAD
    /// (`x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`); None when it has none
    /// or does not exist.
    pub fn retention_of(
        &self,
        key: &str,
        version: Option<&str>,
    ) -> std::result::Result<Option<Retention>, S3Error> {
        let mut req = Req::new(Method::HEAD, Some(key));
        if let Some(v) = version {
            req = req.query("versionId", v);
        }
        match self.client().send(&req) {
            Ok(r) => Ok(r
                .header("x-amz-object-lock-retain-until-date")
                .and_then(parse_time)
                .map(|until| Retention {
                    mode: r
                        .header("x-amz-object-lock-mode")
                        .unwrap_or_default()
                        .to_owned(),
                    until,
                })),
            Err(S3Error::Http {
                status: 404 | 405, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The retention of an object of the repository (its current version).
    pub fn retention(&self, kind: Kind, name: &str) -> Result<Option<Retention>> {
        let key = self.object_key(kind, name)?;
        self.retention_of(&key, None)
            .map_err(|e| self.err("reading the retention of", kind, name, &e))
    }

    /// Sets the retention of `key`'s current version to `until` in the target's mode unless it
    /// already lasts as long (PutObjectRetention; a retention is extended, never shortened).
    pub(crate) fn put_retention(
        &self,
        key: &str,
        until: SystemTime,
    ) -> std::result::Result<(), S3Error> {
        let want = s3_time(until);
        if let Some(have) = self.retention_of(key, None)? {
            if parse_time(&want).is_some_and(|w| have.until >= w) {
                return Ok(());
            }
        }
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode>\
             <RetainUntilDate>{want}</RetainUntilDate></Retention>",
            self.client().cfg.lock_mode.as_str()
        );
        // PutObjectRetention demands an integrity checksum of the body.
        let sum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body.as_bytes()));
        let req = Req::new(Method::PUT, Some(key))
            .query("retention", "")
            .header("content-type", "application/xml")
            .header("x-amz-sdk-checksum-algorithm", "SHA256")
            .header("x-amz-checksum-sha256", &sum)
            .body(body.as_bytes());
        self.client().send(&req).map(|_| ())
    }

    /// The versions and delete markers of the keys under `prefix` (ListObjectVersions, all
    /// pages).
    pub fn list_versions(&self, prefix: &str) -> std::result::Result<Vec<Version>, S3Error> {
        let mut out = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut req = Req::new(Method::GET, None)
                .query("versions", "")
                .query("prefix", prefix);
            if let Some((k, v)) = &marker {
                req = req.query("key-marker", k).query("version-id-marker", v);
            }
            let text = self.client().send(&req)?.text();
            let (page, next) = parse_versions(&text);
            out.extend(page);
            match next {
                Some(m) => marker = Some(m),
                None => return Ok(out),
            }
        }
    }

    /// The versions and delete markers of exactly `key`.
    pub fn versions(&self, key: &str) -> std::result::Result<Vec<Version>, S3Error> {
        let mut v = self.list_versions(key)?;
        v.retain(|v| v.key == key);
        Ok(v)
    }

    /// After a replacing write on a versioned bucket (lock renewals, the condemned list, the
    /// config), removes the key's older versions so that they do not pile up. Best effort: a
    /// failure is logged, the next replace tries again.
    pub(crate) fn drop_old_versions(&self, key: &str) {
        let old = match self.versions(key) {
            Ok(v) => v.into_iter().filter(|v| !v.latest),
            Err(e) => {
                tracing::debug!("cannot list the versions of {key}: {}", describe(&e));
                return;
            }
        };
        for v in old {
            if let Err(e) = self.delete_version(key, &v.id) {
                tracing::debug!("cannot remove an old version of {key}: {}", describe(&e));
            }
        }
    }

    /// Deletes one version of `key` (or a delete marker); S3 refuses a locked version.
    pub fn delete_version(&self, key: &str, version: &str) -> std::result::Result<(), S3Error> {
        self.client()
            .send(&Req::new(Method::DELETE, Some(key)).query("versionId", version))
            .map(|_| ())
    }

    /// Removes an object of a versioned bucket: every version and delete marker of its key, after
    /// checking that no version's retention lasts beyond now (then nothing is removed and the
    /// error says until when). False if the key had no version.
    pub(crate) fn delete_all_versions(&self, kind: Kind, name: &str, key: &str) -> Result<bool> {
        let versions = self
            .versions(key)
            .map_err(|e| self.err("listing the versions of", kind, name, &e))?;
        let now = SystemTime::now();
        let mut latest: Option<SystemTime> = None;
        for v in versions.iter().filter(|v| !v.delete_marker) {
            let r = self
                .retention_of(key, Some(&v.id))
                .map_err(|e| self.err("reading the retention of", kind, name, &e))?;
            if let Some(r) = r.filter(|r| r.until > now) {
                latest = Some(latest.map_or(r.until, |l| l.max(r.until)));
            }
        }
        if let Some(until) = latest {
            return Err(immutable(kind, name, until));
        }
        let existed = versions.iter().any(|v| !v.delete_marker);
        // Versions first, delete markers last: an interrupted removal leaves the object hidden
        // rather than half there.
        let mut ordered: Vec<&Version> = versions.iter().filter(|v| !v.delete_marker).collect();
        ordered.extend(versions.iter().filter(|v| v.delete_marker));
        for v in ordered {
            match self.delete_version(key, &v.id) {
                Ok(()) | Err(S3Error::Http { status: 404, .. }) => {}
                Err(e @ S3Error::Http { status: 403, .. }) => {
                    // A retention set since the check above, or one the HEAD did not show.
                    if let Ok(Some(r)) = self.retention_of(key, Some(&v.id)) {
                        return Err(immutable(kind, name, r.until));
                    }
                    return Err(io_error("removing", self.locate(kind, name), &e));
                }
                Err(e) => return Err(io_error("removing", self.locate(kind, name), &e)),
            }
        }
        Ok(existed)
    }
}

/// One page of a ListObjectVersions answer: its versions and delete markers, and the key and
/// version markers of the next page when it is truncated.
fn parse_versions(text: &str) -> (Vec<Version>, Option<(String, String)>) {
    let mut out = Vec::new();
    for (tag, delete_marker) in [("Version", false), ("DeleteMarker", true)] {
        for b in xml::blocks(text, tag) {
            let (Some(key), Some(id)) = (xml::first(b, "Key"), xml::first(b, "VersionId")) else {
                continue;
            };
            out.push(Version {
                key,
                id,
                delete_marker,
                latest: xml::first(b, "IsLatest").as_deref() == Some("true"),
                size: xml::first(b, "Size")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            });
        }
    }
    let next = match (
        xml::first(text, "IsTruncated").as_deref(),
        xml::first(text, "NextKeyMarker"),
        xml::first(text, "NextVersionIdMarker"),
    ) {
        (Some("true"), Some(k), Some(v)) => Some((k, v)),
        _ => None,
    };
    (out, next)
}

fn immutable(kind: Kind, name: &str, until: SystemTime) -> Error {
    Error::Immutable {
        what: format!("{} {name} (S3 Object Lock)", kind.name()),
        until: bms_engine::store::seal::rfc3339(until),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retain_until_is_whole_seconds_rounded_up() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(s3_time(t), "2027-01-15T08:00:00Z");
        assert_eq!(
            s3_time(t + Duration::from_millis(1)),
            "2027-01-15T08:00:01Z"
        );
        assert_eq!(
            parse_time("2027-01-15T08:00:01Z"),
            Some(t + Duration::from_secs(1))
        );
        assert_eq!(
            parse_time("2027-01-15T08:00:00.500Z"),
            Some(t + Duration::from_millis(500))
        );
        assert_eq!(LockMode::default().as_str(), "COMPLIANCE");
    }

    #[test]
    fn a_version_listing_page_is_read_with_its_markers() {
        // The shape of the S3 API reference's ListObjectVersions answer.
        let page = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
            <ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
            <Name>b</Name><Prefix>p/</Prefix><KeyMarker></KeyMarker>\
            <VersionIdMarker></VersionIdMarker><NextKeyMarker>p/b</NextKeyMarker>\
            <NextVersionIdMarker>v3</NextVersionIdMarker><MaxKeys>2</MaxKeys>\
            <IsTruncated>true</IsTruncated>\
            <Version><Key>p/a</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>\
            <LastModified>2026-12-03T10:00:00.000Z</LastModified><ETag>\"x\"</ETag>\
            <Size>434234</Size><StorageClass>STANDARD</StorageClass></Version>\
            <DeleteMarker><Key>p/b</Key><VersionId>v3</VersionId><IsLatest>true</IsLatest>\
            <LastModified>2026-12-03T10:00:00.000Z</LastModified></DeleteMarker>\
            </ListVersionsResult>";
        let (v, next) = parse_versions(page);
        assert_eq!(next, Some(("p/b".into(), "v3".into())));
        assert_eq!(v.len(), 2);
        assert_eq!(
            (v[0].key.as_str(), v[0].id.as_str(), v[0].latest, v[0].size),
            ("p/a", "v1", true, 434234)
        );
        assert!(!v[0].delete_marker && v[1].delete_marker && v[1].size == 0);
        let last = page.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(parse_versions(&last).1, None);
    }
}
