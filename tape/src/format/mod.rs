//! The on-tape format (docs/tape-format.md): file 0 is the [`label::Label`]; each backup is one
//! pax tar archive in fixed blocks ([`writer::write_archive`]), followed by its
//! [`catalog::Catalog`] file. GNU tar alone can list and extract every archive file.

pub mod blocks;
pub mod catalog;
pub mod label;
pub mod pax;
pub mod reader;
pub mod source;
pub mod writer;

/// The default block size: 256 KiB, `tar -b 512`.
pub const DEFAULT_BLOCK_SIZE: u32 = 256 * 1024;
