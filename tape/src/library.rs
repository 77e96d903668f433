//! The virtual tape library: a directory of cartridges in numbered slots and virtual drives
//! with load/unload, so the whole media workflow runs without hardware (docs/tape.md).
//!
//! Layout: `LIB/library` (a small state file), `LIB/slot-NNN/<barcode>/` for a cartridge in slot
//! NNN, `LIB/drive-N/<barcode>/` for a cartridge loaded in drive N, and `LIB/drive-N/home` holding
//! the slot number the cartridge came from. Moving a cartridge is one directory rename.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::drive::{DriveStatus, TapeDrive};
use crate::virtual_tape::{check_barcode, CartridgeSpec, VirtualTape};
use crate::{Result, TapeError};

const LIBRARY: &str = "library";
const MAGIC: &str = "bms-virtual-library 1";

/// Where a cartridge is in the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In storage slot n (1-based).
    Slot(u32),
    /// Loaded in drive n (0-based).
    Drive(u32),
}

/// One cartridge of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The barcode.
    pub barcode: String,
    /// Where it is.
    pub place: Place,
}

/// A virtual tape library on disk.
#[derive(Debug, Clone)]
pub struct VirtualLibrary {
    root: PathBuf,
    slots: u32,
    drives: u32,
}

fn mkdir(p: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(p)
        .map_err(|e| TapeError::io(format!("creating {}", p.display()), e))
}

