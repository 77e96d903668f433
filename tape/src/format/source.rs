//! What goes into an archive: a list of members with their metadata and where their data is.

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::pax::{Kind, Meta};
use crate::{Result, TapeError};

/// Opens the data of a member that is not a plain file on disk (a file of a snapshot in a
/// repository): called once per member, on the archive's reader thread, in member order.
pub type OpenData = std::sync::Arc<dyn Fn() -> std::io::Result<Box<dyn Read + Send>> + Send + Sync>;

/// Where a regular file's data comes from.
#[derive(Clone)]
pub enum Data {
    /// A file on disk.
    Path(PathBuf),
    /// A reader that an opener makes (e.g. a snapshot's file read from its repository).
    Open(OpenData),
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Path(p) => write!(f, "Path({})", p.display()),
            Data::Open(_) => f.write_str("Open(..)"),
        }
    }
}

impl Data {
    /// What the data is, for messages.
    pub fn describe(&self, meta: &Meta) -> String {
        match self {
            Data::Path(p) => p.display().to_string(),
            Data::Open(_) => String::from_utf8_lossy(&meta.path).into_owned(),
        }
    }

    /// Opens the data for reading.
    pub fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        match self {
            Data::Path(p) => Ok(Box::new(fs::File::open(p)?)),
            Data::Open(f) => f(),
        }
    }
}

/// One member to archive.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// Its headers.
    pub meta: Meta,
    /// For regular files: where the data is.
    pub data: Option<Data>,
}

fn name_of(id: u32, group: bool) -> String {
    let r = if group {
        nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(id)).map(|g| g.map(|g| g.name))
    } else {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(id)).map(|u| u.map(|u| u.name))
    };
    r.ok().flatten().unwrap_or_default()
}

/// Lists the tree under `root` (not following symlinks), sorted by path, as archive members with
/// paths relative to `root`. Sockets, FIFOs and device nodes are left out.
pub fn scan_tree(root: &Path) -> Result<Vec<SourceEntry>> {
    let mut out = Vec::new();
    let mut names = std::collections::HashMap::new();
    walk(root, Path::new(""), &mut out, &mut names)?;
    Ok(out)
}

fn walk(
    root: &Path,
    rel: &Path,
    out: &mut Vec<SourceEntry>,
    names: &mut std::collections::HashMap<(u32, bool), String>,
) -> Result<()> {
    let dir = root.join(rel);
    let mut items: Vec<_> = fs::read_dir(&dir)
        .map_err(|e| TapeError::io(format!("listing {}", dir.display()), e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| TapeError::io(format!("listing {}", dir.display()), e))?;
    items.sort_by_key(|e| e.file_name());
    for item in items {
        let path = item.path();
        let md = fs::symlink_metadata(&path)
            .map_err(|e| TapeError::io(format!("reading {}", path.display()), e))?;
        let relp = rel.join(item.file_name());
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_file() {
            Kind::File
        } else {
            continue;
        };
        let link = if kind == Kind::Symlink {
            fs::read_link(&path)
                .map_err(|e| TapeError::io(format!("reading symlink {}", path.display()), e))?
                .as_os_str()
                .as_bytes()
                .to_vec()
        } else {
            Vec::new()
        };
        let uname = names
            .entry((md.uid(), false))
            .or_insert_with(|| name_of(md.uid(), false))
            .clone();
        let gname = names
            .entry((md.gid(), true))
            .or_insert_with(|| name_of(md.gid(), true))
            .clone();
        out.push(SourceEntry {
            meta: Meta {
                path: relp.as_os_str().as_bytes().to_vec(),
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                uname,
                gname,
                mtime: (md.mtime(), u32::try_from(md.mtime_nsec()).unwrap_or(0)),
                size: if kind == Kind::File { md.len() } else { 0 },
                link,
            },
            data: (kind == Kind::File).then(|| Data::Path(path.clone())),
        });
        if kind == Kind::Dir {
            walk(root, &relp, out, names)?;
        }
    }
    Ok(())
}
