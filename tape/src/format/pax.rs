//! POSIX pax tar headers (docs/tape-format.md, "Archive files"): each member is a pax extended
//! header (`x`) carrying the exact path, size, times and owners, then a ustar header, then the
//! data padded to 512 bytes. GNU tar reads this without bms.

use crate::{Result, TapeError};

/// The tar record size.
pub const RECORD: usize = 512;

/// The kind of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::Dir => b'5',
            Kind::Symlink => b'2',
        }
    }

    /// The one-letter name used in the catalog: `f`, `d` or `l`.
    pub fn letter(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
        }
    }

    /// The kind for a catalog letter.
    pub fn from_letter(c: &str) -> Option<Kind> {
        match c {
            "f" => Some(Kind::File),
            "d" => Some(Kind::Dir),
            "l" => Some(Kind::Symlink),
            _ => None,
        }
    }
}

/// A member's metadata as stored in its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Relative path, `/`-separated, without a leading `/` (raw bytes).
    pub path: Vec<u8>,
    /// The kind.
    pub kind: Kind,
    /// Permission bits (07777).
    pub mode: u32,
    /// Owner and group ids.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner and group names (may be empty).
    pub uname: String,
    /// Group name.
    pub gname: String,
    /// Modification time: seconds and nanoseconds since the epoch.
    pub mtime: (i64, u32),
    /// Data size (0 for directories and symlinks).
    pub size: u64,
    /// A symlink's target.
    pub link: Vec<u8>,
}

fn record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // "LEN key=value\n" where LEN counts its own digits.
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    let b = s.as_bytes();
    let start = b.len().saturating_sub(width);
    field[..width].copy_from_slice(&b[start..]);
    field[width] = 0;
}

