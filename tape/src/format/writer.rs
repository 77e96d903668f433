//! Writing a backup to tape: one pax tar archive per backup in fixed blocks, then its catalog
//! file; spanning to the next medium of the pool at a file boundary (docs/tape-format.md).
//!
//! A reader thread opens, reads and hashes the files ahead of the tape (double buffering through a
//! bounded channel), so the drive streams instead of stopping between files.

use std::io::Read;
use std::sync::mpsc;

use super::blocks::BlockWriter;
use super::catalog::{entry_line_len, Catalog, CatalogEntry};
use super::pax::{self, Kind};
use super::reader::read_label;
use super::source::SourceEntry;
use crate::drive::TapeDrive;
use crate::{Result, TapeError};

/// Supplies the media of an archive, one volume after the other.
pub trait MediaChanger {
    /// The drive holding a labelled medium for volume `volume` (1-based) of the archive.
    fn medium(&mut self, volume: u32) -> Result<&mut dyn TapeDrive>;
}

/// A changer of exactly one drive whose medium is already loaded (no spanning).
pub struct SingleDrive<'a>(pub &'a mut dyn TapeDrive);

impl MediaChanger for SingleDrive<'_> {
    fn medium(&mut self, volume: u32) -> Result<&mut dyn TapeDrive> {
        if volume > 1 {
            return Err(TapeError::EndOfMedium {
                medium: self.0.barcode().unwrap_or_else(|| self.0.name()),
            });
        }
        Ok(&mut *self.0)
    }
}

/// What the archive is of.
#[derive(Debug, Clone)]
pub struct ArchiveSpec {
    /// The snapshot id.
    pub snapshot: String,
    /// The job or source name.
    pub job: String,
}

enum Chunk {
    Data(Vec<u8>),
    End(String),
    /// The last (for most files the only) piece of a file's data, with the file's hash: one
    /// hand-over per small file instead of two.
    Last(Vec<u8>, String),
    Failed(TapeError),
}

const CHUNK: usize = 1 << 20;
/// Pieces read ahead of the drive: up to 32 MiB of large files, or 32 small files.
const AHEAD: usize = 32;