fn only_subdir(dir: &Path) -> Result<Option<PathBuf>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TapeError::io(format!("reading {}", dir.display()), e)),
    };
    for entry in rd {
        let entry = entry.map_err(|e| TapeError::io(format!("reading {}", dir.display()), e))?;
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn barcode_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl VirtualLibrary {
    /// Creates a library with `slots` storage slots and `drives` drives in the new directory `root`.
    pub fn create(root: &Path, slots: u32, drives: u32) -> Result<VirtualLibrary> {
        if slots == 0 || drives == 0 || slots > 999 || drives > 99 {
            return Err(TapeError::Invalid(format!(
                "a virtual library needs 1 to 999 slots and 1 to 99 drives (asked for {slots} slots, {drives} drives)"
            )));
        }
        mkdir(root)?;
        for s in 1..=slots {
            mkdir(&root.join(format!("slot-{s:03}")))?;
        }
        for d in 0..drives {
            mkdir(&root.join(format!("drive-{d}")))?;
        }
        fs::write(
            root.join(LIBRARY),
            format!("{MAGIC}\nslots={slots}\ndrives={drives}\n"),
        )
        .map_err(|e| TapeError::io(format!("writing {}", root.join(LIBRARY).display()), e))?;
        VirtualLibrary::open(root)
    }

    /// Opens an existing library directory.
    pub fn open(root: &Path) -> Result<VirtualLibrary> {
        let path = root.join(LIBRARY);
        let text = fs::read_to_string(&path).map_err(|e| {
            TapeError::io(
                format!(
                    "reading {} (is this a virtual library directory? docs/tape.md, \"Virtual tape library\")",
                    path.display()
                ),
                e,
            )
        })?;
        let mut lines = text.lines();
        let bad = || {
            TapeError::Library(format!(
                "{} is not a bms virtual library state file",
                path.display()
            ))
        };
        if lines.next() != Some(MAGIC) {
            return Err(bad());
        }
        let (mut slots, mut drives) = (0, 0);
        for line in lines {
            match line.split_once('=') {
                Some(("slots", v)) => slots = v.parse().map_err(|_| bad())?,
                Some(("drives", v)) => drives = v.parse().map_err(|_| bad())?,
                _ => {}
            }
        }
        Ok(VirtualLibrary {
            root: root.to_path_buf(),
            slots,
            drives,
        })
    }

    /// The library directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Number of storage slots.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Number of drives.
    pub fn drives(&self) -> u32 {
        self.drives
    }

    fn slot_dir(&self, slot: u32) -> Result<PathBuf> {
        if slot == 0 || slot > self.slots {
            return Err(TapeError::Invalid(format!(
                "slot {slot} does not exist: the library has slots 1 to {}",
                self.slots
            )));
        }
        Ok(self.root.join(format!("slot-{slot:03}")))
    }

    fn drive_dir(&self, drive: u32) -> Result<PathBuf> {
        if drive >= self.drives {
            return Err(TapeError::Invalid(format!(
                "drive {drive} does not exist: the library has drives 0 to {}",
                self.drives.saturating_sub(1)
            )));
        }
        Ok(self.root.join(format!("drive-{drive}")))
    }

    /// Puts a new blank cartridge into the empty slot `slot`.
    pub fn add_cartridge(&self, slot: u32, spec: &CartridgeSpec) -> Result<()> {
        check_barcode(&spec.barcode)?;
        if self.find(&spec.barcode)?.is_some() {
            return Err(TapeError::Library(format!(
                "a cartridge with barcode {} is already in the library: barcodes must be unique",
                spec.barcode
            )));
        }
        let dir = self.slot_dir(slot)?;
        if let Some(other) = only_subdir(&dir)? {
            return Err(TapeError::Library(format!(
                "slot {slot} already holds cartridge {}: choose an empty slot",
                barcode_of(&other)
            )));
        }
        VirtualTape::create(&dir.join(&spec.barcode), spec).map(|_| ())
    }

    /// Every cartridge and where it is, slots first.
    pub fn inventory(&self) -> Result<Vec<Inventory>> {
        let mut out = Vec::new();
        for s in 1..=self.slots {
            if let Some(c) = only_subdir(&self.slot_dir(s)?)? {
                out.push(Inventory {
                    barcode: barcode_of(&c),
                    place: Place::Slot(s),
                });
            }
        }
        for d in 0..self.drives {
            if let Some(c) = only_subdir(&self.drive_dir(d)?)? {
                out.push(Inventory {
                    barcode: barcode_of(&c),
                    place: Place::Drive(d),
                });
            }
        }
        Ok(out)
    }

    /// Where the cartridge `barcode` is, if in the library.
    pub fn find(&self, barcode: &str) -> Result<Option<Place>> {
        Ok(self
            .inventory()?
            .into_iter()
            .find(|i| i.barcode == barcode)
            .map(|i| i.place))
    }

    /// The directory of cartridge `barcode` wherever it is (for `tar -f DIR/file-000001`).
    pub fn cartridge_dir(&self, barcode: &str) -> Result<PathBuf> {
        match self.find(barcode)? {
            Some(Place::Slot(s)) => Ok(self.slot_dir(s)?.join(barcode)),
            Some(Place::Drive(d)) => Ok(self.drive_dir(d)?.join(barcode)),
            None => Err(TapeError::Library(format!(
                "cartridge {barcode} is not in the library: put it into an empty slot, or check the barcode"
            ))),
        }
    }

    /// Loads cartridge `barcode` from its slot into the empty drive `drive`.
    pub fn load(&self, barcode: &str, drive: u32) -> Result<()> {
        let ddir = self.drive_dir(drive)?;
        if let Some(other) = only_subdir(&ddir)? {
            return Err(TapeError::Library(format!(
                "drive {drive} already holds cartridge {}: unload it first",
                barcode_of(&other)
            )));
        }
        let slot = match self.find(barcode)? {
            Some(Place::Slot(s)) => s,
            Some(Place::Drive(d)) => {
                return Err(TapeError::Library(format!(
                    "cartridge {barcode} is already loaded in drive {d}"
                )))
            }
            None => {
                return Err(TapeError::Library(format!(
                    "cartridge {barcode} is not in the library: add it to a slot first"
                )))
            }
        };
        let from = self.slot_dir(slot)?.join(barcode);
        fs::write(ddir.join("home"), format!("{slot}\n"))
            .map_err(|e| TapeError::io(format!("writing {}", ddir.join("home").display()), e))?;
        fs::rename(&from, ddir.join(barcode))
            .map_err(|e| TapeError::io(format!("moving cartridge {barcode} into drive {drive}"), e))
    }

    /// Unloads drive `drive` back to the cartridge's home slot; returns the barcode.
    pub fn unload(&self, drive: u32) -> Result<String> {
        let ddir = self.drive_dir(drive)?;
        let Some(cart) = only_subdir(&ddir)? else {
            return Err(TapeError::NoMedium {
                drive: format!("{} drive {drive}", self.root.display()),
            });
        };
        let barcode = barcode_of(&cart);
        let home = fs::read_to_string(ddir.join("home"))
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok());
        let mut target = None;
        if let Some(h) = home {
            if only_subdir(&self.slot_dir(h)?)?.is_none() {
                target = Some(h);
            }
        }
        if target.is_none() {
            for s in 1..=self.slots {
                if only_subdir(&self.slot_dir(s)?)?.is_none() {
                    target = Some(s);
                    break;
                }
            }
        }
        let Some(slot) = target else {
            return Err(TapeError::Library(format!(
                "no empty slot to unload cartridge {barcode} into: export a cartridge first"
            )));
        };
        fs::rename(&cart, self.slot_dir(slot)?.join(&barcode))
            .map_err(|e| TapeError::io(format!("moving cartridge {barcode} to slot {slot}"), e))?;
        let _ = fs::remove_file(ddir.join("home"));
        Ok(barcode)
    }

    /// A handle on drive `drive`.
    pub fn drive(&self, drive: u32) -> Result<VirtualDrive> {
        let dir = self.drive_dir(drive)?;
        Ok(VirtualDrive {
            library: self.clone(),
            index: drive,
            dir,
            tape: None,
        })
    }
}

/// A drive of a [`VirtualLibrary`]: a [`TapeDrive`] over whatever cartridge is loaded in it.
#[derive(Debug)]
pub struct VirtualDrive {
    library: VirtualLibrary,
    index: u32,
    dir: PathBuf,
    tape: Option<VirtualTape>,
}

