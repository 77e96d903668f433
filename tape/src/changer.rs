//! A [`MediaChanger`] over a virtual tape library: volume n of an archive goes on the n-th
//! cartridge of a list (the pool's writable media in order), loaded into one drive.

use crate::drive::TapeDrive;
use crate::format::writer::MediaChanger;
use crate::library::{Place, VirtualDrive, VirtualLibrary};
use crate::{Result, TapeError};

/// Loads the cartridges of `barcodes` into drive `drive` of `library`, one per volume.
pub struct LibraryChanger {
    library: VirtualLibrary,
    index: u32,
    barcodes: Vec<String>,
    drive: VirtualDrive,
    mounted: Option<String>,
}

impl LibraryChanger {
    /// A changer using drive `index` and the cartridges `barcodes` in order.
    pub fn new(
        library: &VirtualLibrary,
        index: u32,
        barcodes: Vec<String>,
    ) -> Result<LibraryChanger> {
        Ok(LibraryChanger {
            library: library.clone(),
            index,
            drive: library.drive(index)?,
            barcodes,
            mounted: None,
        })
    }

    /// The barcodes used so far, in volume order.
    pub fn barcodes(&self) -> &[String] {
        &self.barcodes
    }

    /// Makes sure cartridge `barcode` is in the changer's drive and returns the drive.
    pub fn mount(&mut self, barcode: &str) -> Result<&mut VirtualDrive> {
        if self.mounted.as_deref() == Some(barcode) {
            return Ok(&mut self.drive);
        }
        match self.library.find(barcode)? {
            Some(Place::Drive(d)) if d == self.index => {}
            Some(Place::Drive(d)) => {
                return Err(TapeError::Library(format!(
                    "cartridge {barcode} is loaded in drive {d}, not in drive {}: unload it first",
                    self.index
                )))
            }
            Some(Place::Slot(_)) => {
                if self.drive.status()?.online {
                    self.library.unload(self.index)?;
                }
                self.library.load(barcode, self.index)?;
            }
            None => {
                return Err(TapeError::Library(format!(
                    "medium needed: cartridge {barcode} is not in the library; put it into an empty slot"
                )))
            }
        }
        self.mounted = Some(barcode.to_string());
        Ok(&mut self.drive)
    }
}

impl MediaChanger for LibraryChanger {
    fn medium(&mut self, volume: u32) -> Result<&mut dyn TapeDrive> {
        let Some(barcode) = self
            .barcodes
            .get(volume.saturating_sub(1) as usize)
            .cloned()
        else {
            return Err(TapeError::Library(format!(
                "medium needed: volume {volume} of the archive needs another writable cartridge in the pool; label and add one"
            )));
        };
        let d = self.mount(&barcode)?;
        Ok(d as &mut dyn TapeDrive)
    }
}