/// Reads up to `want` bytes of `f` into a fresh buffer (not zero-filled first).
fn read_piece(f: &mut dyn Read, want: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(want);
    f.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn produce(entries: &[SourceEntry], tx: &mpsc::SyncSender<Chunk>) {
    for e in entries {
        let Some(data) = &e.data else { continue };
        let shown = data.describe(&e.meta);
        let mut f = match data.open() {
            Ok(f) => f,
            Err(err) => {
                let _ = tx.send(Chunk::Failed(TapeError::io(
                    format!("opening {shown}"),
                    err,
                )));
                return;
            }
        };
        let mut hasher = blake3::Hasher::new();
        let mut left = e.meta.size;
        if left == 0 {
            let _ = tx.send(Chunk::End(hasher.finalize().to_hex().to_string()));
            continue;
        }
        while left > 0 {
            let want = CHUNK.min(left as usize);
            let mut buf = match read_piece(&mut f, want) {
                Ok(b) => b,
                Err(err) => {
                    let _ = tx.send(Chunk::Failed(TapeError::io(
                        format!("reading {shown}"),
                        err,
                    )));
                    return;
                }
            };
            if buf.is_empty() {
                // The file shrank while it was read: the archive keeps the size it announced,
                // padded with zeros, and the hash covers what is on tape.
                buf.resize(want, 0);
            }
            hasher.update(&buf);
            left -= buf.len() as u64;
            let piece = if left == 0 {
                Chunk::Last(buf, hasher.finalize().to_hex().to_string())
            } else {
                Chunk::Data(buf)
            };
            if tx.send(piece).is_err() {
                return;
            }
        }
    }
}

struct Volume {
    number: u32,
    barcode: String,
    media_set: String,
    archive_file: u64,
    blocks: BlockWriter,
    entries: Vec<CatalogEntry>,
    catalog_len: usize,
}

fn open_volume(changer: &mut dyn MediaChanger, number: u32) -> Result<(Volume, u32)> {
    let drive = changer.medium(number)?;
    let label = read_label(drive)?;
    let status = drive.status()?;
    if status.write_protected {
        return Err(TapeError::WriteProtected {
            medium: label.barcode,
        });
    }
    drive.seek_end_of_data()?;
    let archive_file = drive.status()?.file_number.unwrap_or(1).max(1);
    let bs = label.block_size;
    Ok((
        Volume {
            number,
            barcode: label.barcode,
            media_set: label.media_set,
            archive_file,
            blocks: BlockWriter::new(bs),
            entries: Vec::new(),
            catalog_len: 1024,
        },
        bs,
    ))
}

fn close_volume(
    drive: &mut dyn TapeDrive,
    spec: &ArchiveSpec,
    v: &mut Volume,
    bs: u32,
    last: bool,
) -> Result<Catalog> {
    v.blocks.write(drive, &[0u8; 2 * pax::RECORD])?;
    let archive_bytes = v.blocks.finish(drive)?;
    drive.write_filemarks(1)?;
    let catalog = Catalog {
        snapshot: spec.snapshot.clone(),
        job: spec.job.clone(),
        barcode: v.barcode.clone(),
        media_set: v.media_set.clone(),
        volume: v.number,
        last,
        archive_file: v.archive_file,
        archive_bytes,
        entries: std::mem::take(&mut v.entries),
    };
    let mut cw = BlockWriter::new(bs);
    cw.write(drive, catalog.encode_text().as_bytes())?;
    cw.finish(drive)?;
    drive.write_filemarks(1)?;
    Ok(catalog)
}

fn incomplete(spec: &ArchiveSpec, v: &Volume, e: TapeError) -> TapeError {
    match e {
        TapeError::EndOfMedium { medium } => TapeError::IncompleteArchive(format!(
            "end of medium on cartridge {medium} in the middle of volume {} of the archive of snapshot {}: that volume is incomplete and not recorded; run the copy again with a fresh cartridge in the pool",
            v.number, spec.snapshot
        )),
        other => other,
    }
}

/// Writes `entries` as one archive (one or more volumes), each volume followed by its catalog
/// file. Returns the catalogs of every volume, the last one marked `last`. On an error nothing
/// is returned: the caller records no volume of this archive as complete.
pub fn write_archive(
    changer: &mut dyn MediaChanger,
    spec: &ArchiveSpec,
    entries: &[SourceEntry],
) -> Result<Vec<Catalog>> {
    let (tx, rx) = mpsc::sync_channel::<Chunk>(AHEAD);
    std::thread::scope(|scope| {
        scope.spawn(move || produce(entries, &tx));
        let result = write_volumes(changer, spec, entries, &rx);
        drop(rx);
        result
    })
}

/// The ancestor directories of a relative path, outermost first.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

fn write_volumes(
    changer: &mut dyn MediaChanger,
    spec: &ArchiveSpec,
    entries: &[SourceEntry],
    rx: &mpsc::Receiver<Chunk>,
) -> Result<Vec<Catalog>> {
    let mut done = Vec::new();
    let mut dirs: std::collections::HashMap<&[u8], &SourceEntry> = std::collections::HashMap::new();
    let (mut vol, mut bs) = open_volume(changer, 1)?;
    for e in entries {
        let member = pax::member_len(&e.meta);
        let line = entry_line_len(&CatalogEntry {
            offset: u64::MAX,
            size: e.meta.size,
            hash: "0".repeat(64),
            kind: e.meta.kind,
            path: e.meta.path.clone(),
        });
        // Room for the member, the end-of-archive records, the last block's padding and the
        // catalog (with this line), plus one block per filemark.
        let need = vol.blocks.offset()
            + member
            + 1024
            + 3 * u64::from(bs)
            + (vol.catalog_len + line) as u64;
        let remaining = changer.medium(vol.number)?.remaining_hint();
        if let Some(room) = remaining.map(|r| r + vol.blocks.offset()) {
            if need > room {
                if vol.entries.is_empty() {
                    return Err(TapeError::Invalid(format!(
                        "{} ({member} bytes in the archive) does not fit on an empty cartridge {}: an archive splits only between files; use larger media",
                        String::from_utf8_lossy(&e.meta.path),
                        vol.barcode
                    )));
                }
                let drive = changer.medium(vol.number)?;
                let cat = close_volume(drive, spec, &mut vol, bs, false)
                    .map_err(|err| incomplete(spec, &vol, err))?;
                done.push(cat);
                let next = vol.number + 1;
                (vol, bs) = open_volume(changer, next)?;
                // Each volume is complete on its own: it repeats the directories above its
                // first member, so tar restores their owners, modes and times too.
                let drive = changer.medium(vol.number)?;
                for d in ancestors(&e.meta.path).filter_map(|a| dirs.get(a)) {
                    let offset = vol.blocks.offset();
                    vol.blocks
                        .write(drive, &pax::headers(&d.meta))
                        .map_err(|err| incomplete(spec, &vol, err))?;
                    vol.entries.push(CatalogEntry {
                        offset,
                        size: 0,
                        hash: blake3::hash(b"").to_hex().to_string(),
                        kind: Kind::Dir,
                        path: d.meta.path.clone(),
                    });
                }
            }
        }
        if e.meta.kind == Kind::Dir {
            dirs.insert(e.meta.path.as_slice(), e);
        }
        let drive = changer.medium(vol.number)?;
        let offset = vol.blocks.offset();
        let mut hash = blake3::hash(b"").to_hex().to_string();
        let write = (|| -> Result<()> {
            vol.blocks.write(drive, &pax::headers(&e.meta))?;
            if e.meta.kind == Kind::File {
                loop {
                    match rx.recv() {
                        Ok(Chunk::Data(d)) => vol.blocks.write(drive, &d)?,
                        Ok(Chunk::Last(d, h)) => {
                            vol.blocks.write(drive, &d)?;
                            hash = h;
                            break;
                        }
                        Ok(Chunk::End(h)) => {
                            hash = h;
                            break;
                        }
                        Ok(Chunk::Failed(err)) => return Err(err),
                        Err(_) => {
                            return Err(TapeError::Invalid("the file reader stopped early".into()))
                        }
                    }
                }
                let pad = pax::padded(e.meta.size) - e.meta.size;
                vol.blocks.write(drive, &vec![0u8; pad as usize])?;
            }
            Ok(())
        })();
        if let Err(err) = write {
            let _ = drive.write_filemarks(1);
            return Err(incomplete(spec, &vol, err));
        }
        vol.catalog_len += line;
        vol.entries.push(CatalogEntry {
            offset,
            size: e.meta.size,
            hash,
            kind: e.meta.kind,
            path: e.meta.path.clone(),
        });
    }
    let drive = changer.medium(vol.number)?;
    let cat =
        close_volume(drive, spec, &mut vol, bs, true).map_err(|err| incomplete(spec, &vol, err))?;
    done.push(cat);
    Ok(done)
}
