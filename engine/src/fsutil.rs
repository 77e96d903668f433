//! Durable file operations: write to a temp file, fsync, rename into place, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name that is unique across processes and hosts (pid, time, counter, host hashed).
pub fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let host = hostname();
    let seed = format!("{host}/{}/{t}/{n}", std::process::id());
    let mut h = crate::id::ObjectId::hash(seed.as_bytes()).to_hex();
    h.truncate(16);
    format!("{prefix}{h}")
}

/// Start time of a process (field 22 of /proc/PID/stat), None if it does not exist.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

/// This machine's host name ("unknown" if it cannot be read).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Fsyncs a directory so that renames and creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx("opening directory for fsync", dir)?;
    f.sync_all().ctx("fsyncing directory", dir)
}

/// Mode of every file bms creates in a repository, whatever the umask (docs/repository-format.md
/// "Permissions").
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory bms creates in a repository, whatever the umask.
pub const DIR_MODE: u32 = 0o700;

/// Creates the directory `path` with mode 0700 (set explicitly, so the umask does not matter).
pub fn create_dir_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

/// Creates `path` like [`create_dir_private`], accepting a directory that already exists
/// (another process created it meanwhile).
pub fn ensure_dir_private(path: &Path) -> std::io::Result<()> {
    match create_dir_private(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Short tag of this host's name, used in temp file names.
fn host_tag() -> String {
    let mut h = crate::id::ObjectId::hash(hostname().as_bytes()).to_hex();
    h.truncate(8);
    h
}

/// A temp file name that says who writes it: `PREFIX<host tag>.<pid>.<process start>.<random>`,
/// so that cleanup can tell a live writer's file from an abandoned one
/// (docs/repository-format.md "Temporary files").
pub fn temp_name(prefix: &str) -> String {
    let pid = std::process::id();
    let start = process_start(pid).unwrap_or(0);
    format!("{prefix}{}.{pid}.{start}.{}", host_tag(), unique_name(""))
}

/// The writer encoded in a [`temp_name`]: (host tag, pid, process start).
fn temp_owner(name: &str) -> Option<(&str, u32, u64)> {
    let mut it = name.rsplitn(4, '.');
    let _rand = it.next()?;
    let start = it.next()?.parse().ok()?;
    let pid = it.next()?.parse().ok()?;
    let head = it.next()?;
    let tag = head.get(head.len().checked_sub(8)?..)?;
    Some((tag, pid, start))
}

/// Whether the temp file `path` (named by [`temp_name`]) is provably abandoned: its writer is a
/// process of this host that no longer exists, or (a writer elsewhere, or a name of another
/// form) it was not modified for longer than `max_age`. Files of live writers are never
/// abandoned.
pub fn temp_abandoned(path: &Path, max_age: std::time::Duration) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if let Some((tag, pid, start)) = temp_owner(name) {
        if tag == host_tag() {
            return match process_start(pid) {
                None => true,
                Some(s) => start != 0 && s != start,
            };
        }
    }
    fs::symlink_metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > max_age)
}

/// Removes the abandoned temp files (see [`temp_abandoned`]) directly in `dir` whose names
/// start with `prefix`; returns how many were removed.
pub fn remove_abandoned(dir: &Path, prefix: &str, max_age: std::time::Duration) -> usize {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let p = e.path();
        if temp_abandoned(&p, max_age) && fs::remove_file(&p).is_ok() {
            tracing::debug!("removed abandoned temp file {}", p.display());
            n += 1;
        }
    }
    n
}

/// Creates a new temp file in `tmp_dir` (mode 0600 whatever the umask), returning it and its
/// path. Its name is a [`temp_name`].
pub fn create_temp(tmp_dir: &Path, prefix: &str) -> Result<(File, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let path = tmp_dir.join(temp_name(prefix));
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&path)
        .ctx("creating temp file", &path)?;
    if let Err(e) = f.set_permissions(fs::Permissions::from_mode(FILE_MODE)) {
        let _ = fs::remove_file(&path);
        return Err(crate::error::Error::io(
            "setting mode of temp file",
            path,
            e,
        ));
    }
    Ok((f, path))
}

