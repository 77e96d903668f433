//! Reading tapes: the label, restoring or verifying an archive volume, and scanning a whole
//! medium to rebuild its catalog (docs/tape-format.md).

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::blocks::{BlockReader, BlockWriter};
use super::catalog::{Catalog, CATALOG_MAGIC};
use super::label::Label;
use super::pax::{self, Kind, Meta, RECORD};
use crate::drive::TapeDrive;
use crate::{Result, TapeError};

/// The largest block bms reads when it does not know the block size yet.
const MAX_BLOCK: usize = 4 << 20;

/// Writes `label` as tape file 0, erasing the whole medium.
pub fn label_medium(drive: &mut dyn TapeDrive, label: &Label) -> Result<()> {
    let block = label.encode()?;
    drive.rewind()?;
    drive.set_block_size(label.block_size)?;
    let mut w = BlockWriter::new(label.block_size);
    w.write(drive, &block)?;
    w.finish(drive)?;
    drive.write_filemarks(1)
}

/// Reads the label in tape file 0 and leaves the drive set to its block size, positioned at the
/// start of tape file 1.
pub fn read_label(drive: &mut dyn TapeDrive) -> Result<Label> {
    drive.rewind()?;
    drive.set_block_size(0)?;
    let mut buf = vec![0u8; MAX_BLOCK];
    let n = match drive.read_block(&mut buf) {
        Ok(n) => n,
        Err(TapeError::EndOfData { medium }) => {
            return Err(TapeError::Format(format!(
                "cartridge {medium} is blank: label it first (docs/tape.md, \"Labelling media\")"
            )))
        }
        Err(e) => return Err(e),
    };
    let label = Label::decode(&buf[..n])?;
    drive.set_block_size(label.block_size)?;
    // Past the label's filemark.
    drive.rewind()?;
    drive.forward_files(1)?;
    Ok(label)
}

/// What reading an archive volume found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadReport {
    /// Members restored (or checked).
    pub members: u64,
    /// Data bytes restored (or checked).
    pub bytes: u64,
    /// Bytes read from the drive.
    pub tape_bytes: u64,
    /// Paths whose data did not match the catalog's hash.
    pub mismatched: Vec<String>,
    /// Files the catalog lists that the archive volume does not hold (verify only).
    pub missing: Vec<String>,
}

/// Selects archive members by their path bytes.
pub type PathFilter = dyn Fn(&[u8]) -> bool;

/// What to do with the members of an archive volume.
pub enum ReadMode<'a> {
    /// Restore into this directory the members the filter selects (None: all).
    Restore {
        /// The target directory.
        dest: &'a Path,
        /// Selects members by path.
        filter: Option<&'a PathFilter>,
    },
    /// Read every member and check its hash against the catalog.
    Verify,
}

fn safe_join(dest: &Path, rel: &[u8]) -> Result<PathBuf> {
    let p = Path::new(std::ffi::OsStr::from_bytes(rel));
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(TapeError::Format(format!(
            "member path {:?} leaves the restore directory: refusing it",
            String::from_utf8_lossy(rel)
        )));
    }
    Ok(dest.join(p))
}

fn read_exact(r: &mut BlockReader<'_>, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = r
            .read(&mut buf[got..])
            .map_err(|e| TapeError::io("reading the archive", e))?;
        if n == 0 {
            return if got == 0 {
                Ok(false)
            } else {
                Err(TapeError::Format("the archive ends inside a record".into()))
            };
        }
        got += n;
    }
    Ok(true)
}

fn set_meta(path: &Path, m: &Meta) {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let _ = nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        path,
        Some(nix::unistd::Uid::from_raw(m.uid)),
        Some(nix::unistd::Gid::from_raw(m.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    if m.kind != Kind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(m.mode));
    }
    let t = TimeSpec::new(m.mtime.0, i64::from(m.mtime.1));
    let _ = utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        UtimensatFlags::NoFollowSymlink,
    );
}

