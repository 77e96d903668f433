//! The store of an encrypted repository (docs/repository-format.md, "Encryption"): it wraps
//! another store and seals every pack, index file and snapshot file, so that nothing of their
//! content (blob boundaries, ids, trees, names, sizes of files) is readable from the bytes. The
//! config and the key slots pass through unchanged: they must be readable before the key is.
//!
//! A sealed object is `"BMSENC01" ‖ file nonce (24 random bytes) ‖ segments`; each segment seals
//! up to [`SEGMENT`] bytes of the object as `nonce ‖ ciphertext ‖ tag` with the associated data
//! `kind ‖ file nonce ‖ segment number ‖ last flag`, and the last segment's also holds the
//! object's name. Moving segments between objects, reordering, truncating, or putting an object
//! under another name (a swapped pack, an older snapshot file in a newer one's place) makes
//! a segment fail to open, and the error names the object.

use super::{Kind, ObjectReader, ObjectStat, ObjectWriter, Put, Seal, Store};
use crate::crypto::{self, RepoKeys};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
/// Plaintext a streamed writer collects before sealing it (in parallel) and writing it.
const BATCH: usize = 32 * SEGMENT;
const MAGIC: &[u8; 8] = b"BMSENC01";
const HEADER: usize = 8 + 24;
const SEALED_SEGMENT: usize = SEGMENT + crypto::OVERHEAD;

/// Whether objects of `kind` are sealed (all but the config and the key slots).
fn sealed(kind: Kind) -> bool {
    !matches!(kind, Kind::Config | Kind::Keys)
}

fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Config => 0,
        Kind::Packs => 1,
        Kind::Index => 2,
        Kind::Snapshots => 3,
        Kind::Locks => 4,
        Kind::Keys => 5,
    }
}

fn segment_ad(kind: Kind, file_nonce: &[u8], n: u64, last: Option<&str>) -> Vec<u8> {
    let mut ad = Vec::with_capacity(48);
    ad.push(kind_byte(kind));
    ad.extend_from_slice(file_nonce);
    ad.extend_from_slice(&n.to_le_bytes());
    match last {
        Some(name) => {
            ad.push(1);
            ad.extend_from_slice(name.as_bytes());
        }
        None => ad.push(0),
    }
    ad
}

/// A store whose objects are sealed under a repository's keys.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    keys: Arc<RepoKeys>,
}

impl std::fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EncryptedStore({:?})", self.inner)
    }
}

impl EncryptedStore {
    pub fn new(inner: Arc<dyn Store>, keys: RepoKeys) -> EncryptedStore {
        EncryptedStore {
            inner,
            keys: Arc::new(keys),
        }
    }

    /// The repository's keys (for keyed ids).
    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }
}

fn damaged(kind: Kind, name: &str, detail: &str) -> Error {
    Error::corrupt(
        format!("{} {name}", kind.name()),
        format!(
            "{detail}: the object was damaged, or another object (swapped or replayed) is stored \
             in its place; run `bmsctl repo verify --read-data`"
        ),
    )
}

/// Seals a whole object.
fn seal_all(keys: &RepoKeys, kind: Kind, name: &str, data: &[u8]) -> Vec<u8> {
    let mut w = Sealer::new(kind);
    let mut out = w.header.clone();
    out.extend(w.seal_many(keys, data, Some(name)));
    out
}

/// Segments sealed or opened by one thread at least: below this, threads cost more than they
/// save.
const SEGMENTS_PER_THREAD: usize = 4;

/// Threads for `segments` segments: the machine's cores, at most one per
/// [`SEGMENTS_PER_THREAD`] segments.
fn threads_for(segments: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(segments / SEGMENTS_PER_THREAD).max(1)
}

/// Runs `f` on each of `items` (segment number, bytes), on [`threads_for`] threads in contiguous
/// runs, and returns the results in order.
fn par_map<T: Send>(
    items: &[(u64, &[u8])],
    f: &(dyn Fn(u64, &[u8]) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let threads = threads_for(items.len());
    if threads <= 1 {
        return items.iter().map(|(n, d)| f(*n, d)).collect();
    }
    let per = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|run| scope.spawn(move || run.iter().map(|(n, d)| f(*n, d)).collect()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for h in handles {
            let part: Result<Vec<T>> = h
                .join()
                .map_err(|_| Error::Internal("a sealing thread panicked".into()))?;
            out.extend(part?);
        }
        Ok(out)
    })
}

struct Sealer {
    kind: Kind,
    header: Vec<u8>,
    next: u64,
}

