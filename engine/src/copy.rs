//! Copying a snapshot to another repository, transferring only the blobs the destination lacks.
//!
//! Blobs are copied as stored (compressed bytes, same ids) after being checked against their ids,
//! so corruption in the source is never propagated. The commit order is the one of a backup:
//! packs, then an index file, then the snapshot file (byte-identical, so it keeps its id).

use crate::error::{Error, Result};
use crate::fsutil;
use crate::id::ObjectId;
use crate::lock::{self, LockKind};
use crate::pack::{self, PackWriter};
use crate::repo::{BlobReader, Repository};
use crate::store::{Kind, Put};
use crate::tree::ContentRef;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Progress of a copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyProgress {
    pub blobs_needed: u64,
    pub blobs_copied: u64,
    pub bytes_copied: u64,
}

/// Result of a copy.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySummary {
    pub snapshot_id: String,
    /// Blobs (chunks and trees) the destination lacked and received.
    pub chunks_copied: u64,
    /// Stored bytes written to the destination.
    pub bytes_copied: u64,
    /// Blobs the snapshot references.
    pub chunks_total: u64,
    /// Logical file bytes of the snapshot.
    pub bytes_total: u64,
    /// True when the destination had the snapshot already.
    pub already_present: bool,
    #[serde(serialize_with = "fsutil::ser_ms")]
    pub duration: Duration,
}

/// Copies snapshot `spec` (id, unique prefix or `latest`) from `src` to `dst`.
pub fn copy_snapshot(
    src: &Repository,
    dst: &Repository,
    spec: &str,
    progress: &dyn Fn(&CopyProgress),
    cancel: &AtomicBool,
) -> Result<CopySummary> {
    let started = Instant::now();
    let info = src.find_snapshot(spec)?;
    if dst.store().stat(Kind::Snapshots, &info.id)?.is_some() {
        return Ok(CopySummary {
            snapshot_id: info.id.clone(),
            bytes_total: info.snapshot.stats.bytes_total,
            already_present: true,
            duration: started.elapsed(),
            ..Default::default()
        });
    }
    let _read_lock = lock::acquire_in(
        src.store().clone(),
        LockKind::Read,
        &format!("copy of snapshot {}", info.short_id),
        src.lock_wait(),
        cancel,
    )?;
    let write_lock = lock::acquire_in(
        dst.store().clone(),
        LockKind::Write,
        &format!("copy of snapshot {}", info.short_id),
        dst.lock_wait(),
        cancel,
    )?;
    let mut summary = CopySummary {
        snapshot_id: info.id.clone(),
        bytes_total: info.snapshot.stats.bytes_total,
        ..Default::default()
    };
    let (src_index, _) = src.load_index()?;
    let (dst_index, _) = dst.load_index()?;
    let src_index = Arc::new(src_index);
    let mut reader = BlobReader::new(src.store().clone(), src_index.clone());

    // Walk every tree of the snapshot and collect the blobs the destination lacks.
    let mut needed: Vec<ObjectId> = Vec::new();
    let mut seen: HashSet<ObjectId> = HashSet::new();
    let mut stack = vec![info.snapshot.root_tree()?];
    while let Some(tree_id) = stack.pop() {
        if !seen.insert(tree_id) {
            continue;
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        if !dst_index.contains(&tree_id) {
            needed.push(tree_id);
        }
        let tree = reader.load_tree(&tree_id)?;
        for node in &tree.nodes {
            if let Some(sub) = node.subtree {
                stack.push(sub);
            }
            for c in &node.content {
                if let ContentRef::Chunk { id, .. } = c {
                    if seen.insert(*id) && !dst_index.contains(id) {
                        needed.push(*id);
                    }
                }
            }
        }
    }
    summary.chunks_total = seen.len() as u64;

    // Copy the needed blobs pack by pack, in source order, so each source pack is read once.
    let mut by_pack: HashMap<ObjectId, Vec<pack::PackEntry>> = HashMap::new();
    for id in &needed {
        let (pack_id, entry) = src_index.lookup(id).ok_or_else(|| Error::MissingObject {
            what: "blob",
            id: id.to_hex(),
        })?;
        by_pack.entry(pack_id).or_default().push(entry);
    }
    let mut prog = CopyProgress {
        blobs_needed: needed.len() as u64,
        ..Default::default()
    };
    let dst_store = &**dst.store();
    let mut writer: Option<PackWriter> = None;
    let mut done_packs = Vec::new();
    let pack_size = dst.config().pack_size.max(1 << 20);
    let result = (|| -> Result<()> {
        for (pack_id, mut entries) in by_pack {
            entries.sort_by_key(|e| e.offset);
            let f = src.store().open(Kind::Packs, &pack_id.to_hex())?;
            for e in entries {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let mut stored = vec![0u8; e.stored_len as usize];
                f.read_exact_at(&mut stored, e.offset)?;
                pack::decode_blob(&stored, &e, &|| format!("pack {}", pack_id.to_hex()))?;
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(PackWriter::new(dst_store)?),
                };
                w.add(e.kind, e.id, e.compression, e.raw_len, &stored)?;
                prog.blobs_copied += 1;
                prog.bytes_copied += stored.len() as u64;
                if w.size() >= pack_size {
                    if let Some(w) = writer.take() {
                        done_packs.push(w.finish()?);
                    }
                    progress(&prog);
                }
            }
        }
        if let Some(w) = writer.take() {
            if !w.is_empty() {
                done_packs.push(w.finish()?);
            } else {
                w.abandon();
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(w) = writer.take() {
            w.abandon();
        }
        // Packs already finished are durable: index them so a retry reuses them.
        let _ = crate::backup::workers::write_index(dst_store, &mut done_packs);
        return Err(e);
    }
    crate::backup::workers::write_index(dst_store, &mut done_packs)?;
    let data = src.store().read(Kind::Snapshots, &info.id)?;
    if ObjectId::hash(&data).to_hex() != info.id {
        return Err(Error::corrupt(
            format!("snapshot {}", info.id),
            "content does not match its id",
        ));
    }
    dst_store.put(Kind::Snapshots, &info.id, &data, Put::Replace)?;
    progress(&prog);
    drop(write_lock);
    summary.chunks_copied = prog.blobs_copied;
    summary.bytes_copied = prog.bytes_copied;
    summary.duration = started.elapsed();
    Ok(summary)
}
