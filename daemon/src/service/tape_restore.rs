//! Restores from a tape target (docs/tape.md, "Restore from a tape target"): the catalog says
//! which volumes of which cartridges hold the snapshot's latest complete archive and where each
//! member is; each volume's tape file is read directly (rewind, forward over filemarks) and
//! every restored file is checked against its recorded hash.

use crate::targets::tape::{drive_lock, open_sink, TapeSink};
use crate::targets::Target;
use bms_engine::restore::{RestoreOptions, RestoreSummary};
use bms_engine::Error;
use bms_proto::api::TargetSpec;
use bms_tape::changer::LibraryChanger;
use bms_tape::format::catalog::Catalog as TapeCatalog;
use bms_tape::format::reader::{read_archive, read_label, ReadMode};
use std::os::unix::fs::DirBuilderExt;
use std::sync::atomic::{AtomicBool, Ordering};

fn tape_err(target: &str, e: bms_tape::TapeError) -> Error {
    Error::InvalidArgument(format!("restore from tape target '{target}': {e}"))
}

/// Restores the members of `plan` (all, or those under `opts.paths`) into `opts.target`.
pub fn restore(
    spec: &TargetSpec,
    plan: &[TapeCatalog],
    opts: &RestoreOptions,
    cancel: &AtomicBool,
) -> Result<RestoreSummary, Error> {
    let name = spec.name.as_str();
    if opts.dry_run {
        return Err(Error::InvalidArgument(format!(
            "a dry run of a restore from tape target '{name}' is not supported: leave out --dry-run"
        )));
    }
    let target = Target::from_spec(spec).map_err(|e| Error::InvalidArgument(e.message))?;
    let sink = open_sink(&target).map_err(Error::InvalidArgument)?;
    // The drive is this restore's until it ends (a copy or verification waits).
    let lock = drive_lock(&sink);
    let _drive = lock.lock().unwrap_or_else(|e| e.into_inner());
    let TapeSink::Library { library, drive } = sink else {
        return Err(Error::InvalidArgument(format!(
            "restore from the tape device of target '{name}' through bmsd is not supported yet: \
             read the cartridge with mt and GNU tar (docs/tape-format.md)"
        )));
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&opts.target)
        .map_err(|e| Error::io("creating restore target", &opts.target, e))?;
    use std::os::unix::ffi::OsStrExt;
    let want: Vec<Vec<u8>> = opts
        .paths
        .iter()
        .map(|p| {
            let b = p.as_os_str().as_bytes();
            let b = b.strip_prefix(b"/").unwrap_or(b);
            b.strip_suffix(b"/").unwrap_or(b).to_vec()
        })
        .collect();
    let filter = move |p: &[u8]| {
        want.iter()
            .any(|w| p == w.as_slice() || (p.starts_with(w) && p.get(w.len()) == Some(&b'/')))
    };
    let mut changer =
        LibraryChanger::new(&library, drive, Vec::new()).map_err(|e| tape_err(name, e))?;
    let mut summary = RestoreSummary {
        snapshot_id: opts.snapshot.clone(),
        ..Default::default()
    };
    for volume in plan {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        // A path restore reads only the volumes whose recorded members it selects.
        if !opts.paths.is_empty()
            && !volume
                .entries
                .iter()
                .any(|e| e.kind != bms_tape::format::pax::Kind::Dir && filter(&e.path))
        {
            continue;
        }
        let d = changer
            .mount(&volume.barcode)
            .map_err(|e| tape_err(name, e))?;
        let label = read_label(d).map_err(|e| tape_err(name, e))?;
        let f: Option<&bms_tape::format::reader::PathFilter> = if opts.paths.is_empty() {
            None
        } else {
            Some(&filter)
        };
        let r = read_archive(
            d,
            volume,
            label.block_size,
            ReadMode::Restore {
                dest: &opts.target,
                filter: f,
            },
        )
        .map_err(|e| tape_err(name, e))?;
        if !r.mismatched.is_empty() {
            return Err(Error::corrupt(
                format!("cartridge {}", volume.barcode),
                format!(
                    "restored files do not match their recorded hash: {}; restore them from \
                     another copy",
                    r.mismatched.join(", ")
                ),
            ));
        }
        summary.files += r.members;
        summary.bytes += r.bytes;
    }
    Ok(summary)
}