impl Sealer {
    fn new(kind: Kind) -> Sealer {
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&crypto::random_bytes::<24>()[..]);
        Sealer {
            kind,
            header,
            next: 0,
        }
    }
    /// Seals `plain` as the next segments (each [`SEGMENT`] bytes but the last), in parallel
    /// when there are many; with `last`, the final one is the object's last segment, which holds
    /// its name (an empty `plain` then makes one empty segment).
    fn seal_many(&mut self, keys: &RepoKeys, plain: &[u8], last: Option<&str>) -> Vec<u8> {
        let first = self.next;
        let mut items: Vec<(u64, &[u8])> = plain
            .chunks(SEGMENT)
            .enumerate()
            .map(|(i, c)| (first + i as u64, c))
            .collect();
        if items.is_empty() && last.is_some() {
            items.push((first, &[]));
        }
        self.next += items.len() as u64;
        let final_n = self.next.saturating_sub(1);
        let (kind, nonce) = (self.kind, &self.header[8..]);
        let seal = |n: u64, d: &[u8]| -> Result<Vec<u8>> {
            let name = last.filter(|_| n == final_n);
            Ok(keys.seal_raw(&segment_ad(kind, nonce, n, name), d))
        };
        // Sealing itself cannot fail; only a panicking thread could, and it propagates here.
        let sealed = par_map(&items, &seal).unwrap_or_else(|_| {
            items
                .iter()
                .map(|(n, d)| seal(*n, d).unwrap_or_default())
                .collect()
        });
        sealed.concat()
    }
}

/// Opens the sealed segments held in `sealed` (whole segments, numbered from `first`; only the
/// object's last one, of `count`, may be shorter) into `out`, their plaintext (as long), on
/// several threads when there are many. Every segment is authenticated before it is decrypted;
/// on an error nothing of `out` may be used.
#[allow(clippy::too_many_arguments)]
fn open_into(
    keys: &RepoKeys,
    kind: Kind,
    name: &str,
    nonce: &[u8],
    count: u64,
    first: u64,
    sealed: &[u8],
    mut out: &mut [u8],
) -> Result<()> {
    let mut jobs: Vec<(u64, &[u8], &mut [u8])> = Vec::new();
    for (i, seg) in sealed.chunks(SEALED_SEGMENT).enumerate() {
        let n = first + i as u64;
        let plain = seg
            .len()
            .checked_sub(crypto::OVERHEAD)
            .filter(|p| *p <= out.len());
        let Some(plain) = plain else {
            return Err(damaged(kind, name, &format!("segment {n} is truncated")));
        };
        let (o, rest) = std::mem::take(&mut out).split_at_mut(plain);
        out = rest;
        jobs.push((n, seg, o));
    }
    if !out.is_empty() {
        return Err(damaged(kind, name, "fewer segments than its size needs"));
    }
    let open = |n: u64, seg: &[u8], o: &mut [u8]| -> Result<()> {
        let last = (n + 1 == count).then_some(name);
        if keys.open_raw_into(&segment_ad(kind, nonce, n, last), seg, o) {
            Ok(())
        } else {
            Err(damaged(
                kind,
                name,
                &format!("segment {n} fails authentication"),
            ))
        }
    };
    let threads = threads_for(jobs.len());
    if threads <= 1 {
        return jobs.iter_mut().try_for_each(|(n, s, o)| open(*n, s, o));
    }
    let per = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks_mut(per)
            .map(|run| scope.spawn(|| run.iter_mut().try_for_each(|(n, s, o)| open(*n, s, o))))
            .collect();
        let mut res = Ok(());
        for h in handles {
            let r = h
                .join()
                .map_err(|_| Error::Internal("a decrypting thread panicked".into()))
                .and_then(|r| r);
            if res.is_ok() {
                res = r;
            }
        }
        res
    })
}

/// Opens a whole sealed object, its segments in parallel when there are many.
fn open_all(keys: &RepoKeys, kind: Kind, name: &str, data: &[u8]) -> Result<Vec<u8>> {
    if data.len() < HEADER + crypto::OVERHEAD || &data[..8] != MAGIC {
        return Err(damaged(kind, name, "not a sealed object"));
    }
    let nonce = &data[8..HEADER];
    let body = &data[HEADER..];
    let count = body.len().div_ceil(SEALED_SEGMENT);
    let size = body
        .len()
        .checked_sub(count * crypto::OVERHEAD)
        .ok_or_else(|| damaged(kind, name, &format!("segment {} is truncated", count - 1)))?;
    let mut out = vec![0u8; size];
    open_into(keys, kind, name, nonce, count as u64, 0, body, &mut out)?;
    Ok(out)
}

