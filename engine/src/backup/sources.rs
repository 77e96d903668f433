//! Checks of the source paths before a backup starts (docs/operations.md, "Backup sources"):
//! every source must exist, a source reached through a symbolic link is followed and stored
//! under the path as given, and a source inside the target repository is refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the checks found: notes for the run log, and the repository's identity so that the
/// walk can leave it out when it lies inside a source.
pub struct SourceCheck {
    pub notes: Vec<String>,
    /// (device, inode) of the repository directory.
    pub repo_id: Option<(u64, u64)>,
}

/// Checks the normalised, sorted `sources` against the repository at `repo`.
pub fn check(sources: &[PathBuf], repo: &Path) -> Result<SourceCheck> {
    let mut missing = Vec::new();
    for s in sources {
        // `metadata` follows symbolic links: a dangling link is as missing as no path at all.
        if let Err(e) = std::fs::metadata(s) {
            missing.push(format!("{}: {e}", s.display()));
        }
    }
    if !missing.is_empty() {
        return Err(Error::NoSources(format!(
            "source path does not exist or cannot be reached: {}; create it or remove it from \
             the sources",
            missing.join("; ")
        )));
    }
    // A repository that is no local directory (an object store's URL) cannot lie in a source.
    let repo_real = if repo.is_absolute() {
        Some(
            std::fs::canonicalize(repo)
                .map_err(|e| Error::io("resolving the repository path", repo, e))?,
        )
    } else {
        None
    };
    let repo_id = repo_real
        .as_ref()
        .and_then(|r| std::fs::metadata(r).ok())
        .map(|m| (m.dev(), m.ino()));
    let mut notes = Vec::new();
    for s in sources {
        let real = std::fs::canonicalize(s)
            .map_err(|e| Error::io("resolving the source path", s.clone(), e))?;
        if let Some(repo_real) = repo_real.as_ref().filter(|r| real.starts_with(r)) {
            return Err(Error::InvalidArgument(format!(
                "source {} lies inside the target repository {}: a repository cannot back up \
                 itself; choose a source outside it",
                s.display(),
                repo_real.display()
            )));
        }
        if real != *s {
            notes.push(link_note(s, &real));
        }
        if sources.iter().any(|o| o != s && s.starts_with(o)) {
            notes.push(format!(
                "source {} lies inside another source and is backed up as part of it",
                s.display()
            ));
        }
    }
    Ok(SourceCheck { notes, repo_id })
}

/// Says which components of `given` are symbolic links and what is stored.
fn link_note(given: &Path, real: &Path) -> String {
    let is_link = std::fs::symlink_metadata(given)
        .map(|m| m.file_type().is_symlink())
        .unwrap_or(false);
    let mut parents = Vec::new();
    let mut p = given.parent();
    while let Some(d) = p {
        if std::fs::symlink_metadata(d).is_ok_and(|m| m.file_type().is_symlink()) {
            parents.push(d.display().to_string());
        }
        p = d.parent();
    }
    parents.reverse();
    let mut why = Vec::new();
    if is_link {
        why.push(format!("{} is a symbolic link", given.display()));
    }
    if !parents.is_empty() {
        why.push(format!(
            "its parent {} {} a symbolic link (stored as a directory)",
            parents.join(", "),
            if parents.len() == 1 { "is" } else { "are" }
        ));
    }
    format!(
        "source {} resolves to {} ({}): the data it points to is backed up and stored under {}",
        given.display(),
        real.display(),
        why.join("; "),
        given.display()
    )
}
