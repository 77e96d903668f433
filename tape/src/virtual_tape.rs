//! The file-backed virtual tape: one directory per cartridge, one file per tape file and a small
//! `state` file (layout in docs/tape.md, "Virtual tapes"). It behaves like a drive with a loaded
//! cartridge: filemarks, positioning, write-protect, a capacity, and the kernel's end-of-medium
//! rule at a configurable early-warning size (see [`crate::drive`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::drive::{DriveStatus, TapeDrive};
use crate::{Result, TapeError};

const STATE: &str = "state";
const STATE_MAGIC: &str = "bms-virtual-tape 1";

/// How the cartridge is made: its barcode, capacity and early-warning point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartridgeSpec {
    /// The barcode / label (letters, digits, `-`, `_`).
    pub barcode: String,
    /// Bytes the cartridge holds at most (the physical end of the medium).
    pub capacity: u64,
    /// Bytes after which a write reports the early warning (must be ≤ capacity).
    pub early_warning: u64,
}

/// The persistent part of a cartridge (the `state` file).
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    barcode: String,
    capacity: u64,
    early_warning: u64,
    write_protected: bool,
    /// Number of tape files present (`file-000000` … ).
    files: u64,
    /// Number of filemarks: `files - 1` or `files` (whether the last file is closed).
    filemarks: u64,
}

impl State {
    fn render(&self) -> String {
        format!(
            "{STATE_MAGIC}\nbarcode={}\ncapacity={}\nearly_warning={}\nwrite_protected={}\nfiles={}\nfilemarks={}\n",
            self.barcode,
            self.capacity,
            self.early_warning,
            u8::from(self.write_protected),
            self.files,
            self.filemarks
        )
    }

    fn parse(text: &str, path: &Path) -> Result<State> {
        let bad = |what: &str| {
            TapeError::Library(format!(
                "virtual cartridge state {} is damaged ({what}): restore it from the cartridge's tape files or recreate the cartridge",
                path.display()
            ))
        };
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            return Err(bad("no `bms-virtual-tape 1` first line"));
        }
        let mut get = std::collections::HashMap::new();
        for line in lines {
            if let Some((k, v)) = line.split_once('=') {
                get.insert(k.to_string(), v.to_string());
            }
        }
        let num = |k: &str| -> Result<u64> {
            get.get(k)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| bad(&format!("missing or invalid `{k}`")))
        };
        Ok(State {
            barcode: get
                .get("barcode")
                .cloned()
                .ok_or_else(|| bad("no barcode"))?,
            capacity: num("capacity")?,
            early_warning: num("early_warning")?,
            write_protected: num("write_protected")? != 0,
            files: num("files")?,
            filemarks: num("filemarks")?,
        })
    }
}

/// Where the end-of-medium rule stands for the current write session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eom {
    /// Before the early warning.
    Clear,
    /// The last write crossed the early warning; the next write fails.
    Warned,
    /// The failing write was reported; one more write (a trailer) is allowed.
    TrailerAllowed,
    /// The trailer was written; every further write fails.
    Exhausted,
}

/// A cartridge with a position: usable directly as a [`TapeDrive`] holding it.
#[derive(Debug)]
pub struct VirtualTape {
    dir: PathBuf,
    state: State,
    file: u64,
    offset: u64,
    block_size: u32,
    used: u64,
    eom: Eom,
    writer: Option<(u64, File)>,
    reader: Option<(u64, File)>,
}

/// Checks a barcode: 1–32 of letters, digits, `-` and `_`.
pub fn check_barcode(barcode: &str) -> Result<()> {
    let ok = !barcode.is_empty()
        && barcode.len() <= 32
        && barcode
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(TapeError::Invalid(format!(
            "barcode {barcode:?} is not valid: use 1 to 32 letters, digits, `-` or `_` (e.g. BMS001L8)"
        )))
    }
}

fn file_name(n: u64) -> String {
    format!("file-{n:06}")
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| TapeError::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| TapeError::io(format!("writing {}", tmp.display()), e))?;
    fs::rename(&tmp, path).map_err(|e| TapeError::io(format!("renaming to {}", path.display()), e))
}