impl Store for EncryptedStore {
    fn location(&self) -> &Path {
        self.inner.location()
    }
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        self.inner.locate(kind, name)
    }
    fn check(&self) -> Result<()> {
        self.inner.check()
    }
    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        self.inner.list(kind)
    }
    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let data = self.inner.read(kind, name)?;
        if !sealed(kind) {
            return Ok(data);
        }
        open_all(&self.keys, kind, name, &data)
    }
    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ObjectReader>> {
        let inner = self.inner.open(kind, name)?;
        if !sealed(kind) {
            return Ok(inner);
        }
        let stored = inner.size()?;
        let mut header = [0u8; HEADER];
        if (stored as usize) < HEADER + crypto::OVERHEAD {
            return Err(damaged(kind, name, "too short for a sealed object"));
        }
        inner.read_exact_at(&mut header, 0)?;
        if &header[..8] != MAGIC {
            return Err(damaged(kind, name, "not a sealed object"));
        }
        let body = stored - HEADER as u64;
        let count = body.div_ceil(SEALED_SEGMENT as u64);
        Ok(Box::new(SealedReader {
            inner,
            keys: self.keys.clone(),
            kind,
            name: name.to_owned(),
            nonce: header[8..].to_vec(),
            count,
            size: body - count * crypto::OVERHEAD as u64,
            cache: Mutex::new(None),
        }))
    }
    fn stat(&self, kind: Kind, name: &str) -> Result<Option<ObjectStat>> {
        let st = self.inner.stat(kind, name)?;
        if !sealed(kind) {
            return Ok(st);
        }
        Ok(st.map(|s| {
            let body = s.size.saturating_sub(HEADER as u64);
            let count = body.div_ceil(SEALED_SEGMENT as u64);
            ObjectStat {
                size: body.saturating_sub(count * crypto::OVERHEAD as u64),
                modified: s.modified,
            }
        }))
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> Result<bool> {
        if !sealed(kind) {
            return self.inner.put(kind, name, data, mode);
        }
        let sealed = seal_all(&self.keys, kind, name, data);
        self.inner.put(kind, name, &sealed, mode)
    }
    fn create(&self, kind: Kind) -> Result<Box<dyn ObjectWriter>> {
        let mut inner = self.inner.create(kind)?;
        if !sealed(kind) {
            return Ok(inner);
        }
        let sealer = Sealer::new(kind);
        inner.write_all(&sealer.header)?;
        Ok(Box::new(SealedWriter {
            inner: Some(inner),
            keys: self.keys.clone(),
            sealer,
            pending: Vec::with_capacity(BATCH),
        }))
    }
    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        self.inner.delete(kind, name)
    }
    fn seal(&self, kind: Kind, name: &str, until: SystemTime) -> Result<Seal> {
        self.inner.seal(kind, name, until)
    }
    fn sealed_until(&self, kind: Kind, name: &str) -> Result<Option<SystemTime>> {
        self.inner.sealed_until(kind, name)
    }
    fn unseal(&self, kind: Kind, name: &str) -> Result<bool> {
        self.inner.unseal(kind, name)
    }
    fn seal_intact(&self, kind: Kind, name: &str) -> Result<Option<bool>> {
        self.inner.seal_intact(kind, name)
    }
    fn clean_tmp(&self, max_age: Duration) -> usize {
        self.inner.clean_tmp(max_age)
    }
    fn clean_lock_staging(&self, max_age: Duration) -> usize {
        self.inner.clean_lock_staging(max_age)
    }
    fn encrypted(&self) -> bool {
        true
    }
}

struct SealedReader {
    inner: Box<dyn ObjectReader>,
    keys: Arc<RepoKeys>,
    kind: Kind,
    name: String,
    nonce: Vec<u8>,
    count: u64,
    size: u64,
    /// The last segment opened: blobs are read one after another, mostly from one segment.
    cache: Mutex<Option<(u64, Arc<Vec<u8>>)>>,
}

