//! Reading a whole snapshot in path order for a writer that streams it elsewhere (a tape
//! archive, docs/tape-format.md): every entry with its path and node, and a [`Read`]er of each
//! file's content straight from the repository's packs, checked chunk by chunk.

use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::lock::{self, LockKind, RepoLock};
use crate::pack::BlobKind;
use crate::repo::{BlobReader, Repository};
use crate::snapshot::SnapshotInfo;
use crate::tree::{ContentRef, Node, NodeKind};

/// One entry of a snapshot: its path relative to the snapshot's root (no leading `/`,
/// components joined by `/`) and its node.
#[derive(Debug, Clone)]
pub struct WalkEntry {
    pub path: Vec<u8>,
    pub node: Node,
}

/// A snapshot opened for streaming: its entries, a directory before its contents, each
/// directory's entries in name order. A read lock on the repository is held while it lives.
pub struct SnapshotWalk {
    pub info: SnapshotInfo,
    pub entries: Vec<WalkEntry>,
    reader: Arc<Mutex<BlobReader>>,
    _lock: RepoLock,
}

impl Repository {
    /// Opens snapshot `spec` (id, unique prefix or `latest`) for streaming.
    pub fn walk_snapshot(&self, spec: &str, cancel: &AtomicBool) -> Result<SnapshotWalk> {
        let info = self.find_snapshot(spec)?;
        let lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Read,
            &format!("streaming snapshot {}", info.short_id),
            self.lock_wait(),
            cancel,
        )?;
        let (index, _) = self.load_index()?;
        let mut reader = BlobReader::new(self.store().clone(), Arc::new(index));
        let mut entries = Vec::new();
        walk(
            &mut reader,
            Some(info.snapshot.root_tree()?),
            b"",
            &mut entries,
            cancel,
        )?;
        Ok(SnapshotWalk {
            info,
            entries,
            reader: Arc::new(Mutex::new(reader)),
            _lock: lock,
        })
    }
}

fn walk(
    reader: &mut BlobReader,
    tree: Option<crate::id::ObjectId>,
    prefix: &[u8],
    out: &mut Vec<WalkEntry>,
    cancel: &AtomicBool,
) -> Result<()> {
    let Some(id) = tree else { return Ok(()) };
    if cancel.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(Error::Cancelled);
    }
    let t = reader.load_tree(&id)?;
    for n in t.nodes {
        let mut p = prefix.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(&n.name);
        let sub = (n.kind == NodeKind::Dir).then_some(n.subtree).flatten();
        out.push(WalkEntry {
            path: p.clone(),
            node: n,
        });
        if sub.is_some() {
            walk(reader, sub, &p, out, cancel)?;
        }
    }
    Ok(())
}

impl SnapshotWalk {
    /// A reader of a regular file's content (holes read as zeros).
    pub fn content(&self, node: &Node) -> ContentReader {
        self.opener().open(node)
    }

    /// Something that makes content readers of this walk, to hand to another thread.
    pub fn opener(&self) -> ContentOpener {
        ContentOpener {
            reader: self.reader.clone(),
        }
    }
}

/// Makes [`ContentReader`]s of one snapshot walk (shares its pack reader).
#[derive(Clone)]
pub struct ContentOpener {
    reader: Arc<Mutex<BlobReader>>,
}

impl ContentOpener {
    /// A reader of `node`'s content.
    pub fn open(&self, node: &Node) -> ContentReader {
        ContentReader {
            reader: self.reader.clone(),
            content: node.content.clone(),
            next: 0,
            buf: Vec::new(),
            pos: 0,
            hole: 0,
            name: String::from_utf8_lossy(&node.name).into_owned(),
        }
    }
}

/// Reads a file's content chunk by chunk from the repository; each chunk is checked against
/// its id (and its length against the tree) as it is read.
pub struct ContentReader {
    reader: Arc<Mutex<BlobReader>>,
    content: Vec<ContentRef>,
    next: usize,
    buf: Vec<u8>,
    pos: usize,
    /// Zero bytes of a hole still to hand out.
    hole: u64,
    name: String,
}

fn io_err(e: Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Read for ContentReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.hole > 0 {
                let n = out
                    .len()
                    .min(usize::try_from(self.hole).unwrap_or(usize::MAX));
                out[..n].fill(0);
                self.hole -= n as u64;
                return Ok(n);
            }
            let Some(c) = self.content.get(self.next).copied() else {
                return Ok(0);
            };
            self.next += 1;
            match c {
                ContentRef::Hole { len } => self.hole = len,
                ContentRef::Chunk { id, len } => {
                    let data = {
                        let mut r = self
                            .reader
                            .lock()
                            .map_err(|_| std::io::Error::other("the pack reader failed"))?;
                        r.read(&id, BlobKind::Data).map_err(io_err)?
                    };
                    if data.len() != len as usize {
                        return Err(io_err(Error::corrupt(
                            format!("file {}", self.name),
                            format!("chunk {id} has {} bytes, tree says {len}", data.len()),
                        )));
                    }
                    self.buf = data;
                    self.pos = 0;
                }
            }
        }
    }
}
