//! Phase 2 of prune (docs/repository-format.md "Prune"): under the `exclusive` lock, mark the
//! snapshots committed since phase 1 and delete the condemned packs that waited the grace
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

use super::plan::{self, PackAction, Seed};
use super::sweep::{delete_unsealed, Steps};
use super::{Condemned, PruneOptions};

/// What phase 2 did.
pub(super) struct Done {
    pub packs_removed: u64,
    pub packs_rescued: u64,
    pub packs_waiting: u64,
    pub bytes_waiting: u64,
    pub index_files_removed: u64,
    /// Bytes of packs and index files afterwards.
    pub bytes_after: u64,
    pub notes: Vec<String>,
}

pub(super) fn run(
    repo: &Repository,
    opts: &PruneOptions,
    seed: Seed,
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
    let plan = plan::make(repo, opts, now, &Default::default(), Some(seed), cancel)?;
    let before = Condemned::load(store)?;
    let mut cond = before.clone();
    let mut delete: Vec<(ObjectId, u64)> = Vec::new();
    let mut done = Done {
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
    if cond != before {
        cond.save(store)?;
        steps.step();
    }
    done.bytes_after = after;
    Ok(done)
}
