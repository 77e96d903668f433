//! Prune's phase 1 (mark, repack, condemn) and the summary; phase 2 is in `phase2.rs`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::lock::{self, LockKind};
use crate::pack::{self, PackWriter};
use crate::repo::Repository;
use crate::store::{Kind, Put, Store};
use crate::ObjectId;

use super::condemned::Mark;
use super::plan::{self, Marking, PackAction, Plan};
use super::since::Shortcut;
#[cfg(debug_assertions)]
use super::ABORT_ENV;
use super::{Condemned, PruneOptions, PruneSummary};

/// Counts changes to the repository; the crash tests make the process die after the N-th.
pub(super) struct Steps {
    pub done: u64,
    kill_after: Option<u64>,
}

impl Steps {
    fn none() -> Self {
        Steps {
            done: 0,
            kill_after: None,
        }
    }

    fn from_env() -> Self {
        // A test hook of debug builds only (docs/protocol.md "Test hooks").
        #[cfg(debug_assertions)]
        let kill_after = std::env::var(ABORT_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok());
        #[cfg(not(debug_assertions))]
        let kill_after = None;
        let s = Steps {
            done: 0,
            kill_after,
        };
        s.check();
        s
    }

    fn check(&self) {
        if self.kill_after == Some(self.done) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::SIGKILL);
        }
    }

    pub(super) fn step(&mut self) {
        self.done += 1;
        self.check();
    }
}

impl Repository {
    /// Removes the data no snapshot references, in two phases with a grace period
    /// (docs/repository-format.md "Prune"); with `dry_run`, changes nothing and reports what it
    /// would do.
    pub fn prune(&self, opts: &PruneOptions, cancel: &AtomicBool) -> Result<PruneSummary> {
        self.prune_assuming(opts, &Default::default(), cancel)
    }

