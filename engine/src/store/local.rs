//! [`LocalStore`]: a repository in a directory (local disk or NAS mount). Layout and
//! guarantees in docs/repository-format.md.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    seal, sealable, Kind, ObjectReader, ObjectStat, ObjectWriter, Put, Seal, Store, CONDEMNED,
    CONFIG,
};
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// Sub-directories of a repository directory.
pub const DIRS: [&str; 6] = ["packs", "index", "snapshots", "locks", "tmp", "keys"];

/// Prefix of the temp files that stage lock files in `locks/`.
pub const LOCK_STAGE_PREFIX: &str = "w-";

/// A repository stored in a directory. Files are created 0600 and directories 0700 whatever
/// the umask; whole objects are written to a temp file, fsynced, renamed (or linked, for
/// [`Put::New`]) into place, and their directory fsynced.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store over the existing directory `root` (not checked: see [`Store::check`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    /// Creates the layout in `root` (which the caller made or checked to be empty). With
    /// `join`, directories that exist already (a concurrent creator) are accepted.
    pub fn create_layout(root: &Path, join: bool) -> Result<Self> {
        let mkdir = |d: &Path| {
            if join {
                fsutil::ensure_dir_private(d)
            } else {
                fsutil::create_dir_private(d)
            }
            .ctx("creating repository directory", d)
        };
        for d in DIRS {
            mkdir(&root.join(d))?;
        }
        let packs = root.join("packs");
        for i in 0..256 {
            mkdir(&packs.join(format!("{i:02x}")))?;
        }
        fsutil::fsync_dir(&packs)?;
        Ok(LocalStore::new(root))
    }

    /// Whether `root` holds a repository config.
    pub fn has_config(root: &Path) -> bool {
        root.join(CONFIG).exists()
    }

    fn dir(&self, kind: Kind) -> PathBuf {
        match kind {
            Kind::Config => self.root.clone(),
            Kind::Packs => self.root.join("packs"),
            Kind::Index => self.root.join("index"),
            Kind::Snapshots => self.root.join("snapshots"),
            Kind::Locks => self.root.join("locks"),
            Kind::Keys => self.root.join("keys"),
        }
    }

    fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The path of an object. Packs are spread over 256 sub-directories by their first two
    /// hex digits.
    pub fn object_path(&self, kind: Kind, name: &str) -> Result<PathBuf> {
        if !super::valid_name(name) || (kind == Kind::Config && name != CONFIG && name != CONDEMNED)
        {
            return Err(Error::Internal(format!(
                "invalid {} name {name:?}",
                kind.name()
            )));
        }
        Ok(match kind {
            Kind::Packs if name.len() >= 2 && name.is_char_boundary(2) => {
                self.dir(kind).join(&name[..2]).join(name)
            }
            _ => self.dir(kind).join(name),
        })
    }

    /// Where whole objects of `kind` are staged: lock files in `locks/` itself (under a name
    /// lock listing ignores) so that no cleanup of `tmp/` can race a live lock writer.
    fn stage_dir(&self, kind: Kind) -> PathBuf {
        if kind == Kind::Locks {
            self.dir(kind)
        } else {
            self.tmp()
        }
    }
}

/// Object names in `dir` (files only; for locks only `*.json`, not staged writes).
fn names_in(dir: &Path, kind: Kind, out: &mut Vec<String>) -> Result<()> {
    for e in fs::read_dir(dir).ctx("listing", dir)? {
        let e = e.ctx("listing", dir)?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if kind == Kind::Locks && !name.ends_with(".json") {
            continue;
        }
        if e.file_type().is_ok_and(|t| t.is_file()) {
            out.push(name);
        }
    }
    Ok(())
}

