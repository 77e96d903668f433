//! Copies to tape targets (docs/tape.md, "Tape targets"): the snapshot is streamed from the
//! primary repository into one pax tar archive on the media of the target's pool (read ahead
//! and double-buffered by the tape writer), spanning media as they fill. The archive is recorded
//! volume by volume and is complete only with its last volume; the media records get their
//! writes, their state and where the copy left them.

use super::steps::{open_repo, stopped, with_lock_status};
use super::tape_changer::{Candidate, ChangerHooks, ChangerLog, PoolChanger};
use super::{finish, Active, End, RunError, RunHead, Runner};
use crate::catalog::{now_rfc3339, Actor, Catalog, Location, MediaState};
use crate::state::SharedRef;
use crate::targets::tape::{drive_lock, open_sink, parts, TapeSink};
use crate::targets::{Purpose, Target};
use bms_engine::stream::{ContentOpener, SnapshotWalk};
use bms_engine::tree::NodeKind;
use bms_proto::api::*;
use bms_proto::ApiError;
use bms_tape::format::catalog::Catalog as TapeCatalog;
use bms_tape::format::pax::{Kind as PaxKind, Meta};
use bms_tape::format::source::{Data, SourceEntry};
use bms_tape::format::writer::{write_archive, ArchiveSpec};
use bms_tape::TapeError;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The daemon's side of the changer: `MediaNeeded` on the event bus, the pool's media from the
/// catalog, the configured wait and the run's stop flag.
struct Hooks {
    handle: tokio::runtime::Handle,
    shared: SharedRef,
    target: String,
    pool: String,
    wait: Duration,
    active: Arc<Active>,
}

impl ChangerHooks for Hooks {
    fn notify(&mut self, message: &str) {
        self.active
            .progress
            .send_modify(|p| p.phase = format!("waiting for a medium of pool {}", self.pool));
        self.shared.events.publish(Event::MediaNeeded {
            target: self.target.clone(),
            message: format!("pool {}: {message}", self.pool),
        });
    }

    fn candidates(&mut self) -> Result<Vec<Candidate>, TapeError> {
        let pool = self.pool.clone();
        let offers = self
            .handle
            .block_on(self.shared.catalog.call(move |c| c.pool_offers(&pool)))
            .map_err(|e| TapeError::Library(e.message))?;
        Ok(offers
            .into_iter()
            .map(|o| Candidate {
                barcode: o.barcode,
                scratch: o.scratch,
                sequence: o.sequence,
            })
            .collect())
    }

    fn timeout(&self) -> Duration {
        self.wait
    }

    fn stopped(&self) -> bool {
        self.active.stop.load(Ordering::SeqCst)
    }

    fn resumed(&mut self) {
        self.active
            .progress
            .send_modify(|p| p.phase = format!("copy to tape {}", self.target));
    }
}

/// Counts what the tape writer reads into the run's progress, and stops it when the run stops.
struct Counting {
    inner: bms_engine::stream::ContentReader,
    active: Arc<Active>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.active.stop.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the run was stopped"));
        }
        let n = self.inner.read(buf)?;
        self.active
            .progress
            .send_modify(|p| p.bytes_read += n as u64);
        Ok(n)
    }
}