    /// [`Repository::prune`] as if the snapshots in `removed` were gone: a dry run after a
    /// dry-run forget says what the real forget and prune would reclaim. Only for dry runs.
    pub fn prune_assuming(
        &self,
        opts: &PruneOptions,
        removed: &std::collections::HashSet<String>,
        cancel: &AtomicBool,
    ) -> Result<PruneSummary> {
        if !opts.dry_run && !removed.is_empty() {
            return Err(Error::Internal(
                "prune assuming removed snapshots is only a dry run".into(),
            ));
        }
        let started = Instant::now();
        if opts.repack_below_percent > 100 {
            return Err(Error::InvalidArgument(
                "the repack threshold is a percentage: give 0..100".into(),
            ));
        }
        let store = &**self.store();
        let mut steps = if opts.dry_run {
            Steps::none()
        } else {
            Steps::from_env()
        };
        // Phase 1, beside backups.
        let lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Prune,
            if opts.dry_run {
                "prune (dry run)"
            } else {
                "prune (mark)"
            },
            self.lock_wait(),
            cancel,
        )?;
        let now = SystemTime::now();
        let before = Condemned::load(store)?;
        if !opts.dry_run && removed.is_empty() {
            match super::since::check(store, &before, now, opts)? {
                Shortcut::None => {}
                Shortcut::Idle(snaps) => {
                    let mut sum = super::since::idle(store, opts, &before, &snaps, now, started)?;
                    sum.notes.extend(lock.recovered.iter().cloned());
                    return Ok(sum);
                }
                Shortcut::Due { mark, settled } => {
                    let recovered = lock.recovered.clone();
                    pause_for_tests();
                    drop(lock);
                    let mut sum = super::since::phase2_only(
                        self,
                        opts,
                        &before,
                        (mark, settled),
                        &mut steps,
                        cancel,
                        started,
                    )?;
                    sum.notes.extend(recovered);
                    return Ok(sum);
                }
            }
        }
        let plan = plan::make(self, opts, now, removed, Marking::Full, cancel)?;
        pause_for_tests();
        let mut cond = before.clone();
        let p1 = phase1_list(&plan, &mut cond, now);
        cond.mark = Some(Mark {
            snapshots: plan.marked.iter().cloned().collect(),
            repack_below: opts.repack_below_percent,
            // What the plan saw (and so accounted for), plus what this phase writes below;
            // nothing when it kept sealed objects, which a later mark may find unsealed.
            settled: plan.sealed.is_empty().then(|| plan.listed.clone()),
        });
        let due = due_packs(&plan, &cond, now, opts.grace);
        let missing = plan.packs.iter().any(|p| p.size == 0);
        let phase2 = due.count > 0 || missing;
        let mut sum = summary_of(&plan, opts, &p1, &due, phase2);
        sum.notes.extend(lock.recovered.iter().cloned());
        if opts.dry_run {
            sum.changes = p1.index_written
                + plan.new_packs_estimate
                + u64::from(cond != before)
                + if phase2 {
                    1 + plan.old_index.len() as u64
                        + p1.index_written
                        + due.count
                        + u64::from(due.count > 0)
                } else {
                    0
                };
            sum.duration = started.elapsed();
            return Ok(sum);
        }
        let written = write_repacks(self, &plan, &mut steps, cancel)?;
        if let Some(s) = cond.mark.as_mut().and_then(|m| m.settled.as_mut()) {
            s.packs += written.packs;
            s.index.extend(written.index.clone());
        }
        sum.packs_written = written.packs;
        let mut after = plan.bytes_before + written.bytes;
        if cond != before {
            cond.save(store)?;
            steps.step();
        }
        drop(lock);
        sum.index_files_written = u64::from(written.bytes > 0);
        sum.index_files_removed = 0;
        sum.packs_removed = 0;
        if phase2 {
            let seed = Marking::Seeded((plan.used, plan.marked));
            let done = match super::phase2::run(
                self,
                opts,
                seed,
                cond.mark.as_ref(),
                &mut steps,
                cancel,
            ) {
                Err(Error::Locked { holder, .. }) => {
                    // Phase 1 stands; the next prune deletes what is due.
                    sum.notes.push(format!(
                        "deleting the condemned packs needs the exclusive lock, held by \
                         {holder}; they stay condemned and the next prune deletes them"
                    ));
                    sum.packs_removed = 0;
                    sum.packs_waiting += due.count;
                    sum.bytes_waiting += due.bytes;
                    sum.index_files_written = u64::from(written.bytes > 0);
                    sum.bytes_after = after;
                    sum.bytes_reclaimed = sum.bytes_before.saturating_sub(after);
                    sum.bytes_after_grace = after.saturating_sub(sum.bytes_waiting);
                    sum.bytes_reclaimed_after_grace =
                        sum.bytes_before.saturating_sub(sum.bytes_after_grace);
                    sum.changes = steps.done;
                    sum.duration = started.elapsed();
                    return Ok(sum);
                }
                r => r?,
            };
            after = done.bytes_after;
            sum.packs_removed = done.packs_removed;
            sum.packs_rescued += done.packs_rescued;
            sum.index_files_written += 1;
            sum.index_files_removed = done.index_files_removed;
            sum.packs_waiting = done.packs_waiting;
            sum.bytes_waiting = done.bytes_waiting;
            sum.notes.extend(done.notes);
        }
        sum.bytes_after = after;
        sum.bytes_reclaimed = sum.bytes_before.saturating_sub(after);
        sum.bytes_after_grace = after.saturating_sub(sum.bytes_waiting);
        sum.bytes_reclaimed_after_grace = sum.bytes_before.saturating_sub(sum.bytes_after_grace);
        sum.changes = steps.done;
        sum.duration = started.elapsed();
        Ok(sum)
    }
}

/// What phase 1 does to the condemned list.
struct Phase1 {
    condemned: u64,
    rescued: u64,
    /// 1 when phase 1 writes an index file (for new packs, or packs no index names).
    index_written: u64,
}

/// Condemns the packs phase 1 leaves unneeded (after their live blobs are copied: the caller
/// saves the list only then) and rescues the condemned packs that are needed again; drops
/// entries of packs that are gone.
fn phase1_list(plan: &Plan, cond: &mut Condemned, now: SystemTime) -> Phase1 {
    let present: std::collections::HashSet<String> = plan
        .packs
        .iter()
        .filter(|p| p.size > 0)
        .map(|p| p.id.to_hex())
        .collect();
    cond.packs.retain(|k, _| present.contains(k));
    let mut out = Phase1 {
        condemned: 0,
        rescued: 0,
        index_written: u64::from(
            !plan.copy.is_empty()
                || plan
                    .packs
                    .iter()
                    .any(|p| p.action == PackAction::Keep && !p.indexed),
        ),
    };
    for p in plan.packs.iter().filter(|p| p.size > 0) {
        match p.action {
            PackAction::Keep | PackAction::Sealed => {
                if cond.rescue(&p.id) {
                    out.rescued += 1;
                }
            }
            PackAction::Remove | PackAction::Repack => {
                if cond.condemn(&p.id, now) {
                    out.condemned += 1;
                }
            }
        }
    }
    out
}

