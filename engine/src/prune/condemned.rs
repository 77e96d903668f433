//! Prune's list of condemned packs (docs/repository-format.md "Prune"): packs that no live
//! snapshot needed when a prune marked, with the time they were condemned. A later prune
//! deletes one only after the grace period, and only if it is still unneeded then.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::repo::list_ids;
use crate::store::{Kind, Put, Store, CONDEMNED};

/// The `condemned` object at the top of the repository (JSON, written atomically).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condemned {
    pub version: u32,
    /// Pack id (hex) to the Unix second it was condemned.
    pub packs: BTreeMap<String, i64>,
    /// What the last mark covered (absent in lists written before it was recorded, and
    /// dropped by any writer that does not know it: a prune then marks everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

/// The record of prune's last mark (docs/repository-format.md "Prune"): every blob that the
/// snapshots in `snapshots` need is in a pack that is not condemned. A later prune need only
/// mark the snapshots not in the set to know whether a condemned pack is needed again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Ids of the snapshots marked.
    pub snapshots: BTreeSet<String>,
    /// The repack threshold that prune used ([`super::PruneOptions::repack_below_percent`]):
    /// a prune with another one marks everything.
    #[serde(default)]
    pub repack_below: u8,
    /// The repository as the mark left it, when nothing else changed it meanwhile: the index
    /// file ids and the number of packs. While the snapshots, the index files and the packs
    /// are still these, a new mark would find nothing newly unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settled: Option<Settled>,
}

/// See [`Mark::settled`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settled {
    pub index: BTreeSet<String>,
    pub packs: u64,
}

impl Settled {
    /// The index files and the pack count of the repository now.
    pub(super) fn of(store: &dyn Store) -> Result<Settled> {
        Ok(Settled {
            index: list_ids(store, Kind::Index)?
                .iter()
                .map(|id| id.to_hex())
                .collect(),
            packs: list_ids(store, Kind::Packs)?.len() as u64,
        })
    }
}

pub(super) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Condemned {
    /// Reads the list; a repository without one has none condemned.
    pub fn load(store: &dyn Store) -> Result<Condemned> {
        if store.stat(Kind::Config, CONDEMNED)?.is_none() {
            return Ok(Condemned::default());
        }
        let data = store.read(Kind::Config, CONDEMNED)?;
        serde_json::from_slice(&data).map_err(|e| {
            Error::InvalidArgument(format!(
                "the condemned list {} cannot be read ({e}); remove it (prune then condemns \
                 again what is unused, and deletes nothing before the grace period)",
                store.locate(Kind::Config, CONDEMNED).display()
            ))
        })
    }

    /// Writes the list atomically.
    pub fn save(&self, store: &dyn Store) -> Result<()> {
        let data = serde_json::to_vec_pretty(&Condemned {
            version: 1,
            packs: self.packs.clone(),
            mark: self.mark.clone(),
        })
        .map_err(|e| Error::internal("encoding the condemned list", e))?;
        store.put(Kind::Config, CONDEMNED, &data, Put::Replace)?;
        Ok(())
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.packs.contains_key(&id.to_hex())
    }

    /// Condemns `id` at `now` unless it already is.
    pub fn condemn(&mut self, id: &ObjectId, now: SystemTime) -> bool {
        let mut added = false;
        self.packs.entry(id.to_hex()).or_insert_with(|| {
            added = true;
            unix(now)
        });
        added
    }

    pub fn rescue(&mut self, id: &ObjectId) -> bool {
        self.packs.remove(&id.to_hex()).is_some()
    }

    /// Whether `id` was condemned at least `grace` before `now`.
    pub fn due(&self, id: &ObjectId, now: SystemTime, grace: Duration) -> bool {
        self.packs
            .get(&id.to_hex())
            .is_some_and(|t| unix(now).saturating_sub(*t) >= grace.as_secs() as i64)
    }

    /// The earliest time a pack in the list was condemned.
    pub fn oldest(&self) -> Option<i64> {
        self.packs.values().min().copied()
    }
}