/// Reads the archive volume `catalog` describes on the loaded medium (positioning with its tape
/// file number), restoring or verifying members; checks every restored file against the catalog.
pub fn read_archive(
    drive: &mut dyn TapeDrive,
    catalog: &Catalog,
    block_size: u32,
    mode: ReadMode<'_>,
) -> Result<ReadReport> {
    drive.rewind()?;
    drive.forward_files(
        u32::try_from(catalog.archive_file)
            .map_err(|_| TapeError::Format("bad archive file number".into()))?,
    )?;
    drive.set_block_size(block_size)?;
    // A path restore starts at the first member it selects (the catalog's offset: spacing over
    // the blocks before it) and stops after the last one, reading only the blocks that hold them.
    let (start, last) = match &mode {
        ReadMode::Restore {
            filter: Some(f), ..
        } => {
            let picked = || {
                catalog
                    .entries
                    .iter()
                    .filter(|e| f(&e.path))
                    .map(|e| e.offset)
            };
            match (picked().min(), picked().max()) {
                (Some(a), Some(b)) => (a, Some(b)),
                _ => return Ok(ReadReport::default()),
            }
        }
        _ => (0, None),
    };
    let bs = u64::from(block_size).max(1);
    let (skip_blocks, skip_bytes) = if block_size == 0 {
        (0, start)
    } else {
        (start / bs, start % bs)
    };
    if skip_blocks > 0 {
        drive.forward_blocks(skip_blocks, block_size)?;
    }
    let hashes: std::collections::HashMap<&[u8], &str> = catalog
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), e.hash.as_str()))
        .collect();
    let mut report = ReadReport::default();
    let mut dirs = Vec::new();
    let mut r = BlockReader::new(drive, block_size);
    if skip_bytes > 0 {
        let mut skip = vec![0u8; skip_bytes as usize];
        if !read_exact(&mut r, &mut skip)? {
            return Err(TapeError::Format(
                "the archive ends before the member the catalog names".into(),
            ));
        }
    }
    // The offset in the archive file of the next byte read.
    let mut at = start;
    let mut early = false;
    let mut rec = [0u8; RECORD];
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Option<Vec<u8>> = None;
    let verifying = matches!(mode, ReadMode::Verify);
    let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    loop {
        if pending.is_none() && last.is_some_and(|l| at > l) {
            early = true;
            break;
        }
        if !read_exact(&mut r, &mut rec)? || pax::is_zero(&rec) {
            break;
        }
        at += RECORD as u64;
        let h = pax::parse_header(&rec)?;
        let padded = pax::padded(h.size) as usize;
        if h.flag == b'x' {
            let mut recs = vec![0u8; padded];
            if !read_exact(&mut r, &mut recs)? {
                return Err(TapeError::Format(
                    "the archive ends inside a pax header".into(),
                ));
            }
            at += padded as u64;
            recs.truncate(h.size as usize);
            pending = Some(recs);
            continue;
        }
        let mut meta = h.meta;
        if let Some(recs) = pending.take() {
            pax::apply_pax(&mut meta, &recs)?;
        }
        let selected = match &mode {
            ReadMode::Restore {
                filter: Some(f), ..
            } => f(&meta.path),
            _ => true,
        };
        let target = match &mode {
            ReadMode::Restore { dest, .. } if selected => Some(safe_join(dest, &meta.path)?),
            _ => None,
        };
        let mut out = match (&target, meta.kind) {
            (Some(t), Kind::File) => {
                if let Some(parent) = t.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| TapeError::io(format!("creating {}", parent.display()), e))?;
                }
                let _ = fs::remove_file(t);
                Some(
                    fs::File::create(t)
                        .map_err(|e| TapeError::io(format!("creating {}", t.display()), e))?,
                )
            }
            _ => None,
        };
        let mut hasher = blake3::Hasher::new();
        let mut left = meta.size;
        while left > 0 {
            let n = (left as usize).min(buf.len());
            if !read_exact(&mut r, &mut buf[..n])? {
                return Err(TapeError::Format(
                    "the archive ends inside a file's data".into(),
                ));
            }
            if selected {
                hasher.update(&buf[..n]);
            }
            if let Some(f) = out.as_mut() {
                use std::io::Write;
                f.write_all(&buf[..n])
                    .map_err(|e| TapeError::io("writing a restored file", e))?;
            }
            left -= n as u64;
        }
        let pad = padded - meta.size as usize;
        if pad > 0 && !read_exact(&mut r, &mut buf[..pad])? {
            return Err(TapeError::Format("the archive ends inside padding".into()));
        }
        at += meta.size + pad as u64;
        if !selected {
            continue;
        }
        if meta.kind == Kind::File {
            if verifying {
                seen.insert(meta.path.clone());
            }
            let got = hasher.finalize().to_hex();
            if hashes
                .get(meta.path.as_slice())
                .is_some_and(|want| *want != got.as_str())
            {
                report
                    .mismatched
                    .push(String::from_utf8_lossy(&meta.path).into_owned());
            }
            if let Some(f) = out {
                f.sync_all()
                    .map_err(|e| TapeError::io("flushing a restored file", e))?;
            }
        }
        if let Some(t) = &target {
            match meta.kind {
                Kind::Dir => {
                    fs::create_dir_all(t)
                        .map_err(|e| TapeError::io(format!("creating {}", t.display()), e))?;
                    dirs.push((t.clone(), meta.clone()));
                }
                Kind::Symlink => {
                    if let Some(parent) = t.parent() {
                        fs::create_dir_all(parent).map_err(|e| {
                            TapeError::io(format!("creating {}", parent.display()), e)
                        })?;
                    }
                    let _ = fs::remove_file(t);
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&meta.link), t)
                        .map_err(|e| {
                            TapeError::io(format!("creating symlink {}", t.display()), e)
                        })?;
                    set_meta(t, &meta);
                }
                Kind::File => set_meta(t, &meta),
            }
        }
        report.members += 1;
        report.bytes += meta.size;
    }
    // Directory times last, deepest first, so restoring their contents does not change them.
    for (t, m) in dirs.iter().rev() {
        set_meta(t, m);
    }
    if !early {
        r.skip_rest()?;
    }
    report.tape_bytes = r.bytes_read;
    if verifying {
        report.missing = catalog
            .entries
            .iter()
            .filter(|e| e.kind == Kind::File && !seen.contains(&e.path))
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .collect();
    }
    Ok(report)
}

/// Reads a whole medium: its label and the catalog of every archive volume on it (rebuilding
/// the catalog from the tape alone). Archive files are skipped with filemark spacing.
pub fn scan(drive: &mut dyn TapeDrive) -> Result<(Label, Vec<Catalog>)> {
    let label = read_label(drive)?;
    let mut catalogs = Vec::new();
    let mut buf = vec![0u8; label.block_size as usize];
    loop {
        let n = match drive.read_block(&mut buf) {
            Ok(0) | Err(TapeError::EndOfData { .. }) => break,
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        if buf[..n].starts_with(CATALOG_MAGIC.as_bytes()) {
            let mut bytes = buf[..n].to_vec();
            loop {
                match drive.read_block(&mut buf) {
                    Ok(0) | Err(TapeError::EndOfData { .. }) => break,
                    Ok(m) => bytes.extend_from_slice(&buf[..m]),
                    Err(e) => return Err(e),
                }
            }
            catalogs.push(Catalog::decode(&bytes)?);
        } else {
            // An archive: skip to its filemark.
            match drive.forward_files(1) {
                Ok(()) => {}
                Err(TapeError::EndOfData { .. }) => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok((label, catalogs))
}