impl VirtualTape {
    /// Creates a new, blank cartridge directory `dir` (which must not exist).
    pub fn create(dir: &Path, spec: &CartridgeSpec) -> Result<VirtualTape> {
        check_barcode(&spec.barcode)?;
        if spec.early_warning > spec.capacity || spec.capacity == 0 {
            return Err(TapeError::Invalid(format!(
                "cartridge {}: the early warning ({} bytes) must be at most the capacity ({} bytes), and the capacity above 0",
                spec.barcode, spec.early_warning, spec.capacity
            )));
        }
        fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| {
            TapeError::io(format!("creating cartridge directory {}", dir.display()), e)
        })?;
        let state = State {
            barcode: spec.barcode.clone(),
            capacity: spec.capacity,
            early_warning: spec.early_warning,
            write_protected: false,
            files: 0,
            filemarks: 0,
        };
        write_private(&dir.join(STATE), state.render().as_bytes())?;
        VirtualTape::open(dir)
    }

    /// Opens an existing cartridge directory, positioned at the beginning of the medium.
    pub fn open(dir: &Path) -> Result<VirtualTape> {
        let path = dir.join(STATE);
        let text = fs::read_to_string(&path).map_err(|e| {
            TapeError::io(
                format!(
                    "reading virtual cartridge state {} (is this a cartridge directory?)",
                    path.display()
                ),
                e,
            )
        })?;
        let state = State::parse(&text, &path)?;
        let mut tape = VirtualTape {
            dir: dir.to_path_buf(),
            state,
            file: 0,
            offset: 0,
            block_size: 0,
            used: 0,
            eom: Eom::Clear,
            writer: None,
            reader: None,
        };
        tape.used = tape.sum_sizes()?;
        Ok(tape)
    }

    /// The cartridge directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cartridge's barcode.
    pub fn barcode_str(&self) -> &str {
        &self.state.barcode
    }

    /// Bytes recorded on the cartridge.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The path of tape file `n` (for `tar -f` on a virtual cartridge).
    pub fn file_path(&self, n: u64) -> PathBuf {
        self.dir.join(file_name(n))
    }

    /// Number of tape files on the cartridge.
    pub fn file_count(&self) -> u64 {
        self.state.files
    }

    /// Sets or clears the write-protect tab.
    pub fn set_write_protected(&mut self, on: bool) -> Result<()> {
        self.state.write_protected = on;
        self.save()
    }

    fn save(&self) -> Result<()> {
        write_private(&self.dir.join(STATE), self.state.render().as_bytes())
    }

    fn sum_sizes(&self) -> Result<u64> {
        let mut total = 0;
        for n in 0..self.state.files {
            let p = self.file_path(n);
            total += fs::metadata(&p)
                .map_err(|e| TapeError::io(format!("reading tape file {}", p.display()), e))?
                .len();
        }
        Ok(total)
    }

    fn file_len(&self, n: u64) -> Result<u64> {
        if n >= self.state.files {
            return Ok(0);
        }
        let p = self.file_path(n);
        Ok(fs::metadata(&p)
            .map_err(|e| TapeError::io(format!("reading tape file {}", p.display()), e))?
            .len())
    }

    fn moved(&mut self) {
        self.eom = Eom::Clear;
        self.reader = None;
    }

    /// Erases everything from the current position on, as writing on a tape does.
    fn truncate_here(&mut self) -> Result<()> {
        if let Some((n, _)) = &self.writer {
            if *n == self.file {
                return Ok(());
            }
        }
        self.writer = None;
        self.reader = None;
        let mut changed = false;
        while self.state.files > self.file + 1 {
            let last = self.state.files - 1;
            let p = self.file_path(last);
            fs::remove_file(&p)
                .map_err(|e| TapeError::io(format!("erasing tape file {}", p.display()), e))?;
            self.state.files = last;
            changed = true;
        }
        let p = self.file_path(self.file);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&p)
            .map_err(|e| TapeError::io(format!("opening tape file {}", p.display()), e))?;
        f.set_len(self.offset).map_err(|e| {
            TapeError::io(format!("erasing after the position in {}", p.display()), e)
        })?;
        if self.state.files < self.file + 1 {
            self.state.files = self.file + 1;
            changed = true;
        }
        if self.state.filemarks > self.file {
            self.state.filemarks = self.file;
            changed = true;
        }
        if changed {
            self.save()?;
        }
        self.used = self.sum_sizes()?;
        let mut f = f;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| TapeError::io(format!("positioning in {}", p.display()), e))?;
        self.writer = Some((self.file, f));
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.state.write_protected {
            return Err(TapeError::WriteProtected {
                medium: self.state.barcode.clone(),
            });
        }
        Ok(())
    }

    fn eom_error(&self) -> TapeError {
        TapeError::EndOfMedium {
            medium: self.state.barcode.clone(),
        }
    }
}

