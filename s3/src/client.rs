//! The S3 HTTP client (docs/s3.md "Client"): signed requests over reqwest's blocking client,
//! bounded parallelism, request timeouts, retries with backoff on 5xx, throttling and transport
//! failures. Messages name the endpoint and the object, never a credential.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use reqwest::blocking::Client as Http;
use reqwest::Url;

use crate::creds::Credentials;
use crate::sigv4;

/// Where and how to reach a bucket.
#[derive(Debug, Clone)]
pub struct Config {
    /// `http(s)://host[:port]`, without the bucket (path-style) or with it in the host
    /// (virtual-host style is built from this and `bucket`).
    pub endpoint: String,
    pub bucket: String,
    /// Key prefix of the repository (no leading or trailing `/`; "" for the bucket's root).
    pub prefix: String,
    pub region: String,
    /// Virtual-host style (`bucket.host`) instead of path style (`host/bucket`).
    pub virtual_host: bool,
    pub credentials: Credentials,
    /// PEM CA certificates trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Requests in flight at most.
    pub parallel: usize,
    /// Objects larger than this are uploaded in parts.
    pub multipart_threshold: usize,
    /// Size of the parts of a multipart upload (at least 5 MiB on AWS except the last).
    pub part_size: usize,
    /// Attempts after the first for retryable failures.
    pub retries: u32,
    /// Timeout of one request (connect, send, receive).
    pub timeout: Duration,
    /// The Object Lock mode of the retentions [`crate::S3Store`] writes when it seals.
    pub lock_mode: crate::LockMode,
}

impl Config {
    /// A configuration with bms's defaults for everything but the place and credentials.
    pub fn new(endpoint: &str, bucket: &str, prefix: &str, credentials: Credentials) -> Config {
        Config {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            region: "us-east-1".into(),
            virtual_host: false,
            credentials,
            ca_file: None,
            parallel: 8,
            multipart_threshold: 64 << 20,
            part_size: 16 << 20,
            retries: 4,
            timeout: Duration::from_secs(120),
            lock_mode: crate::LockMode::default(),
        }
    }
}

/// Why a request failed.
#[derive(Debug, Clone)]
pub enum S3Error {
    /// The server answered with an error status.
    Http {
        status: u16,
        code: String,
        message: String,
    },
    /// No answer: connection refused or reset, timeout, TLS failure.
    Transport { timeout: bool, message: String },
}

impl S3Error {
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Http { status, .. } => Some(*status),
            S3Error::Transport { .. } => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            S3Error::Http { status, code, .. } => {
                matches!(status, 429 | 500 | 502 | 503 | 504)
                    || matches!(
                        code.as_str(),
                        "SlowDown" | "RequestTimeout" | "InternalError"
                    )
            }
            S3Error::Transport { .. } => true,
        }
    }
}

/// One answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Counts of what a client sent and received (for tests and figures).
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub retries: AtomicU64,
}

/// A counting semaphore: at most `n` requests at once.
#[derive(Debug)]
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
        SlotGuard(self)
    }
}

struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|p| p.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// A signed-request client of one bucket.
#[derive(Debug)]
pub struct Client {
    http: Http,
    pub(crate) cfg: Config,
    /// Scheme and authority requests go to (with the bucket for virtual-host style).
    base: String,
    host: String,
    /// Path before the key: `/bucket` (path style) or "" (virtual-host style).
    bucket_path: String,
    slots: Slots,
    pub stats: Arc<Stats>,
}

/// A request to make.
pub struct Req<'a> {
    pub method: reqwest::Method,
    /// The key relative to the bucket (already prefixed), None for the bucket itself.
    pub key: Option<&'a str>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

impl<'a> Req<'a> {
    pub fn new(method: reqwest::Method, key: Option<&'a str>) -> Self {
        Req {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: &[],
        }
    }
    pub fn query(mut self, k: &str, v: &str) -> Self {
        self.query.push((k.into(), v.into()));
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: &'a [u8]) -> Self {
        self.body = b;
        self
    }
}

impl Client {
    /// Builds a client; nothing is sent. Errors say which setting is wrong.
    pub fn new(cfg: Config) -> Result<Client, String> {
        let url = Url::parse(&cfg.endpoint).map_err(|e| {
            format!(
                "S3 endpoint '{}' is not a URL ({e}): give http(s)://host[:port]",
                cfg.endpoint
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "S3 endpoint '{}' must be http://host[:port] or https://host[:port]",
                cfg.endpoint
            ));
        }
        let host_only = url.host_str().unwrap_or_default().to_owned();
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let (host, bucket_path) = if cfg.virtual_host {
            (format!("{}.{host_only}{port}", cfg.bucket), String::new())
        } else {
            (format!("{host_only}{port}"), format!("/{}", cfg.bucket))
        };
        let base = format!("{}://{host}", url.scheme());
        let tls = crate::tls::client_config(cfg.ca_file.as_deref())?;
        let http = Http::builder()
            .tls_backend_preconfigured(tls)
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(cfg.parallel.max(1))
            .user_agent(concat!("bms/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the S3 client: {}", e.without_url()))?;
        Ok(Client {
            http,
            base,
            host,
            bucket_path,
            slots: Slots {
                free: Mutex::new(cfg.parallel.max(1)),
                cv: Condvar::new(),
            },
            stats: Arc::new(Stats::default()),
            cfg,
        })
    }

