//! `bmsctl tape ...`: offline commands on a virtual tape library directory, without the daemon
//! (docs/tape.md): create a library, add and label cartridges, write a directory tree as a tape
//! archive (spanning cartridges), scan, verify and restore. A tape written here is read by
//! GNU tar alone as well.

use std::path::PathBuf;

use bms_tape::changer::LibraryChanger;
use bms_tape::format::catalog::Catalog;
use bms_tape::format::label::Label;
use bms_tape::format::reader::{label_medium, read_archive, scan, ReadMode};
use bms_tape::format::source::scan_tree;
use bms_tape::format::writer::{write_archive, ArchiveSpec};
use bms_tape::format::DEFAULT_BLOCK_SIZE;
use bms_tape::library::{Place, VirtualLibrary};
use bms_tape::virtual_tape::{CartridgeSpec, VirtualTape};
use bms_tape::TapeError;

use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, clap::Subcommand)]
pub enum TapeCmd {
    /// Create a virtual tape library in the new directory LIBRARY.
    CreateLibrary {
        library: PathBuf,
        /// Number of storage slots (1 to 999).
        #[arg(long, default_value_t = 8)]
        slots: u32,
        /// Number of drives (1 to 99).
        #[arg(long, default_value_t = 1)]
        drives: u32,
    },
    /// Put a new blank virtual cartridge into an empty slot.
    AddCartridge {
        library: PathBuf,
        /// Barcode: 1 to 32 letters, digits, `-` or `_`.
        barcode: String,
        #[arg(long)]
        slot: u32,
        /// Capacity (e.g. 64M, 2G).
        #[arg(long, value_parser = output::parse_size)]
        capacity: u64,
        /// Bytes after which writes report the early warning (default: capacity minus 1/16).
        #[arg(long, value_parser = output::parse_size)]
        early_warning: Option<u64>,
    },
    /// List the cartridges and where they are (slot or drive).
    Inventory { library: PathBuf },
    /// Set or clear a cartridge's write-protect tab.
    WriteProtect {
        library: PathBuf,
        barcode: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Label a cartridge for a media pool (erases it), loading it into drive 0.
    Label {
        library: PathBuf,
        barcode: String,
        #[arg(long)]
        pool: String,
        #[arg(long, default_value = "")]
        media_set: String,
        #[arg(long, default_value_t = 1)]
        sequence: u32,
    },
    /// Write a directory tree as one tape archive, spanning the cartridges given in order.
    Write {
        library: PathBuf,
        source: PathBuf,
        /// Cartridges for the volumes, in order (repeat, or separate with commas).
        #[arg(long = "media", value_delimiter = ',', required = true)]
        media: Vec<String>,
        /// The snapshot id recorded in the catalog.
        #[arg(long)]
        snapshot: String,
        #[arg(long, default_value = "default")]
        job: String,
    },
    /// Read a cartridge's label and the catalog of every archive on it (from the tape alone).
    Scan { library: PathBuf, barcode: String },
    /// Read back every archive on a cartridge and check every file's hash.
    Verify { library: PathBuf, barcode: String },
    /// Restore a snapshot (or some paths of it) from the cartridges holding it.
    Restore {
        library: PathBuf,
        snapshot: String,
        /// Directory to restore into.
        #[arg(long)]
        target: PathBuf,
        /// Cartridges to read (default: every cartridge in the library).
        #[arg(long = "media", value_delimiter = ',')]
        media: Vec<String>,
        /// Restore only these paths (relative, as in the archive) and what is below them.
        #[arg(long = "path")]
        paths: Vec<String>,
    },
}

fn tape_err(e: TapeError) -> CliError {
    match e {
        TapeError::Invalid(m) => CliError::usage(m),
        other => CliError::failure(other.to_string()),
    }
}

fn open(lib: &std::path::Path) -> CliResult<VirtualLibrary> {
    VirtualLibrary::open(lib).map_err(tape_err)
}

fn catalog_json(c: &Catalog) -> serde_json::Value {
    serde_json::json!({
        "snapshot": c.snapshot, "job": c.job, "barcode": c.barcode, "media_set": c.media_set,
        "volume": c.volume, "last": c.last, "archive_file": c.archive_file,
        "archive_bytes": c.archive_bytes, "files": c.entries.len(),
    })
}

fn scan_one(lib: &VirtualLibrary, barcode: &str) -> CliResult<(Label, Vec<Catalog>)> {
    let mut ch = LibraryChanger::new(lib, 0, vec![barcode.to_string()]).map_err(tape_err)?;
    let drive = ch.mount(barcode).map_err(tape_err)?;
    scan(drive).map_err(tape_err)
}

pub fn run(cmd: &TapeCmd, json: bool) -> CliResult {
    match cmd {
        TapeCmd::CreateLibrary {
            library,
            slots,
            drives,
        } => {
            VirtualLibrary::create(library, *slots, *drives).map_err(tape_err)?;
            println!(
                "created virtual library {} with {slots} slots and {drives} drives",
                library.display()
            );
        }
        TapeCmd::AddCartridge {
            library,
            barcode,
            slot,
            capacity,
            early_warning,
        } => {
            let spec = CartridgeSpec {
                barcode: barcode.clone(),
                capacity: *capacity,
                early_warning: early_warning.unwrap_or(capacity - capacity / 16),
            };
            open(library)?
                .add_cartridge(*slot, &spec)
                .map_err(tape_err)?;
            println!("cartridge {barcode} added to slot {slot}");
        }
        TapeCmd::Inventory { library } => {
            let inv = open(library)?.inventory().map_err(tape_err)?;
            if json {
                let rows: Vec<_> = inv
                    .iter()
                    .map(|i| match i.place {
                        Place::Slot(s) => serde_json::json!({"barcode": i.barcode, "slot": s}),
                        Place::Drive(d) => serde_json::json!({"barcode": i.barcode, "drive": d}),
                    })
                    .collect();
                return output::json(&rows);
            }
            for i in inv {
                match i.place {
                    Place::Slot(s) => println!("{}\tslot {s}", i.barcode),
                    Place::Drive(d) => println!("{}\tdrive {d}", i.barcode),
                }
            }
        }
        TapeCmd::WriteProtect {
            library,
            barcode,
            state,
        } => {
            let dir = open(library)?.cartridge_dir(barcode).map_err(tape_err)?;
            VirtualTape::open(&dir)
                .and_then(|mut t| t.set_write_protected(state == "on"))
                .map_err(tape_err)?;
            println!("cartridge {barcode}: write-protect {state}");
        }
        TapeCmd::Label {
            library,
            barcode,
            pool,
            media_set,
            sequence,
        } => {
            let lib = open(library)?;
            let mut ch = LibraryChanger::new(&lib, 0, vec![barcode.clone()]).map_err(tape_err)?;
            let drive = ch.mount(barcode).map_err(tape_err)?;
            let label = Label {
                barcode: barcode.clone(),
                pool: pool.clone(),
                media_set: media_set.clone(),
                sequence: *sequence,
                labelled: jiff::Timestamp::now().as_second(),
                block_size: DEFAULT_BLOCK_SIZE,
            };
            label_medium(drive, &label).map_err(tape_err)?;
            println!("cartridge {barcode} labelled for pool {pool}");
        }
        TapeCmd::Write {
            library,
            source,
            media,
            snapshot,
            job,
        } => {
            let lib = open(library)?;
            let entries = scan_tree(source).map_err(tape_err)?;
            let mut ch = LibraryChanger::new(&lib, 0, media.clone()).map_err(tape_err)?;
            let spec = ArchiveSpec {
                snapshot: snapshot.clone(),
                job: job.clone(),
            };
            let cats = write_archive(&mut ch, &spec, &entries).map_err(tape_err)?;
            if json {
                return output::json(&cats.iter().map(catalog_json).collect::<Vec<_>>());
            }
            for c in &cats {
                println!(
                    "volume {} on {}: tape file {}, {} members, {} bytes",
                    c.volume,
                    c.barcode,
                    c.archive_file,
                    c.entries.len(),
                    c.archive_bytes
                );
            }
        }
        TapeCmd::Scan { library, barcode } => {
            let (label, cats) = scan_one(&open(library)?, barcode)?;
            if json {
                return output::json(&serde_json::json!({
                    "barcode": label.barcode, "pool": label.pool, "media_set": label.media_set,
                    "sequence": label.sequence, "block_size": label.block_size,
                    "archives": cats.iter().map(catalog_json).collect::<Vec<_>>(),
                }));
            }
            println!(
                "{} (pool {}, media set {:?}, sequence {})",
                label.barcode, label.pool, label.media_set, label.sequence
            );
            for c in &cats {
                println!(
                    "  tape file {}: snapshot {} volume {}{}, {} members",
                    c.archive_file,
                    c.snapshot,
                    c.volume,
                    if c.last { " (last)" } else { "" },
                    c.entries.len()
                );
            }
        }
        TapeCmd::Verify { library, barcode } => {
            let lib = open(library)?;
            let (label, cats) = scan_one(&lib, barcode)?;
            let mut ch = LibraryChanger::new(&lib, 0, vec![barcode.clone()]).map_err(tape_err)?;
            let drive = ch.mount(barcode).map_err(tape_err)?;
            let mut bad = Vec::new();
            for c in &cats {
                let r =
                    read_archive(drive, c, label.block_size, ReadMode::Verify).map_err(tape_err)?;
                bad.extend(
                    r.mismatched
                        .into_iter()
                        .map(|p| format!("tape file {}: {p}", c.archive_file)),
                );
            }
            if !bad.is_empty() {
                return Err(CliError::failure(format!(
                    "cartridge {barcode}: {} file(s) do not match their catalog hash (the tape is damaged; restore them from another copy): {}",
                    bad.len(),
                    bad.join(", ")
                )));
            }
            println!(
                "cartridge {barcode}: {} archive(s) verified, every hash matches",
                cats.len()
            );
        }
        TapeCmd::Restore {
            library,
            snapshot,
            target,
            media,
            paths,
        } => {
            let lib = open(library)?;
            let media: Vec<String> = if media.is_empty() {
                lib.inventory()
                    .map_err(tape_err)?
                    .into_iter()
                    .map(|i| i.barcode)
                    .collect()
            } else {
                media.clone()
            };
            let want: Vec<Vec<u8>> = paths
                .iter()
                .map(|p| p.trim_matches('/').as_bytes().to_vec())
                .collect();
            let filter = move |p: &[u8]| {
                want.iter().any(|w| {
                    p == w.as_slice() || (p.starts_with(w) && p.get(w.len()) == Some(&b'/'))
                })
            };
            let mut volumes = 0;
            let mut last = false;
            let mut members = 0;
            for barcode in &media {
                let Ok((label, cats)) = scan_one(&lib, barcode) else {
                    continue;
                };
                let mut ch =
                    LibraryChanger::new(&lib, 0, vec![barcode.clone()]).map_err(tape_err)?;
                let drive = ch.mount(barcode).map_err(tape_err)?;
                for c in cats.iter().filter(|c| &c.snapshot == snapshot) {
                    let f: Option<&bms_tape::format::reader::PathFilter> = if paths.is_empty() {
                        None
                    } else {
                        Some(&filter)
                    };
                    let r = read_archive(
                        drive,
                        c,
                        label.block_size,
                        ReadMode::Restore {
                            dest: target,
                            filter: f,
                        },
                    )
                    .map_err(tape_err)?;
                    if !r.mismatched.is_empty() {
                        return Err(CliError::failure(format!(
                            "restored files do not match their catalog hash (damaged tape {barcode}): {}",
                            r.mismatched.join(", ")
                        )));
                    }
                    volumes += 1;
                    members += r.members;
                    last |= c.last;
                }
            }
            if volumes == 0 {
                return Err(CliError::failure(format!(
                    "no archive of snapshot {snapshot} on the cartridges read: check the snapshot id with `bmsctl tape scan`"
                )));
            }
            if !last {
                return Err(CliError::failure(format!(
                    "snapshot {snapshot}: the last volume was not found; add the cartridge holding it with --media"
                )));
            }
            println!("restored {members} members of snapshot {snapshot} from {volumes} volume(s) into {}", target.display());
        }
    }
    Ok(())
}
