//! [`S3Store`]: a repository under a key prefix of an S3 bucket, with the layout of a
//! [`bms_engine::store::LocalStore`] (docs/s3.md "Layout"): `config`, `condemned`,
//! `packs/ab/<id>`, `index/<id>`, `snapshots/<id>`, `locks/<name>.json`, `keys/<id>`. There is
//! no `tmp/`: an object exists only once its upload completed (a single PUT, or the completion
//! of a multipart upload), so an interrupted write leaves at most an incomplete multipart upload,
//! which [`Store::clean_tmp`] aborts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bms_engine::store::{
    sealable, valid_name, Kind, ObjectReader, ObjectStat, ObjectWriter, Put, Seal, Store,
    CONDEMNED, CONFIG,
};
use bms_engine::{Error, Result};
use reqwest::Method;

use crate::behind::Behind;
use crate::client::{describe, Client, Config, Req, S3Error, Stats};
use crate::object::{S3Reader, S3Writer};
use crate::retention::Versioning;
use crate::xml;

/// A repository in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    pub(crate) client: Arc<Client>,
    location: PathBuf,
    versioning: Arc<Versioning>,
    /// Pack uploads in flight (docs/s3.md "Parallelism").
    pub(crate) behind: Arc<Behind>,
    /// Blocks of packs read lately (docs/s3.md "Reads").
    blocks: Arc<crate::blocks::Blocks>,
}

