//! Restore drills (docs/compliance.md): a random sample of a snapshot's files is restored into a
//! private scratch directory, each restored file is re-read and compared piece by piece with the
//! chunk hashes the snapshot recorded, and the restore rate measured projects how long a full
//! restore of the snapshot would take. The scratch directory is removed afterwards, whatever
//! happened.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::{BlobReader, Repository};
use crate::restore::{Overwrite, RestoreOptions};
use crate::tree::{ContentRef, Node, NodeKind};

/// What to drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// Snapshot id, unique prefix, or `latest`.
    pub snapshot: String,
    /// The scratch directory: created (mode 0700; it must not exist) and removed afterwards.
    pub scratch: PathBuf,
    /// Files restored at most.
    pub sample_files: u32,
    /// Content bytes restored at most (one file is restored even when it alone is larger).
    pub sample_bytes: u64,
    /// Seed of the sample; None: a random one.
    pub seed: Option<u64>,
}

/// What a drill found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillReport {
    pub snapshot_id: String,
    /// Regular files and their content bytes in the whole snapshot.
    pub files_total: u64,
    pub bytes_total: u64,
    /// The sample restored.
    pub files_sampled: u64,
    pub bytes_sampled: u64,
    /// Sampled files that could not be restored or differ from the recorded hashes.
    pub files_failed: u64,
    /// One line per problem (path and what is wrong).
    pub problems: Vec<String>,
    /// Time the sample took to restore and compare.
    #[serde(rename = "restore_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub restore: Duration,
}

impl DrillReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.files_failed == 0
    }
    /// Bytes per second the sample restored at (0 when nothing was restored).
    pub fn bytes_per_sec(&self) -> f64 {
        let secs = self.restore.as_secs_f64().max(0.001);
        if self.bytes_sampled == 0 {
            0.0
        } else {
            self.bytes_sampled as f64 / secs
        }
    }
    /// Projected seconds to restore the whole snapshot at the measured rate (0 when unknown).
    pub fn rto_secs(&self) -> f64 {
        let rate = self.bytes_per_sec();
        if rate <= 0.0 {
            0.0
        } else {
            self.bytes_total as f64 / rate
        }
    }
}

/// A small deterministic generator (xorshift64*), enough to pick a sample.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

/// A file chosen for the sample: its path in the snapshot and its node.
struct Pick {
    path: Vec<u8>,
    node: Node,
}

/// Removes the scratch directory when dropped, making read-only directories writable first.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
            return;
        }
        open_up(&self.0);
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(
                "cannot remove the drill scratch directory {}: {e}",
                self.0.display()
            );
        }
    }
}

/// Gives every directory below `dir` mode 0700 so that its entries can be removed.
fn open_up(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&e.path());
            }
        }
    }
}

impl Repository {
    /// Runs a restore drill of one snapshot (see the module documentation).
    pub fn drill(&self, opts: &DrillOptions, cancel: &AtomicBool) -> Result<DrillReport> {
        let info = self.find_snapshot(&opts.snapshot)?;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&opts.scratch)
            .map_err(|e| Error::io("creating the drill scratch directory", &opts.scratch, e))?;
        let _guard = Scratch(opts.scratch.clone());
        let seed = match opts.seed {
            Some(s) => s,
            None => {
                let b = crate::fsutil::random_bytes()?;
                u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
        };
        let mut rng = Rng(seed | 1);
        let mut report = DrillReport {
            snapshot_id: info.id.clone(),
            ..Default::default()
        };
        // Walk every tree; keep a uniform sample of the regular files (reservoir sampling).
        let k = opts.sample_files.max(1) as usize;
        let mut picks: Vec<Pick> = Vec::with_capacity(k.min(4096));
        {
            let (index, _) = self.load_index()?;
            let mut reader = BlobReader::new(self.store().clone(), Arc::new(index));
            let mut stack = vec![(Vec::new(), info.snapshot.root_tree()?)];
            while let Some((prefix, id)) = stack.pop() {
                if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let tree = reader.load_tree(&id)?;
                for n in tree.nodes {
                    let mut path = prefix.clone();
                    path.push(b'/');
                    path.extend_from_slice(&n.name);
                    match n.kind {
                        NodeKind::Dir => {
                            if let Some(sub) = n.subtree {
                                stack.push((path, sub));
                            }
                        }
                        NodeKind::File => {
                            report.files_total += 1;
                            report.bytes_total += n.size;
                            let seen = report.files_total;
                            if picks.len() < k {
                                picks.push(Pick { path, node: n });
                            } else {
                                let j = rng.below(seen) as usize;
                                if j < k {
                                    picks[j] = Pick { path, node: n };
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        // In random order, as many as fit in the byte budget (at least one).
        for i in (1..picks.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            picks.swap(i, j);
        }
        let mut chosen = Vec::new();
        let mut bytes = 0u64;
        for p in picks {
            if chosen.is_empty() || bytes.saturating_add(p.node.size) <= opts.sample_bytes {
                bytes = bytes.saturating_add(p.node.size);
                chosen.push(p);
            }
        }
        report.files_sampled = chosen.len() as u64;
        report.bytes_sampled = bytes;
        if chosen.is_empty() {
            return Ok(report);
        }
        let started = std::time::Instant::now();
        let ropts = RestoreOptions {
            snapshot: info.id.clone(),
            target: opts.scratch.join("restore"),
            paths: chosen
                .iter()
                .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(&p.path)))
                .collect(),
            dry_run: false,
            overwrite: Overwrite::Always,
        };
        match self.restore(&ropts, &|_: &crate::restore::RestoreProgress| {}, cancel) {
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => report.problems.push(format!("the restore failed: {e}")),
            Ok(s) => report.problems.extend(s.errors),
        }
        for p in &chosen {
            let rel = std::ffi::OsStr::from_bytes(p.path.strip_prefix(b"/").unwrap_or(&p.path));
            let file = ropts.target.join(rel);
            if let Err(why) = compare(&file, &p.node) {
                report.files_failed += 1;
                report
                    .problems
                    .push(format!("{}: {why}", String::from_utf8_lossy(&p.path)));
            }
        }
        report.problems.sort();
        report.problems.dedup();
        report.restore = started.elapsed();
        Ok(report)
    }
}

/// Compares a restored file with the content its node recorded: each chunk's hash, each hole's
/// zeros, and nothing after the end.
fn compare(path: &Path, node: &Node) -> std::result::Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("not restored ({e})"))?;
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for c in &node.content {
        buf.clear();
        let len = c.len();
        (&mut f)
            .take(len)
            .read_to_end(&mut buf)
            .map_err(|e| format!("cannot read it back at byte {offset}: {e}"))?;
        if buf.len() as u64 != len {
            return Err(format!(
                "shorter than recorded ({} bytes, recorded {})",
                offset + buf.len() as u64,
                node.size
            ));
        }
        let same = match c {
            ContentRef::Chunk { id, .. } => ObjectId::hash(&buf) == *id,
            ContentRef::Hole { .. } => buf.iter().all(|b| *b == 0),
        };
        if !same {
            return Err(format!(
                "content at bytes {offset}..{} differs from the recorded hash",
                offset + len
            ));
        }
        offset += len;
    }
    let mut extra = [0u8; 1];
    match f.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(format!("longer than recorded ({} bytes)", node.size)),
        Err(e) => Err(format!("cannot read it back: {e}")),
    }
}