/// The condemned packs phase 2 would delete (as phase 1 sees them).
struct Due {
    count: u64,
    bytes: u64,
    waiting: u64,
    waiting_bytes: u64,
}

fn due_packs(plan: &Plan, cond: &Condemned, now: SystemTime, grace: Duration) -> Due {
    let mut d = Due {
        count: 0,
        bytes: 0,
        waiting: 0,
        waiting_bytes: 0,
    };
    for p in plan.packs.iter().filter(|p| p.size > 0) {
        if !matches!(p.action, PackAction::Remove | PackAction::Repack) {
            continue;
        }
        if cond.due(&p.id, now, grace) {
            d.count += 1;
            d.bytes += p.size;
        } else {
            d.waiting += 1;
            d.waiting_bytes += p.size;
        }
    }
    d
}

/// A test hook of debug builds only (docs/protocol.md "Test hooks"): with
/// [`super::PAUSE_ENV`] set to a path F, prune creates `F.waiting` once it holds the `prune`
/// lock of phase 1 and has made its plan, and waits (up to 120 s) until F exists.
fn pause_for_tests() {
    #[cfg(debug_assertions)]
    if let Some(f) = std::env::var_os(super::PAUSE_ENV) {
        let f = std::path::PathBuf::from(f);
        let mut waiting = f.clone().into_os_string();
        waiting.push(".waiting");
        let _ = std::fs::write(&waiting, b"");
        let until = Instant::now() + std::time::Duration::from_secs(120);
        while !f.exists() && Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn summary_of(
    plan: &Plan,
    opts: &PruneOptions,
    p1: &Phase1,
    due: &Due,
    phase2: bool,
) -> PruneSummary {
    let count = |a: PackAction| plan.packs.iter().filter(|p| p.action == a).count() as u64;
    let noop = plan.is_noop();
    let missing = plan.packs.iter().filter(|p| p.size == 0).count() as u64;
    let after_grace = if noop {
        plan.bytes_before
    } else {
        plan.bytes_kept + plan.bytes_new
    };
    // Until the grace period ends, the condemned packs stay; without phase 2 the old index
    // files stay too, and the new packs come on top.
    let bytes_after = if phase2 {
        after_grace + due.waiting_bytes
    } else {
        plan.bytes_before
            + plan
                .bytes_new
                .saturating_sub(if noop { 0 } else { index_estimate(plan) })
    };
    PruneSummary {
        dry_run: opts.dry_run,
        snapshots: plan.snapshots,
        packs_before: plan.packs.iter().filter(|p| p.size > 0).count() as u64,
        packs_removed: due.count + missing,
        packs_condemned: p1.condemned,
        packs_rescued: p1.rescued,
        packs_waiting: due.waiting,
        bytes_waiting: due.waiting_bytes,
        packs_repacked: count(PackAction::Repack),
        packs_written: plan.new_packs_estimate,
        packs_kept: count(PackAction::Keep) + count(PackAction::Sealed),
        unindexed_packs_removed: plan
            .packs
            .iter()
            .filter(|p| !p.indexed && matches!(p.action, PackAction::Remove | PackAction::Repack))
            .count() as u64,
        index_files_removed: if phase2 {
            plan.old_index.len() as u64 + p1.index_written
        } else {
            0
        },
        index_files_written: p1.index_written + u64::from(phase2),
        blobs_live: plan.blobs_live,
        blobs_repacked: plan.copy.values().map(|v| v.len() as u64).sum(),
        bytes_before: plan.bytes_before,
        bytes_after,
        bytes_reclaimed: plan.bytes_before.saturating_sub(bytes_after),
        bytes_after_grace: after_grace,
        bytes_reclaimed_after_grace: plan.bytes_before.saturating_sub(after_grace),
        grace_secs: opts.grace.as_secs(),
        changes: 0,
        sealed_kept: plan.sealed.clone(),
        notes: plan.notes.clone(),
        duration: Default::default(),
    }
}

/// The estimated size of the new index file included in [`Plan::bytes_new`].
fn index_estimate(plan: &Plan) -> u64 {
    plan::new_index(plan, Vec::new()).encode().len() as u64
}

/// What phase 1 wrote.
struct Written {
    packs: u64,
    /// The index file written, if any.
    index: Option<String>,
    /// Bytes of the new packs and index file.
    bytes: u64,
}

/// Phase 1's writes: the live blobs of the packs to repack, copied into new packs, and one
/// index file (superseding nothing) naming the new packs and the live packs no index names.
/// The old packs are condemned only after this (the caller saves the condemned list).
fn write_repacks(
    repo: &Repository,
    plan: &Plan,
    steps: &mut Steps,
    cancel: &AtomicBool,
) -> Result<Written> {
    let store = &**repo.store();
    let pack_size = repo.config().pack_size.max(1 << 20);
    let mut written: Vec<(ObjectId, Vec<pack::PackEntry>)> = Vec::new();
    // Trees and data into packs of their own, as a backup writes them (plan.rs estimates the
    // same split).
    let mut writers: [Option<PackWriter>; 2] = [None, None];
    let copied = (|| -> Result<()> {
        for (src, entries) in &plan.copy {
            let f = store.open(Kind::Packs, &src.to_hex())?;
            // Blobs close to each other in the pack are read with one read.
            for run in plan::read_runs(entries, plan::REPACK_GAP, plan::REPACK_RUN) {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let run = &entries[run];
                let (start, end) = plan::run_span(run);
                let mut buf = vec![0u8; (end - start) as usize];
                f.read_exact_at(&mut buf, start)?;
                for e in run {
                    let at = (e.offset - start) as usize;
                    let stored = &buf[at..at + e.stored_len as usize];
                    pack::decode_blob(stored, e, &|| {
                        store
                            .locate(Kind::Packs, &src.to_hex())
                            .display()
                            .to_string()
                    })?;
                    let slot = &mut writers[usize::from(e.kind == pack::BlobKind::Tree)];
                    let w = match slot.as_mut() {
                        Some(w) => w,
                        None => slot.insert(PackWriter::new(store)?),
                    };
                    w.add(e.kind, e.id, e.compression, e.raw_len, stored)?;
                    if w.size() >= pack_size {
                        if let Some(w) = slot.take() {
                            written.push(w.finish()?);
                            steps.step();
                        }
                    }
                }
            }
        }
        for w in writers.iter_mut().filter_map(Option::take) {
            written.push(w.finish()?);
            steps.step();
        }
        Ok(())
    })();
    if let Err(e) = copied {
        for w in writers.iter_mut().filter_map(Option::take) {
            w.abandon();
        }
        // Nothing was condemned: the packs written so far are unindexed and a later prune
        // indexes or condemns them.
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let n_written = written.len() as u64;
    let mut bytes: u64 = 0;
    for (id, _) in &written {
        bytes += store.stat(Kind::Packs, &id.to_hex())?.map_or(0, |s| s.size);
    }
    let mut packs: Vec<(ObjectId, Vec<pack::PackEntry>)> = plan
        .packs
        .iter()
        .filter(|p| p.action == PackAction::Keep && !p.indexed)
        .map(|p| (p.id, p.entries.clone()))
        .collect();
    packs.extend(written);
    let mut index_name = None;
    if !packs.is_empty() {
        let index = crate::index::IndexFile {
            supersedes: Vec::new(),
            packs,
        };
        let data = index.encode();
        let index_id = ObjectId::hash(&data);
        store.put(Kind::Index, &index_id.to_hex(), &data, Put::Replace)?;
        bytes += data.len() as u64;
        index_name = Some(index_id.to_hex());
        steps.step();
    }
    Ok(Written {
        packs: n_written,
        index: index_name,
        bytes,
    })
}

/// Deletes an object after asking the store once more whether it is sealed.
pub(super) fn delete_unsealed(store: &dyn Store, kind: Kind, id: &ObjectId) -> Result<()> {
    let name = id.to_hex();
    if let Some(until) = store
        .sealed_until(kind, &name)?
        .filter(|u| *u > SystemTime::now())
    {
        tracing::warn!(
            "prune kept {} {name}: sealed until {:?}",
            kind.name(),
            jiff::Timestamp::try_from(until).map(|t| t.to_string())
        );
        return Ok(());
    }
    store.delete(kind, &name)?;
    Ok(())
}