/// The archive members of a snapshot, in its order; device nodes, FIFOs and sockets have no
/// place in the archive and are counted instead.
fn members(walk: &SnapshotWalk, active: &Arc<Active>) -> (Vec<SourceEntry>, u64) {
    let opener: ContentOpener = walk.opener();
    let mut skipped = 0;
    let mut out = Vec::with_capacity(walk.entries.len());
    for e in &walk.entries {
        let n = &e.node;
        let kind = match n.kind {
            NodeKind::File => PaxKind::File,
            NodeKind::Dir => PaxKind::Dir,
            NodeKind::Symlink => PaxKind::Symlink,
            _ => {
                skipped += 1;
                continue;
            }
        };
        let data = (kind == PaxKind::File).then(|| {
            let (opener, node, active) = (opener.clone(), n.clone(), active.clone());
            Data::Open(Arc::new(move || {
                active.progress.send_modify(|p| p.files += 1);
                Ok(Box::new(Counting {
                    inner: opener.open(&node),
                    active: active.clone(),
                }) as Box<dyn Read + Send>)
            }))
        });
        out.push(SourceEntry {
            meta: Meta {
                path: e.path.clone(),
                kind,
                mode: n.mode & 0o7777,
                uid: n.uid,
                gid: n.gid,
                uname: n.user.clone(),
                gname: n.group.clone(),
                mtime: (n.mtime.sec, n.mtime.nsec),
                size: if kind == PaxKind::File { n.size } else { 0 },
                link: if kind == PaxKind::Symlink {
                    n.target.clone()
                } else {
                    Vec::new()
                },
            },
            data,
        });
    }
    (out, skipped)
}

/// What the blocking part of a tape copy did.
struct Written {
    result: Result<Vec<TapeCatalog>, String>,
    /// The medium filled in the middle of the archive (the one written last is full).
    filled: bool,
    skipped: u64,
    log: ChangerLog,
    /// Where each medium used is now: (barcode, in a drive, place name).
    places: Vec<(String, bool, String)>,
}

fn write(
    src: &TargetSpec,
    target: &Target,
    job: &str,
    snapshot: &str,
    active: &Arc<Active>,
    hooks: Hooks,
    next_sequence: u32,
) -> Written {
    let mut w = Written {
        result: Err(String::new()),
        filled: false,
        skipped: 0,
        log: ChangerLog::default(),
        places: Vec::new(),
    };
    let pool = hooks.pool.clone();
    let walk = match open_repo(src, Purpose::CopyFrom)
        .and_then(|repo| repo.walk_snapshot(snapshot, &active.stop))
    {
        Ok(walk) => walk,
        Err(e) => {
            w.result = Err(format!(
                "reading snapshot {snapshot} from '{}': {e}",
                src.name
            ));
            return w;
        }
    };
    let (entries, skipped) = members(&walk, active);
    w.skipped = skipped;
    let sink = match open_sink(target) {
        Ok(s) => s,
        Err(e) => {
            w.result = Err(e);
            return w;
        }
    };
    // The drive is this copy's until it ends (a verification or restore waits).
    let lock = drive_lock(&sink);
    let _drive = lock.lock().unwrap_or_else(|e| e.into_inner());
    let changer = match sink {
        TapeSink::Library { library, drive } => {
            PoolChanger::library(library, drive, &pool, next_sequence, Box::new(hooks))
                .map_err(|e| e.to_string())
        }
        TapeSink::Device(path) => Ok(PoolChanger::device(path, &pool, Box::new(hooks))),
    };
    let mut changer = match changer {
        Ok(c) => c,
        Err(e) => {
            w.result = Err(e);
            return w;
        }
    };
    let spec = ArchiveSpec {
        snapshot: walk.info.id.clone(),
        job: job.to_owned(),
    };
    active
        .progress
        .send_modify(|p| p.bytes_expected = walk.info.snapshot.stats.bytes_total);
    let r = write_archive(&mut changer, &spec, &entries);
    w.filled = matches!(r, Err(TapeError::IncompleteArchive(_)));
    w.result = r.map_err(|e| match e {
        TapeError::WriteProtected { medium } => format!(
            "cartridge {medium} of pool {pool} is write-protected: move its write-protect tab to \
             the writable position (`bmsctl tape write-protect LIBRARY {medium} off` for a \
             virtual one), or retire it (`bmsctl media retire {medium}`), then run the job again"
        ),
        other => other.to_string(),
    });
    w.places = changer
        .log
        .used
        .iter()
        .filter_map(|b| {
            changer
                .place_of(b, &target.name)
                .map(|(d, n)| (b.clone(), d, n))
        })
        .collect();
    w.log = changer.log.clone();
    w
}

