//! The parallel part of a backup: file readers (read, chunk, hash), compressors and the
//! pack writer, connected by bounded channels so that memory stays bounded.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::chunker::Chunker;
use crate::config::{CompressionAlgorithm, RepoConfig};
use crate::error::{Error, Result};
use crate::id::{IdSet, ObjectId};
use crate::index::{Index, IndexFile};
use crate::pack::{self, BlobKind, PackEntry, PackWriter};
use crate::store::{Kind, Put, Store};
use crate::tree::ContentRef;

/// A blob to compress and store.
pub struct RawBlob {
    pub kind: BlobKind,
    pub id: ObjectId,
    pub data: Vec<u8>,
}

/// A compressed blob ready for a pack.
pub struct StoredBlob {
    pub kind: BlobKind,
    pub id: ObjectId,
    pub compression: u8,
    pub raw_len: u32,
    pub data: Vec<u8>,
}

/// Counters shared by all threads.
#[derive(Default)]
pub struct Counters {
    pub bytes_read: AtomicU64,
    pub bytes_added: AtomicU64,
    pub chunks_new: AtomicU64,
    pub chunks_total: AtomicU64,
    pub files_read: AtomicU64,
}

/// State shared by the walker and the workers.
pub struct Shared {
    pub index: Arc<Index>,
    pub new_ids: Mutex<IdSet>,
    pub counters: Counters,
    /// Set by the pack writer on a fatal error: everybody stops.
    pub abort: AtomicBool,
}

impl Shared {
    /// Hashes `data` and queues it for storage unless the repository already has it.
    pub fn store(&self, tx: &Sender<RawBlob>, kind: BlobKind, data: &[u8]) -> Result<ObjectId> {
        let id = ObjectId::hash(data);
        if self.index.contains(&id) {
            return Ok(id);
        }
        let fresh = match self.new_ids.lock() {
            Ok(mut s) => s.insert(id),
            Err(_) => return Err(Error::Internal("a backup thread panicked".into())),
        };
        if fresh {
            if kind == BlobKind::Data {
                self.counters.chunks_new.fetch_add(1, Ordering::Relaxed);
            }
            tx.send(RawBlob {
                kind,
                id,
                data: data.to_vec(),
            })
            .map_err(|_| Error::Cancelled)?;
        }
        Ok(id)
    }

    pub fn stopped(&self, cancel: &AtomicBool) -> bool {
        cancel.load(Ordering::Relaxed) || self.abort.load(Ordering::Relaxed)
    }
}

/// A regular file to read.
pub struct FileJob {
    pub slot: usize,
    pub idx: usize,
    pub path: PathBuf,
}

/// What reading a file produced.
pub enum FileOutcome {
    Done {
        content: Vec<ContentRef>,
        size: u64,
    },
    /// The file could not be read; the message becomes a snapshot warning.
    Warning(String),
    /// The backup must stop (repository error or cancellation).
    Fatal(Error),
}

pub struct FileResult {
    pub slot: usize,
    pub idx: usize,
    pub outcome: FileOutcome,
}

/// File reader thread body.
pub fn file_reader(
    cfg: &RepoConfig,
    shared: &Shared,
    cancel: &AtomicBool,
    jobs: Receiver<FileJob>,
    results: Sender<FileResult>,
    blobs: Sender<RawBlob>,
) {
    let mut chunker = Chunker::new(&cfg.chunker);
    for job in jobs {
        let outcome = if shared.stopped(cancel) {
            FileOutcome::Fatal(Error::Cancelled)
        } else {
            read_file(&job.path, &mut chunker, shared, &blobs, cancel)
        };
        if results
            .send(FileResult {
                slot: job.slot,
                idx: job.idx,
                outcome,
            })
            .is_err()
        {
            return;
        }
    }
}

fn open_source(path: &Path) -> std::io::Result<File> {
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOFOLLOW | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW),
        r => r,
    }
}

/// The data extents of a file: [(offset, len)], holes between them.
fn extents(f: &File, size: u64, blocks: u64) -> Vec<(u64, u64)> {
    if blocks * 512 >= size || size == 0 {
        return vec![(0, size)];
    }
    use nix::unistd::{lseek, Whence};
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    let end = size as i64;
    while pos < end {
        let data = match lseek(f, pos, Whence::SeekData) {
            Ok(d) => d,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(_) => return vec![(0, size)],
        };
        if data >= end {
            break;
        }
        let hole = lseek(f, data, Whence::SeekHole).unwrap_or(end).min(end);
        out.push((data as u64, (hole - data) as u64));
        pos = hole;
    }
    out
}

