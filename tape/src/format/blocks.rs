//! Fixed-size blocks on a drive: a writer that cuts a byte stream into blocks, and a reader that
//! turns the blocks of one tape file back into a byte stream.

use std::io;

use crate::drive::TapeDrive;
use crate::{Result, TapeError};

/// Cuts bytes into blocks of a fixed size and writes them.
pub struct BlockWriter {
    block: Vec<u8>,
    size: usize,
    written: u64,
}

impl BlockWriter {
    /// A writer of `size`-byte blocks.
    pub fn new(size: u32) -> BlockWriter {
        BlockWriter {
            block: Vec::with_capacity(size as usize),
            size: size as usize,
            written: 0,
        }
    }

    /// Bytes accepted so far (the offset of the next byte in the tape file).
    pub fn offset(&self) -> u64 {
        self.written + self.block.len() as u64
    }

    /// Appends bytes, writing every block that fills.
    pub fn write(&mut self, drive: &mut dyn TapeDrive, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let take = (self.size - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == self.size {
                drive.write_block(&self.block)?;
                self.written += self.size as u64;
                self.block.clear();
            }
        }
        Ok(())
    }

    /// Pads the last block with zeros and writes it; returns the tape file's length in bytes.
    pub fn finish(&mut self, drive: &mut dyn TapeDrive) -> Result<u64> {
        if !self.block.is_empty() {
            self.block.resize(self.size, 0);
            drive.write_block(&self.block)?;
            self.written += self.size as u64;
            self.block.clear();
        }
        Ok(self.written)
    }
}

/// Reads one tape file as bytes, block by block, until its filemark.
pub struct BlockReader<'a> {
    drive: &'a mut dyn TapeDrive,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    at_mark: bool,
    /// Bytes read from the drive so far.
    pub bytes_read: u64,
}

impl<'a> BlockReader<'a> {
    /// A reader of `block_size`-byte blocks at the drive's position.
    pub fn new(drive: &'a mut dyn TapeDrive, block_size: u32) -> BlockReader<'a> {
        BlockReader {
            drive,
            buf: vec![0; block_size as usize],
            pos: 0,
            len: 0,
            at_mark: false,
            bytes_read: 0,
        }
    }

    /// Whether the filemark ending the file was read.
    pub fn at_filemark(&self) -> bool {
        self.at_mark
    }

    /// Reads to the end of the tape file (past its filemark).
    pub fn skip_rest(&mut self) -> Result<()> {
        while !self.at_mark {
            self.fill()?;
            self.pos = self.len;
        }
        Ok(())
    }

    fn fill(&mut self) -> Result<()> {
        if self.pos < self.len || self.at_mark {
            return Ok(());
        }
        match self.drive.read_block(&mut self.buf) {
            Ok(0) => self.at_mark = true,
            Ok(n) => {
                self.bytes_read += n as u64;
                self.pos = 0;
                self.len = n;
            }
            Err(TapeError::EndOfData { .. }) => self.at_mark = true,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

impl io::Read for BlockReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.fill().map_err(io::Error::other)?;
        let n = (self.len - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
