//! Backup: walk the sources, store new chunks and trees, commit packs → index → snapshot.

mod meta;
mod scan;
mod sources;
mod walk;
pub(crate) mod workers;

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::id::{IdSet, ObjectId};
use crate::index::Index;
use crate::lock::{self, LockKind};
use crate::pack;
use crate::repo::{list_ids, Repository};
use crate::snapshot::{self, Snapshot, SnapshotInfo, SNAPSHOT_VERSION};
use crate::store::{Kind, Put};

pub use scan::VEntry;

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Files or directories; made absolute and normalised.
    pub sources: Vec<PathBuf>,
    /// Glob patterns. A pattern without `/` matches an entry's name anywhere (`*.tmp`,
    /// `node_modules`); a pattern with `/` matches the absolute path (`/home/*/.cache`,
    /// `**/target`), where `*` does not cross `/` and `**` does.
    pub excludes: Vec<String>,
    /// Do not descend into directories on other filesystems (mount points are kept empty).
    pub one_file_system: bool,
    pub job: String,
    pub host: String,
    pub tags: Vec<String>,
    /// Snapshot whose unchanged files are reused without reading them. `None` picks the latest
    /// snapshot (partial ones included) with the same job, host and paths.
    pub parent: Option<String>,
    /// Do not use any parent: read every file.
    pub force_full: bool,
}

/// Progress of a running backup, reported about four times a second.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    /// Entries seen so far.
    pub files: u64,
    pub dirs: u64,
    pub bytes_read: u64,
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub warnings: u64,
}

/// Result of a backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    pub snapshot_id: String,
    /// The snapshot's recorded start time (RFC 3339), as its file has it.
    pub time: String,
    /// The snapshot's recorded source paths, as its file has them.
    pub paths: Vec<String>,
    pub parent: Option<String>,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unmodified: u64,
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unmodified: u64,
    pub bytes_read: u64,
    pub bytes_total: u64,
    pub bytes_added: u64,
    pub chunks_new: u64,
    pub chunks_total: u64,
    pub packs_written: u64,
    pub warnings: Vec<String>,
    pub warnings_count: u64,
    pub partial: bool,
    #[serde(rename = "duration_ms", serialize_with = "crate::fsutil::ser_ms")]
    pub duration: Duration,
    /// Repository maintenance done on the way (stale locks recovered, packs re-indexed).
    pub notes: Vec<String>,
}

/// Threads listing directories and reading metadata.
const SCANNERS: usize = 16;

/// Compiled exclude patterns.
pub struct Excludes {
    names: GlobSet,
    paths: GlobSet,
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Self> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| {
                    Error::InvalidArgument(format!("invalid exclude pattern {p:?}: {e}"))
                })?;
            if p.contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build()
                .map_err(|e| Error::InvalidArgument(format!("invalid exclude patterns: {e}")))
        };
        Ok(Excludes {
            names: build(names)?,
            paths: build(paths)?,
        })
    }

    pub fn matches(&self, path: &Path, name: &[u8]) -> bool {
        (!self.names.is_empty()
            && self
                .names
                .is_match(Path::new(std::ffi::OsStr::from_bytes(name))))
            || (!self.paths.is_empty() && self.paths.is_match(path))
    }
}

/// Makes a path absolute and removes `.`/`..` components lexically.
pub fn normalize(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p)
        .map_err(|e| Error::InvalidArgument(format!("invalid source path {}: {e}", p.display())))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    Ok(out)
}

impl Repository {
    /// Backs up `opts.sources` into a new snapshot.
    pub fn backup(
        &self,
        opts: &BackupOptions,
        progress: &dyn Fn(&Progress),
        cancel: &AtomicBool,
    ) -> Result<BackupSummary> {
        let started = Instant::now();
        let start_time = jiff::Timestamp::now();
        if opts.sources.is_empty() {
            return Err(Error::InvalidArgument(
                "no source paths given: name at least one file or directory to back up".into(),
            ));
        }
        let mut sources: Vec<PathBuf> = opts
            .sources
            .iter()
            .map(|p| normalize(p))
            .collect::<Result<_>>()?;
        sources.sort();
        sources.dedup();
        let excludes = Excludes::new(&opts.excludes)?;
        let job = if opts.job.is_empty() {
            "default".to_string()
        } else {
            opts.job.clone()
        };
        let host = if opts.host.is_empty() {
            fsutil::hostname()
        } else {
            opts.host.clone()
        };
        let checked = sources::check(&sources, self.path())?;

        let lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Write,
            &format!("backup of job {job}"),
            self.lock_wait(),
            cancel,
        )?;
        let mut notes = checked.notes.clone();
        notes.extend(lock.recovered.iter().cloned());
        self.clean_tmp();
        let (mut index, bad) = self.load_index()?;
        for (id, e) in bad {
            notes.push(format!("ignored unreadable index file {id}: {e}"));
        }
        self.reindex_orphans(&mut index, &mut notes)?;
        let index = Arc::new(index);

