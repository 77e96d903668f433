use super::*;

fn spec(capacity: u64, early_warning: u64) -> CartridgeSpec {
    CartridgeSpec {
        barcode: "T00001".into(),
        capacity,
        early_warning,
    }
}

fn tape(capacity: u64, early_warning: u64) -> (tempfile::TempDir, VirtualTape) {
    let dir = tempfile::tempdir().unwrap();
    let t =
        VirtualTape::create(&dir.path().join("T00001"), &spec(capacity, early_warning)).unwrap();
    (dir, t)
}

#[test]
fn files_filemarks_and_positioning() {
    let (_d, mut t) = tape(1 << 20, 1 << 20);
    t.set_block_size(4).unwrap();
    assert!(t.status().unwrap().bot);
    t.write_block(b"aaaa").unwrap();
    t.write_filemarks(1).unwrap();
    t.write_block(b"bbbb").unwrap();
    t.write_block(b"cccc").unwrap();
    t.write_filemarks(1).unwrap();
    t.write_block(b"dddd").unwrap();
    t.write_filemarks(1).unwrap();
    assert_eq!(t.file_count(), 3);

    t.rewind().unwrap();
    t.forward_files(1).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(t.read_block(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"bbbb");
    assert_eq!(t.status().unwrap().block_number, Some(1));
    assert_eq!(t.read_block(&mut buf).unwrap(), 4);
    assert_eq!(
        t.read_block(&mut buf).unwrap(),
        0,
        "a filemark reads as 0 bytes"
    );
    assert_eq!(t.status().unwrap().file_number, Some(2));
    assert_eq!(t.read_block(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"dddd");
    assert_eq!(t.read_block(&mut buf).unwrap(), 0);
    assert!(matches!(
        t.read_block(&mut buf),
        Err(TapeError::EndOfData { .. })
    ));

    // Backward over one filemark lands at the end of the file before it.
    t.backward_files(2).unwrap();
    assert_eq!(t.status().unwrap().file_number, Some(1));
    t.seek_end_of_data().unwrap();
    assert_eq!(t.status().unwrap().file_number, Some(3));
    assert!(t.status().unwrap().eod);

    // Writing in the middle erases everything after, as on a real tape.
    t.rewind().unwrap();
    t.forward_files(1).unwrap();
    t.write_block(b"eeee").unwrap();
    t.write_filemarks(1).unwrap();
    assert_eq!(t.file_count(), 2);
    assert_eq!(std::fs::read(t.file_path(1)).unwrap(), b"eeee");
    assert_eq!(t.used(), 8);

    // The state survives reopening.
    let t2 = VirtualTape::open(t.dir()).unwrap();
    assert_eq!(t2.file_count(), 2);
    assert_eq!(t2.used(), 8);
}

#[test]
fn end_of_medium_follows_the_kernel_rule() {
    // Early warning after 8 bytes, physical end at 16.
    let (_d, mut t) = tape(16, 8);
    t.set_block_size(4).unwrap();
    t.write_block(b"0000").unwrap();
    assert_eq!(t.remaining_hint(), Some(4));
    t.write_block(b"1111").unwrap(); // crosses the early warning: completes
    assert!(t.status().unwrap().eot);
    assert!(matches!(
        t.write_block(b"2222"),
        Err(TapeError::EndOfMedium { .. })
    ));
    t.write_block(b"TTTT").unwrap(); // the trailer
    assert!(matches!(
        t.write_block(b"3333"),
        Err(TapeError::EndOfMedium { .. })
    ));
    // Filemarks are always allowed.
    t.write_filemarks(1).unwrap();
    assert_eq!(std::fs::read(t.file_path(0)).unwrap(), b"00001111TTTT");
}

#[test]
fn the_physical_end_stops_writes() {
    let (_d, mut t) = tape(8, 8);
    t.set_block_size(4).unwrap();
    t.write_block(b"0000").unwrap();
    t.write_block(b"1111").unwrap();
    assert!(t.write_block(b"2222").is_err());
    assert!(
        t.write_block(b"3333").is_err(),
        "no room for a trailer past the physical end"
    );
    assert_eq!(t.used(), 8);
}

#[test]
fn write_protect_refuses_writes_and_filemarks() {
    let (_d, mut t) = tape(1024, 1024);
    t.set_write_protected(true).unwrap();
    let e = t.write_block(b"x").unwrap_err();
    assert!(matches!(e, TapeError::WriteProtected { .. }));
    assert!(e.to_string().contains("write-protect"));
    assert!(t.write_filemarks(1).is_err());
    assert!(t.status().unwrap().write_protected);
}

#[test]
fn fixed_blocks_are_enforced_and_bad_specs_refused() {
    let (d, mut t) = tape(1024, 1024);
    t.set_block_size(8).unwrap();
    assert!(matches!(
        t.write_block(b"short"),
        Err(TapeError::Invalid(_))
    ));
    assert!(VirtualTape::create(&d.path().join("X"), &spec(10, 20)).is_err());
    let mut s = spec(10, 10);
    s.barcode = "bad barcode".into();
    assert!(VirtualTape::create(&d.path().join("Y"), &s).is_err());
    assert!(VirtualTape::open(&d.path().join("nothing")).is_err());
}