impl VirtualDrive {
    fn tape(&mut self) -> Result<&mut VirtualTape> {
        let stale = match &self.tape {
            Some(t) => !t.dir().join("state").exists(),
            None => true,
        };
        if stale {
            self.tape = None;
            let Some(cart) = only_subdir(&self.dir)? else {
                return Err(TapeError::NoMedium { drive: self.name() });
            };
            self.tape = Some(VirtualTape::open(&cart)?);
        }
        self.tape.as_mut().ok_or_else(|| TapeError::NoMedium {
            drive: self.dir.display().to_string(),
        })
    }

    /// The cartridge directory of the loaded cartridge.
    pub fn cartridge_dir(&mut self) -> Result<PathBuf> {
        Ok(self.tape()?.dir().to_path_buf())
    }
}

impl TapeDrive for VirtualDrive {
    fn name(&self) -> String {
        format!(
            "virtual drive {} of library {}",
            self.index,
            self.library.root.display()
        )
    }
    fn status(&mut self) -> Result<DriveStatus> {
        match self.tape() {
            Ok(t) => t.status(),
            Err(TapeError::NoMedium { .. }) => Ok(DriveStatus {
                door_open: true,
                ..DriveStatus::default()
            }),
            Err(e) => Err(e),
        }
    }
    fn rewind(&mut self) -> Result<()> {
        self.tape()?.rewind()
    }
    fn forward_files(&mut self, count: u32) -> Result<()> {
        self.tape()?.forward_files(count)
    }
    fn backward_files(&mut self, count: u32) -> Result<()> {
        self.tape()?.backward_files(count)
    }
    fn write_filemarks(&mut self, count: u32) -> Result<()> {
        self.tape()?.write_filemarks(count)
    }
    fn seek_end_of_data(&mut self) -> Result<()> {
        self.tape()?.seek_end_of_data()
    }
    fn set_block_size(&mut self, size: u32) -> Result<()> {
        self.tape()?.set_block_size(size)
    }
    fn load(&mut self) -> Result<()> {
        self.tape()?.load()
    }
    fn eject(&mut self) -> Result<()> {
        self.tape = None;
        self.library.unload(self.index).map(|_| ())
    }
    fn lock_door(&mut self, locked: bool) -> Result<()> {
        self.tape()?.lock_door(locked)
    }
    fn tell_block(&mut self) -> Result<u64> {
        self.tape()?.tell_block()
    }
    fn write_block(&mut self, block: &[u8]) -> Result<()> {
        self.tape()?.write_block(block)
    }
    fn read_block(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.tape()?.read_block(buf)
    }
    fn forward_blocks(&mut self, count: u64, block_size: u32) -> Result<()> {
        self.tape()?.forward_blocks(count, block_size)
    }
    fn remaining_hint(&mut self) -> Option<u64> {
        self.tape().ok()?.remaining_hint()
    }
    fn barcode(&self) -> Option<String> {
        self.tape.as_ref().map(|t| t.barcode_str().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(b: &str) -> CartridgeSpec {
        CartridgeSpec {
            barcode: b.into(),
            capacity: 1 << 20,
            early_warning: 1 << 19,
        }
    }

    #[test]
    fn load_unload_and_inventory() {
        let d = tempfile::tempdir().unwrap();
        let lib = VirtualLibrary::create(&d.path().join("lib"), 4, 2).unwrap();
        lib.add_cartridge(1, &spec("A00001")).unwrap();
        lib.add_cartridge(3, &spec("A00002")).unwrap();
        assert!(
            lib.add_cartridge(1, &spec("A00003")).is_err(),
            "occupied slot"
        );
        assert!(
            lib.add_cartridge(2, &spec("A00001")).is_err(),
            "duplicate barcode"
        );
        assert!(
            lib.add_cartridge(9, &spec("A00004")).is_err(),
            "no such slot"
        );

        let mut drive = lib.drive(0).unwrap();
        let e = drive.write_block(b"x").unwrap_err();
        assert!(matches!(e, TapeError::NoMedium { .. }), "{e}");
        assert!(drive.status().unwrap().door_open);

        lib.load("A00002", 0).unwrap();
        assert!(lib.load("A00001", 0).is_err(), "drive busy");
        assert_eq!(lib.find("A00002").unwrap(), Some(Place::Drive(0)));
        drive.set_block_size(1).unwrap();
        drive.write_block(b"x").unwrap();
        drive.write_filemarks(1).unwrap();
        assert_eq!(drive.barcode().as_deref(), Some("A00002"));

        let reopened = VirtualLibrary::open(lib.root()).unwrap();
        assert_eq!(reopened.unload(0).unwrap(), "A00002");
        assert_eq!(lib.find("A00002").unwrap(), Some(Place::Slot(3)));
        assert!(matches!(drive.rewind(), Err(TapeError::NoMedium { .. })));
        let dir = lib.cartridge_dir("A00002").unwrap();
        assert_eq!(std::fs::read(dir.join("file-000000")).unwrap(), b"x");
        assert_eq!(lib.inventory().unwrap().len(), 2);
        assert!(lib.unload(0).is_err());
    }
}