impl SealedReader {
    fn segment(&self, n: u64) -> Result<Arc<Vec<u8>>> {
        if let Ok(c) = self.cache.lock() {
            if let Some((m, data)) = c.as_ref() {
                if *m == n {
                    return Ok(data.clone());
                }
            }
        }
        let start = HEADER as u64 + n * SEALED_SEGMENT as u64;
        let len = if n + 1 == self.count {
            (self.size - n * SEGMENT as u64) as usize + crypto::OVERHEAD
        } else {
            SEALED_SEGMENT
        };
        let mut buf = vec![0u8; len];
        self.inner.read_exact_at(&mut buf, start)?;
        let last = (n + 1 == self.count).then_some(self.name.as_str());
        let ad = segment_ad(self.kind, &self.nonce, n, last);
        let plain = self.keys.open_raw(&ad, &buf).ok_or_else(|| {
            damaged(
                self.kind,
                &self.name,
                &format!("segment {n} fails authentication"),
            )
        })?;
        let plain = Arc::new(plain);
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((n, plain.clone()));
        }
        Ok(plain)
    }
}

impl SealedReader {
    /// How many whole segments, starting at the one `pos` begins, a read up to `end` covers
    /// (none when `pos` is inside a segment).
    fn whole_segments(&self, pos: u64, end: u64) -> u64 {
        let seg = SEGMENT as u64;
        if !pos.is_multiple_of(seg) {
            return 0;
        }
        if end == self.size {
            return self.count - pos / seg;
        }
        (end - pos) / seg
    }

    /// Whether segment `n` is the one kept opened.
    fn cached(&self, n: u64) -> bool {
        self.cache
            .lock()
            .is_ok_and(|c| c.as_ref().is_some_and(|(m, _)| *m == n))
    }
}

impl ObjectReader for SealedReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|e| *e <= self.size)
            .ok_or_else(|| {
                damaged(
                    self.kind,
                    &self.name,
                    &format!("read past the end ({} bytes) at {offset}", self.size),
                )
            })?;
        let mut pos = offset;
        while pos < end {
            let n = pos / SEGMENT as u64;
            let whole = self.whole_segments(pos, end);
            if whole > 0 && !self.cached(n) {
                // Segments the read covers entirely are read at once and opened straight into
                // `buf`, in parallel when there are many.
                let at = (pos - offset) as usize;
                let plain = ((n + whole) * SEGMENT as u64).min(self.size) - pos;
                let start = HEADER as u64 + n * SEALED_SEGMENT as u64;
                let sealed_len = plain as usize + whole as usize * crypto::OVERHEAD;
                let mut sealed = vec![0u8; sealed_len];
                self.inner.read_exact_at(&mut sealed, start)?;
                let out = &mut buf[at..at + plain as usize];
                open_into(
                    &self.keys,
                    self.kind,
                    &self.name,
                    &self.nonce,
                    self.count,
                    n,
                    &sealed,
                    out,
                )?;
                pos += plain;
                continue;
            }
            let seg = self.segment(n)?;
            let from = (pos - n * SEGMENT as u64) as usize;
            let take = ((end - pos) as usize).min(seg.len().saturating_sub(from));
            if take == 0 {
                return Err(damaged(self.kind, &self.name, "short segment"));
            }
            let at = (pos - offset) as usize;
            buf[at..at + take].copy_from_slice(&seg[from..from + take]);
            pos += take as u64;
        }
        Ok(())
    }
    fn size(&self) -> Result<u64> {
        Ok(self.size)
    }
    fn location(&self) -> &Path {
        self.inner.location()
    }
}

struct SealedWriter {
    inner: Option<Box<dyn ObjectWriter>>,
    keys: Arc<RepoKeys>,
    sealer: Sealer,
    /// Plaintext not yet sealed; the last segment is sealed at commit, with the name.
    pending: Vec<u8>,
}

impl ObjectWriter for SealedWriter {
    fn write_all(&mut self, mut data: &[u8]) -> Result<()> {
        let inner = self
            .inner
            .as_mut()
            .ok_or_else(|| Error::Internal("write after commit".into()))?;
        while !data.is_empty() {
            // A full batch is sealed only when more data follows: the last segment is sealed at
            // commit, with the object's name.
            if self.pending.len() == BATCH {
                let sealed = self.sealer.seal_many(&self.keys, &self.pending, None);
                inner.write_all(&sealed)?;
                self.pending.clear();
            }
            let take = (BATCH - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }
    fn commit(mut self: Box<Self>, name: &str) -> Result<()> {
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| Error::Internal("commit twice".into()))?;
        let sealed = self.sealer.seal_many(&self.keys, &self.pending, Some(name));
        inner.write_all(&sealed)?;
        inner.commit(name)
    }
    fn abort(mut self: Box<Self>) {
        if let Some(inner) = self.inner.take() {
            inner.abort();
        }
    }
}

#[cfg(test)]
#[path = "encrypted_tests.rs"]
mod tests;
