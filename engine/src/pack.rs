//! Pack files: blobs (compressed chunks and trees) written once, named by the BLAKE3 of the
//! whole file, never modified. Layout in docs/repository-format.md §"Pack files".

use crate::codec::{Decoder, Encoder};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::store::{Kind, ObjectReader, ObjectWriter, Store};

pub const PACK_MAGIC: &[u8; 8] = b"BMSPACK1";
pub const PACK_END_MAGIC: &[u8; 8] = b"BMSPKEND";
/// Trailer: table length u32 LE, flags u32 LE, end magic.
pub const TRAILER_LEN: u64 = 16;
/// Blobs never exceed this raw size (trees included), so lengths fit a u32.
pub const MAX_BLOB: usize = 1 << 31;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    Data = 0,
    Tree = 1,
}

impl BlobKind {
    pub fn from_u8(v: u8) -> Result<Self> {
        match v {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            _ => Err(Error::corrupt(
                "blob entry",
                format!("unknown blob kind {v}"),
            )),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Data => "chunk",
            BlobKind::Tree => "tree",
        }
    }
}

/// Per-blob compression flag.
pub const COMP_NONE: u8 = 0;
pub const COMP_ZSTD: u8 = 1;

/// One blob inside a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub compression: u8,
    pub id: ObjectId,
    pub offset: u64,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// Compresses `raw` with zstd; keeps it raw when compression does not help.
pub fn compress(c: &mut zstd::bulk::Compressor<'_>, raw: &[u8]) -> (u8, Vec<u8>) {
    match c.compress(raw) {
        Ok(z) if z.len() < raw.len() => (COMP_ZSTD, z),
        _ => (COMP_NONE, raw.to_vec()),
    }
}

/// Decompresses stored blobs and checks them against their ids, reusing one zstd context
/// (a fresh context per blob costs an allocation of its window buffer each time).
pub struct BlobDecoder {
    dctx: Option<zstd::bulk::Decompressor<'static>>,
}

impl Default for BlobDecoder {
    fn default() -> Self {
        BlobDecoder {
            dctx: zstd::bulk::Decompressor::new().ok(),
        }
    }
}

impl BlobDecoder {
    /// Decodes `stored` into `out` (replacing its content) and checks it against its id.
    pub fn decode_into(
        &mut self,
        stored: &[u8],
        e: &PackEntry,
        where_: &dyn Fn() -> String,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let what = || format!("{} {} in {}", e.kind.name(), e.id, where_());
        out.clear();
        match e.compression {
            COMP_NONE => out.extend_from_slice(stored),
            COMP_ZSTD => self
                .decompress(stored, e.raw_len as usize, out)
                .map_err(|err| Error::corrupt(what(), format!("cannot decompress: {err}")))?,
            c => return Err(Error::corrupt(what(), format!("unknown compression {c}"))),
        }
        if out.len() != e.raw_len as usize || ObjectId::hash(out) != e.id {
            return Err(Error::corrupt(
                what(),
                "content does not match its id (bit rot?)",
            ));
        }
        Ok(())
    }

    /// Checks a stored blob without keeping its content; `scratch` is reused between calls.
    pub fn check(
        &mut self,
        stored: &[u8],
        e: &PackEntry,
        where_: &dyn Fn() -> String,
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if e.compression == COMP_NONE {
            if stored.len() != e.raw_len as usize || ObjectId::hash(stored) != e.id {
                return Err(Error::corrupt(
                    format!("{} {} in {}", e.kind.name(), e.id, where_()),
                    "content does not match its id (bit rot?)",
                ));
            }
            return Ok(());
        }
        self.decode_into(stored, e, where_, scratch)
    }

    fn decompress(
        &mut self,
        stored: &[u8],
        raw_len: usize,
        out: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        match &mut self.dctx {
            Some(d) => {
                out.reserve(raw_len);
                d.decompress_to_buffer(stored, out).map(|_| ())
            }
            None => {
                *out = zstd::bulk::decompress(stored, raw_len)?;
                Ok(())
            }
        }
    }
}

