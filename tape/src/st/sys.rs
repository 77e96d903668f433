//! The Linux st driver's ioctl interface (`<sys/mtio.h>`), defined here because nix has no tape
//! structs. A test compiles a C program against the system header and compares every number and
//! layout below with it (docs/tape.md, "The st driver").

/// `struct mtop`: one magnetic-tape operation for MTIOCTOP.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtOp {
    /// The operation (`MT*` below).
    pub mt_op: libc::c_short,
    /// How many times (or the argument, e.g. the block size for MTSETBLK).
    pub mt_count: libc::c_int,
}

/// `struct mtget`: the drive status returned by MTIOCGET.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtGet {
    /// Drive type.
    pub mt_type: libc::c_long,
    /// Residual count.
    pub mt_resid: libc::c_long,
    /// Device-dependent status: block size and density (`MT_ST_*` masks).
    pub mt_dsreg: libc::c_long,
    /// Generic status bits (`GMT_*`).
    pub mt_gstat: libc::c_long,
    /// Error register.
    pub mt_erreg: libc::c_long,
    /// Tape file number (`__daddr_t`, an int), -1 when unknown.
    pub mt_fileno: libc::c_int,
    /// Block number inside the file, -1 when unknown.
    pub mt_blkno: libc::c_int,
}

/// `struct mtpos`: the logical block position returned by MTIOCPOS.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtPos {
    /// The block number.
    pub mt_blkno: libc::c_long,
}

nix::ioctl_write_ptr!(mtioctop, b'm', 1, MtOp);
nix::ioctl_read!(mtiocget, b'm', 2, MtGet);
nix::ioctl_read!(mtiocpos, b'm', 3, MtPos);

/// The MTIOCTOP request number.
pub const MTIOCTOP: u64 = nix::request_code_write!(b'm', 1, std::mem::size_of::<MtOp>()) as u64;
/// The MTIOCGET request number.
pub const MTIOCGET: u64 = nix::request_code_read!(b'm', 2, std::mem::size_of::<MtGet>()) as u64;
/// The MTIOCPOS request number.
pub const MTIOCPOS: u64 = nix::request_code_read!(b'm', 3, std::mem::size_of::<MtPos>()) as u64;

/// Forward space over filemarks.
pub const MTFSF: i16 = 1;
/// Backward space over filemarks.
pub const MTBSF: i16 = 2;
/// Write filemarks.
pub const MTWEOF: i16 = 5;
/// Rewind.
pub const MTREW: i16 = 6;
/// Rewind and put the drive offline (eject).
pub const MTOFFL: i16 = 7;
/// Go to the end of recorded data.
pub const MTEOM: i16 = 12;
/// Set the block size (0 = variable).
pub const MTSETBLK: i16 = 20;
/// Lock the drive door.
pub const MTLOCK: i16 = 28;
/// Unlock the drive door.
pub const MTUNLOCK: i16 = 29;
/// Load the tape.
pub const MTLOAD: i16 = 30;

/// GMT status bit: at a filemark.
pub const GMT_EOF: u32 = 0x8000_0000;
/// GMT status bit: at the beginning of the tape.
pub const GMT_BOT: u32 = 0x4000_0000;
/// GMT status bit: at the end of the tape (early warning passed).
pub const GMT_EOT: u32 = 0x2000_0000;
/// GMT status bit: at the end of recorded data.
pub const GMT_EOD: u32 = 0x0800_0000;
/// GMT status bit: the tape is write-protected.
pub const GMT_WR_PROT: u32 = 0x0400_0000;
/// GMT status bit: the drive is online (a tape is loaded).
pub const GMT_ONLINE: u32 = 0x0100_0000;
/// GMT status bit: the door is open (no tape).
pub const GMT_DR_OPEN: u32 = 0x0004_0000;
/// Mask of the block size in `mt_dsreg`.
pub const MT_ST_BLKSIZE_MASK: u64 = 0x00ff_ffff;
/// Shift of the block size in `mt_dsreg`.
pub const MT_ST_BLKSIZE_SHIFT: u32 = 0;
