#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The on-tape format through a virtual library: GNU tar alone extracts every archive file,
//! archives span media at file boundaries, scan rebuilds the catalog, and failures leave no
//! archive recorded as complete (docs/tape-format.md, docs/tape.md).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use bms_tape::changer::LibraryChanger;
use bms_tape::format::catalog::Catalog;
use bms_tape::format::label::Label;
use bms_tape::format::pax::Kind;
use bms_tape::format::reader::{label_medium, read_archive, scan, ReadMode};
use bms_tape::format::source::scan_tree;
use bms_tape::format::writer::{write_archive, ArchiveSpec, SingleDrive};
use bms_tape::format::DEFAULT_BLOCK_SIZE;
use bms_tape::library::VirtualLibrary;
use bms_tape::virtual_tape::{CartridgeSpec, VirtualTape};
use bms_tape::{DriveStatus, TapeDrive, TapeError};

const MIB: u64 = 1 << 20;

fn set_mtime(p: &Path, secs: i64, nanos: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// A tree with nested directories, odd modes, a long path, a symlink, an empty file and
/// files of a few MiB (about 7 MiB in all).
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/conf.d")).unwrap();
    fs::create_dir_all(root.join("data")).unwrap();
    let long = root.join(format!("data/{}", "deep-directory-name/".repeat(8)));
    fs::create_dir_all(&long).unwrap();
    fs::write(long.join("file-with-a-long-path.txt"), b"long path\n").unwrap();
    fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("etc/conf.d/empty"), b"").unwrap();
    fs::set_permissions(root.join("etc/hosts"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(
        root.join("etc/conf.d/empty"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    for i in 0..4u8 {
        let data: Vec<u8> = (0..(MIB as usize + 1234 * usize::from(i) + 1))
            .map(|n| (n as u8).wrapping_mul(31).wrapping_add(i))
            .collect();
        fs::write(root.join(format!("data/blob{i}.bin")), data).unwrap();
    }
    fs::write(root.join("data/big.bin"), vec![7u8; 3 * MIB as usize]).unwrap();
    std::os::unix::fs::symlink("../etc/hosts", root.join("data/hosts-link")).unwrap();
    nix::unistd::chown(
        &root.join("etc/hosts"),
        Some(1234.into()),
        Some(4321.into()),
    )
    .unwrap();
    for (i, e) in walk(root).iter().enumerate() {
        set_mtime(e, 1_600_000_000 + i as i64 * 1000, 123_456_789);
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out.sort();
    out
}

/// Compares two trees: kinds, contents, symlink targets, modes, owners, mtimes (to the second
/// when `nanos` is false: GNU tar keeps the pax mtime's fraction only on some paths).
fn assert_same_tree(a: &Path, b: &Path) {
    let rel = |root: &Path, v: Vec<PathBuf>| -> Vec<PathBuf> {
        v.into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    let ea = rel(a, walk(a));
    let eb = rel(b, walk(b));
    assert_eq!(ea, eb, "the trees hold different paths");
    for r in ea {
        let (pa, pb) = (a.join(&r), b.join(&r));
        let (ma, mb) = (
            fs::symlink_metadata(&pa).unwrap(),
            fs::symlink_metadata(&pb).unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{r:?}");
        assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "owner of {r:?}");
        if ma.file_type().is_symlink() {
            assert_eq!(
                fs::read_link(&pa).unwrap(),
                fs::read_link(&pb).unwrap(),
                "{r:?}"
            );
            continue;
        }
        assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "mode of {r:?}");
        assert_eq!(ma.mtime(), mb.mtime(), "mtime of {r:?}");
        if ma.is_file() {
            assert_eq!(
                fs::read(&pa).unwrap(),
                fs::read(&pb).unwrap(),
                "content of {r:?}"
            );
        }
    }
}

fn tar_extract(file: &Path, into: &Path) {
    fs::create_dir_all(into).unwrap();
    let out = Command::new("tar")
        .args(["-x", "-b", "512", "-f"])
        .arg(file)
        .arg("-C")
        .arg(into)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GNU tar failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn library(root: &Path, carts: &[(&str, u64)]) -> VirtualLibrary {
    fs::create_dir_all(root).unwrap();
    let lib = VirtualLibrary::create(&root.join("lib"), 8, 1).unwrap();
    for (i, (barcode, capacity)) in carts.iter().enumerate() {
        let spec = CartridgeSpec {
            barcode: barcode.to_string(),
            capacity: *capacity,
            early_warning: capacity - capacity / 16,
        };
        lib.add_cartridge(i as u32 + 1, &spec).unwrap();
        let mut ch = LibraryChanger::new(&lib, 0, vec![barcode.to_string()]).unwrap();
        let drive = ch.mount(barcode).unwrap();
        label_medium(
            drive,
            &Label {
                barcode: barcode.to_string(),
                pool: "weekly".into(),
                media_set: "set-1".into(),
                sequence: i as u32 + 1,
                labelled: 1_700_000_000,
                block_size: DEFAULT_BLOCK_SIZE,
            },
        )
        .unwrap();
    }
    lib
}

fn spec() -> ArchiveSpec {
    ArchiveSpec {
        snapshot: "snap-1".into(),
        job: "tree".into(),
    }
}

#[test]
fn gnu_tar_alone_extracts_an_archive_and_bms_restores_one_path() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let lib = library(tmp.path(), &[("A00001", 64 * MIB)]);
    let mut ch = LibraryChanger::new(&lib, 0, vec!["A00001".into()]).unwrap();
    let cats = write_archive(&mut ch, &spec(), &scan_tree(&src).unwrap()).unwrap();
    assert_eq!(cats.len(), 1);
    assert!(cats[0].last);
    assert_eq!(cats[0].archive_file, 1);
    let cart = lib.cartridge_dir("A00001").unwrap();
    let archive = cart.join("file-000001");
    assert_eq!(
        fs::metadata(&archive).unwrap().len() % u64::from(DEFAULT_BLOCK_SIZE),
        0,
        "whole blocks"
    );

    // Acceptance 1: GNU tar alone.
    let out = tmp.path().join("tar-out");
    tar_extract(&archive, &out);
    assert_same_tree(&src, &out);

    // The catalog's offsets point at each member's headers, hashes match the source.
    let bytes = fs::read(&archive).unwrap();
    for e in &cats[0].entries {
        let name = String::from_utf8_lossy(&e.path);
        assert_eq!(
            bytes[e.offset as usize + 156],
            b'x',
            "{name}: pax header at its offset"
        );
        if e.size > 0 {
            assert_eq!(
                e.hash,
                blake3::hash(&fs::read(src.join(&*name)).unwrap())
                    .to_hex()
                    .as_str()
            );
        }
    }

    // A second backup appends as tape files 3 and 4; restore of one path reads only its file.
    let cats2 = write_archive(
        &mut ch,
        &ArchiveSpec {
            snapshot: "snap-2".into(),
            job: "tree".into(),
        },
        &scan_tree(&src.join("etc")).unwrap(),
    )
    .unwrap();
    assert_eq!(cats2[0].archive_file, 3);
    let drive = ch.mount("A00001").unwrap();
    let dest = tmp.path().join("one");
    let want: &dyn Fn(&[u8]) -> bool = &|p| p == b"hosts";
    let rep = read_archive(
        drive,
        &cats2[0],
        DEFAULT_BLOCK_SIZE,
        ReadMode::Restore {
            dest: &dest,
            filter: Some(want),
        },
    )
    .unwrap();
    assert_eq!(rep.members, 1);
    assert_eq!(
        fs::read(dest.join("hosts")).unwrap(),
        fs::read(src.join("etc/hosts")).unwrap()
    );
    assert!(
        rep.tape_bytes <= 2 * u64::from(DEFAULT_BLOCK_SIZE),
        "only the blocks holding it were read: {} bytes",
        rep.tape_bytes
    );

    // Verify reads back every hash; scan rebuilds both catalogs from the tape alone.
    let v = read_archive(drive, &cats[0], DEFAULT_BLOCK_SIZE, ReadMode::Verify).unwrap();
    assert!(v.mismatched.is_empty());
    assert_eq!(v.bytes, cats[0].entries.iter().map(|e| e.size).sum::<u64>());
    let (label, scanned) = scan(drive).unwrap();
    assert_eq!(label.barcode, "A00001");
    assert_eq!(scanned, vec![cats[0].clone(), cats2[0].clone()]);

    // Damage on tape is found by verify.
    drop(ch);
    let mut bytes = fs::read(&archive).unwrap();
    let e = cats[0].entries.iter().find(|e| e.size > 1000).unwrap();
    bytes[(e.offset + 3 * 512 + 10) as usize] ^= 0xff;
    fs::write(&archive, bytes).unwrap();
    let mut ch = LibraryChanger::new(&lib, 0, vec!["A00001".into()]).unwrap();
    let drive = ch.mount("A00001").unwrap();
    let v = read_archive(drive, &cats[0], DEFAULT_BLOCK_SIZE, ReadMode::Verify).unwrap();
    assert_eq!(
        v.mismatched,
        vec![String::from_utf8_lossy(&e.path).into_owned()]
    );
}

#[test]
fn an_archive_spans_two_media_each_a_complete_tar() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    // 6 MiB cartridges (early warning at 5.6 MiB) for a 7 MiB tree.
    let lib = library(tmp.path(), &[("B00001", 6 * MIB), ("B00002", 6 * MIB)]);
    let mut ch = LibraryChanger::new(&lib, 0, vec!["B00001".into(), "B00002".into()]).unwrap();
    let cats = write_archive(&mut ch, &spec(), &scan_tree(&src).unwrap()).unwrap();
    assert_eq!(cats.len(), 2, "two volumes");
    assert_eq!((cats[0].barcode.as_str(), cats[0].last), ("B00001", false));
    assert_eq!((cats[1].barcode.as_str(), cats[1].last), ("B00002", true));
    let files: Vec<_> = cats
        .iter()
        .flat_map(|c| c.entries.iter())
        .filter(|e| e.kind != Kind::Dir)
        .collect();
    let want = scan_tree(&src)
        .unwrap()
        .into_iter()
        .filter(|e| e.meta.kind != Kind::Dir)
        .count();
    assert_eq!(files.len(), want, "every file on exactly one medium");
    assert_eq!(
        cats[1].entries[0].kind,
        Kind::Dir,
        "the second volume repeats its directories"
    );

    // Each volume extracts with tar on its own; together they are the tree.
    let both = tmp.path().join("tar-both");
    for (i, c) in cats.iter().enumerate() {
        let file = lib.cartridge_dir(&c.barcode).unwrap().join("file-000001");
        tar_extract(&file, &tmp.path().join(format!("tar-{i}")));
        tar_extract(&file, &both);
    }
    assert_same_tree(&src, &both);

    // bms restore across both volumes is exact.
    let dest = tmp.path().join("bms-restore");
    for c in &cats {
        let drive = ch.mount(&c.barcode).unwrap();
        let r = read_archive(
            drive,
            c,
            DEFAULT_BLOCK_SIZE,
            ReadMode::Restore {
                dest: &dest,
                filter: None,
            },
        )
        .unwrap();
        assert!(r.mismatched.is_empty());
    }
    assert_same_tree(&src, &dest);

    // A path restore positions to the member with the catalog's offset: of a volume of
    // several MiB, it reads only the blocks holding the member.
    let late = cats[0]
        .entries
        .iter()
        .filter(|e| e.kind == Kind::File && e.size > 0)
        .max_by_key(|e| e.offset)
        .unwrap();
    assert!(late.offset > 4 * u64::from(DEFAULT_BLOCK_SIZE), "{late:?}");
    let path = late.path.clone();
    let one = tmp.path().join("late");
    let wanted = path.clone();
    let pick: &dyn Fn(&[u8]) -> bool = &move |p| p == wanted.as_slice();
    let drive = ch.mount(&cats[0].barcode).unwrap();
    let r = read_archive(
        drive,
        &cats[0],
        DEFAULT_BLOCK_SIZE,
        ReadMode::Restore {
            dest: &one,
            filter: Some(pick),
        },
    )
    .unwrap();
    assert_eq!((r.members, r.mismatched.len()), (1, 0), "{r:?}");
    let rel = std::str::from_utf8(&path).unwrap();
    assert_eq!(
        fs::read(one.join(rel)).unwrap(),
        fs::read(src.join(rel)).unwrap()
    );
    assert!(
        r.tape_bytes <= late.size + 3 * u64::from(DEFAULT_BLOCK_SIZE)
            && r.tape_bytes < cats[0].archive_bytes / 2,
        "read {} of {} bytes",
        r.tape_bytes,
        cats[0].archive_bytes
    );

    // A single file larger than a whole cartridge is refused with a clear error.
    let lib2 = library(&tmp.path().join("l2"), &[("C00001", 2 * MIB)]);
    let mut ch2 = LibraryChanger::new(&lib2, 0, vec!["C00001".into()]).unwrap();
    let big: Vec<_> = scan_tree(&src)
        .unwrap()
        .into_iter()
        .filter(|e| e.meta.path == b"data/big.bin")
        .collect();
    let e = write_archive(&mut ch2, &spec(), &big).unwrap_err();
    assert!(
        e.to_string().contains("does not fit on an empty cartridge"),
        "{e}"
    );
}

/// A virtual tape that, like a real drive, does not tell how much room is left.
struct NoHint(VirtualTape);

impl TapeDrive for NoHint {
    fn name(&self) -> String {
        self.0.name()
    }
    fn status(&mut self) -> bms_tape::Result<DriveStatus> {
        self.0.status()
    }
    fn rewind(&mut self) -> bms_tape::Result<()> {
        self.0.rewind()
    }
    fn forward_files(&mut self, c: u32) -> bms_tape::Result<()> {
        self.0.forward_files(c)
    }
    fn backward_files(&mut self, c: u32) -> bms_tape::Result<()> {
        self.0.backward_files(c)
    }
    fn write_filemarks(&mut self, c: u32) -> bms_tape::Result<()> {
        self.0.write_filemarks(c)
    }
    fn seek_end_of_data(&mut self) -> bms_tape::Result<()> {
        self.0.seek_end_of_data()
    }
    fn set_block_size(&mut self, s: u32) -> bms_tape::Result<()> {
        self.0.set_block_size(s)
    }
    fn load(&mut self) -> bms_tape::Result<()> {
        self.0.load()
    }
    fn eject(&mut self) -> bms_tape::Result<()> {
        self.0.eject()
    }
    fn lock_door(&mut self, l: bool) -> bms_tape::Result<()> {
        self.0.lock_door(l)
    }
    fn tell_block(&mut self) -> bms_tape::Result<u64> {
        self.0.tell_block()
    }
    fn write_block(&mut self, b: &[u8]) -> bms_tape::Result<()> {
        self.0.write_block(b)
    }
    fn read_block(&mut self, b: &mut [u8]) -> bms_tape::Result<usize> {
        self.0.read_block(b)
    }
}

#[test]
fn write_protect_empty_drive_and_end_of_medium_fail_clearly_and_record_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let entries = scan_tree(&src).unwrap();

    // Write-protected.
    let lib = library(tmp.path(), &[("D00001", 64 * MIB)]);
    let mut ch = LibraryChanger::new(&lib, 0, vec!["D00001".into()]).unwrap();
    let dir = ch.mount("D00001").unwrap().cartridge_dir().unwrap();
    VirtualTape::open(&dir)
        .unwrap()
        .set_write_protected(true)
        .unwrap();
    let mut ch = LibraryChanger::new(&lib, 0, vec!["D00001".into()]).unwrap();
    let e = write_archive(&mut ch, &spec(), &entries).unwrap_err();
    assert!(matches!(e, TapeError::WriteProtected { .. }), "{e}");
    assert!(e.to_string().contains("write-protect"));

    // Empty drive.
    let mut empty = lib.drive(0).unwrap();
    lib.unload(0).unwrap();
    let e = write_archive(&mut SingleDrive(&mut empty), &spec(), &entries).unwrap_err();
    assert!(matches!(e, TapeError::NoMedium { .. }), "{e}");
    assert!(e.to_string().contains("load one"));

    // End of medium in the middle of the archive on a drive that gives no size hint.
    let cart = tmp.path().join("E00001");
    let mut t = VirtualTape::create(
        &cart,
        &CartridgeSpec {
            barcode: "E00001".into(),
            capacity: 4 * MIB,
            early_warning: 3 * MIB,
        },
    )
    .unwrap();
    label_medium(
        &mut t,
        &Label {
            barcode: "E00001".into(),
            pool: "p".into(),
            media_set: "s".into(),
            sequence: 1,
            labelled: 0,
            block_size: DEFAULT_BLOCK_SIZE,
        },
    )
    .unwrap();
    let mut d = NoHint(t);
    let e = write_archive(&mut SingleDrive(&mut d), &spec(), &entries).unwrap_err();
    assert!(matches!(e, TapeError::IncompleteArchive(_)), "{e}");
    assert!(e.to_string().contains("incomplete"), "{e}");
    // The tape holds the label and a partial archive but no catalog: scan finds no archive.
    let (_, cats): (_, Vec<Catalog>) = scan(&mut d).unwrap();
    assert!(cats.is_empty());
}