        let paths: Vec<String> = sources
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let parent = if opts.force_full {
            None
        } else {
            self.pick_parent(opts.parent.as_deref(), &job, &host, &paths)?
        };
        let parent_root = match &parent {
            Some(p) => Some(p.snapshot.root_tree()?),
            None => None,
        };

        let cfg = self.config().clone();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 16);
        let (raw_tx, raw_rx) = crossbeam_channel::bounded(threads * 2);
        let (stored_tx, stored_rx) = crossbeam_channel::bounded(threads * 2);
        let (job_tx, job_rx) = crossbeam_channel::bounded(threads * 32);
        // The readers' results stay unbounded: the walker sends them file jobs and is the only
        // consumer of their results, so a bound could block both at once. The queue holds at
        // most one result per file job handed out (docs/architecture.md "Inside a backup").
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let shared = workers::Shared {
            index: index.clone(),
            new_ids: Mutex::new(IdSet::default()),
            counters: Default::default(),
            abort: AtomicBool::new(false),
        };
        let (root_listing, root_dev) = if sources.iter().any(|s| s == Path::new("/")) {
            (
                scan::Listing::Real,
                std::fs::symlink_metadata("/")
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .unwrap_or(0),
            )
        } else {
            (scan::Listing::Virtual(scan::virtual_root(&sources)), 0)
        };
        let store = self.store().clone();

        let scan_ctx = scan::ScanCtx {
            store: &store,
            index: &index,
            excludes: &excludes,
            one_file_system: opts.one_file_system,
            repo_id: checked.repo_id,
        };
        // The walker has at most MAX_SCANS_IN_FLIGHT directories out, so neither queue ever
        // blocks its sender at this bound.
        let (scan_tx, scan_rx) = crossbeam_channel::bounded(walk::MAX_SCANS_IN_FLIGHT);
        let (scanned_tx, scanned_rx) = crossbeam_channel::bounded(walk::MAX_SCANS_IN_FLIGHT);
        let (walk_res, pack_res) = std::thread::scope(|s| {
            let shared = &shared;
            let cfg = &cfg;
            let packer = {
                let store = &*store;
                s.spawn(move || workers::packer(store, cfg.pack_size, shared, stored_rx))
            };
            for _ in 0..threads {
                let rx = raw_rx.clone();
                let tx = stored_tx.clone();
                s.spawn(move || workers::compressor(cfg, shared, rx, tx));
            }
            drop(stored_tx);
            drop(raw_rx);
            // Twice as many readers as cores: with small files on a cold cache, readers mostly
            // wait for the disk, one read per file.
            for _ in 0..threads * 2 {
                let rx = job_rx.clone();
                let tx = res_tx.clone();
                let blobs = raw_tx.clone();
                s.spawn(move || workers::file_reader(cfg, shared, cancel, rx, tx, blobs));
            }
            drop(job_rx);
            drop(res_tx);
            // Metadata reads mostly wait for the disk, so there are more scanners than cores.
            for _ in 0..SCANNERS {
                let (rx, tx, ctx) = (scan_rx.clone(), scanned_tx.clone(), &scan_ctx);
                s.spawn(move || scan::scanner(ctx, rx, tx));
            }
            drop(scan_rx);
            drop(scanned_tx);
            let ctx = walk::WalkCtx {
                shared,
                cancel,
                progress,
                scans: scan_tx,
                scanned: scanned_rx,
                jobs: Some(job_tx),
                blobs: raw_tx,
                results: res_rx,
            };
            // Returning drops the walker's senders: the scanners stop, and the readers stop
            // once their queue is empty.
            let walk_res = walk::walk(ctx, root_listing, root_dev, parent_root);
            // The walker's and the readers' blob senders are gone now, so the compressors
            // and then the packer drain their queues and finish.
            let pack_res = packer
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the pack writer thread panicked".into())));
            (walk_res, pack_res)
        });
        let packs_written = match (&walk_res, pack_res) {
            (_, Err(e)) => return Err(e),
            (Err(_), Ok(_)) => return Err(walk_res.err().unwrap_or(Error::Cancelled)),
            (Ok(_), Ok(n)) => n,
        };
        let (root, mut stats) = walk_res?;
        let c = &shared.counters;
        stats.bytes_read = c.bytes_read.load(std::sync::atomic::Ordering::Relaxed);
        stats.bytes_added = c.bytes_added.load(std::sync::atomic::Ordering::Relaxed);
        stats.chunks_new = c.chunks_new.load(std::sync::atomic::Ordering::Relaxed);
        stats.chunks_total = c.chunks_total.load(std::sync::atomic::Ordering::Relaxed);
        stats.duration_ms = started.elapsed().as_millis() as u64;
        let partial = stats.warnings_count > 0;
        let snap = Snapshot {
            version: SNAPSHOT_VERSION,
            time: start_time.to_string(),
            tree: root.to_hex(),
            job,
            host,
            paths,
            excludes: opts.excludes.clone(),
            tags: opts.tags.clone(),
            parent: parent.as_ref().map(|p| p.id.clone()),
            partial,
            program: format!("bms {}", env!("CARGO_PKG_VERSION")),
            stats: stats.clone(),
        };
        let data = serde_json::to_vec_pretty(&snap)
            .map_err(|e| Error::internal("encoding snapshot", e))?;
        let id = ObjectId::hash(&data);
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        self.store()
            .put(Kind::Snapshots, &id.to_hex(), &data, Put::Replace)?;
        drop(lock);
        Ok(BackupSummary {
            snapshot_id: id.to_hex(),
            time: snap.time,
            paths: snap.paths,
            parent: snap.parent,
            files_new: stats.files_new,
            files_changed: stats.files_changed,
            files_unmodified: stats.files_unmodified,
            dirs_new: stats.dirs_new,
            dirs_changed: stats.dirs_changed,
            dirs_unmodified: stats.dirs_unmodified,
            bytes_read: stats.bytes_read,
            bytes_total: stats.bytes_total,
            bytes_added: stats.bytes_added,
            chunks_new: stats.chunks_new,
            chunks_total: stats.chunks_total,
            packs_written,
            warnings: stats.warnings,
            warnings_count: stats.warnings_count,
            partial,
            duration: started.elapsed(),
            notes,
        })
    }

    fn pick_parent(
        &self,
        spec: Option<&str>,
        job: &str,
        host: &str,
        paths: &[String],
    ) -> Result<Option<SnapshotInfo>> {
        let list = self.snapshots()?;
        if let Some(spec) = spec {
            return snapshot::resolve(&list, spec).cloned().map(Some);
        }
        Ok(list.into_iter().rev().find(|s| {
            s.snapshot.job == job && s.snapshot.host == host && s.snapshot.paths == paths
        }))
    }

    /// Removes the temp files of interrupted writers. Holding the write lock is not enough to
    /// know a file is dead (another process may be between writing and renaming a file it
    /// owns), so only provably abandoned files go: their writer, named in the file name, is a
    /// process of this host that no longer exists, or the file was not modified for longer
    /// than a lock lease (docs/repository-format.md "Temporary files").
    fn clean_tmp(&self) {
        let n = self.store().clean_tmp(lock::LEASE);
        if n > 0 {
            tracing::info!(
                "removed {n} temp file(s) of interrupted writers from {}",
                self.path().display()
            );
        }
    }

    /// Indexes packs that an interrupted run made durable but did not index, so that their
    /// data is reused.
    fn reindex_orphans(&self, index: &mut Index, notes: &mut Vec<String>) -> Result<()> {
        let mut found = Vec::new();
        for id in list_ids(&**self.store(), Kind::Packs)? {
            if index.has_pack(&id) {
                continue;
            }
            match pack::read_table(&**self.store(), &id) {
                Ok(entries) => found.push((id, entries)),
                Err(e) => notes.push(format!(
                    "ignored damaged unindexed pack {}: {e}",
                    self.store().locate(Kind::Packs, &id.to_hex()).display()
                )),
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        notes.push(format!(
            "indexed {} pack(s) left by an interrupted backup; their data is reused",
            found.len()
        ));
        for (id, entries) in &found {
            index.add_pack(*id, entries);
        }
        workers::write_index(&**self.store(), &mut found)
    }
}
