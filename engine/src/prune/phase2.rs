//! Phase 2 of prune (docs/repository-format.md "Prune"): under the `exclusive` lock, mark the
//! snapshots committed since phase 1 (or since the last mark, when phase 1 had nothing to do)
//! and delete the condemned packs that waited the grace
//! period and are still unneeded, in crash-safe order: one new index file naming every pack
//! that stays (superseding the old ones), the old index files, the packs, the condemned list.

use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use crate::error::Result;
use crate::id::ObjectId;
use crate::index::IndexFile;
use crate::lock::{self, LockKind};
use crate::repo::Repository;
use crate::store::{Kind, Put};

use super::condemned::{Mark, Settled};
use super::plan::{self, Marking, PackAction};
use super::sweep::{delete_unsealed, Steps};
use super::{Condemned, PruneOptions};

/// What phase 2 did.
pub(super) struct Done {
    pub snapshots: u64,
    pub packs_before: u64,
    /// Bytes of packs and index files before.
    pub bytes_before: u64,
    /// Whether a new index file was written.
    pub index_written: bool,
    pub packs_removed: u64,
    pub packs_rescued: u64,
    pub packs_waiting: u64,
    pub bytes_waiting: u64,
    pub index_files_removed: u64,
    /// Bytes of packs and index files afterwards.
    pub bytes_after: u64,
    pub notes: Vec<String>,
}

/// `marking` is phase 1's seed, or the condemned list's record of the last mark when phase 1
/// was skipped; `settled` is the [`Mark`] phase 1 left (or found): when the repository still
/// is as it says, the record this phase leaves says so too.
pub(super) fn run(
    repo: &Repository,
    opts: &PruneOptions,
    marking: Marking,
    settled: Option<&Mark>,
    steps: &mut Steps,
    cancel: &AtomicBool,
) -> Result<Done> {
    let store = &**repo.store();
    let _lock = lock::acquire_in(
        repo.store().clone(),
        LockKind::Exclusive,
        "prune (delete)",
        repo.lock_wait(),
        cancel,
    )?;
    // No backup runs now: every snapshot that could reference a condemned pack is committed,
    // and the mark below sees it.
    let now = SystemTime::now();
    let since = matches!(marking, Marking::Since { .. });
    let mut plan = plan::make(repo, opts, now, &Default::default(), marking, cancel)?;
    if since && plan.packs.iter().any(|p| p.size == 0) {
        // A pack is missing: the record's promise (the blobs the marked snapshots need are in
        // packs that are not condemned) may not hold any more. Mark everything.
        plan = plan::make(repo, opts, now, &Default::default(), Marking::Full, cancel)?;
    }
    // Whether nothing but phase 1 changed the repository since its mark: then the record
    // this phase leaves says the repository is settled.
    let still = settled.is_some_and(|m| {
        m.settled.is_some()
            && plan.sealed.is_empty()
            && m.snapshots.len() == plan.marked.len()
            && m.snapshots.iter().all(|s| plan.marked.contains(s))
            && m.settled.as_ref() == Some(&plan.listed)
    });
    let before = Condemned::load(store)?;
    let mut cond = before.clone();
    let mut record = Mark {
        snapshots: plan.marked.iter().cloned().collect(),
        repack_below: opts.repack_below_percent,
        settled: None,
    };
    let mut delete: Vec<(ObjectId, u64)> = Vec::new();
    let present: std::collections::HashSet<String> = plan
        .packs
        .iter()
        .filter(|p| p.size > 0)
        .map(|p| p.id.to_hex())
        .collect();
    cond.packs.retain(|k, _| present.contains(k));
    let mut done = Done {
        snapshots: plan.marked.len() as u64,
        packs_before: present.len() as u64,
        bytes_before: plan.bytes_before,
        index_written: false,
        packs_removed: 0,
        packs_rescued: 0,
        packs_waiting: 0,
        bytes_waiting: 0,
        index_files_removed: 0,
        bytes_after: plan.bytes_before,
        notes: plan.notes.clone(),
    };
    for p in plan.packs.iter().filter(|p| p.size > 0) {
        if !cond.contains(&p.id) {
            continue;
        }
        // A pack holding a live blob that no pack staying holds (the plan would copy it) is
        // needed again; so is one the plan keeps.
        let needed = matches!(p.action, PackAction::Keep | PackAction::Sealed)
            || plan.copy.contains_key(&p.id);
        if needed {
            cond.rescue(&p.id);
            done.packs_rescued += 1;
        } else if cond.due(&p.id, now, opts.grace) {
            delete.push((p.id, p.size));
        } else {
            done.packs_waiting += 1;
            done.bytes_waiting += p.size;
        }
    }
    let missing = plan.packs.iter().any(|p| p.size == 0);
    if delete.is_empty() && !missing {
        if still {
            record.settled = Some(Settled::of(store)?);
        }
        cond.mark = Some(record);
        if cond != before {
            cond.save(store)?;
            steps.step();
        }
        return Ok(done);
    }
    let gone: std::collections::HashSet<ObjectId> = delete.iter().map(|(id, _)| *id).collect();
    let index = IndexFile {
        supersedes: plan.old_index.clone(),
        packs: plan
            .packs
            .iter()
            .filter(|p| p.size > 0 && !gone.contains(&p.id))
            .map(|p| (p.id, p.entries.clone()))
            .collect(),
    };
    let data = index.encode();
    let index_id = ObjectId::hash(&data);
    store.put(Kind::Index, &index_id.to_hex(), &data, Put::Replace)?;
    done.index_written = true;
    steps.step();
    let mut after = plan.bytes_before + data.len() as u64;
    // From here on the new index describes everything that stays: deletions cannot lose data.
    for id in &plan.old_index {
        if *id == index_id {
            after -= data.len() as u64;
            continue;
        }
        let size = store.stat(Kind::Index, &id.to_hex())?.map_or(0, |s| s.size);
        delete_unsealed(store, Kind::Index, id)?;
        after = after.saturating_sub(size);
        done.index_files_removed += 1;
        steps.step();
    }
    for (id, size) in &delete {
        delete_unsealed(store, Kind::Packs, id)?;
        after = after.saturating_sub(*size);
        cond.packs.remove(&id.to_hex());
        done.packs_removed += 1;
        steps.step();
    }
    if still {
        record.settled = Some(Settled::of(store)?);
    }
    cond.mark = Some(record);
    if cond != before {
        cond.save(store)?;
        steps.step();
    }
    done.bytes_after = after;
    Ok(done)
}
