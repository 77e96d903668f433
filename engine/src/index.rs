//! Index files: which blob lives in which pack at which offset. Written after the packs they
//! describe are durable; named by the BLAKE3 of their bytes; never modified.

use crate::store::{Kind, Store};

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::{IdMap, ObjectId};
use crate::pack::{BlobKind, PackEntry};

pub const INDEX_MAGIC: &[u8; 8] = b"BMSINDX1";

/// The decoded content of one index file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Index files this one replaces (written by a future prune; empty for backups).
    pub supersedes: Vec<ObjectId>,
    /// Packs and their blobs.
    pub packs: Vec<(ObjectId, Vec<PackEntry>)>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.raw(INDEX_MAGIC);
        e.raw(&0u32.to_le_bytes());
        e.uvar(self.supersedes.len() as u64);
        for s in &self.supersedes {
            e.id(s);
        }
        e.uvar(self.packs.len() as u64);
        for (pack, entries) in &self.packs {
            e.id(pack);
            e.uvar(entries.len() as u64);
            for b in entries {
                e.u8(b.kind as u8);
                e.u8(b.compression);
                e.id(&b.id);
                e.uvar(b.offset);
                e.uvar(u64::from(b.stored_len));
                e.uvar(u64::from(b.raw_len));
            }
        }
        e.buf
    }

    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(data, "index file");
        if d.raw(8)? != INDEX_MAGIC {
            return Err(Error::corrupt("index file", "bad magic"));
        }
        if d.raw(4)? != [0, 0, 0, 0] {
            return Err(Error::corrupt(
                "index file",
                "unknown flags (encrypted index?)",
            ));
        }
        let max = data.len();
        let n = d.len(max / 32)?;
        let supersedes = (0..n).map(|_| d.id()).collect::<Result<Vec<_>>>()?;
        let np = d.len(max / 33)?;
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let pack = d.id()?;
            let nb = d.len(max / 36)?;
            let mut entries = Vec::with_capacity(nb);
            for _ in 0..nb {
                let kind = BlobKind::from_u8(d.u8()?)?;
                let compression = d.u8()?;
                let id = d.id()?;
                let offset = d.uvar()?;
                let stored_len = u32::try_from(d.uvar()?)
                    .map_err(|_| Error::corrupt("index file", "length too large"))?;
                let raw_len = u32::try_from(d.uvar()?)
                    .map_err(|_| Error::corrupt("index file", "length too large"))?;
                entries.push(PackEntry {
                    kind,
                    compression,
                    id,
                    offset,
                    stored_len,
                    raw_len,
                });
            }
            packs.push((pack, entries));
        }
        d.finish()?;
        Ok(IndexFile { supersedes, packs })
    }

    /// Reads and checks an index file (its name must be the BLAKE3 of its bytes).
    pub fn load(store: &dyn Store, id: &ObjectId) -> Result<Self> {
        let name = id.to_hex();
        let data = store.read(Kind::Index, &name)?;
        let what = || format!("index file {}", store.locate(Kind::Index, &name).display());
        if ObjectId::hash(&data) != *id {
            return Err(Error::corrupt(what(), "content does not match its name"));
        }
        Self::decode(&data).map_err(|e| match e {
            Error::Corrupt { detail, .. } => Error::corrupt(what(), detail),
            other => other,
        })
    }
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy)]
pub struct BlobLoc {
    pub pack: u32,
    pub entry: PackEntryCompact,
}

/// A [`PackEntry`] without its id (the id is the map key).
#[derive(Debug, Clone, Copy)]
pub struct PackEntryCompact {
    pub kind: BlobKind,
    pub compression: u8,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// All index files merged in memory.
#[derive(Default)]
pub struct Index {
    pub packs: Vec<ObjectId>,
    pack_slot: IdMap<u32>,
    pub blobs: IdMap<BlobLoc>,
    /// Ids of the index files loaded.
    pub files: Vec<ObjectId>,
}

impl Index {
    /// Adds the entries of one pack (first location of a blob wins).
    pub fn add_pack(&mut self, pack: ObjectId, entries: &[PackEntry]) {
        let slot = *self.pack_slot.entry(pack).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        for e in entries {
            self.blobs.entry(e.id).or_insert(BlobLoc {
                pack: slot,
                entry: PackEntryCompact {
                    kind: e.kind,
                    compression: e.compression,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                },
            });
        }
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn has_pack(&self, id: &ObjectId) -> bool {
        self.pack_slot.contains_key(id)
    }

    /// The pack id and full entry of a blob.
    pub fn lookup(&self, id: &ObjectId) -> Option<(ObjectId, PackEntry)> {
        let loc = self.blobs.get(id)?;
        let e = loc.entry;
        Some((
            self.packs[loc.pack as usize],
            PackEntry {
                kind: e.kind,
                compression: e.compression,
                id: *id,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PackEntry> {
        (
            any::<bool>(),
            0u8..2,
            any::<[u8; 32]>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(t, c, id, o, s, r)| PackEntry {
                kind: if t { BlobKind::Tree } else { BlobKind::Data },
                compression: c,
                id: ObjectId(id),
                offset: o,
                stored_len: s,
                raw_len: r,
            })
    }

    proptest! {
        #[test]
        fn index_round_trip(sup in proptest::collection::vec(any::<[u8;32]>(), 0..3),
                            packs in proptest::collection::vec((any::<[u8;32]>(), proptest::collection::vec(entry(), 0..5)), 0..5)) {
            let f = IndexFile { supersedes: sup.into_iter().map(ObjectId).collect(), packs: packs.into_iter().map(|(p, e)| (ObjectId(p), e)).collect() };
            let bytes = f.encode();
            prop_assert_eq!(IndexFile::decode(&bytes).unwrap(), f);
        }
    }
}
