//! The full read of verify: every selected pack is read, every blob decompressed and re-hashed,
//! on one thread per core (plus one, so that a thread waiting for the disk leaves no core idle).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::{problem, Bad, Problem, VerifyProgress};
use crate::error::Error;
use crate::id::{IdMap, ObjectId};
use crate::pack::{self, PackEntry};
use crate::store::{Kind, Store};

/// What the read found.
#[derive(Default)]
pub(super) struct ReadResult {
    pub packs: u64,
    pub bytes: u64,
    pub blobs: u64,
    pub bad: IdMap<Bad>,
    pub problems: Vec<Problem>,
}

/// Reads `selected` packs on worker threads; meanwhile the calling thread runs `during`, then
/// reports progress until the workers are done.
pub(super) fn read_packs(
    selected: &[(ObjectId, &Vec<PackEntry>)],
    store: &dyn Store,
    on_disk: &HashSet<ObjectId>,
    progress: &dyn Fn(&VerifyProgress),
    during: &mut dyn FnMut(),
    cancel: &AtomicBool,
) -> ReadResult {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 16)
        + 1;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let blobs = AtomicU64::new(0);
    let found: Mutex<(IdMap<Bad>, Vec<Problem>)> = Mutex::new((IdMap::default(), Vec::new()));
    let total = selected.len() as u64;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut decoder = pack::BlobDecoder::default();
                let mut scratch = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                    let Some((pid, entries)) = selected.get(i) else {
                        return;
                    };
                    if cancel.load(Ordering::Relaxed) {
                        // Cancelled: count the rest as done without reading them.
                    } else if on_disk.contains(pid) {
                        let (local, probs) =
                            check_pack(store, pid, entries, &mut decoder, &mut scratch, &bytes);
                        blobs.fetch_add(entries.len() as u64, Ordering::Relaxed);
                        if let Ok(mut g) = found.lock() {
                            g.0.extend(local);
                            g.1.extend(probs);
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        during();
        let mut last = u64::MAX;
        loop {
            let n = done.load(Ordering::Relaxed).min(total);
            if n != last {
                progress(&VerifyProgress {
                    phase: "read-data",
                    done: n,
                    total,
                });
                last = n;
            }
            if n >= total {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (bad, problems) = found.into_inner().unwrap_or_default();
    ReadResult {
        packs: total,
        bytes: bytes.load(Ordering::Relaxed),
        blobs: blobs.load(Ordering::Relaxed),
        bad,
        problems,
    }
}

/// Checks one pack: every blob, and the whole file against its name.
fn check_pack(
    store: &dyn Store,
    pid: &ObjectId,
    entries: &[PackEntry],
    decoder: &mut pack::BlobDecoder,
    scratch: &mut Vec<u8>,
    bytes: &AtomicU64,
) -> (Vec<(ObjectId, Bad)>, Vec<Problem>) {
    let mut local = Vec::new();
    let mut probs = Vec::new();
    let path = store.locate(Kind::Packs, &pid.to_hex());
    let data = match store.read(Kind::Packs, &pid.to_hex()) {
        Ok(d) => d,
        Err(e) => {
            let e = match e {
                Error::Io { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            let mut p = problem(
                "pack_content",
                format!("pack {pid}: cannot read {}: {e}", path.display()),
            );
            p.pack = Some(pid.to_hex());
            probs.push(p);
            return (local, probs);
        }
    };
    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    let where_ = || path.display().to_string();
    for e in entries {
        let end = e.offset.saturating_add(u64::from(e.stored_len));
        let res = match data.get(e.offset as usize..end as usize) {
            None => Err(Error::corrupt("blob", "extends past the end of the pack")),
            Some(stored) => decoder.check(stored, e, &where_, scratch),
        };
        if let Err(err) = res {
            let why = match err {
                Error::Corrupt { detail, .. } => detail,
                other => other.to_string(),
            };
            local.push((
                e.id,
                Bad {
                    kind: e.kind,
                    why,
                    pack: Some(*pid),
                },
            ));
        }
    }
    // In an encrypted repository the store has already authenticated every segment of the pack,
    // with the pack's name in the associated data (docs/repository-format.md "Encryption"): the
    // bytes are exactly those sealed under this name, and every blob in them was checked above,
    // so a second pass over the whole pack would find nothing more.
    if local.is_empty() && !store.encrypted() && ObjectId::hash(&data) != *pid {
        let mut p = problem(
            "pack_content",
            format!(
                "pack {pid}: content does not match its name (damage outside the blobs, e.g. in the table)"
            ),
        );
        p.pack = Some(pid.to_hex());
        probs.push(p);
    }
    (local, probs)
}
