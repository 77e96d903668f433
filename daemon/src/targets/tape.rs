//! What a tape target's path names (docs/tape.md, "Tape targets"): a virtual tape library
//! directory (it holds a `library` file) and one of its drives, or a Linux st device such as
//! /dev/nst0 with its cartridge loaded by hand or by a changer bms does not drive.

use super::{Kind, Target};
use bms_tape::library::VirtualLibrary;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where a tape target writes.
#[derive(Debug, Clone)]
pub enum TapeSink {
    /// A virtual tape library and the number of the drive to use.
    Library { library: VirtualLibrary, drive: u32 },
    /// A tape device (the st driver's non-rewinding node).
    Device(PathBuf),
}

/// The drives in use by this bmsd: a tape copy, verification or restore holds its drive's lock
/// while it loads cartridges and reads or writes, so that two runs never swap the cartridge
/// under each other (a second one waits for the first).
static DRIVES: Mutex<Vec<DriveLock>> = Mutex::new(Vec::new());

/// A drive (library or device path, drive number) and its lock.
type DriveLock = (PathBuf, u32, Arc<Mutex<()>>);

/// The lock of the drive a sink names (a library's drive, or a device).
pub fn drive_lock(sink: &TapeSink) -> Arc<Mutex<()>> {
    let (path, drive) = match sink {
        TapeSink::Library { library, drive } => (library.root().to_path_buf(), *drive),
        TapeSink::Device(p) => (p.clone(), 0),
    };
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    let mut all = DRIVES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, _, l)) = all.iter().find(|(p, d, _)| *p == path && *d == drive) {
        return l.clone();
    }
    let l = Arc::new(Mutex::new(()));
    all.push((path, drive, l.clone()));
    l
}

/// The parts of a tape target: its path, pool and drive number.
pub fn parts(target: &Target) -> Option<(&Path, Option<&str>, u32)> {
    match &target.kind {
        Kind::Tape {
            device,
            pool,
            drive,
        } => Some((device.as_path(), pool.as_deref(), *drive)),
        _ => None,
    }
}

/// Opens what a tape target names; the error says what is wrong and what to do.
pub fn open_sink(target: &Target) -> Result<TapeSink, String> {
    let Some((path, _, drive)) = parts(target) else {
        return Err(format!("target '{}' is not a tape target", target.name));
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "tape target '{}': {} cannot be opened ({e}): give a virtual tape library \
             directory (`bmsctl tape create-library`) or a tape device such as /dev/nst0",
            target.name,
            path.display()
        )
    })?;
    if meta.is_dir() {
        let library = VirtualLibrary::open(path).map_err(|e| {
            format!(
                "tape target '{}': {} is not a virtual tape library ({e}); create one with \
                 `bmsctl tape create-library {}`",
                target.name,
                path.display(),
                path.display()
            )
        })?;
        if drive >= library.drives() {
            return Err(format!(
                "tape target '{}': the library {} has {} drive(s), numbered from 0; drive {drive} \
                 does not exist: `bmsctl target edit {} --drive 0`",
                target.name,
                path.display(),
                library.drives(),
                target.name
            ));
        }
        return Ok(TapeSink::Library { library, drive });
    }
    use std::os::unix::fs::FileTypeExt;
    if meta.file_type().is_char_device() {
        return Ok(TapeSink::Device(path.to_path_buf()));
    }
    Err(format!(
        "tape target '{}': {} is neither a virtual tape library directory nor a tape device; \
         use /dev/nstN (non-rewinding) or a directory made by `bmsctl tape create-library`",
        target.name,
        path.display()
    ))
}

/// The pre-flight check of a tape target: its library or device opens, and it names a pool.
/// Returns (ok, state, message).
pub fn check(target: &Target) -> (bool, &'static str, String) {
    let sink = match open_sink(target) {
        Ok(s) => s,
        Err(m) => return (false, "missing", m),
    };
    let Some((_, pool, _)) = parts(target) else {
        return (false, "error", "not a tape target".into());
    };
    let Some(pool) = pool else {
        return (
            false,
            "no pool",
            format!(
                "tape target '{}' names no media pool: `bmsctl target edit {} --pool POOL` \
                 (make one with `bmsctl pool add`)",
                target.name, target.name
            ),
        );
    };
    match sink {
        TapeSink::Library { library, drive } => match library.inventory() {
            Ok(inv) => (
                true,
                "ok",
                format!(
                    "virtual tape library {} with {} cartridge(s) in {} slot(s), writing with \
                     drive {drive} to pool {pool}",
                    library.root().display(),
                    inv.len(),
                    library.slots()
                ),
            ),
            Err(e) => (false, "error", format!("reading the library: {e}")),
        },
        TapeSink::Device(p) => (
            true,
            "ok",
            format!("tape device {} for pool {pool}", p.display()),
        ),
    }
}
