//! 32-byte object ids (BLAKE3 digests) and their hex form.

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use crate::error::{Error, Result};

/// The id of a chunk, tree, pack, index file or snapshot: a BLAKE3-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    /// BLAKE3 of `data`.
    pub fn hash(data: &[u8]) -> Self {
        ObjectId(*blake3::hash(data).as_bytes())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(Error::InvalidArgument(format!(
                "{s:?} is not a 64-character hex id"
            )));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]);
            let lo = hex_val(pair[1]);
            match (hi, lo) {
                (Some(h), Some(l)) => out[i] = (h << 4) | l,
                _ => return Err(Error::InvalidArgument(format!("{s:?} is not a hex id"))),
            }
        }
        Ok(ObjectId(out))
    }

    /// The first 8 hex characters, for display.
    pub fn short(&self) -> String {
        let mut h = self.to_hex();
        h.truncate(8);
        h
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A hasher for maps keyed by [`ObjectId`]: the ids are already uniformly random, so the
/// first 8 bytes are a perfect hash.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // ObjectId hashes its array as one write of 32 bytes (plus possibly a length prefix).
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(buf);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = self.0.rotate_left(5) ^ n as u64;
    }
}

/// [`BuildHasher`] for [`IdHasher`].
#[derive(Default, Clone, Copy)]
pub struct IdBuildHasher;

impl BuildHasher for IdBuildHasher {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// A `HashMap` keyed by object ids.
pub type IdMap<V> = std::collections::HashMap<ObjectId, V, IdBuildHasher>;
/// A `HashSet` of object ids.
pub type IdSet = std::collections::HashSet<ObjectId, IdBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ObjectId::hash(b"hello");
        assert_eq!(ObjectId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(ObjectId::from_hex("zz").is_err());
        // Ids are lower-case hex only (docs/repository-format.md): an upper-case file name in
        // the repository is not an object of it.
        assert!(ObjectId::from_hex(&id.to_hex().to_ascii_uppercase()).is_err());
        assert_eq!(id.short().len(), 8);
    }
}
