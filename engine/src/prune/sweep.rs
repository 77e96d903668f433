//! The sweep of prune, in crash-safe order: new packs, the new index file, then deletions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use crate::error::{Error, Result};
use crate::lock::{self, LockKind};
use crate::pack::{self, PackWriter};
use crate::repo::Repository;
use crate::store::{Kind, Put, Store};
use crate::ObjectId;

use super::plan::{self, PackAction, Plan};
use super::{PruneOptions, PruneSummary, ABORT_ENV};

/// Counts changes to the repository; the crash tests make the process die after the N-th.
struct Steps {
    done: u64,
    kill_after: Option<u64>,
}

impl Steps {
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

    fn step(&mut self) {
        self.done += 1;
        self.check();
    }
}

impl Repository {
    /// Removes the data no snapshot references (docs/repository-format.md "Prune"). Holds the
    /// exclusive lock for the whole run; with `dry_run`, changes nothing and reports what it
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
        let lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Exclusive,
            if opts.dry_run {
                "prune (dry run)"
            } else {
                "prune"
            },
            self.lock_wait(),
            cancel,
        )?;
        let plan = plan::make(self, opts, SystemTime::now(), removed, cancel)?;
        pause_for_tests();
        let mut sum = summary_of(&plan, opts.dry_run);
        sum.notes.extend(lock.recovered.iter().cloned());
        if !opts.dry_run && !plan.is_noop() {
            let written = execute(self, &plan, cancel)?;
            sum.packs_written = written.0;
            sum.index_files_written = 1;
            sum.bytes_after = written.1;
            sum.bytes_reclaimed = sum.bytes_before.saturating_sub(sum.bytes_after);
        }
        drop(lock);
        sum.duration = started.elapsed();
        Ok(sum)
    }
}

/// A test hook of debug builds only (docs/protocol.md "Test hooks"): with
/// [`super::PAUSE_ENV`] set to a path F, prune creates `F.waiting` once it holds the lock and
/// has made its plan, and waits (up to 120 s) until F exists.
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

fn summary_of(plan: &Plan, dry_run: bool) -> PruneSummary {
    let count = |a: PackAction| plan.packs.iter().filter(|p| p.action == a).count() as u64;
    let noop = plan.is_noop();
    let bytes_after = if noop {
        plan.bytes_before
    } else {
        plan.bytes_kept + plan.bytes_new
    };
    PruneSummary {
        dry_run,
        snapshots: plan.snapshots,
        packs_before: plan.packs.iter().filter(|p| p.size > 0).count() as u64,
        packs_removed: count(PackAction::Remove),
        packs_repacked: count(PackAction::Repack),
        packs_written: plan.new_packs_estimate,
        packs_kept: count(PackAction::Keep) + count(PackAction::Sealed),
        unindexed_packs_removed: plan
            .packs
            .iter()
            .filter(|p| !p.indexed && matches!(p.action, PackAction::Remove | PackAction::Repack))
            .count() as u64,
        index_files_removed: if noop { 0 } else { plan.old_index.len() as u64 },
        index_files_written: u64::from(!noop),
        blobs_live: plan.blobs_live,
        blobs_repacked: plan.copy.values().map(|v| v.len() as u64).sum(),
        bytes_before: plan.bytes_before,
        bytes_after,
        bytes_reclaimed: plan.bytes_before.saturating_sub(bytes_after),
        sealed_kept: plan.sealed.clone(),
        notes: plan.notes.clone(),
        duration: Default::default(),
    }
}

/// Writes the new packs and index, then deletes the old index files and packs. Returns the
/// number of packs written and the bytes of packs and index files afterwards.
fn execute(repo: &Repository, plan: &Plan, cancel: &AtomicBool) -> Result<(u64, u64)> {
    let store = &**repo.store();
    let mut steps = Steps::from_env();
    let pack_size = repo.config().pack_size.max(1 << 20);
    let mut written: Vec<(ObjectId, Vec<pack::PackEntry>)> = Vec::new();
    let mut writer: Option<PackWriter> = None;
    let copied = (|| -> Result<()> {
        for (src, entries) in &plan.copy {
            let f = store.open(Kind::Packs, &src.to_hex())?;
            for e in entries {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let mut stored = vec![0u8; e.stored_len as usize];
                f.read_exact_at(&mut stored, e.offset)?;
                pack::decode_blob(&stored, e, &|| {
                    store
                        .locate(Kind::Packs, &src.to_hex())
                        .display()
                        .to_string()
                })?;
                let w = match writer.as_mut() {
                    Some(w) => w,
                    None => writer.insert(PackWriter::new(store)?),
                };
                w.add(e.kind, e.id, e.compression, e.raw_len, &stored)?;
                if w.size() >= pack_size {
                    if let Some(w) = writer.take() {
                        written.push(w.finish()?);
                        steps.step();
                    }
                }
            }
        }
        if let Some(w) = writer.take() {
            written.push(w.finish()?);
            steps.step();
        }
        Ok(())
    })();
    if let Err(e) = copied {
        if let Some(w) = writer.take() {
            w.abandon();
        }
        // Nothing was deleted: the packs written so far are unindexed and the next prune
        // removes them or takes them over.
        return Err(e);
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let n_written = written.len() as u64;
    let mut after: u64 = 0;
    for (id, _) in &written {
        after += store.stat(Kind::Packs, &id.to_hex())?.map_or(0, |s| s.size);
    }
    let index = plan::new_index(plan, written);
    let data = index.encode();
    let index_id = ObjectId::hash(&data);
    store.put(Kind::Index, &index_id.to_hex(), &data, Put::Replace)?;
    after += data.len() as u64;
    steps.step();
    // From here on the new index describes everything that stays: deletions cannot lose data.
    for id in &plan.old_index {
        if *id != index_id {
            delete_unsealed(store, Kind::Index, id)?;
            steps.step();
        }
    }
    for p in &plan.packs {
        match p.action {
            PackAction::Remove | PackAction::Repack => {
                if p.size > 0 {
                    delete_unsealed(store, Kind::Packs, &p.id)?;
                    steps.step();
                }
            }
            PackAction::Keep | PackAction::Sealed => after += p.size,
        }
    }
    for s in &plan.sealed {
        if s.kind == "index file" {
            if let Ok(id) = ObjectId::from_hex(&s.id) {
                after += store.stat(Kind::Index, &id.to_hex())?.map_or(0, |s| s.size);
            }
        }
    }
    Ok((n_written, after))
}

/// Deletes an object after asking the store once more whether it is sealed.
fn delete_unsealed(store: &dyn Store, kind: Kind, id: &ObjectId) -> Result<()> {
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
