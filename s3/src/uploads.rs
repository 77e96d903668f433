//! Incomplete multipart uploads under the prefix (docs/s3.md "Multipart"): listed for the
//! tests, aborted by the cleanup of each backup when older than a lock lease.

use std::time::{Duration, SystemTime};

use reqwest::Method;

use crate::client::{describe, Req};
use crate::store::S3Store;
use crate::xml;

impl S3Store {
    /// The keys of the incomplete multipart uploads under the prefix.
    pub fn incomplete_uploads(&self) -> std::result::Result<Vec<String>, String> {
        let req = Req::new(Method::GET, None)
            .query("uploads", "")
            .query("prefix", &self.client.key(""));
        let text = self.client.send(&req).map_err(|e| describe(&e))?.text();
        Ok(xml::blocks(&text, "Upload")
            .into_iter()
            .filter_map(|u| xml::first(u, "Key"))
            .collect())
    }

    pub(crate) fn clean_old_uploads(&self, max_age: Duration) -> usize {
        let prefix = self.client.key("");
        let req = Req::new(Method::GET, None)
            .query("uploads", "")
            .query("prefix", &prefix);
        let text = match self.client.send(&req) {
            Ok(r) => r.text(),
            Err(e) => {
                tracing::warn!(
                    endpoint = %self.client.endpoint(),
                    "cannot list incomplete multipart uploads: {}",
                    describe(&e)
                );
                return 0;
            }
        };
        let cutoff = SystemTime::now().checked_sub(max_age);
        let mut n = 0;
        for u in xml::blocks(&text, "Upload") {
            let (Some(key), Some(id)) = (xml::first(u, "Key"), xml::first(u, "UploadId")) else {
                continue;
            };
            let started = xml::first(u, "Initiated")
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(SystemTime::from);
            if let (Some(c), Some(s)) = (cutoff, started) {
                if s > c {
                    continue;
                }
            }
            let abort = Req::new(Method::DELETE, Some(&key)).query("uploadId", &id);
            match self.client.send(&abort) {
                Ok(_) => n += 1,
                Err(e) => tracing::warn!("cannot abort the upload of {key}: {}", describe(&e)),
            }
        }
        n
    }
}