/// Syncs `file` at `tmp`, renames it to `dest` and fsyncs `dest`'s directory.
/// On failure the temp file is removed (best effort).
pub fn commit_temp(file: File, tmp: &Path, dest: &Path, op: &'static str) -> Result<()> {
    let res = (|| {
        file.sync_all().ctx(op, dest)?;
        drop(file);
        fs::rename(tmp, dest).ctx(op, dest)?;
        if let Some(parent) = dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// Writes `data` to `dest` atomically and durably via a temp file in `tmp_dir`.
pub fn write_atomic(tmp_dir: &Path, dest: &Path, data: &[u8], op: &'static str) -> Result<()> {
    let (mut f, tmp) = create_temp(tmp_dir, "w-")?;
    if let Err(e) = f.write_all(data) {
        let _ = fs::remove_file(&tmp);
        return Err(crate::error::Error::io(op, dest, e));
    }
    commit_temp(f, &tmp, dest, op)
}

/// Like [`write_atomic`], but never replaces an existing `dest` (the file is published with
/// link(2), which fails if the name exists). Returns false, writing nothing, if `dest` exists.
pub fn write_new(tmp_dir: &Path, dest: &Path, data: &[u8], op: &'static str) -> Result<bool> {
    let (mut f, tmp) = create_temp(tmp_dir, "w-")?;
    let res = (|| {
        f.write_all(data).ctx(op, dest)?;
        f.sync_all().ctx(op, dest)?;
        drop(f);
        match fs::hard_link(&tmp, dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            // A filesystem without hard links (some NAS mounts): check, then rename.
            Err(e) if matches!(e.raw_os_error(), Some(1 | 95)) => {
                if dest.exists() {
                    return Ok(false);
                }
                fs::rename(&tmp, dest).ctx(op, dest)?;
            }
            Err(e) => return Err(crate::error::Error::io(op, dest, e)),
        }
        if let Some(parent) = dest.parent() {
            fsync_dir(parent)?;
        }
        Ok(true)
    })();
    let _ = fs::remove_file(&tmp);
    res
}

/// Reads 32 random bytes from the kernel.
pub fn random_bytes() -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    let mut f = File::open("/dev/urandom").ctx("opening", "/dev/urandom")?;
    std::io::Read::read_exact(&mut f, &mut out).ctx("reading", "/dev/urandom")?;
    Ok(out)
}

/// Serialises a duration as whole milliseconds (for `duration_ms` fields).
pub fn ser_ms<S: serde::Serializer>(
    d: &std::time::Duration,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Raises this process's soft limit of open files to its hard limit: a backup keeps a few
/// hundred files open at once (packs read by the directory scanners, files being read), more
/// than the common soft limit of 1024 allows with several runs going. Returns the new limit.
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).ok()?;
    }
    Some(hard.max(soft))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::resource::{getrlimit, Resource};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    #[test]
    fn temp_names_name_their_writer() {
        let n = temp_name("pack-");
        let (tag, pid, start) = temp_owner(&n).unwrap();
        assert_eq!(tag, host_tag());
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(start), process_start(pid));
        assert!(n.starts_with("pack-"));
    }

    #[test]
    fn only_abandoned_temp_files_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let hour = Duration::from_secs(3600);
        // A live writer (this process): kept, however old.
        let (_f, live) = create_temp(d.path(), "w-").unwrap();
        // A dead process of this host.
        let dead = d.path().join(format!(
            "pack-{}.{}.1.0123456789abcdef",
            host_tag(),
            0x7fff_fff0u32
        ));
        fs::write(&dead, b"x").unwrap();
        // A live pid whose start time differs (the pid was reused).
        let reused = d.path().join(format!(
            "pack-{}.{}.1.0123456789abcdef",
            host_tag(),
            std::process::id()
        ));
        fs::write(&reused, b"x").unwrap();
        // Another host's file and a foreign name: kept while recent.
        let foreign = d.path().join("pack-ffffffff.1.1.0123456789abcdef");
        fs::write(&foreign, b"x").unwrap();
        let odd = d.path().join("leftover");
        fs::write(&odd, b"x").unwrap();
        assert_eq!(remove_abandoned(d.path(), "", hour), 2);
        assert!(live.exists() && foreign.exists() && odd.exists());
        assert!(!dead.exists() && !reused.exists());
        // Older than the allowed age: the foreign ones go, the live writer's file stays.
        assert_eq!(remove_abandoned(d.path(), "", Duration::ZERO), 2);
        assert!(live.exists());
        assert_eq!(
            fs::metadata(&live).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
    }

    #[test]
    fn private_modes_ignore_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o002));
        let (_f, p) = create_temp(d.path(), "w-").unwrap();
        create_dir_private(&d.path().join("sub")).unwrap();
        nix::sys::stat::umask(old);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&p), 0o600);
        assert_eq!(mode(&d.path().join("sub")), 0o700);
    }

    #[test]
    fn write_new_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("config");
        assert!(write_new(d.path(), &dest, b"one", "writing").unwrap());
        assert!(!write_new(d.path(), &dest, b"two", "writing").unwrap());
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(super::raise_open_file_limit(), Some(hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    }
}