impl S3Store {
    /// A store over `cfg`'s bucket and prefix; nothing is sent until it is used.
    pub fn new(cfg: Config) -> std::result::Result<S3Store, String> {
        let client = Client::new(cfg)?;
        Ok(S3Store {
            location: PathBuf::from(client.location()),
            client: Arc::new(client),
            versioning: Arc::default(),
            behind: Arc::default(),
            blocks: Arc::default(),
        })
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn versioning(&self) -> &Versioning {
        &self.versioning
    }

    /// What this store sent and received so far.
    pub fn stats(&self) -> &Stats {
        &self.client.stats
    }

    /// The endpoint (for messages).
    pub fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// The key of an object relative to the bucket.
    pub(crate) fn object_key(&self, kind: Kind, name: &str) -> Result<String> {
        if !valid_name(name) || (kind == Kind::Config && name != CONFIG && name != CONDEMNED) {
            return Err(Error::Internal(format!(
                "invalid {} name {name:?}",
                kind.name()
            )));
        }
        let rel = match kind {
            Kind::Config => name.to_owned(),
            Kind::Packs if name.len() >= 2 && name.is_char_boundary(2) => {
                format!("packs/{}/{name}", &name[..2])
            }
            _ => format!("{}/{name}", dir(kind)),
        };
        Ok(self.client.key(&rel))
    }

    pub(crate) fn err(&self, op: &'static str, kind: Kind, name: &str, e: &S3Error) -> Error {
        io_error(op, self.locate(kind, name), e)
    }

    /// HEAD of an object: its size and age, None when it does not exist.
    fn head(&self, key: &str) -> std::result::Result<Option<ObjectStat>, S3Error> {
        match self.client.send(&Req::new(Method::HEAD, Some(key))) {
            Ok(r) => Ok(Some(ObjectStat {
                size: r
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                modified: r.header("last-modified").and_then(parse_http_date),
            })),
            Err(S3Error::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Keys under `prefix`, all pages (ListObjectsV2, 1000 keys a page).
    fn list_keys(&self, prefix: &str) -> std::result::Result<Vec<String>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = Req::new(Method::GET, None)
                .query("list-type", "2")
                .query("prefix", prefix);
            if let Some(t) = &token {
                req = req.query("continuation-token", t);
            }
            let r = self.client.send(&req)?;
            let text = r.text();
            for c in xml::blocks(&text, "Contents") {
                out.extend(xml::first(c, "Key"));
            }
            token = xml::first(&text, "NextContinuationToken");
            if xml::first(&text, "IsTruncated").as_deref() != Some("true") || token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Uploads `data` under `key` in parts of the configured size, `parallel` at once; an
    /// upload that fails is aborted.
    fn put_multipart(&self, key: &str, data: &[u8]) -> std::result::Result<(), S3Error> {
        let r = self
            .client
            .send(&Req::new(Method::POST, Some(key)).query("uploads", ""))?;
        let Some(id) = xml::first(&r.text(), "UploadId") else {
            return Err(S3Error::Http {
                status: 500,
                code: "NoUploadId".into(),
                message: "the answer to CreateMultipartUpload names no upload".into(),
            });
        };
        let result = self.upload_parts(key, &id, data).and_then(|etags| {
            let mut body = String::from("<CompleteMultipartUpload>");
            for (i, etag) in etags.iter().enumerate() {
                body.push_str(&format!(
                    "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                    i + 1,
                    xml::escape(etag)
                ));
            }
            body.push_str("</CompleteMultipartUpload>");
            self.client
                .send(
                    &Req::new(Method::POST, Some(key))
                        .query("uploadId", &id)
                        .body(body.as_bytes()),
                )
                .map(|_| ())
        });
        if let Err(e) = &result {
            tracing::warn!(
                endpoint = %self.client.endpoint(),
                "multipart upload of {key} failed, aborting it: {}",
                describe(e)
            );
            let abort = Req::new(Method::DELETE, Some(key)).query("uploadId", &id);
            if let Err(a) = self.client.send(&abort) {
                tracing::warn!(
                    "cannot abort the multipart upload of {key} ({}); the next run's cleanup \
                     aborts it",
                    describe(&a)
                );
                lock(&UNABORTED).push((self.location.clone(), key.to_owned(), id.clone()));
            }
        }
        result
    }

    fn upload_parts(
        &self,
        key: &str,
        id: &str,
        data: &[u8],
    ) -> std::result::Result<Vec<String>, S3Error> {
        let parts: Vec<&[u8]> = data.chunks(self.client.cfg.part_size.max(1)).collect();
        let etags: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; parts.len()]);
        let failed: Mutex<Option<S3Error>> = Mutex::new(None);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = self.client.cfg.parallel.clamp(1, parts.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= parts.len() || lock(&failed).is_some() {
                        return;
                    }
                    let n = (i + 1).to_string();
                    let req = Req::new(Method::PUT, Some(key))
                        .query("partNumber", &n)
                        .query("uploadId", id)
                        .body(parts[i]);
                    match self.client.send(&req) {
                        Ok(r) => lock(&etags)[i] = r.header("etag").map(str::to_owned),
                        Err(e) => {
                            lock(&failed).get_or_insert(e);
                            return;
                        }
                    }
                });
            }
        });
        if let Some(e) = lock(&failed).take() {
            return Err(e);
        }
        let etags = std::mem::take(&mut *lock(&etags));
        etags
            .into_iter()
            .map(|e| {
                e.ok_or_else(|| S3Error::Http {
                    status: 500,
                    code: "NoETag".into(),
                    message: "an uploaded part has no ETag".into(),
                })
            })
            .collect()
    }

    /// Writes a whole object: one PUT, or a multipart upload above the threshold.
    pub(crate) fn upload(&self, key: &str, data: &[u8]) -> std::result::Result<(), S3Error> {
        if data.len() > self.client.cfg.multipart_threshold {
            return self.put_multipart(key, data);
        }
        self.client
            .send(&Req::new(Method::PUT, Some(key)).body(data))
            .map(|_| ())
    }
}

/// Multipart uploads of this process whose abort failed (the endpoint was gone): by store
/// location, key and upload id. The next [`Store::clean_tmp`] of that store aborts them whatever
/// their age.
static UNABORTED: Mutex<Vec<(PathBuf, String, String)>> = Mutex::new(Vec::new());

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn dir(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "",
        Kind::Packs => "packs",
        Kind::Index => "index",
        Kind::Snapshots => "snapshots",
        Kind::Locks => "locks",
        Kind::Keys => "keys",
    }
}

fn parse_http_date(s: &str) -> Option<SystemTime> {
    let t = jiff::fmt::rfc2822::parse(s).ok()?;
    Some(SystemTime::from(t.timestamp()))
}

