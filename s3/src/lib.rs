//! bms-s3: the engine's [`bms_engine::store::Store`] over an S3-compatible object store
//! (docs/s3.md). [`S3Store`] keeps a repository under a key prefix of a bucket with the layout of
//! a local repository; [`Client`] signs requests (AWS Signature Version 4), retries what may be
//! retried, bounds the requests in flight and times them out.

mod behind;
mod blocks;
mod bucket;
mod client;
mod creds;
mod object;
mod retention;
mod sigv4;
mod store;
mod tls;
mod uploads;
mod xml;

pub use client::{describe, Client, Config, Req, S3Error, Stats};
pub use creds::Credentials;
/// The HTTP method of a [`Req`].
pub use reqwest::Method;
pub use retention::{s3_time, LockMode, Retention, Version};
pub use store::S3Store;