impl Store for LocalStore {
    fn location(&self) -> &Path {
        &self.root
    }

    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        self.object_path(kind, name)
            .unwrap_or_else(|_| self.dir(kind).join(name))
    }

    fn check(&self) -> Result<()> {
        for d in DIRS {
            if !self.root.join(d).is_dir() {
                return Err(Error::corrupt(
                    format!("repository {}", self.root.display()),
                    format!("directory {d}/ is missing"),
                ));
            }
        }
        Ok(())
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let mut out = Vec::new();
        match kind {
            Kind::Config => {
                if self.root.join(CONFIG).is_file() {
                    out.push(CONFIG.to_string());
                }
            }
            Kind::Packs => {
                let dir = self.dir(kind);
                for sub in fs::read_dir(&dir).ctx("listing packs", &dir)? {
                    let sub = sub.ctx("listing packs", &dir)?;
                    if sub.file_type().is_ok_and(|t| t.is_dir()) {
                        names_in(&sub.path(), kind, &mut out)?;
                    }
                }
            }
            _ => names_in(&self.dir(kind), kind, &mut out)?,
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let path = self.object_path(kind, name)?;
        fs::read(&path).map_err(|e| Error::io(read_op(kind), path, e))
    }

    fn open(&self, kind: Kind, name: &str) -> Result<Box<dyn ObjectReader>> {
        let path = self.object_path(kind, name)?;
        let file = File::open(&path).map_err(|e| Error::io(open_op(kind), &path, e))?;
        Ok(Box::new(LocalReader { file, path, kind }))
    }

    fn stat(&self, kind: Kind, name: &str) -> Result<Option<ObjectStat>> {
        let path = self.object_path(kind, name)?;
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(Some(ObjectStat {
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> Result<bool> {
        let dest = self.object_path(kind, name)?;
        let stage = self.stage_dir(kind);
        let op = write_op(kind);
        match mode {
            Put::New => fsutil::write_new(&stage, &dest, data, op),
            Put::Replace => fsutil::write_atomic(&stage, &dest, data, op).map(|()| true),
        }
    }

    fn create(&self, kind: Kind) -> Result<Box<dyn ObjectWriter>> {
        let prefix = if kind == Kind::Packs { "pack-" } else { "w-" };
        let (f, tmp) = fsutil::create_temp(&self.stage_dir(kind), prefix)?;
        Ok(Box::new(LocalWriter {
            out: BufWriter::with_capacity(1 << 20, f),
            tmp,
            store: self.clone(),
            kind,
        }))
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<bool> {
        let path = self.object_path(kind, name)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                // An immutable file: say until when rather than "permission denied".
                if seal::is_immutable(&path).unwrap_or(false) {
                    let until = seal::read_until(&path).ok().flatten();
                    return Err(Error::Immutable {
                        what: format!("{} {name}", kind.name()),
                        until: until.map_or_else(
                            || "its immutable attribute is cleared (it has no seal record)".into(),
                            seal::rfc3339,
                        ),
                    });
                }
                Err(Error::io("removing", path, e))
            }
            Err(e) => Err(Error::io("removing", path, e)),
        }
    }

    /// Sets the Linux immutable attribute and records `until` in the file's seal record
    /// (docs/repository-format.md "Immutability"). A seal is extended, never shortened. Lock
    /// files and the config are never sealed.
    fn seal(&self, kind: Kind, name: &str, until: SystemTime) -> Result<Seal> {
        let path = self.object_path(kind, name)?;
        if !sealable(kind) {
            return Err(Error::Internal(format!(
                "{} objects are never sealed",
                kind.name()
            )));
        }
        match seal::seal_file(&path, until) {
            Ok(seal::Sealed::Done | seal::Sealed::AlreadyLonger) => Ok(Seal::Sealed),
            Ok(seal::Sealed::NotSupported) => Ok(Seal::NotSupported),
            Err(e) => Err(Error::io(
                "sealing (bmsd needs CAP_LINUX_IMMUTABLE to set the immutable attribute of)",
                path,
                e,
            )),
        }
    }

    fn sealed_until(&self, kind: Kind, name: &str) -> Result<Option<SystemTime>> {
        if !sealable(kind) {
            return Ok(None);
        }
        let path = self.object_path(kind, name)?;
        match seal::read_until(&path) {
            Ok(u) => Ok(u),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the seal record of", path, e)),
        }
    }

    fn unseal(&self, kind: Kind, name: &str) -> Result<bool> {
        if !sealable(kind) {
            return Ok(false);
        }
        let path = self.object_path(kind, name)?;
        match seal::unseal_file(&path) {
            Ok(was) => Ok(was),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(
                "unsealing (bmsd needs CAP_LINUX_IMMUTABLE to clear the immutable attribute of)",
                path,
                e,
            )),
        }
    }

    fn seal_intact(&self, kind: Kind, name: &str) -> Result<Option<bool>> {
        let path = self.object_path(kind, name)?;
        match seal::is_immutable(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if seal::unsupported(&e) => Ok(None),
            Err(e) => Err(Error::io("reading the attributes of", path, e)),
        }
    }

    fn clean_tmp(&self, max_age: Duration) -> usize {
        fsutil::remove_abandoned(&self.tmp(), "", max_age)
    }

    fn clean_lock_staging(&self, max_age: Duration) -> usize {
        fsutil::remove_abandoned(&self.dir(Kind::Locks), LOCK_STAGE_PREFIX, max_age)
    }
}

fn read_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "reading repository config",
        Kind::Packs => "reading pack",
        Kind::Index => "reading index file",
        Kind::Snapshots => "reading snapshot",
        Kind::Locks => "reading lock file",
        Kind::Keys => "reading key file",
    }
}

fn open_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Packs => "opening pack",
        _ => read_op(kind),
    }
}

fn write_op(kind: Kind) -> &'static str {
    match kind {
        Kind::Config => "writing repository config",
        Kind::Packs => "writing pack",
        Kind::Index => "writing index file",
        Kind::Snapshots => "writing snapshot",
        Kind::Locks => "writing lock file",
        Kind::Keys => "writing key file",
    }
}

struct LocalReader {
    file: File,
    path: PathBuf,
    kind: Kind,
}

impl ObjectReader for LocalReader {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_exact_at(buf, offset)
            .ctx(read_op(self.kind), &self.path)
    }
    fn size(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .ctx(read_op(self.kind), &self.path)?
            .len())
    }
    fn location(&self) -> &Path {
        &self.path
    }
}

struct LocalWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    store: LocalStore,
    kind: Kind,
}

impl ObjectWriter for LocalWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.out.write_all(data).ctx(write_op(self.kind), &self.tmp)
    }

    fn commit(self: Box<Self>, name: &str) -> Result<()> {
        let op = write_op(self.kind);
        let dest = match self.store.object_path(self.kind, name) {
            Ok(d) => d,
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                return Err(e);
            }
        };
        let file = match self.out.into_inner() {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&self.tmp);
                return Err(Error::io(op, dest, e.into_error()));
            }
        };
        fsutil::commit_temp(file, &self.tmp, &dest, op)
    }

    fn abort(self: Box<Self>) {
        let tmp = self.tmp.clone();
        drop(self.out);
        let _ = fs::remove_file(tmp);
    }
}