/// Decodes a stored blob and checks it against its id.
pub fn decode_blob(stored: &[u8], e: &PackEntry, where_: &dyn Fn() -> String) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    BlobDecoder::default().decode_into(stored, e, where_, &mut out)?;
    Ok(out)
}

/// Reads and decodes one blob from an open pack.
pub fn read_blob(
    pack: &dyn ObjectReader,
    e: &PackEntry,
    decoder: &mut BlobDecoder,
) -> Result<Vec<u8>> {
    let mut stored = vec![0u8; e.stored_len as usize];
    pack.read_exact_at(&mut stored, e.offset)?;
    let mut out = Vec::new();
    decoder.decode_into(
        &stored,
        e,
        &|| pack.location().display().to_string(),
        &mut out,
    )?;
    Ok(out)
}

/// Encodes the pack table (entries in file order) followed by its BLAKE3 checksum.
pub(crate) fn encode_table(entries: &[PackEntry]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uvar(entries.len() as u64);
    for b in entries {
        e.u8(b.kind as u8);
        e.u8(b.compression);
        e.id(&b.id);
        e.uvar(u64::from(b.raw_len));
        e.uvar(u64::from(b.stored_len));
    }
    let sum = blake3::hash(&e.buf);
    e.raw(sum.as_bytes());
    e.buf
}

/// Decodes a pack table (with checksum); offsets are reconstructed from the lengths.
pub fn decode_table(table: &[u8], pack_len: u64) -> Result<Vec<PackEntry>> {
    if table.len() < 32 {
        return Err(Error::corrupt("pack table", "too short"));
    }
    let (body, sum) = table.split_at(table.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(Error::corrupt("pack table", "checksum mismatch"));
    }
    let mut d = Decoder::new(body, "pack table");
    let n = d.len(body.len())?;
    let mut out = Vec::with_capacity(n);
    let mut offset = PACK_MAGIC.len() as u64;
    for _ in 0..n {
        let kind = BlobKind::from_u8(d.u8()?)?;
        let compression = d.u8()?;
        let id = d.id()?;
        let raw_len = u32::try_from(d.uvar()?)
            .map_err(|_| Error::corrupt("pack table", "raw length too large"))?;
        let stored_len = u32::try_from(d.uvar()?)
            .map_err(|_| Error::corrupt("pack table", "stored length too large"))?;
        out.push(PackEntry {
            kind,
            compression,
            id,
            offset,
            stored_len,
            raw_len,
        });
        offset += u64::from(stored_len);
    }
    d.finish()?;
    let table_start = pack_len.saturating_sub(TRAILER_LEN + table.len() as u64);
    if offset != table_start {
        return Err(Error::corrupt(
            "pack table",
            format!("blobs end at {offset} but the table starts at {table_start}"),
        ));
    }
    Ok(out)
}

/// Reads the table of pack `id` without reading its blobs.
pub fn read_table(store: &dyn Store, id: &ObjectId) -> Result<Vec<PackEntry>> {
    let f = store.open(Kind::Packs, &id.to_hex())?;
    read_table_from(&*f)
}

/// Reads the table of an open pack without reading its blobs.
pub fn read_table_from(f: &dyn ObjectReader) -> Result<Vec<PackEntry>> {
    let path = f.location();
    let len = f.size()?;
    let bad = |d: &str| Error::corrupt(format!("pack {}", path.display()), d.to_string());
    if len < PACK_MAGIC.len() as u64 + TRAILER_LEN + 32 {
        return Err(bad("file too short"));
    }
    let mut magic = [0u8; 8];
    f.read_exact_at(&mut magic, 0)?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    f.read_exact_at(&mut trailer, len - TRAILER_LEN)?;
    if &magic != PACK_MAGIC || &trailer[8..] != PACK_END_MAGIC {
        return Err(bad("bad magic"));
    }
    let mut n4 = [0u8; 4];
    n4.copy_from_slice(&trailer[..4]);
    let table_len = u64::from(u32::from_le_bytes(n4));
    n4.copy_from_slice(&trailer[4..8]);
    if u32::from_le_bytes(n4) != 0 {
        return Err(bad("unknown pack flags (encrypted pack?)"));
    }
    if table_len + TRAILER_LEN + 8 > len {
        return Err(bad("table length out of range"));
    }
    let mut table = vec![0u8; table_len as usize];
    f.read_exact_at(&mut table, len - TRAILER_LEN - table_len)?;
    decode_table(&table, len).map_err(|e| match e {
        Error::Corrupt { detail, .. } => bad(&detail),
        other => other,
    })
}