impl TapeDrive for VirtualTape {
    fn name(&self) -> String {
        format!("virtual tape {}", self.state.barcode)
    }

    fn status(&mut self) -> Result<DriveStatus> {
        let len = self.file_len(self.file)?;
        Ok(DriveStatus {
            online: true,
            bot: self.file == 0 && self.offset == 0,
            eof: self.file > 0 && self.offset == 0,
            eot: self.used >= self.state.early_warning,
            eod: self.file >= self.state.files
                || (self.file + 1 == self.state.files
                    && self.offset >= len
                    && self.state.filemarks < self.state.files),
            write_protected: self.state.write_protected,
            door_open: false,
            file_number: Some(self.file),
            block_number: Some(if self.block_size > 0 {
                self.offset / u64::from(self.block_size)
            } else {
                0
            }),
            block_size: self.block_size,
        })
    }

    fn rewind(&mut self) -> Result<()> {
        self.writer = None;
        self.file = 0;
        self.offset = 0;
        self.moved();
        Ok(())
    }

    fn forward_files(&mut self, count: u32) -> Result<()> {
        self.writer = None;
        for _ in 0..count {
            if self.file >= self.state.filemarks {
                return Err(TapeError::EndOfData {
                    medium: self.state.barcode.clone(),
                });
            }
            self.file += 1;
            self.offset = 0;
        }
        self.moved();
        Ok(())
    }

    fn forward_blocks(&mut self, count: u64, block_size: u32) -> Result<()> {
        self.writer = None;
        let to = count
            .saturating_mul(u64::from(block_size))
            .saturating_add(self.offset);
        if to > self.file_len(self.file)? {
            return Err(TapeError::Format(format!(
                "tape file {} of cartridge {} ends before block {count} from here",
                self.file, self.state.barcode
            )));
        }
        self.offset = to;
        self.moved();
        Ok(())
    }

    fn backward_files(&mut self, count: u32) -> Result<()> {
        self.writer = None;
        for _ in 0..count {
            if self.file == 0 {
                self.offset = 0;
                self.moved();
                return Err(TapeError::Invalid(format!(
                    "cannot space backward past the beginning of cartridge {}",
                    self.state.barcode
                )));
            }
            self.file -= 1;
            self.offset = self.file_len(self.file)?;
        }
        self.moved();
        Ok(())
    }

    fn write_filemarks(&mut self, count: u32) -> Result<()> {
        self.check_writable()?;
        for _ in 0..count {
            self.truncate_here()?;
            if let Some((_, f)) = self.writer.take() {
                f.sync_all().map_err(|e| {
                    TapeError::io(format!("flushing tape file {}", file_name(self.file)), e)
                })?;
            }
            self.state.filemarks = self.file + 1;
            self.file += 1;
            self.offset = 0;
            self.save()?;
        }
        Ok(())
    }

    fn seek_end_of_data(&mut self) -> Result<()> {
        self.writer = None;
        if self.state.files == 0 {
            self.file = 0;
            self.offset = 0;
        } else if self.state.filemarks >= self.state.files {
            self.file = self.state.files;
            self.offset = 0;
        } else {
            self.file = self.state.files - 1;
            self.offset = self.file_len(self.file)?;
        }
        self.moved();
        Ok(())
    }

    fn set_block_size(&mut self, size: u32) -> Result<()> {
        self.block_size = size;
        Ok(())
    }

