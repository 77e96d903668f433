//! Reading and writing single objects of an [`S3Store`]: ranged reads with read-ahead, and
//! streamed writes buffered until their name is known.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bms_engine::store::{Kind, ObjectReader, ObjectWriter};
use bms_engine::{Error, Result};
use reqwest::Method;

use crate::blocks::{Blocks, BLOCK};
use crate::client::{Client, Req};
use crate::store::{io_error, lock, op, S3Store};

/// How much a reader fetches at least per ranged GET (blobs of a pack are read in order).
const READ_AHEAD: u64 = 4 << 20;

/// Reads an object by ranged GETs, at least [`READ_AHEAD`] bytes at a time; the last range
/// read is kept for the reads that follow it.
pub(crate) struct S3Reader {
    client: Arc<Client>,
    /// The store's cache of pack blocks (packs only).
    blocks: Option<Arc<Blocks>>,
    key: String,
    path: PathBuf,
    size: u64,
    op: &'static str,
    cache: Mutex<Option<(u64, Vec<u8>)>>,
}

impl S3Reader {
    pub(crate) fn new(
        client: Arc<Client>,
        blocks: Option<Arc<Blocks>>,
        key: String,
        path: PathBuf,
        size: u64,
        op: &'static str,
    ) -> Self {
        S3Reader {
            client,
            blocks,
            key,
            path,
            size,
            op,
            cache: Mutex::new(None),
        }
    }
}

impl ObjectReader for S3Reader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let len = buf.len() as u64;
        let end = offset.checked_add(len).filter(|e| *e <= self.size);
        let Some(end) = end else {
            return Err(Error::io(
                self.op,
                self.path.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "read of {len} bytes at {offset} past the end of the object ({} bytes)",
                        self.size
                    ),
                ),
            ));
        };
        if len == 0 {
            return Ok(());
        }
        if let Some(blocks) = &self.blocks {
            return self.read_blocks(blocks, buf, offset, end);
        }
        let mut cache = lock(&self.cache);
        if let Some((start, data)) = cache.as_ref() {
            if offset >= *start && end <= start + data.len() as u64 {
                let i = (offset - start) as usize;
                buf.copy_from_slice(&data[i..i + buf.len()]);
                return Ok(());
            }
        }
        let fetch_end = end.max(offset.saturating_add(READ_AHEAD)).min(self.size);
        let range = format!("bytes={offset}-{}", fetch_end - 1);
        let r = self
            .client
            .send(&Req::new(Method::GET, Some(&self.key)).header("range", &range))
            .map_err(|e| io_error(self.op, self.path.clone(), &e))?;
        if (r.body.len() as u64) < len {
            return Err(Error::io(
                self.op,
                self.path.clone(),
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the server sent {} of {len} bytes", r.body.len()),
                ),
            ));
        }
        buf.copy_from_slice(&r.body[..buf.len()]);
        *cache = Some((offset, r.body));
        Ok(())
    }

    fn size(&self) -> Result<u64> {
        Ok(self.size)
    }

    fn location(&self) -> &Path {
        &self.path
    }
}

impl S3Reader {
    /// Reads `offset..end` from the aligned blocks that hold it, each fetched unless cached.
    fn read_blocks(&self, blocks: &Blocks, buf: &mut [u8], offset: u64, end: u64) -> Result<()> {
        let key: Arc<str> = self.key.as_str().into();
        let mut at = offset;
        while at < end {
            let n = at / BLOCK;
            let start = n * BLOCK;
            let data = match blocks.get(&key, n) {
                Some(d) => d,
                None => {
                    let stop = (start + BLOCK).min(self.size);
                    let range = format!("bytes={start}-{}", stop - 1);
                    let r = self
                        .client
                        .send(&Req::new(Method::GET, Some(&self.key)).header("range", &range))
                        .map_err(|e| io_error(self.op, self.path.clone(), &e))?;
                    if (r.body.len() as u64) < stop - start {
                        return Err(Error::io(
                            self.op,
                            self.path.clone(),
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!(
                                    "the server sent {} of {} bytes",
                                    r.body.len(),
                                    stop - start
                                ),
                            ),
                        ));
                    }
                    let d = Arc::new(r.body);
                    blocks.put(&key, n, d.clone());
                    d
                }
            };
            let from = (at - start) as usize;
            let to = ((end.min(start + BLOCK)) - start) as usize;
            let i = (at - offset) as usize;
            buf[i..i + (to - from)].copy_from_slice(&data[from..to]);
            at = start + to as u64;
        }
        Ok(())
    }
}

/// Buffers a streamed object (a pack) and uploads it at commit, when its name is known.
pub(crate) struct S3Writer {
    store: S3Store,
    kind: Kind,
    buf: Vec<u8>,
}

impl S3Writer {
    pub(crate) fn new(store: S3Store, kind: Kind) -> Self {
        S3Writer {
            store,
            kind,
            buf: Vec::new(),
        }
    }
}

impl ObjectWriter for S3Writer {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// A pack is uploaded in the background (docs/s3.md "Parallelism"); other objects at once.
    fn commit(self: Box<Self>, name: &str) -> Result<()> {
        let key = self.store.object_key(self.kind, name)?;
        if self.kind == Kind::Packs {
            let S3Writer { store, buf, .. } = *self;
            return store.upload_behind(key, name, buf);
        }
        self.store.settle(self.kind)?;
        self.store
            .upload(&key, &self.buf)
            .map_err(|e| self.store.err(op(self.kind, true), self.kind, name, &e))
    }

    fn abort(self: Box<Self>) {}
}