fn read_file(
    path: &Path,
    chunker: &mut Chunker,
    shared: &Shared,
    blobs: &Sender<RawBlob>,
    cancel: &AtomicBool,
) -> FileOutcome {
    let f = match open_source(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return FileOutcome::Warning(format!("{}: vanished during backup", path.display()))
        }
        Err(e) => return FileOutcome::Warning(format!("{}: cannot open: {e}", path.display())),
    };
    let md = match f.metadata() {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            return FileOutcome::Warning(format!(
                "{}: replaced by a non-file during backup",
                path.display()
            ))
        }
        Err(e) => return FileOutcome::Warning(format!("{}: cannot stat: {e}", path.display())),
    };
    let mut content = Vec::new();
    let mut pos = 0u64;
    let mut shrunk = false;
    for (off, len) in extents(&f, md.size(), md.blocks()) {
        if off > pos {
            content.push(ContentRef::Hole { len: off - pos });
        }
        let r = chunker.chunk_file(&f, off, len, |chunk| {
            if shared.stopped(cancel) {
                return Err(Error::Cancelled);
            }
            let id = shared.store(blobs, BlobKind::Data, chunk)?;
            shared.counters.chunks_total.fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .bytes_read
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            content.push(ContentRef::Chunk {
                id,
                len: chunk.len() as u32,
            });
            Ok(())
        });
        match r {
            Err(e) => return FileOutcome::Warning(format!("{}: read error: {e}", path.display())),
            Ok(Err(e)) => return FileOutcome::Fatal(e),
            Ok(Ok(n)) => {
                pos = off + n;
                if n < len {
                    shrunk = true; // shrank while reading: keep what was read
                    break;
                }
            }
        }
    }
    // Trailing hole (a file that ends sparse, or is all hole).
    if !shrunk && pos < md.size() {
        content.push(ContentRef::Hole {
            len: md.size() - pos,
        });
        pos = md.size();
    }
    shared.counters.files_read.fetch_add(1, Ordering::Relaxed);
    FileOutcome::Done { content, size: pos }
}

/// Compressor thread body.
pub fn compressor(
    cfg: &RepoConfig,
    shared: &Shared,
    rx: Receiver<RawBlob>,
    tx: Sender<StoredBlob>,
) {
    let level = if cfg.compression.algorithm == CompressionAlgorithm::Zstd {
        Some(cfg.compression.level)
    } else {
        None
    };
    let mut z = level.and_then(|l| zstd::bulk::Compressor::new(l).ok());
    for b in rx {
        let (compression, data) = match z.as_mut() {
            Some(z) => pack::compress(z, &b.data),
            None => (pack::COMP_NONE, b.data.clone()),
        };
        shared
            .counters
            .bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let sb = StoredBlob {
            kind: b.kind,
            id: b.id,
            compression,
            raw_len: b.data.len() as u32,
            data,
        };
        if tx.send(sb).is_err() {
            return;
        }
    }
}

/// Pack writer thread body: fills packs, commits them, and writes an index file after
/// every few packs and at the end (also after an error, for the packs already durable).
pub fn packer(
    repo: &dyn Store,
    pack_size: u64,
    shared: &Shared,
    rx: Receiver<StoredBlob>,
) -> Result<u64> {
    // Trees go into packs of their own (docs/repository-format.md "Packs"): prune's mark and
    // listings read trees only, and then read a few packs front to back instead of small
    // blobs scattered among the data.
    let mut writers: [Option<PackWriter>; 2] = [None, None];
    let mut done: Vec<(ObjectId, Vec<PackEntry>)> = Vec::new();
    let mut err: Option<Error> = None;
    let mut packs = 0u64;
    let mut last_index = Instant::now();
    for b in rx {
        if err.is_some() {
            continue; // drain so that senders never block
        }
        let r = (|| -> Result<()> {
            let slot = &mut writers[usize::from(b.kind == BlobKind::Tree)];
            let w = match slot.as_mut() {
                Some(w) => w,
                None => slot.insert(PackWriter::new(repo)?),
            };
            w.add(b.kind, b.id, b.compression, b.raw_len, &b.data)?;
            if w.size() >= pack_size {
                if let Some(w) = slot.take() {
                    done.push(w.finish()?);
                    packs += 1;
                }
                if done.len() >= 8 || last_index.elapsed().as_secs() >= 60 {
                    write_index(repo, &mut done)?;
                    last_index = Instant::now();
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            shared.abort.store(true, Ordering::Relaxed);
            for w in writers.iter_mut().filter_map(Option::take) {
                w.abandon();
            }
            err = Some(e);
        }
    }
    for w in writers.iter_mut().filter_map(Option::take) {
        if err.is_some() {
            w.abandon();
            continue;
        }
        match w.finish() {
            Ok(p) => {
                done.push(p);
                packs += 1;
            }
            Err(e) => err = Some(e),
        }
    }
    let ir = write_index(repo, &mut done);
    match (err, ir) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => Ok(packs),
    }
}

/// Writes one index file for `packs` (all durable) and clears the list.
pub fn write_index(repo: &dyn Store, packs: &mut Vec<(ObjectId, Vec<PackEntry>)>) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let f = IndexFile {
        supersedes: vec![],
        packs: std::mem::take(packs),
    };
    let data = f.encode();
    let id = ObjectId::hash(&data);
    repo.put(Kind::Index, &id.to_hex(), &data, Put::Replace)
        .map(|_| ())
}