/// Records what a tape copy did; returns the archive's state and lines for the run's log.
fn record(
    c: &mut Catalog,
    archive: i64,
    pool: &str,
    w: &Written,
    uid: u32,
) -> Result<(&'static str, Vec<String>), ApiError> {
    let mut log = Vec::new();
    for (b, seq) in &w.log.labelled {
        c.allocate_medium(b, pool, pool, *seq)?;
        log.push(format!(
            "labelled scratch medium {b} for pool {pool} (number {seq})"
        ));
    }
    for b in &w.log.found_full {
        c.set_state(b, MediaState::Full)?;
        log.push(format!("medium {b} has no room for another archive: full"));
    }
    if w.result.is_err() {
        // The volumes written before the failure are on tape but not recorded: the media
        // they filled take no further archive.
        for b in &w.log.filled {
            // A write (so the pool's retention expires it), of bytes the catalog does not know.
            if c.record_media_write(b, 0, true, &now_rfc3339()).is_err() {
                c.set_state(b, MediaState::Full)?;
            }
            log.push(format!(
                "medium {b} filled with a volume of this archive, which is not recorded: full"
            ));
        }
    }
    let now = now_rfc3339();
    let state = match &w.result {
        Ok(cats) => {
            for cat in cats {
                c.record_tape_volume(archive, cat)?;
                if c.medium(&cat.barcode)?.is_some() {
                    c.record_media_write(&cat.barcode, cat.archive_bytes, !cat.last, &now)?;
                }
                log.push(format!(
                    "volume {} on {}: tape file {}, {} members, {} bytes",
                    cat.volume,
                    cat.barcode,
                    cat.archive_file,
                    cat.entries.len(),
                    cat.archive_bytes
                ));
            }
            c.finish_tape_archive(archive, None)?
        }
        Err(e) => {
            if w.filled {
                if let Some(b) = w.log.used.last() {
                    c.set_state(b, MediaState::Full)?;
                }
            }
            c.finish_tape_archive(archive, Some(e))?
        }
    };
    for (b, in_drive, name) in &w.places {
        let to = if *in_drive {
            Location::Drive(name.clone())
        } else {
            Location::Slot(name.clone())
        };
        if c.medium(b)?.is_some() {
            c.place_medium(b, &to, Actor { uid })?;
        }
    }
    Ok((state, log))
}