/// Accumulates blobs into a new object of the store; [`PackWriter::finish`] makes it a
/// durable pack named by its hash.
pub struct PackWriter {
    out: Option<Box<dyn ObjectWriter>>,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
    offset: u64,
}

impl PackWriter {
    pub fn new(store: &dyn Store) -> Result<Self> {
        let mut w = PackWriter {
            out: Some(store.create(Kind::Packs)?),
            hasher: blake3::Hasher::new(),
            entries: Vec::new(),
            offset: 0,
        };
        w.write(PACK_MAGIC)?;
        Ok(w)
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.offset += data.len() as u64;
        match self.out.as_mut() {
            Some(o) => o.write_all(data),
            None => Err(Error::Internal("pack written after it was finished".into())),
        }
    }

    /// Appends a stored blob.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: ObjectId,
        compression: u8,
        raw_len: u32,
        stored: &[u8],
    ) -> Result<()> {
        let entry = PackEntry {
            kind,
            compression,
            id,
            offset: self.offset,
            stored_len: stored.len() as u32,
            raw_len,
        };
        self.write(stored)?;
        self.entries.push(entry);
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.offset
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the table and trailer and commits the pack under its id (durably: see
    /// [`Store`]).
    pub fn finish(mut self) -> Result<(ObjectId, Vec<PackEntry>)> {
        let table = encode_table(&self.entries);
        let mut tail = table;
        let table_len = tail.len() as u32;
        tail.extend_from_slice(&table_len.to_le_bytes());
        tail.extend_from_slice(&0u32.to_le_bytes());
        tail.extend_from_slice(PACK_END_MAGIC);
        if let Err(e) = self.write(&tail) {
            self.abandon();
            return Err(e);
        }
        let id = ObjectId(*self.hasher.finalize().as_bytes());
        match self.out.take() {
            Some(o) => o.commit(&id.to_hex())?,
            None => return Err(Error::Internal("pack finished twice".into())),
        }
        Ok((id, std::mem::take(&mut self.entries)))
    }

    /// Removes the temp file of an unfinished pack.
    pub fn abandon(mut self) {
        if let Some(o) = self.out.take() {
            o.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn setup() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("tmp")).unwrap();
        for i in 0..256 {
            std::fs::create_dir_all(d.path().join("packs").join(format!("{i:02x}"))).unwrap();
        }
        d
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..5000), 1..8)) {
            let d = setup();
            let store = crate::store::LocalStore::new(d.path());
            let mut w = PackWriter::new(&store).unwrap();
            let mut z = zstd::bulk::Compressor::new(3).unwrap();
            for b in &blobs {
                let (c, stored) = compress(&mut z, b);
                w.add(BlobKind::Data, ObjectId::hash(b), c, b.len() as u32, &stored).unwrap();
            }
            let (id, entries) = w.finish().unwrap();
            let path = d.path().join("packs").join(&id.to_hex()[..2]).join(id.to_hex());
            let bytes = std::fs::read(&path).unwrap();
            prop_assert_eq!(ObjectId::hash(&bytes), id);
            let table = read_table(&store, &id).unwrap();
            prop_assert_eq!(&table, &entries);
            let f = store.open(Kind::Packs, &id.to_hex()).unwrap();
            for (e, b) in table.iter().zip(&blobs) {
                prop_assert_eq!(&read_blob(&*f, e, &mut BlobDecoder::default()).unwrap(), b);
            }
        }
    }
}