    /// The endpoint as configured (for messages).
    pub fn endpoint(&self) -> &str {
        &self.cfg.endpoint
    }

    /// The URL of the repository's prefix (for messages): endpoint, bucket, prefix.
    pub fn location(&self) -> String {
        let mut s = format!("{}{}", self.base, self.bucket_path);
        if !self.cfg.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.cfg.prefix);
        }
        s
    }

    /// The full key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> String {
        if self.cfg.prefix.is_empty() {
            rel.to_owned()
        } else {
            format!("{}/{rel}", self.cfg.prefix)
        }
    }

    /// Sends `req`, retrying retryable failures with exponential backoff. A 2xx answer is `Ok`,
    /// everything else an [`S3Error`].
    pub fn send(&self, req: &Req<'_>) -> Result<Response, S3Error> {
        let mut attempt = 0;
        loop {
            match self.send_once(req) {
                Ok(r) => return Ok(r),
                Err(e) if e.retryable() && attempt < self.cfg.retries => {
                    let wait = Duration::from_millis(200u64 << attempt.min(5))
                        .min(Duration::from_secs(5))
                        + jitter();
                    tracing::debug!(
                        endpoint = %self.cfg.endpoint,
                        method = %req.method,
                        attempt,
                        "S3 request failed, retrying in {wait:?}: {}",
                        describe(&e)
                    );
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn send_once(&self, req: &Req<'_>) -> Result<Response, S3Error> {
        let path = match req.key {
            Some(k) => format!("{}/{}", self.bucket_path, sigv4::uri_encode(k, true)),
            None if self.bucket_path.is_empty() => "/".to_owned(),
            None => self.bucket_path.clone(),
        };
        let payload = sigv4::sha256_hex(req.body);
        let signed = sigv4::sign(
            &sigv4::Request {
                method: req.method.as_str(),
                path: &path,
                query: &req.query,
                headers: &req.headers,
                host: &self.host,
                payload_sha256: &payload,
            },
            &self.cfg.credentials,
            &self.cfg.region,
            jiff::Timestamp::now(),
        );
        let query = sigv4::canonical_query(&req.query);
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let mut b = self.http.request(req.method.clone(), url);
        for (k, v) in &signed {
            b = b.header(k.as_str(), v.as_str());
        }
        if !req.body.is_empty() || req.method == reqwest::Method::PUT {
            b = b.body(req.body.to_vec());
        }
        let _slot = self.slots.take();
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_sent
            .fetch_add(req.body.len() as u64, Ordering::Relaxed);
        let resp = b.send().map_err(transport)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().map_err(transport)?.to_vec();
        self.stats
            .bytes_received
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        if (200..300).contains(&status) {
            // CompleteMultipartUpload can fail with 200 and an <Error> body.
            if req.method == reqwest::Method::POST && body.starts_with(b"<?xml") {
                let text = String::from_utf8_lossy(&body);
                if text.contains("<Error>") {
                    return Err(http_error(status.max(500), &text));
                }
            }
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        Err(http_error(status, &String::from_utf8_lossy(&body)))
    }
}

fn http_error(status: u16, body: &str) -> S3Error {
    let code = crate::xml::first(body, "Code").unwrap_or_default();
    let message = crate::xml::first(body, "Message").unwrap_or_default();
    S3Error::Http {
        status,
        code,
        message,
    }
}

fn transport(e: reqwest::Error) -> S3Error {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    S3Error::Transport {
        timeout,
        message: s,
    }
}

fn jitter() -> Duration {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(u64::from(n % 100))
}

/// The failure in words, with what to do.
pub fn describe(e: &S3Error) -> String {
    match e {
        S3Error::Http {
            status,
            code,
            message,
        } => {
            let hint = match (*status, code.as_str()) {
                (403, _) | (_, "InvalidAccessKeyId" | "SignatureDoesNotMatch") => {
                    "; check the target's S3 credentials and that they may use this bucket"
                }
                (404, "NoSuchBucket") => "; create the bucket, or correct --bucket",
                (301 | 307, _) | (_, "PermanentRedirect") => {
                    "; the bucket is in another region or needs another addressing style: set \
                     --region (or --virtual-host)"
                }
                (503, _) | (_, "SlowDown") => "; the server is overloaded: try again later",
                _ => "",
            };
            let mut s = format!("HTTP {status}");
            if !code.is_empty() {
                s.push(' ');
                s.push_str(code);
            }
            if !message.is_empty() {
                s.push_str(": ");
                s.push_str(message);
            }
            s.push_str(hint);
            s
        }
        S3Error::Transport { timeout, message } => {
            if message.contains("certificate") {
                format!(
                    "TLS: {message}; the endpoint's certificate is not trusted: give the target \
                     the CA certificate that signed it (--ca-file FILE, PEM)"
                )
            } else if *timeout {
                format!(
                    "no answer in time ({message}); check that the endpoint is up and reachable"
                )
            } else {
                format!("{message}; check that the endpoint is up and reachable")
            }
        }
    }
}
