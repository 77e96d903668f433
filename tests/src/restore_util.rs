//! Helpers for the restore safety tests: the metadata of every directory in a tree, temporary
//! files left behind, and the packs of a repository (to delete or corrupt one that holds only
//! file data).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

/// Mode (permission bits), uid, gid, mtime seconds and nanoseconds.
pub type Meta = (u32, u32, u32, i64, i64);

pub fn meta(p: &Path) -> Meta {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (
        m.mode() & 0o7777,
        m.uid(),
        m.gid(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

/// The metadata of `root` and of every directory below it (symlinks are not followed).
pub fn dir_metas(root: &Path) -> BTreeMap<PathBuf, Meta> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        out.insert(d.clone(), meta(&d));
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("dir entry");
            if e.file_type().expect("file type").is_dir() {
                todo.push(e.path());
            }
        }
    }
    out
}

/// Every entry below `root` whose name says it is a restore's temporary file.
pub fn temp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.expect("dir entry");
            if e.file_name().to_string_lossy().starts_with(".bms-restore") {
                out.push(e.path());
            }
            if e.file_type().expect("file type").is_dir() {
                todo.push(e.path());
            }
        }
    }
    out
}

/// All pack files of a repository.
pub fn packs(repo: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for sub in std::fs::read_dir(repo.join("packs")).expect("packs dir") {
        let sub = sub.expect("entry").path();
        if sub.is_dir() {
            for e in std::fs::read_dir(&sub).expect("pack subdir") {
                out.insert(e.expect("entry").path());
            }
        }
    }
    out
}

fn uvar(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let x = b[*pos];
        *pos += 1;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            break;
        }
    }
    v
}

/// The blob kinds (0 data, 1 tree) listed in a pack's table (docs/repository-format.md).
pub fn pack_kinds(pack: &Path) -> Vec<u8> {
    let b = std::fs::read(pack).expect("read pack");
    let n = b.len();
    assert_eq!(&b[n - 8..], b"BMSPKEND", "not a pack: {}", pack.display());
    let table_len = u32::from_le_bytes(b[n - 16..n - 12].try_into().expect("4 bytes")) as usize;
    let mut pos = n - 16 - table_len;
    let count = uvar(&b, &mut pos);
    let mut kinds = Vec::new();
    for _ in 0..count {
        kinds.push(b[pos]);
        pos += 2 + 32;
        uvar(&b, &mut pos);
        uvar(&b, &mut pos);
    }
    kinds
}

/// Packs added since `before` that hold only file data, largest first.
pub fn new_data_packs(repo: &Path, before: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = packs(repo)
        .difference(before)
        .filter(|p| pack_kinds(p).iter().all(|k| *k == 0))
        .cloned()
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)));
    v
}

/// Flips one byte in the middle of a pack's blob area.
pub fn corrupt_pack(pack: &Path) {
    let mut b = std::fs::read(pack).expect("read pack");
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(pack, &b).expect("write pack");
}

/// Where a snapshot path (absolute) lands below a restore directory.
pub fn under(to: &Path, snapshot_path: &Path) -> PathBuf {
    to.join(snapshot_path.strip_prefix("/").unwrap_or(snapshot_path))
}

/// stdout and stderr of a command, together.
pub fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `chown` without following symlinks.
pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
}

/// Runs the offline `bmsctl ARGS`.
pub fn offline(args: &[&OsStr]) -> Output {
    crate::clean_command(crate::bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl")
}

/// Creates the chain of directories of `src/sub/deeper` below `to` with foreign modes, owners
/// and times, as a live system's directories would be.
pub fn foreign_dirs(to: &Path, src: &Path) {
    let deeper = under(to, &src.join("sub/deeper"));
    std::fs::create_dir_all(&deeper).expect("mkdir");
    let mut p = deeper.clone();
    let mut i = 0;
    while p.starts_with(to) {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o750 - i * 0o10))
            .expect("chmod");
        chown(&p, crate::users::NOBODY, 100 + i);
        crate::runner_util::set_mtime(&p, 1_500_000_000 + i64::from(i) * 1000, 42);
        i += 1;
        if !p.pop() {
            break;
        }
    }
}

/// Whether process `pid` has a regular file open below `dir`: a restore writing into it (its
/// files get their names only when complete, so the directory itself shows nothing yet).
pub fn writing_below(pid: i32, dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    rd.filter_map(|e| e.ok()).any(|e| {
        let is_file = std::fs::metadata(e.path())
            .map(|m| m.is_file())
            .unwrap_or(false);
        is_file
            && std::fs::read_link(e.path())
                .map(|l| l.starts_with(dir))
                .unwrap_or(false)
    })
}
