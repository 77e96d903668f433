//! Verification of tape targets (docs/tape.md, "Verify and restore drills of tape targets"):
//! the latest complete archive of the job on the target is read back from tape, volume by
//! volume through the catalog's record of which cartridge and tape file holds it, and every
//! file's data is checked against the BLAKE3 hash of the tape catalog. A restore drill of a tape
//! target is this same full read: the tape is sequential, and a sample spread over an archive
//! costs the same pass over its tape file as reading all of it.

use crate::state::SharedRef;
use crate::targets::tape::{drive_lock, open_sink, TapeSink};
use crate::targets::Target;
use bms_proto::api::{RunProgress, TargetSpec};
use bms_tape::changer::LibraryChanger;
use bms_tape::drive::TapeDrive;
use bms_tape::format::catalog::Catalog as TapeCatalog;
use bms_tape::format::reader::{read_archive, read_label, ReadMode};
use bms_tape::TapeError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// What reading a tape target's latest archive back found.
pub(super) struct TapeVerified {
    /// The snapshot whose archive was read.
    pub snapshot: String,
    /// Files of the archive whose data does not match the catalog's hash, or that are missing,
    /// each with its cartridge, volume and tape file; a volume that cannot be read is one
    /// problem naming it.
    pub problems: Vec<String>,
    /// Files, data bytes and tape bytes read.
    pub files: u64,
    pub bytes: u64,
    pub tape_bytes: u64,
    pub secs: f64,
    /// Lines for the run's log: one per volume read.
    pub notes: Vec<String>,
}

/// Reads back the latest complete archive of `job` on the tape target `target`; `Err` when the
/// check could not run (no archive, no library, the run stopped), with what to do.
pub(super) async fn verify(
    shared: &SharedRef,
    job: &str,
    target: &TargetSpec,
    stop: Arc<AtomicBool>,
    progress: Option<tokio::sync::watch::Sender<RunProgress>>,
) -> Result<TapeVerified, String> {
    let (j, t) = (job.to_owned(), target.name.clone());
    let plan = shared
        .catalog
        .call(move |c| {
            let Some(snapshot) = c.latest_tape_archive(&j, &t)? else {
                return Ok(None);
            };
            let plan = c.tape_restore_plan(&t, &snapshot)?;
            Ok(Some((snapshot, plan)))
        })
        .await
        .map_err(|e| format!("cannot read the catalog's tape archives: {e}"))?;
    let Some((snapshot, plan)) = plan.filter(|(_, p)| !p.is_empty()) else {
        return Err(format!(
            "tape target '{}' holds no complete archive of job '{job}' to verify; run \
             'bmsctl job run {job} --wait' first",
            target.name
        ));
    };
    let spec = target.clone();
    tokio::task::spawn_blocking(move || read_back(&spec, snapshot, &plan, &stop, progress))
        .await
        .map_err(|e| format!("the tape verification task failed: {e}"))?
}

/// The blocking part: mounts each volume's cartridge and reads its tape file.
fn read_back(
    spec: &TargetSpec,
    snapshot: String,
    plan: &[TapeCatalog],
    stop: &AtomicBool,
    progress: Option<tokio::sync::watch::Sender<RunProgress>>,
) -> Result<TapeVerified, String> {
    let name = spec.name.as_str();
    let target = Target::from_spec(spec).map_err(|e| e.message)?;
    let sink = open_sink(&target)?;
    let lock = drive_lock(&sink);
    let _drive = lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut source = match sink {
        TapeSink::Library { library, drive } => Source::Library(Box::new(
            LibraryChanger::new(&library, drive, Vec::new())
                .map_err(|e| format!("tape target '{name}': {e}"))?,
        )),
        TapeSink::Device(path) => Source::Device(
            bms_tape::st::StDrive::open(&path).map_err(|e| format!("tape target '{name}': {e}"))?,
        ),
    };
    let started = Instant::now();
    let mut v = TapeVerified {
        snapshot,
        problems: Vec::new(),
        files: 0,
        bytes: 0,
        tape_bytes: 0,
        secs: 0.0,
        notes: Vec::new(),
    };
    for (i, volume) in plan.iter().enumerate() {
        if stop.load(Ordering::SeqCst) {
            return Err("the run was stopped".into());
        }
        if let Some(tx) = &progress {
            tx.send_modify(|p| {
                p.phase = format!(
                    "verify: tape volume {}/{} on {}",
                    i + 1,
                    plan.len(),
                    volume.barcode
                )
            });
        }
        let place = format!(
            "cartridge {} (volume {}, tape file {})",
            volume.barcode, volume.volume, volume.archive_file
        );
        let drive = source.mount(name, &volume.barcode)?;
        let label = read_label(drive).map_err(|e| mount_error(name, &volume.barcode, e))?;
        if label.barcode != volume.barcode {
            return Err(format!(
                "tape target '{name}': the loaded cartridge is {}, the catalog has volume {} on \
                 {}: load {} and verify again",
                label.barcode, volume.volume, volume.barcode, volume.barcode
            ));
        }
        match read_archive(drive, volume, label.block_size, ReadMode::Verify) {
            Ok(r) => {
                v.problems.extend(
                    r.mismatched
                        .iter()
                        .map(|p| format!("{place}: {p}: data does not match its catalog hash")),
                );
                v.problems.extend(
                    r.missing.iter().map(|p| {
                        format!("{place}: {p}: listed in the catalog, not in the archive")
                    }),
                );
                v.files += r.members;
                v.bytes += r.bytes;
                v.tape_bytes += r.tape_bytes;
                v.notes.push(format!(
                    "{place}: {} members, {} data bytes checked, {} bytes read from tape",
                    r.members, r.bytes, r.tape_bytes
                ));
            }
            // The medium itself answered but its archive is unreadable: a finding, not a
            // failure to check.
            Err(e @ (TapeError::Format(_) | TapeError::Io { .. })) => {
                v.problems
                    .push(format!("{place}: the archive cannot be read: {e}"));
            }
            Err(e) => return Err(format!("tape target '{name}': {place}: {e}")),
        }
    }
    v.secs = started.elapsed().as_secs_f64();
    Ok(v)
}

fn mount_error(target: &str, barcode: &str, e: TapeError) -> String {
    format!("tape target '{target}': reading the label of cartridge {barcode}: {e}")
}

/// Where the volumes are read: a virtual library's drive, loaded by the changer, or a tape
/// device whose cartridge was loaded by hand.
enum Source {
    Library(Box<LibraryChanger>),
    Device(bms_tape::st::StDrive),
}

impl Source {
    fn mount(&mut self, target: &str, barcode: &str) -> Result<&mut dyn TapeDrive, String> {
        match self {
            Source::Library(c) => c
                .mount(barcode)
                .map(|d| d as &mut dyn TapeDrive)
                .map_err(|e| format!("tape target '{target}': {e}")),
            Source::Device(d) => Ok(d as &mut dyn TapeDrive),
        }
    }
}