/// An S3 failure as the engine's I/O error on `path`: a missing object is `NotFound`, refused
/// credentials `PermissionDenied`, no answer `ConnectionRefused`/`TimedOut`.
pub(crate) fn io_error(op: &'static str, path: PathBuf, e: &S3Error) -> Error {
    let kind = match e {
        S3Error::Http { status: 404, .. } => std::io::ErrorKind::NotFound,
        S3Error::Http {
            status: 401 | 403, ..
        } => std::io::ErrorKind::PermissionDenied,
        S3Error::Http { .. } => std::io::ErrorKind::Other,
        S3Error::Transport { timeout: true, .. } => std::io::ErrorKind::TimedOut,
        S3Error::Transport { .. } => std::io::ErrorKind::ConnectionRefused,
    };
    Error::io(op, path, std::io::Error::new(kind, describe(e)))
}

pub(crate) fn op(kind: Kind, write: bool) -> &'static str {
    match (kind, write) {
        (Kind::Config, false) => "reading repository config",
        (Kind::Packs, false) => "reading pack",
        (Kind::Index, false) => "reading index file",
        (Kind::Snapshots, false) => "reading snapshot",
        (Kind::Locks, false) => "reading lock file",
        (Kind::Keys, false) => "reading key file",
        (Kind::Config, true) => "writing repository config",
        (Kind::Packs, true) => "writing pack",
        (Kind::Index, true) => "writing index file",
        (Kind::Snapshots, true) => "writing snapshot",
        (Kind::Locks, true) => "writing lock file",
        (Kind::Keys, true) => "writing key file",
    }
}