    fn load(&mut self) -> Result<()> {
        self.rewind()
    }

    fn eject(&mut self) -> Result<()> {
        self.rewind()
    }

    fn lock_door(&mut self, _locked: bool) -> Result<()> {
        Ok(())
    }

    fn tell_block(&mut self) -> Result<u64> {
        // Blocks before this file plus one per filemark, as a drive counts logical objects.
        let bs = u64::from(self.block_size.max(1));
        let mut blocks = 0;
        for n in 0..self.file.min(self.state.files) {
            blocks += self.file_len(n)?.div_ceil(bs) + 1;
        }
        Ok(blocks + self.offset / bs)
    }

    fn write_block(&mut self, block: &[u8]) -> Result<()> {
        self.check_writable()?;
        if self.block_size != 0 && block.len() != self.block_size as usize {
            return Err(TapeError::Invalid(format!(
                "a write of {} bytes on {} set to fixed blocks of {} bytes: write whole blocks",
                block.len(),
                self.name(),
                self.block_size
            )));
        }
        match self.eom {
            Eom::Warned => {
                self.eom = Eom::TrailerAllowed;
                return Err(self.eom_error());
            }
            Eom::Exhausted => return Err(self.eom_error()),
            Eom::Clear | Eom::TrailerAllowed => {}
        }
        self.truncate_here()?;
        let len = block.len() as u64;
        if self.used + len > self.state.capacity {
            self.eom = Eom::Exhausted;
            return Err(self.eom_error());
        }
        let file = self.file;
        if let Some((_, f)) = self.writer.as_mut() {
            f.write_all(block)
                .map_err(|e| TapeError::io(format!("writing tape file {}", file_name(file)), e))?;
        }
        self.offset += len;
        self.used += len;
        self.eom = match self.eom {
            Eom::TrailerAllowed => Eom::Exhausted,
            Eom::Clear if self.used >= self.state.early_warning => Eom::Warned,
            other => other,
        };
        Ok(())
    }

    fn read_block(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.writer = None;
        if self.file >= self.state.files {
            return Err(TapeError::EndOfData {
                medium: self.state.barcode.clone(),
            });
        }
        let len = self.file_len(self.file)?;
        if self.offset >= len {
            if self.file < self.state.filemarks {
                self.file += 1;
                self.offset = 0;
                self.reader = None;
                return Ok(0);
            }
            return Err(TapeError::EndOfData {
                medium: self.state.barcode.clone(),
            });
        }
        let want = if self.block_size == 0 {
            buf.len()
        } else {
            let bs = self.block_size as usize;
            if buf.len() < bs {
                return Err(TapeError::Invalid(format!(
                    "a read buffer of {} bytes is smaller than the block size {bs} of {}",
                    buf.len(),
                    self.name()
                )));
            }
            bs
        };
        let want = want.min((len - self.offset) as usize);
        if !matches!(&self.reader, Some((n, _)) if *n == self.file) {
            let p = self.file_path(self.file);
            let mut f = File::open(&p)
                .map_err(|e| TapeError::io(format!("opening tape file {}", p.display()), e))?;
            f.seek(SeekFrom::Start(self.offset))
                .map_err(|e| TapeError::io(format!("positioning in {}", p.display()), e))?;
            self.reader = Some((self.file, f));
        }
        let file = self.file;
        if let Some((_, f)) = self.reader.as_mut() {
            f.read_exact(&mut buf[..want])
                .map_err(|e| TapeError::io(format!("reading tape file {}", file_name(file)), e))?;
        }
        self.offset += want as u64;
        Ok(want)
    }

    fn remaining_hint(&mut self) -> Option<u64> {
        Some(self.state.early_warning.saturating_sub(self.used))
    }

    fn barcode(&self) -> Option<String> {
        Some(self.state.barcode.clone())
    }
}

impl Drop for VirtualTape {
    fn drop(&mut self) {
        if let Some((_, f)) = self.writer.take() {
            let _ = f.sync_all();
        }
    }
}

#[cfg(test)]
#[path = "virtual_tape_tests.rs"]
mod tests;
