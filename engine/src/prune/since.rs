//! Prune runs that need no new full mark (docs/repository-format.md "Prune", "The record of
//! the last mark"): when no snapshot was forgotten since the mark recorded in the condemned
//! list, a full mark would condemn nothing that list's mark did not, except data written since
//! by backups that never committed. Then a prune with a condemned pack due goes straight to
//! phase 2, which marks only the snapshots the record does not name; and a prune with nothing
//! due, in a repository that nobody changed since the mark, ends at once.

use std::collections::BTreeSet;
use std::time::{Instant, SystemTime};

use crate::error::Result;
use crate::id::IdSet;
use crate::repo::{list_ids, Repository};
use crate::store::{Kind, Store};
use crate::ObjectId;

use super::condemned::{unix, Mark, Settled};
use super::plan::Marking;
use super::sweep::Steps;
use super::{Condemned, PruneOptions, PruneSummary, SealedObject};

/// What the record of the last mark allows.
pub(super) enum Shortcut {
    /// A full mark is needed (no record, or a snapshot it names is gone).
    None,
    /// Nothing is due and nothing changed since the mark: nothing to do.
    Idle(BTreeSet<String>),
    /// A condemned pack is due and no snapshot was forgotten since the mark: phase 2 alone,
    /// with `settled` when nothing else changed the repository either.
    Due { mark: Mark, settled: bool },
}

/// Decides from the condemned list and the listings only; the caller holds the `prune` lock.
pub(super) fn check(
    store: &dyn Store,
    cond: &Condemned,
    now: SystemTime,
    opts: &PruneOptions,
) -> Result<Shortcut> {
    let Some(mark) = cond
        .mark
        .as_ref()
        .filter(|m| m.repack_below == opts.repack_below_percent)
    else {
        return Ok(Shortcut::None);
    };
    let grace = opts.grace;
    let snaps: BTreeSet<String> = list_ids(store, Kind::Snapshots)?
        .iter()
        .map(|id| id.to_hex())
        .collect();
    if !mark.snapshots.is_subset(&snaps) {
        return Ok(Shortcut::None);
    }
    let settled = snaps == mark.snapshots
        && mark.settled.is_some()
        && Some(Settled::of(store)?) == mark.settled;
    let now = unix(now);
    let due = cond
        .packs
        .values()
        .any(|t| now.saturating_sub(*t) >= grace.as_secs() as i64);
    Ok(if due {
        Shortcut::Due {
            mark: mark.clone(),
            settled,
        }
    } else if settled {
        Shortcut::Idle(snaps)
    } else {
        Shortcut::None
    })
}

/// Phase 2 alone (the caller released the `prune` lock).
pub(super) fn phase2_only(
    repo: &Repository,
    opts: &PruneOptions,
    cond: &Condemned,
    (mark, settled): (Mark, bool),
    steps: &mut Steps,
    cancel: &std::sync::atomic::AtomicBool,
    started: Instant,
) -> Result<PruneSummary> {
    let condemned: IdSet = cond
        .packs
        .keys()
        .filter_map(|k| ObjectId::from_hex(k).ok())
        .collect();
    let marking = Marking::Since {
        snapshots: mark.snapshots.clone(),
        condemned,
    };
    let done = super::phase2::run(repo, opts, marking, settled.then_some(&mark), steps, cancel)?;
    let mut notes = vec![
        "no snapshot was forgotten since the last prune's mark: only the snapshots made since \
         were marked"
            .to_string(),
    ];
    notes.extend(done.notes);
    let after_grace = done.bytes_after.saturating_sub(done.bytes_waiting);
    Ok(PruneSummary {
        dry_run: false,
        snapshots: done.snapshots,
        packs_before: done.packs_before,
        packs_removed: done.packs_removed,
        packs_rescued: done.packs_rescued,
        packs_waiting: done.packs_waiting,
        bytes_waiting: done.bytes_waiting,
        packs_kept: done
            .packs_before
            .saturating_sub(done.packs_removed + done.packs_waiting),
        index_files_removed: done.index_files_removed,
        index_files_written: u64::from(done.index_written),
        bytes_before: done.bytes_before,
        bytes_after: done.bytes_after,
        bytes_reclaimed: done.bytes_before.saturating_sub(done.bytes_after),
        bytes_after_grace: after_grace,
        bytes_reclaimed_after_grace: done.bytes_before.saturating_sub(after_grace),
        grace_secs: opts.grace.as_secs(),
        changes: steps.done,
        notes,
        duration: started.elapsed(),
        ..Default::default()
    })
}

/// The summary of a prune that found nothing to do: sizes from the listings, the condemned
/// packs waiting, and the sealed objects.
pub(super) fn idle(
    store: &dyn Store,
    opts: &PruneOptions,
    cond: &Condemned,
    snapshots: &BTreeSet<String>,
    now: SystemTime,
    started: Instant,
) -> Result<PruneSummary> {
    let mut sum = PruneSummary {
        snapshots: snapshots.len() as u64,
        grace_secs: opts.grace.as_secs(),
        ..Default::default()
    };
    for kind in [Kind::Index, Kind::Packs] {
        for id in list_ids(store, kind)? {
            let name = id.to_hex();
            let size = store.stat(kind, &name)?.map_or(0, |s| s.size);
            sum.bytes_before += size;
            if let Some(u) = store.sealed_until(kind, &name)?.filter(|u| *u > now) {
                sum.sealed_kept.push(SealedObject {
                    kind: if kind == Kind::Packs {
                        "pack"
                    } else {
                        "index file"
                    },
                    id: name.clone(),
                    until: jiff::Timestamp::try_from(u)
                        .map(|t| t.to_string())
                        .unwrap_or_else(|_| "a time that cannot be shown".into()),
                });
            }
            if kind == Kind::Packs {
                sum.packs_before += 1;
                if cond.packs.contains_key(&name) {
                    sum.packs_waiting += 1;
                    sum.bytes_waiting += size;
                }
            }
        }
    }
    sum.packs_kept = sum.packs_before - sum.packs_waiting;
    sum.bytes_after = sum.bytes_before;
    sum.bytes_after_grace = sum.bytes_before - sum.bytes_waiting;
    sum.bytes_reclaimed_after_grace = sum.bytes_waiting;
    sum.notes.push(
        "nothing changed since the last prune's mark and no condemned pack has waited the \
         grace period yet: nothing to do"
            .into(),
    );
    sum.duration = started.elapsed();
    Ok(sum)
}