/// Copies `snapshot` from `src` to the tape target `dst` as its own run.
pub async fn copy(
    runner: &Runner,
    parent: &Arc<Active>,
    job: &JobSpec,
    src: &TargetSpec,
    dst: &TargetSpec,
    snapshot: &str,
) -> Result<(), RunError> {
    let shared = &runner.shared;
    let (run, forwarder) = super::execute_copy::begin(runner, parent, job, src, dst, |p| {
        p.phase = format!("copy to tape {}", dst.name);
        p.files = 0;
    })
    .await?;
    let (mut state, mut error, mut log, mut stats) = (
        RunState::Succeeded,
        None::<String>,
        Vec::new(),
        RunStats::default(),
    );
    match prepare(shared, &job.name, dst, snapshot).await {
        Err(e) => (state, error) = (RunState::Failed, Some(e)),
        Ok((target, pool, archive, next_sequence)) => {
            let hooks = Hooks {
                handle: tokio::runtime::Handle::current(),
                shared: shared.clone(),
                target: dst.name.clone(),
                pool: pool.clone(),
                wait: Duration::from_secs(u64::from(shared.config().config.media_wait_secs)),
                active: parent.clone(),
            };
            let (sp, snap, a, jn) = (
                src.clone(),
                snapshot.to_owned(),
                parent.clone(),
                job.name.clone(),
            );
            let written = tokio::task::spawn_blocking(move || {
                with_lock_status(&a, || {
                    write(&sp, &target, &jn, &snap, &a, hooks, next_sequence)
                })
            })
            .await;
            let written = match written {
                Ok(w) => w,
                Err(e) => Written {
                    result: Err(format!("tape copy task failed: {e}")),
                    filled: false,
                    skipped: 0,
                    log: ChangerLog::default(),
                    places: Vec::new(),
                },
            };
            if written.skipped > 0 {
                log.push(format!(
                    "{} device node(s), FIFO(s) or socket(s) of the snapshot are not in the tape \
                     archive (a tape archive holds files, directories and symbolic links)",
                    written.skipped
                ));
            }
            if let Ok(cats) = &written.result {
                stats.bytes_added = cats.iter().map(|c| c.archive_bytes).sum();
                stats.bytes_total = stats.bytes_added;
            }
            let uid = shared.daemon_uid;
            let result = written.result.clone();
            let recorded = shared
                .catalog
                .call(move |c| record(c, archive, &pool, &written, uid))
                .await;
            match (result, recorded) {
                (Ok(_), Ok(("complete", lines))) => log.extend(lines),
                (Ok(_), Ok((st, lines))) => {
                    log.extend(lines);
                    (state, error) = (
                        RunState::Failed,
                        Some(format!("the tape archive was recorded {st}, not complete")),
                    );
                }
                (Err(e), Ok((_, lines))) => {
                    log.extend(lines);
                    (state, error) = (RunState::Failed, Some(e));
                }
                (_, Err(e)) => {
                    warn!(run = run.id, "cannot record the tape copy: {e}");
                    (state, error) = (
                        RunState::Failed,
                        Some(format!(
                            "the tape copy could not be recorded in the catalog: {e}"
                        )),
                    );
                }
            }
        }
    }
    drop(forwarder);
    if state == RunState::Failed && parent.stop.load(Ordering::SeqCst) {
        state = stopped(parent.stop_reason(), 0).0;
    }
    if state == RunState::Succeeded {
        super::execute_copy::record_copied_snapshot(shared, src, dst, snapshot, run.id, &mut log)
            .await;
    }
    let end = End {
        state,
        snapshot: (state == RunState::Succeeded).then(|| snapshot.to_owned()),
        stats,
        error: error.clone(),
        log,
    };
    finish(runner, RunHead::of(&run), end).await;
    match error {
        None => Ok(()),
        Some(e) => Err(RunError::Step(format!(
            "copy to '{}' failed: {e}",
            dst.name
        ))),
    }
}

/// The target, its pool, a new archive record and the pool's next sequence number; media whose
/// retention ended are expired (and returned to scratch) first.
async fn prepare(
    shared: &SharedRef,
    job: &str,
    dst: &TargetSpec,
    snapshot: &str,
) -> Result<(Target, String, i64, u32), String> {
    let target = Target::from_spec(dst).map_err(|e| e.message)?;
    let Some(pool) = parts(&target).and_then(|(_, p, _)| p.map(str::to_owned)) else {
        return Err(format!(
            "tape target '{}' names no media pool: `bmsctl target edit {} --pool POOL`",
            dst.name, dst.name
        ));
    };
    let (p, j, t, s) = (
        pool.clone(),
        job.to_owned(),
        dst.name.clone(),
        snapshot.to_owned(),
    );
    shared
        .catalog
        .call(move |c| {
            if c.pool(&p)?.is_none() {
                return Err(ApiError::new(
                    bms_proto::ErrorKind::NotFound,
                    format!(
                        "pool '{p}' of tape target '{t}' does not exist: `bmsctl pool add {p} \
                         --media-type lto8` (or the pool's media type)"
                    ),
                ));
            }
            c.apply_media_retention(&now_rfc3339())?;
            let next = c.next_sequence(&p)?;
            let archive = c.begin_tape_archive(&j, &t, &s)?;
            Ok((archive, next))
        })
        .await
        .map(|(archive, next)| (target, pool, archive, next))
        .map_err(|e| e.message)
}
