//! Blocks of packs read lately, shared by all readers of a store (docs/s3.md "Reads"). A
//! restore's workers each read the blobs of their files, which lie in the packs in the order the
//! backup wrote them, not in the order they are restored: with a cache of its own, each reader
//! fetched the same ranges again and again. Packs are read in aligned blocks of [`BLOCK`] bytes,
//! and the last [`BLOCKS`] blocks stay cached (64 MiB), so each block is fetched about once.
//! Only packs are cached: their names are their content's hash, so a cached block never goes
//! stale.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::store::lock;

/// The size of a block, and so the least a ranged GET of a pack fetches.
pub(crate) const BLOCK: u64 = 4 << 20;
/// How many blocks stay cached.
const BLOCKS: usize = 16;

/// One cached block: object key, block number, bytes.
type Entry = (Arc<str>, u64, Arc<Vec<u8>>);

/// The cache of one store, least recently used first out.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    lru: Mutex<VecDeque<Entry>>,
}

impl Blocks {
    /// The cached block `n` of `key`, now the most recently used.
    pub(crate) fn get(&self, key: &str, n: u64) -> Option<Arc<Vec<u8>>> {
        let mut lru = lock(&self.lru);
        let i = lru.iter().position(|(k, b, _)| *b == n && &**k == key)?;
        let e = lru.remove(i)?;
        let data = e.2.clone();
        lru.push_back(e);
        Some(data)
    }

    pub(crate) fn put(&self, key: &Arc<str>, n: u64, data: Arc<Vec<u8>>) {
        let mut lru = lock(&self.lru);
        if lru.iter().any(|(k, b, _)| *b == n && k == key) {
            return;
        }
        while lru.len() >= BLOCKS {
            lru.pop_front();
        }
        lru.push_back((key.clone(), n, data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_most_recently_used_blocks() {
        let c = Blocks::default();
        let k: Arc<str> = "packs/ab/ab".into();
        for n in 0..BLOCKS as u64 {
            c.put(&k, n, Arc::new(vec![n as u8]));
        }
        assert_eq!(
            c.get(&k, 0).unwrap()[0],
            0,
            "block 0 is now the most recent"
        );
        c.put(&k, 99, Arc::new(vec![99]));
        assert!(c.get(&k, 1).is_none(), "the least recently used one went");
        assert!(c.get(&k, 0).is_some());
        assert!(c.get("other", 0).is_none(), "blocks are per object");
    }
}
