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

/// Creates a new temp file in `tmp_dir` (mode 0644), returning it and its path.
pub fn create_temp(tmp_dir: &Path, prefix: &str) -> Result<(File, PathBuf)> {
    let path = tmp_dir.join(unique_name(prefix));
    let f = OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
        .ctx("creating temp file", &path)?;
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
    use nix::sys::resource::{getrlimit, Resource};

    #[test]
    fn open_file_limit_is_raised_to_the_hard_limit() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(super::raise_open_file_limit(), Some(hard));
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (hard, hard));
    }
}
