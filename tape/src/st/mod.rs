//! The Linux st driver (`/dev/nst*`, the non-rewinding devices) as a [`TapeDrive`]
//! (docs/tape.md, "The st driver").
//!
//! Every system call goes through the [`StDevice`] trait so the error mapping can be tested with
//! an injected errno; [`DeviceFile`] is the real device. End of medium follows the kernel: at the
//! early warning the write completes, the next write fails with ENOSPC (reported as
//! [`TapeError::EndOfMedium`]), and one more write is allowed for a trailer.

pub mod sys;

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::drive::{DriveStatus, TapeDrive};
use crate::{Result, TapeError};
use sys::*;

/// The system calls the driver makes: the real device, or a fake in tests.
pub trait StDevice: Send {
    /// MTIOCTOP.
    fn op(&mut self, op: MtOp) -> std::result::Result<(), Errno>;
    /// MTIOCGET.
    fn get(&mut self) -> std::result::Result<MtGet, Errno>;
    /// MTIOCPOS.
    fn pos(&mut self) -> std::result::Result<MtPos, Errno>;
    /// write(2) of one block.
    fn write(&mut self, buf: &[u8]) -> std::result::Result<usize, Errno>;
    /// read(2) of one block.
    fn read(&mut self, buf: &mut [u8]) -> std::result::Result<usize, Errno>;
}

/// An opened st character device.
#[derive(Debug)]
pub struct DeviceFile {
    file: File,
}

fn errno_of(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

impl DeviceFile {
    /// Opens `path` read-write (read-only when the tape is write-protected: the kernel refuses a
    /// read-write open with EROFS). Returns the device and whether it was opened read-only.
    pub fn open(path: &Path) -> Result<(DeviceFile, bool)> {
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
        };
        match open(true) {
            Ok(file) => Ok((DeviceFile { file }, false)),
            Err(e)
                if e.raw_os_error() == Some(libc::EROFS)
                    || e.raw_os_error() == Some(libc::EACCES) =>
            {
                let file = open(false).map_err(|e| {
                    TapeError::io(format!("opening tape device {}", path.display()), e)
                })?;
                Ok((DeviceFile { file }, true))
            }
            Err(e) => Err(TapeError::io(
                format!(
                    "opening tape device {} (is it a /dev/nst* device you may use?)",
                    path.display()
                ),
                e,
            )),
        }
    }
}

impl StDevice for DeviceFile {
    fn op(&mut self, op: MtOp) -> std::result::Result<(), Errno> {
        // SAFETY: the fd is open for the lifetime of self and `op` is a valid `struct mtop`.
        unsafe { mtioctop(self.file.as_raw_fd(), &op) }.map(|_| ())
    }
    fn get(&mut self) -> std::result::Result<MtGet, Errno> {
        let mut g = MtGet::default();
        // SAFETY: the fd is open and `g` is a writable `struct mtget` of the kernel's layout.
        unsafe { mtiocget(self.file.as_raw_fd(), &mut g) }?;
        Ok(g)
    }
    fn pos(&mut self) -> std::result::Result<MtPos, Errno> {
        let mut p = MtPos::default();
        // SAFETY: the fd is open and `p` is a writable `struct mtpos` of the kernel's layout.
        unsafe { mtiocpos(self.file.as_raw_fd(), &mut p) }?;
        Ok(p)
    }
    fn write(&mut self, buf: &[u8]) -> std::result::Result<usize, Errno> {
        self.file.write(buf).map_err(errno_of)
    }
    fn read(&mut self, buf: &mut [u8]) -> std::result::Result<usize, Errno> {
        self.file.read(buf).map_err(errno_of)
    }
}

/// A tape drive behind the Linux st driver.
pub struct StDrive<D: StDevice = DeviceFile> {
    path: PathBuf,
    dev: D,
    read_only: bool,
    block_size: u32,
}

impl StDrive<DeviceFile> {
    /// Opens the st device `path` (use the non-rewinding `/dev/nstN`).
    pub fn open(path: &Path) -> Result<StDrive<DeviceFile>> {
        let (dev, read_only) = DeviceFile::open(path)?;
        Ok(StDrive::with_device(path, dev, read_only))
    }
}

impl<D: StDevice> StDrive<D> {
    /// A driver over any [`StDevice`] (tests inject errors this way).
    pub fn with_device(path: &Path, dev: D, read_only: bool) -> StDrive<D> {
        StDrive {
            path: path.to_path_buf(),
            dev,
            read_only,
            block_size: 0,
        }
    }

    fn medium(&self) -> String {
        format!("in {}", self.path.display())
    }

    /// Maps an errno of operation `what` to the crate's error, as docs/tape.md lists.
    pub fn map_errno(&self, what: &str, e: Errno) -> TapeError {
        match e {
            Errno::ENOSPC if what == "write" => TapeError::EndOfMedium { medium: self.medium() },
            Errno::ENOSPC => TapeError::EndOfData { medium: self.medium() },
            Errno::EROFS | Errno::EACCES => TapeError::WriteProtected { medium: self.medium() },
            Errno::ENOMEDIUM => TapeError::NoMedium {
                drive: self.path.display().to_string(),
            },
            Errno::ENOMEM if what == "read" => TapeError::Invalid(format!(
                "a tape block on {} is larger than the read buffer: the tape was written with a larger block size; set it with `mt -f {} setblk SIZE`",
                self.path.display(),
                self.path.display()
            )),
            other => TapeError::io(
                format!("{what} on {}", self.path.display()),
                std::io::Error::from_raw_os_error(other as i32),
            ),
        }
    }