fn put(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn ustar(name: &[u8], kind_flag: u8, m: &Meta, size: u64) -> [u8; RECORD] {
    let mut h = [0u8; RECORD];
    put(&mut h[0..100], name);
    octal(&mut h[100..108], u64::from(m.mode & 0o7777));
    octal(&mut h[108..116], u64::from(m.uid).min(0o7777777));
    octal(&mut h[116..124], u64::from(m.gid).min(0o7777777));
    octal(&mut h[124..136], size.min(0o77777777777));
    octal(
        &mut h[136..148],
        u64::try_from(m.mtime.0).unwrap_or(0).min(0o77777777777),
    );
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind_flag;
    if m.kind == Kind::Symlink {
        put(&mut h[157..257], &m.link);
    }
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put(&mut h[265..297], m.uname.as_bytes());
    put(&mut h[297..329], m.gname.as_bytes());
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// Pads `len` up to a multiple of 512.
pub fn padded(len: u64) -> u64 {
    len.div_ceil(RECORD as u64) * RECORD as u64
}

/// The headers of one member: the pax extended header with its records, then the ustar header.
pub fn headers(m: &Meta) -> Vec<u8> {
    let mut recs = Vec::new();
    let mut path = m.path.clone();
    if m.kind == Kind::Dir && !path.ends_with(b"/") {
        path.push(b'/');
    }
    if std::str::from_utf8(&path).is_err() || std::str::from_utf8(&m.link).is_err() {
        record(&mut recs, "hdrcharset", b"BINARY");
    }
    record(&mut recs, "path", &path);
    record(&mut recs, "size", m.size.to_string().as_bytes());
    record(
        &mut recs,
        "mtime",
        format!("{}.{:09}", m.mtime.0, m.mtime.1).as_bytes(),
    );
    record(&mut recs, "uid", m.uid.to_string().as_bytes());
    record(&mut recs, "gid", m.gid.to_string().as_bytes());
    if !m.uname.is_empty() {
        record(&mut recs, "uname", m.uname.as_bytes());
    }
    if !m.gname.is_empty() {
        record(&mut recs, "gname", m.gname.as_bytes());
    }
    if m.kind == Kind::Symlink {
        record(&mut recs, "linkpath", &m.link);
    }
    // The extended header's own ustar name, as POSIX suggests: "PaxHeaders/<basename>".
    let base = path
        .rsplit(|&b| b == b'/')
        .find(|s| !s.is_empty())
        .unwrap_or(b"");
    let mut xname = b"PaxHeaders/".to_vec();
    xname.extend_from_slice(&base[..base.len().min(88)]);
    let xmeta = Meta {
        kind: Kind::File,
        link: Vec::new(),
        mode: 0o644,
        ..m.clone()
    };
    let mut out = Vec::with_capacity(3 * RECORD + recs.len());
    out.extend_from_slice(&ustar(&xname, b'x', &xmeta, recs.len() as u64));
    out.extend_from_slice(&recs);
    out.resize(padded(out.len() as u64) as usize, 0);
    let name = &path[..path.len().min(100)];
    out.extend_from_slice(&ustar(name, m.kind.flag(), m, m.size));
    out
}

/// The size in bytes of a whole member in the archive (headers plus padded data).
pub fn member_len(m: &Meta) -> u64 {
    headers(m).len() as u64 + padded(m.size)
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0)
        .filter(|&b| b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

fn cstr(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|&b| b != 0).collect()
}

/// One parsed ustar header.
#[derive(Debug, Clone)]
pub struct Header {
    /// The type flag.
    pub flag: u8,
    /// The data size.
    pub size: u64,
    /// The metadata (pax records applied by the caller).
    pub meta: Meta,
}

/// Whether a record is all zeros (the end-of-archive marker).
pub fn is_zero(rec: &[u8]) -> bool {
    rec.iter().all(|&b| b == 0)
}

/// Parses one 512-byte ustar header, checking its checksum.
pub fn parse_header(h: &[u8]) -> Result<Header> {
    if h.len() < RECORD {
        return Err(TapeError::Format(
            "a tar header shorter than 512 bytes".into(),
        ));
    }
    let want = parse_octal(&h[148..156])
        .ok_or_else(|| TapeError::Format("unreadable tar checksum".into()))?;
    let sum: u64 = h[..RECORD]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    if sum != want {
        return Err(TapeError::Format(format!(
            "tar header checksum {want} does not match {sum}"
        )));
    }
    let num = |r: std::ops::Range<usize>| {
        parse_octal(&h[r]).ok_or_else(|| TapeError::Format("unreadable tar number".into()))
    };
    let flag = h[156];
    let kind = match flag {
        b'5' => Kind::Dir,
        b'2' => Kind::Symlink,
        _ => Kind::File,
    };
    let mut path = cstr(&h[0..100]);
    let prefix = cstr(&h[345..500]);
    if !prefix.is_empty() {
        let mut p = prefix;
        p.push(b'/');
        p.extend_from_slice(&path);
        path = p;
    }
    let size = num(124..136)?;
    Ok(Header {
        flag,
        size,
        meta: Meta {
            path,
            kind,
            mode: num(100..108)? as u32,
            uid: num(108..116)? as u32,
            gid: num(116..124)? as u32,
            uname: String::from_utf8_lossy(&cstr(&h[265..297])).into_owned(),
            gname: String::from_utf8_lossy(&cstr(&h[297..329])).into_owned(),
            mtime: (num(136..148)? as i64, 0),
            size,
            link: cstr(&h[157..257]),
        },
    })
}

/// Applies pax extended records to `meta`.
pub fn apply_pax(meta: &mut Meta, mut recs: &[u8]) -> Result<()> {
    let bad = || TapeError::Format("a malformed pax extended header record".into());
    while !recs.is_empty() && recs[0] != 0 {
        let sp = recs.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&recs[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > recs.len() {
            return Err(bad());
        }
        let kv = &recs[sp + 1..len - 1];
        let eq = kv.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (k, v) = (&kv[..eq], &kv[eq + 1..]);
        let text = || std::str::from_utf8(v).map_err(|_| bad());
        match k {
            b"path" => meta.path = v.to_vec(),
            b"linkpath" => meta.link = v.to_vec(),
            b"size" => meta.size = text()?.parse().map_err(|_| bad())?,
            b"uid" => meta.uid = text()?.parse().map_err(|_| bad())?,
            b"gid" => meta.gid = text()?.parse().map_err(|_| bad())?,
            b"uname" => meta.uname = text()?.to_string(),
            b"gname" => meta.gname = text()?.to_string(),
            b"mtime" => {
                let t = text()?;
                let (s, f) = t.split_once('.').unwrap_or((t, "0"));
                let mut frac = f.to_string();
                frac.truncate(9);
                while frac.len() < 9 {
                    frac.push('0');
                }
                meta.mtime = (
                    s.parse().map_err(|_| bad())?,
                    frac.parse().map_err(|_| bad())?,
                );
            }
            _ => {}
        }
        recs = &recs[len..];
    }
    if meta.kind == Kind::Dir {
        while meta.path.len() > 1 && meta.path.ends_with(b"/") {
            meta.path.pop();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(path: &str, size: u64) -> Meta {
        Meta {
            path: path.as_bytes().to_vec(),
            kind: Kind::File,
            mode: 0o640,
            uid: 1000,
            gid: 100,
            uname: "alice".into(),
            gname: "users".into(),
            mtime: (1_700_000_000, 123_456_789),
            size,
            link: Vec::new(),
        }
    }

    #[test]
    fn pax_records_count_their_own_length() {
        let mut v = Vec::new();
        record(&mut v, "path", b"abcdefg"); // 4+7+3 = 14 body, +2 digits = 16
        assert_eq!(v, b"16 path=abcdefg\n");
        let mut v = Vec::new();
        record(&mut v, "path", &[b'a'; 94]); // 4+94+3 = 101 body, +3 digits
        assert!(v.starts_with(b"104 path="));
        assert_eq!(v.len(), 104);
    }

    #[test]
    fn headers_round_trip_with_a_long_path() {
        let long = format!("{}/file.txt", "d".repeat(150));
        let m = meta(&long, 12345);
        let h = headers(&m);
        assert_eq!(h.len() % RECORD, 0);
        let x = parse_header(&h[..RECORD]).unwrap();
        assert_eq!(x.flag, b'x');
        let recs = &h[RECORD..RECORD + x.size as usize];
        let u = parse_header(&h[h.len() - RECORD..]).unwrap();
        let mut got = u.meta.clone();
        apply_pax(&mut got, recs).unwrap();
        assert_eq!(got, m);
        assert_eq!(member_len(&m), h.len() as u64 + padded(12345));
    }

    #[test]
    fn a_corrupt_header_is_refused() {
        let mut h = headers(&meta("a", 1));
        h[5] ^= 1;
        assert!(parse_header(&h[..RECORD]).is_err());
        assert!(apply_pax(&mut meta("a", 1), b"99 path=x\n").is_err());
    }
}
