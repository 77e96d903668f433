//! The catalog file that follows each archive volume (docs/tape-format.md, "Catalog files").

use super::pax::Kind;
use crate::{Result, TapeError};

/// The first line of a catalog file.
pub const CATALOG_MAGIC: &str = "BMS-TAPE-CATALOG 1";

/// One member of an archive volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    /// Byte offset of the member's first header in the archive file.
    pub offset: u64,
    /// Data size in bytes.
    pub size: u64,
    /// BLAKE3 of the data (hex; all zeros' hash for non-files).
    pub hash: String,
    /// The member's kind.
    pub kind: Kind,
    /// The member's path (raw bytes).
    pub path: Vec<u8>,
}

/// The catalog of one archive volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    /// The snapshot the archive holds.
    pub snapshot: String,
    /// The job (or source name) of the snapshot.
    pub job: String,
    /// The medium holding this volume.
    pub barcode: String,
    /// The media set.
    pub media_set: String,
    /// The volume number of this archive (1-based).
    pub volume: u32,
    /// Whether this is the archive's last volume.
    pub last: bool,
    /// The tape file number of the archive volume on this medium.
    pub archive_file: u64,
    /// The archive volume's length in bytes (whole blocks).
    pub archive_bytes: u64,
    /// The members, in archive order.
    pub entries: Vec<CatalogEntry>,
}

/// Escapes path bytes: `%XX` for `%`, bytes ≤ 0x20 and ≥ 0x7f.
pub fn escape(path: &[u8]) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path {
        if b <= 0x20 || b >= 0x7f || b == b'%' {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(char::from(b));
        }
    }
    s
}

/// Reverses [`escape`].
pub fn unescape(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| TapeError::Format(format!("bad escape in catalog path {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The length of one entry's line.
pub fn entry_line_len(e: &CatalogEntry) -> usize {
    entry_line(e).len()
}

fn entry_line(e: &CatalogEntry) -> String {
    format!(
        "F {} {} {} {} {}\n",
        e.offset,
        e.size,
        e.hash,
        e.kind.letter(),
        escape(&e.path)
    )
}

impl Catalog {
    /// The catalog text, ending with a BLAKE3 line over everything before it.
    pub fn encode_text(&self) -> String {
        let mut t = format!(
            "{CATALOG_MAGIC}\nsnapshot={}\njob={}\nbarcode={}\nmedia_set={}\nvolume={}\nlast={}\narchive_file={}\narchive_bytes={}\nfiles={}\n",
            self.snapshot,
            self.job,
            self.barcode,
            self.media_set,
            self.volume,
            u8::from(self.last),
            self.archive_file,
            self.archive_bytes,
            self.entries.len()
        );
        for e in &self.entries {
            t.push_str(&entry_line(e));
        }
        let sum = blake3::hash(t.as_bytes()).to_hex();
        t.push_str(&format!("END {sum}\n"));
        t
    }

    /// Parses catalog bytes (text then zero padding), checking its BLAKE3 line.
    pub fn decode(bytes: &[u8]) -> Result<Catalog> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = std::str::from_utf8(&bytes[..end])
            .map_err(|_| TapeError::Format("a catalog file that is not text".into()))?;
        if !text.starts_with(CATALOG_MAGIC) {
            return Err(TapeError::Format(format!(
                "the tape file does not start with `{CATALOG_MAGIC}`"
            )));
        }
        let body_end = text.rfind("END ").ok_or_else(|| {
            TapeError::Format("a catalog file without its END line (truncated?)".into())
        })?;
        let (body, tail) = text.split_at(body_end);
        let want = tail.trim_start_matches("END ").trim_end();
        if blake3::hash(body.as_bytes()).to_hex().as_str() != want {
            return Err(TapeError::Format(
                "a catalog file whose checksum does not match (damaged)".into(),
            ));
        }
        let mut c = Catalog {
            snapshot: String::new(),
            job: String::new(),
            barcode: String::new(),
            media_set: String::new(),
            volume: 0,
            last: false,
            archive_file: 0,
            archive_bytes: 0,
            entries: Vec::new(),
        };
        let bad = |l: &str| TapeError::Format(format!("a bad catalog line {l:?}"));
        for line in body.lines().skip(1) {
            if let Some(rest) = line.strip_prefix("F ") {
                let f: Vec<&str> = rest.splitn(5, ' ').collect();
                if f.len() != 5 {
                    return Err(bad(line));
                }
                c.entries.push(CatalogEntry {
                    offset: f[0].parse().map_err(|_| bad(line))?,
                    size: f[1].parse().map_err(|_| bad(line))?,
                    hash: f[2].to_string(),
                    kind: Kind::from_letter(f[3]).ok_or_else(|| bad(line))?,
                    path: unescape(f[4])?,
                });
            } else if let Some((k, v)) = line.split_once('=') {
                let n = || v.parse::<u64>().map_err(|_| bad(line));
                match k {
                    "snapshot" => c.snapshot = v.into(),
                    "job" => c.job = v.into(),
                    "barcode" => c.barcode = v.into(),
                    "media_set" => c.media_set = v.into(),
                    "volume" => c.volume = u32::try_from(n()?).map_err(|_| bad(line))?,
                    "last" => c.last = n()? != 0,
                    "archive_file" => c.archive_file = n()?,
                    "archive_bytes" => c.archive_bytes = n()?,
                    _ => {}
                }
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_round_trip_and_detect_damage() {
        let c = Catalog {
            snapshot: "s1".into(),
            job: "etc".into(),
            barcode: "A1".into(),
            media_set: "set".into(),
            volume: 2,
            last: true,
            archive_file: 3,
            archive_bytes: 1 << 20,
            entries: vec![CatalogEntry {
                offset: 1024,
                size: 5,
                hash: blake3::hash(b"hello").to_hex().to_string(),
                kind: Kind::File,
                path: b"a dir/\xffodd%name".to_vec(),
            }],
        };
        let mut bytes = c.encode_text().into_bytes();
        bytes.resize(4096, 0);
        assert_eq!(Catalog::decode(&bytes).unwrap(), c);
        let i = bytes.iter().position(|&b| b == b'e').unwrap();
        bytes[i] = b'x';
        assert!(Catalog::decode(&bytes).is_err());
        assert_eq!(unescape(&escape(b"\x00a b%\n")).unwrap(), b"\x00a b%\n");
    }
}