    fn mtop(&mut self, what: &str, op: i16, count: i32) -> Result<()> {
        self.dev
            .op(MtOp {
                mt_op: op,
                mt_count: count,
            })
            .map_err(|e| self.map_errno(what, e))
    }

    fn count(n: u32) -> Result<i32> {
        i32::try_from(n)
            .map_err(|_| TapeError::Invalid(format!("a tape operation count of {n} is too large")))
    }

    fn need_online(&mut self) -> Result<()> {
        let g = self.dev.get().map_err(|e| self.map_errno("status", e))?;
        if (g.mt_gstat as u32) & GMT_ONLINE == 0 {
            return Err(TapeError::NoMedium {
                drive: self.path.display().to_string(),
            });
        }
        Ok(())
    }
}

/// Converts an MTIOCGET reply into a [`DriveStatus`].
pub fn decode_status(g: &MtGet) -> DriveStatus {
    let s = g.mt_gstat as u32;
    DriveStatus {
        online: s & GMT_ONLINE != 0,
        bot: s & GMT_BOT != 0,
        eof: s & GMT_EOF != 0,
        eot: s & GMT_EOT != 0,
        eod: s & GMT_EOD != 0,
        write_protected: s & GMT_WR_PROT != 0,
        door_open: s & GMT_DR_OPEN != 0,
        file_number: u64::try_from(g.mt_fileno).ok(),
        block_number: u64::try_from(g.mt_blkno).ok(),
        block_size: (((g.mt_dsreg as u64) & MT_ST_BLKSIZE_MASK) >> MT_ST_BLKSIZE_SHIFT) as u32,
    }
}

impl<D: StDevice> TapeDrive for StDrive<D> {
    fn name(&self) -> String {
        format!("tape drive {}", self.path.display())
    }
    fn status(&mut self) -> Result<DriveStatus> {
        let g = self.dev.get().map_err(|e| self.map_errno("status", e))?;
        let mut s = decode_status(&g);
        s.write_protected |= self.read_only && s.online;
        Ok(s)
    }
    fn rewind(&mut self) -> Result<()> {
        self.mtop("rewind", MTREW, 1)
    }
    fn forward_files(&mut self, count: u32) -> Result<()> {
        let c = Self::count(count)?;
        self.mtop("forward space file", MTFSF, c)
    }
    fn backward_files(&mut self, count: u32) -> Result<()> {
        let c = Self::count(count)?;
        self.mtop("backward space file", MTBSF, c)
    }
    fn write_filemarks(&mut self, count: u32) -> Result<()> {
        if self.read_only {
            return Err(TapeError::WriteProtected {
                medium: self.medium(),
            });
        }
        let c = Self::count(count)?;
        self.mtop("write filemark", MTWEOF, c)
    }
    fn seek_end_of_data(&mut self) -> Result<()> {
        self.mtop("space to end of data", MTEOM, 1)
    }
    fn set_block_size(&mut self, size: u32) -> Result<()> {
        let c = Self::count(size)?;
        self.mtop("set block size", MTSETBLK, c)?;
        self.block_size = size;
        Ok(())
    }
    fn load(&mut self) -> Result<()> {
        self.mtop("load", MTLOAD, 1)
    }
    fn eject(&mut self) -> Result<()> {
        self.mtop("eject", MTOFFL, 1)
    }
    fn lock_door(&mut self, locked: bool) -> Result<()> {
        if locked {
            self.mtop("lock door", MTLOCK, 1)
        } else {
            self.mtop("unlock door", MTUNLOCK, 1)
        }
    }
    fn tell_block(&mut self) -> Result<u64> {
        let p = self
            .dev
            .pos()
            .map_err(|e| self.map_errno("tell position", e))?;
        u64::try_from(p.mt_blkno).map_err(|_| {
            TapeError::Invalid(format!("{} reports no block position", self.path.display()))
        })
    }
    fn write_block(&mut self, block: &[u8]) -> Result<()> {
        if self.read_only {
            return Err(TapeError::WriteProtected {
                medium: self.medium(),
            });
        }
        let n = match self.dev.write(block) {
            Ok(n) => n,
            Err(Errno::EIO) => {
                // EIO on a write can be an empty drive: say so when the status shows it.
                self.need_online()?;
                return Err(self.map_errno("write", Errno::EIO));
            }
            Err(e) => return Err(self.map_errno("write", e)),
        };
        if n != block.len() {
            // A short write in fixed-block mode is the end of the medium.
            return Err(TapeError::EndOfMedium {
                medium: self.medium(),
            });
        }
        Ok(())
    }
    fn read_block(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.dev.read(buf).map_err(|e| self.map_errno("read", e))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