impl Store for S3Store {
    fn location(&self) -> &Path {
        &self.location
    }

    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        let rel = match self.object_key(kind, name) {
            Ok(k) => k,
            Err(_) => self.client.key(&format!("{}/{name}", dir(kind))),
        };
        let prefix_len = self.client.cfg.prefix.len();
        let rel = if prefix_len > 0 {
            rel.get(prefix_len + 1..).unwrap_or(&rel).to_owned()
        } else {
            rel
        };
        self.location.join(rel)
    }

    /// An S3 repository has no directories to check: objects are found by key.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        self.behind.drain();
        if kind == Kind::Config {
            return Ok(self
                .stat(kind, CONFIG)?
                .map(|_| CONFIG.to_owned())
                .into_iter()
                .collect());
        }
        let prefix = self.client.key(&format!("{}/", dir(kind)));
        let keys = self
            .list_keys(&prefix)
            .map_err(|e| io_error("listing", self.location.join(dir(kind)), &e))?;
        let mut out: Vec<String> = keys
            .iter()
            .filter_map(|k| k.rsplit('/').next())
            .filter(|n| kind != Kind::Locks || n.ends_with(".json"))
            .filter(|n| valid_name(n))
            .map(str::to_owned)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        self.behind.drain();
        let key = self.object_key(kind, name)?;
        self.client
            .send(&Req::new(Method::GET, Some(&key)))
            .map(|r| r.body)
            .map_err(|e| self.err(op(kind, false), kind, name, &e))
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ObjectReader>> {
        self.behind.drain();
        let key = self.object_key(kind, name)?;
        let path = self.locate(kind, name);
        let size = match self.head(&key) {
            Ok(Some(s)) => s.size,
            Ok(None) => {
                return Err(io_error(
                    op(kind, false),
                    path,
                    &S3Error::Http {
                        status: 404,
                        code: "NoSuchKey".into(),
                        message: "the object does not exist".into(),
                    },
                ))
            }
            Err(e) => return Err(io_error(op(kind, false), path, &e)),
        };
        Ok(Box::new(S3Reader::new(
            self.client.clone(),
            (kind == Kind::Packs).then(|| self.blocks.clone()),
            key,
            path,
            size,
            op(kind, false),
        )))
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<Option<ObjectStat>> {
        self.behind.drain();
        let key = self.object_key(kind, name)?;
        self.head(&key)
            .map_err(|e| self.err("reading", kind, name, &e))
    }

    /// [`Put::New`]: a HEAD first (the check that no object of the name exists, for servers
    /// that ignore conditional puts), then a PUT with `If-None-Match: *` (a 412 answer means
    /// another writer won). [`Put::Replace`]: a plain PUT, which S3 makes atomic.
    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> Result<bool> {
        let key = self.object_key(kind, name)?;
        self.settle(kind)?;
        let write = op(kind, true);
        if mode == Put::New {
            if self
                .head(&key)
                .map_err(|e| self.err(write, kind, name, &e))?
                .is_some()
            {
                return Ok(false);
            }
            let req = Req::new(Method::PUT, Some(&key))
                .header("if-none-match", "*")
                .body(data);
            return match self.client.send(&req) {
                Ok(_) => Ok(true),
                Err(S3Error::Http {
                    status: 412 | 409, ..
                }) => Ok(false),
                Err(e) => Err(self.err(write, kind, name, &e)),
            };
        }
        self.upload(&key, data)
            .map_err(|e| self.err(write, kind, name, &e))?;
        if !sealable(kind) && self.versioned().unwrap_or(false) {
            self.drop_old_versions(&key);
        }
        Ok(true)
    }

    fn create(&self, kind: Kind) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(S3Writer::new(self.clone(), kind)))
    }

    /// S3 answers a DELETE of a missing key with success too: a HEAD says whether it existed.
    /// On a versioned bucket (Object Lock) every version of the key is deleted, which S3
    /// refuses while a version's retention lasts (docs/s3.md "Object Lock").
    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        let key = self.object_key(kind, name)?;
        self.behind.drain();
        if self
            .versioned()
            .map_err(|e| self.err("removing", kind, name, &e))?
        {
            return self.delete_all_versions(kind, name, &key);
        }
        if self
            .head(&key)
            .map_err(|e| self.err("removing", kind, name, &e))?
            .is_none()
        {
            return Ok(false);
        }
        self.client
            .send(&Req::new(Method::DELETE, Some(&key)))
            .map(|_| true)
            .map_err(|e| self.err("removing", kind, name, &e))
    }

    /// An Object Lock retention until `until` in the target's mode, extended, never shortened
    /// (docs/s3.md "Object Lock"). Lock files and the config are never sealed.
    fn seal(&self, kind: Kind, name: &str, until: SystemTime) -> Result<Seal> {
        if !sealable(kind) {
            return Err(Error::Internal(format!(
                "{} objects are never sealed",
                kind.name()
            )));
        }
        self.behind.drain();
        let key = self.object_key(kind, name)?;
        self.put_retention(&key, until)
            .map(|()| Seal::Sealed)
            .map_err(|e| self.err("setting the Object Lock retention of", kind, name, &e))
    }

    /// The retain-until date of the object's current version. It lapses by itself: nothing is
    /// lifted ([`Store::unseal`] keeps its default).
    fn sealed_until(&self, kind: Kind, name: &str) -> Result<Option<SystemTime>> {
        if !sealable(kind) {
            return Ok(None);
        }
        self.behind.drain();
        Ok(self.retention(kind, name)?.map(|r| r.until))
    }

    /// Aborts the multipart uploads under the prefix that were started longer than `max_age`
    /// ago (uploads of a writer that died or lost its connection).
    fn clean_tmp(&self, max_age: Duration) -> usize {
        self.behind.drain();
        let mine: Vec<(PathBuf, String, String)> = {
            let mut all = lock(&UNABORTED);
            let (mine, others) = all.drain(..).partition(|(l, _, _)| *l == self.location);
            *all = others;
            mine
        };
        let mut n = 0;
        for (loc, key, id) in mine {
            let abort = Req::new(Method::DELETE, Some(&key)).query("uploadId", &id);
            match self.client.send(&abort) {
                Ok(_) | Err(S3Error::Http { status: 404, .. }) => n += 1,
                Err(_) => lock(&UNABORTED).push((loc, key, id)),
            }
        }
        n + self.clean_old_uploads(max_age)
    }

    /// Lock files are written with single PUTs: nothing is staged.
    fn clean_lock_staging(&self, _max_age: Duration) -> usize {
        0
    }
}
