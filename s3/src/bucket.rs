//! Operations on the bucket itself rather than on the repository's objects: the pre-flight
//! probe, the Object Lock state, and creating a bucket (docs/s3.md "Pre-flight", "Object Lock").

use reqwest::Method;

use crate::client::{describe, Req, S3Error};
use crate::store::S3Store;
use crate::xml;

impl S3Store {
    /// The pre-flight check (docs/s3.md "Pre-flight"): the endpoint answers, the credentials are
    /// accepted and the bucket exists (HEAD bucket), and a probe object can be written and
    /// removed. The error says which of them failed.
    pub fn probe(&self) -> std::result::Result<(), String> {
        let b = &self.client.cfg.bucket;
        let ep = self.client.endpoint();
        match self.client.send(&Req::new(Method::HEAD, None)) {
            Ok(_) => {}
            Err(S3Error::Http { status: 404, .. }) => {
                return Err(format!(
                    "bucket '{b}' does not exist at {ep}: create it, or correct --bucket"
                ))
            }
            Err(S3Error::Http {
                status: 403 | 401, ..
            }) => {
                return Err(format!(
                    "{ep} refused the credentials for bucket '{b}' (HTTP 403): check the \
                     target's credentials file and that the key may use this bucket"
                ))
            }
            Err(e) => return Err(format!("S3 endpoint {ep}: {}", describe(&e))),
        }
        let probe = self.client.key(&format!(
            ".bms-probe-{}",
            jiff::Timestamp::now().as_nanosecond()
        ));
        let put = Req::new(Method::PUT, Some(&probe)).body(b"probe");
        let written = self.client.send(&put).map_err(|e| {
            format!(
                "cannot write to bucket '{b}' at {ep}: {}; the credentials need s3:PutObject \
                 and s3:DeleteObject on the prefix",
                describe(&e)
            )
        })?;
        // On a versioned bucket the probe's version itself is removed, not hidden behind a
        // delete marker.
        let version = written
            .header("x-amz-version-id")
            .filter(|v| !v.is_empty() && *v != "null")
            .map(str::to_owned);
        let mut del = Req::new(Method::DELETE, Some(&probe));
        if let Some(v) = &version {
            del = del.query("versionId", v);
        }
        self.client
            .send(&del)
            .map_err(|e| format!("cannot delete from bucket '{b}' at {ep}: {}", describe(&e)))?;
        Ok(())
    }

    /// Whether the bucket has Object Lock enabled (GetObjectLockConfiguration).
    pub fn object_lock_enabled(&self) -> std::result::Result<bool, String> {
        let req = Req::new(Method::GET, None).query("object-lock", "");
        match self.client.send(&req) {
            Ok(r) => Ok(xml::first(&r.text(), "ObjectLockEnabled").as_deref() == Some("Enabled")),
            Err(S3Error::Http { code, .. }) if code == "ObjectLockConfigurationNotFoundError" => {
                Ok(false)
            }
            Err(e) => Err(format!(
                "bucket '{}' at {}: {}",
                self.client.cfg.bucket,
                self.client.endpoint(),
                describe(&e)
            )),
        }
    }

    /// Creates the bucket (tests and first setup; bmsd never creates buckets by itself); with
    /// `object_lock`, with Object Lock enabled (which turns versioning on).
    pub fn create_bucket_with(&self, object_lock: bool) -> std::result::Result<(), String> {
        self.create(object_lock)
    }

    /// Creates the bucket (tests and first setup; bmsd never creates buckets by itself).
    pub fn create_bucket(&self) -> std::result::Result<(), String> {
        self.create(false)
    }

    fn create(&self, object_lock: bool) -> std::result::Result<(), String> {
        let body;
        let mut req = Req::new(Method::PUT, None);
        if object_lock {
            req = req.header("x-amz-bucket-object-lock-enabled", "true");
        }
        if self.client.cfg.region != "us-east-1" {
            body = format!(
                "<CreateBucketConfiguration><LocationConstraint>{}</LocationConstraint>\
                 </CreateBucketConfiguration>",
                xml::escape(&self.client.cfg.region)
            );
            req = req.body(body.as_bytes());
        }
        match self.client.send(&req) {
            Ok(_) => Ok(()),
            Err(S3Error::Http { code, .. }) if code == "BucketAlreadyOwnedByYou" => Ok(()),
            Err(e) => Err(format!(
                "cannot create bucket '{}' at {}: {}",
                self.client.cfg.bucket,
                self.client.endpoint(),
                describe(&e)
            )),
        }
    }
}
