//! Prune's list of condemned packs (docs/repository-format.md "Prune"): packs that no live
//! snapshot needed when a prune marked, with the time they were condemned. A later prune
//! deletes one only after the grace period, and only if it is still unneeded then.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::{Kind, Put, Store, CONDEMNED};

/// The `condemned` object at the top of the repository (JSON, written atomically).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condemned {
    pub version: u32,
    /// Pack id (hex) to the Unix second it was condemned.
    pub packs: BTreeMap<String, i64>,
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
