//! The [`TapeDrive`] trait: what bms asks of a tape drive, real or virtual (docs/tape.md).
//!
//! Positions follow the st driver's model: a tape is a sequence of *tape files* separated by
//! filemarks; inside a file, fixed-size blocks. End of medium follows the kernel's rule: the write
//! that crosses the early-warning point completes, the next write fails with
//! [`TapeError::EndOfMedium`](crate::TapeError::EndOfMedium), one more write is then allowed (for a
//! trailer), and every write after that fails again. Writing filemarks is always allowed.

use crate::Result;

/// What the drive reports about itself and its cartridge (MTIOCGET's status bits and counters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveStatus {
    /// A cartridge is loaded and ready.
    pub online: bool,
    /// The tape is at the beginning of the medium.
    pub bot: bool,
    /// The tape is just after a filemark.
    pub eof: bool,
    /// The tape is past the early-warning point (end of tape).
    pub eot: bool,
    /// The tape is at the end of recorded data.
    pub eod: bool,
    /// The cartridge is write-protected.
    pub write_protected: bool,
    /// The drive door is open (no cartridge).
    pub door_open: bool,
    /// Tape file number, counted from 0 at the beginning of the medium (None when unknown).
    pub file_number: Option<u64>,
    /// Block number inside the current tape file (None when unknown).
    pub block_number: Option<u64>,
    /// The block size in bytes (0 = variable).
    pub block_size: u32,
}

/// A tape drive: a real st device or a virtual drive.
pub trait TapeDrive: Send {
    /// A name for messages: the device path or the virtual drive and its cartridge.
    fn name(&self) -> String;
    /// The drive's status bits and position.
    fn status(&mut self) -> Result<DriveStatus>;
    /// Rewinds to the beginning of the medium.
    fn rewind(&mut self) -> Result<()>;
    /// Skips forward over `count` filemarks, ending just after the last one (MTFSF).
    fn forward_files(&mut self, count: u32) -> Result<()>;
    /// Skips backward over `count` filemarks, ending just before the last one (MTBSF).
    fn backward_files(&mut self, count: u32) -> Result<()>;
    /// Writes `count` filemarks at the current position (MTWEOF).
    fn write_filemarks(&mut self, count: u32) -> Result<()>;
    /// Moves to the end of recorded data, ready to append (MTEOM).
    fn seek_end_of_data(&mut self) -> Result<()>;
    /// Sets the fixed block size in bytes (MTSETBLK).
    fn set_block_size(&mut self, size: u32) -> Result<()>;
    /// Loads the cartridge in the drive (MTLOAD).
    fn load(&mut self) -> Result<()>;
    /// Rewinds and ejects the cartridge (MTOFFL).
    fn eject(&mut self) -> Result<()>;
    /// Locks (`true`) or unlocks the drive door (MTLOCK / MTUNLOCK).
    fn lock_door(&mut self, locked: bool) -> Result<()>;
    /// The logical block position from the beginning of the medium (MTIOCPOS).
    fn tell_block(&mut self) -> Result<u64>;
    /// Writes one block of exactly the block size.
    fn write_block(&mut self, block: &[u8]) -> Result<()>;
    /// Reads one block into `buf` (at least the block size); Ok(0) means a filemark was read and
    /// the position is now at the start of the next tape file.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<usize>;
    /// Skips forward over `count` blocks of `block_size` bytes inside the current tape file
    /// (MTFSR); a filemark before them is an error. This default reads and discards them; a
    /// virtual tape moves its position without reading.
    fn forward_blocks(&mut self, count: u64, block_size: u32) -> Result<()> {
        let mut buf = vec![0u8; block_size as usize];
        for _ in 0..count {
            if self.read_block(&mut buf)? == 0 {
                return Err(crate::TapeError::Format(format!(
                    "{}: the tape file ends before the block the catalog names",
                    self.name()
                )));
            }
        }
        Ok(())
    }
    /// Bytes that can still be written before the early-warning point, when the drive knows
    /// (a virtual tape does; a real drive does not and returns None).
    fn remaining_hint(&mut self) -> Option<u64> {
        None
    }
    /// The cartridge's label as the drive or library knows it (a barcode), when known.
    fn barcode(&self) -> Option<String> {
        None
    }
}
