use super::*;
use std::collections::VecDeque;

/// A fake st device: each write or op takes its result from a script.
#[derive(Default)]
struct Fake {
    writes: VecDeque<std::result::Result<usize, Errno>>,
    reads: VecDeque<std::result::Result<usize, Errno>>,
    ops: Vec<MtOp>,
    gstat: u32,
}

impl StDevice for Fake {
    fn op(&mut self, op: MtOp) -> std::result::Result<(), Errno> {
        self.ops.push(op);
        Ok(())
    }
    fn get(&mut self) -> std::result::Result<MtGet, Errno> {
        Ok(MtGet {
            mt_gstat: self.gstat as libc::c_long,
            mt_fileno: 3,
            mt_blkno: 7,
            mt_dsreg: 262_144,
            ..MtGet::default()
        })
    }
    fn pos(&mut self) -> std::result::Result<MtPos, Errno> {
        Ok(MtPos { mt_blkno: 42 })
    }
    fn write(&mut self, buf: &[u8]) -> std::result::Result<usize, Errno> {
        self.writes.pop_front().unwrap_or(Ok(buf.len()))
    }
    fn read(&mut self, _buf: &mut [u8]) -> std::result::Result<usize, Errno> {
        self.reads.pop_front().unwrap_or(Ok(0))
    }
}

fn drive(f: Fake, read_only: bool) -> StDrive<Fake> {
    StDrive::with_device(Path::new("/dev/nst0"), f, read_only)
}

#[test]
fn enospc_after_the_early_warning_then_one_trailer_write() {
    let mut f = Fake {
        gstat: GMT_ONLINE,
        ..Fake::default()
    };
    // The write at the early warning completes, the next gets ENOSPC, one more is allowed.
    f.writes
        .extend([Ok(4), Err(Errno::ENOSPC), Ok(4), Err(Errno::ENOSPC)]);
    let mut d = drive(f, false);
    d.write_block(b"data").unwrap();
    let e = d.write_block(b"data").unwrap_err();
    assert!(matches!(e, TapeError::EndOfMedium { .. }), "{e}");
    assert!(e.to_string().contains("end of medium"));
    d.write_block(b"trlr").unwrap();
    assert!(matches!(
        d.write_block(b"more"),
        Err(TapeError::EndOfMedium { .. })
    ));
}

#[test]
fn eio_is_an_io_error_or_an_empty_drive() {
    let mut f = Fake {
        gstat: GMT_ONLINE,
        ..Fake::default()
    };
    f.writes.push_back(Err(Errno::EIO));
    f.reads.push_back(Err(Errno::EIO));
    let mut d = drive(f, false);
    let e = d.write_block(b"x").unwrap_err();
    assert!(
        matches!(&e, TapeError::Io { source, .. } if source.raw_os_error() == Some(libc::EIO)),
        "{e}"
    );
    assert!(e.to_string().contains("/dev/nst0"));
    let mut buf = [0u8; 4];
    assert!(matches!(d.read_block(&mut buf), Err(TapeError::Io { .. })));

    let mut f = Fake {
        gstat: GMT_DR_OPEN,
        ..Fake::default()
    };
    f.writes.push_back(Err(Errno::EIO));
    let e = drive(f, false).write_block(b"x").unwrap_err();
    assert!(matches!(e, TapeError::NoMedium { .. }), "{e}");
}

#[test]
fn erofs_and_read_only_opens_are_write_protect() {
    let mut f = Fake {
        gstat: GMT_ONLINE | GMT_WR_PROT,
        ..Fake::default()
    };
    f.writes.push_back(Err(Errno::EROFS));
    let mut d = drive(f, false);
    let e = d.write_block(b"x").unwrap_err();
    assert!(matches!(e, TapeError::WriteProtected { .. }), "{e}");
    assert!(d.status().unwrap().write_protected);

    let mut ro = drive(Fake::default(), true);
    assert!(matches!(
        ro.write_block(b"x"),
        Err(TapeError::WriteProtected { .. })
    ));
    assert!(matches!(
        ro.write_filemarks(1),
        Err(TapeError::WriteProtected { .. })
    ));
    assert!(matches!(
        drive(Fake::default(), false).map_errno("open", Errno::ENOMEDIUM),
        TapeError::NoMedium { .. }
    ));
    assert!(matches!(
        drive(Fake::default(), false).map_errno("read", Errno::ENOSPC),
        TapeError::EndOfData { .. }
    ));
}

#[test]
fn operations_become_mtioctop_calls_and_status_decodes() {
    let mut d = drive(
        Fake {
            gstat: GMT_ONLINE | GMT_BOT | GMT_EOF,
            ..Fake::default()
        },
        false,
    );
    d.rewind().unwrap();
    d.forward_files(2).unwrap();
    d.backward_files(1).unwrap();
    d.write_filemarks(1).unwrap();
    d.seek_end_of_data().unwrap();
    d.set_block_size(262_144).unwrap();
    d.lock_door(true).unwrap();
    d.lock_door(false).unwrap();
    d.load().unwrap();
    d.eject().unwrap();
    let ops: Vec<(i16, i32)> = d.dev.ops.iter().map(|o| (o.mt_op, o.mt_count)).collect();
    assert_eq!(
        ops,
        vec![
            (MTREW, 1),
            (MTFSF, 2),
            (MTBSF, 1),
            (MTWEOF, 1),
            (MTEOM, 1),
            (MTSETBLK, 262_144),
            (MTLOCK, 1),
            (MTUNLOCK, 1),
            (MTLOAD, 1),
            (MTOFFL, 1)
        ]
    );
    let s = d.status().unwrap();
    assert!(s.online && s.bot && s.eof && !s.eot && !s.write_protected);
    assert_eq!(
        (s.file_number, s.block_number, s.block_size),
        (Some(3), Some(7), 262_144)
    );
    assert_eq!(d.tell_block().unwrap(), 42);
    // A short write in fixed-block mode is the end of the medium.
    d.dev.writes.push_back(Ok(1));
    assert!(matches!(
        d.write_block(b"xy"),
        Err(TapeError::EndOfMedium { .. })
    ));
}
