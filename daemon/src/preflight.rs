//! Target pre-flight checks, run before every run and by `bmsctl target check`: a NAS target must
//! be a mount point (per /proc/self/mountinfo) of the expected filesystem and source, every target
//! must exist, be writable, and have more free space than its threshold. A failed check writes
//! nothing under the target.

use crate::targets::{open_target, Kind, Purpose, Target};
use bms_proto::api::{TargetCheck, TargetSpec};
use bms_proto::units::human_bytes as human;
use std::io;
use std::path::{Path, PathBuf};

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: Vec<String>,
}

/// Undoes the octal escapes (`\040` for space) of mountinfo fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            let mut options: Vec<String> = l.get(5)?.split(',').map(str::to_owned).collect();
            options.extend(
                r.get(2)
                    .map(|o| o.split(',').map(str::to_owned))
                    .into_iter()
                    .flatten(),
            );
            Some(Mount {
                mount_point: PathBuf::from(unescape(l.get(4)?)),
                fs_type: r.first()?.to_string(),
                source: unescape(r.get(1)?),
                options,
            })
        })
        .collect()
}

/// The mount whose mount point is exactly `path` (the last one wins, as mounts stack).
pub fn mount_at(path: &Path) -> io::Result<Option<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse_mountinfo(&text)
        .into_iter()
        .rev()
        .find(|m| m.mount_point == path))
}

/// Whether a configured source (`server:/export`, `/dev/sdb1`, `UUID=...`, `LABEL=...`) names the mount's source.
fn source_matches(want: &str, have: &str) -> bool {
    let resolve = |p: &str| std::fs::canonicalize(p).ok();
    let want_dev = if let Some(u) = want.strip_prefix("UUID=") {
        resolve(&format!("/dev/disk/by-uuid/{u}"))
    } else if let Some(l) = want.strip_prefix("LABEL=") {
        resolve(&format!("/dev/disk/by-label/{l}"))
    } else {
        None
    };
    match want_dev {
        Some(dev) => resolve(have).is_some_and(|h| h == dev),
        None => {
            want == have
                || (want.starts_with('/')
                    && resolve(want).is_some_and(|w| Some(w) == resolve(have)))
        }
    }
}

fn result(
    name: &str,
    ok: bool,
    state: &str,
    message: String,
    free: Option<u64>,
    fs: Option<String>,
) -> TargetCheck {
    TargetCheck {
        name: name.to_owned(),
        ok,
        state: state.into(),
        message,
        free_bytes: free,
        fs_type: fs,
        checked_at: crate::catalog::now_rfc3339(),
    }
}

/// Checks a target; never writes anything but a probe file that it removes at once.
pub fn check(spec: &TargetSpec) -> TargetCheck {
    match Target::from_spec(spec) {
        Ok(t) => check_target(&t),
        Err(e) => result(&spec.name, false, "error", e.message, None, None),
    }
}

/// Checks a target of any kind; what applies comes from the kind's capabilities.
pub fn check_target(target: &Target) -> TargetCheck {
    let name = target.name.as_str();
    let caps = target.capabilities();
    if let Kind::S3(place) = &target.kind {
        return check_s3(target, place);
    }
    if target.kind() == bms_proto::api::TargetKind::Tape {
        let (ok, state, message) = crate::targets::tape::check(target);
        return result(name, ok, state, message, None, None);
    }
    let path = match target.dir() {
        Some(dir) if caps.preflight => dir,
        _ => {
            return result(
                name,
                false,
                "unsupported",
                format!("{} targets are not yet supported", caps.kind.as_str()),
                None,
                None,
            )
        }
    };
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let hint = if caps.mount_check {
                "mount the NAS share there"
            } else {
                "create it"
            };
            return result(
                name,
                false,
                "missing",
                format!("{} does not exist: {hint}", shown),
                None,
                None,
            );
        }
        Err(e) => {
            return result(
                name,
                false,
                "error",
                format!("cannot access {}: {e}", shown),
                None,
                None,
            )
        }
    };
    if !meta.is_dir() {
        return result(
            name,
            false,
            "error",
            format!("{} is not a directory", shown),
            None,
            None,
        );
    }
    let mut fs_type = None;
    if let Kind::Nas {
        fs_type: want_fs_type,
        fs_source: want_fs_source,
        ..
    } = &target.kind
    {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let mount = match mount_at(&canonical) {
            Ok(Some(m)) => m,
            Ok(None) => {
                return result(
                    name,
                    false,
                    "not mounted",
                    format!(
                        "not mounted: {} is not a mount point; mount the NAS share there (bms never writes into an empty mount-point directory)",
                        shown
                    ),
                    None,
                    None,
                )
            }
            Err(e) => return result(name, false, "error", format!("cannot read /proc/self/mountinfo: {e}"), None, None),
        };
        fs_type = Some(mount.fs_type.clone());
        if let Some(want) = want_fs_type {
            if *want != mount.fs_type {
                return result(
                    name,
                    false,
                    "wrong filesystem",
                    format!(
                        "wrong filesystem: {} is {} but the target expects {want}",
                        shown, mount.fs_type
                    ),
                    None,
                    fs_type,
                );
            }
        }
        if let Some(want) = want_fs_source {
            if !source_matches(want, &mount.source) {
                return result(
                    name,
                    false,
                    "wrong filesystem",
                    format!(
                        "wrong filesystem: {} is mounted from {} but the target expects {want}",
                        shown, mount.source
                    ),
                    None,
                    fs_type,
                );
            }
        }
        if mount.options.iter().any(|o| o == "ro") {
            return result(
                name,
                false,
                "read-only",
                format!("read-only: {} is mounted read-only", shown),
                None,
                fs_type,
            );
        }
    }
    let free = match nix::sys::statvfs::statvfs(path) {
        Ok(st) => st.blocks_available() * st.fragment_size(),
        Err(e) => {
            return result(
                name,
                false,
                "error",
                format!("cannot stat filesystem of {}: {e}", shown),
                None,
                fs_type,
            )
        }
    };
    if let Err(e) = probe_write(path) {
        let (state, msg) = match e.raw_os_error() {
            Some(libc::EROFS) => (
                "read-only",
                format!("read-only: {} is not writable: {e}; under the systemd unit allow it with a drop-in (`systemctl edit bmsd`: [Service] ReadWritePaths={})", shown, path.display()),
            ),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                ("error", format!("{} is not writable by bmsd: {e}", shown))
            }
            _ => ("error", format!("cannot write to {}: {e}", shown)),
        };
        return result(name, false, state, msg, Some(free), fs_type);
    }
    if let Err(msg) = repository_usable(target, path) {
        return result(name, false, "error", msg, Some(free), fs_type);
    }
    if free < target.min_free_bytes {
        return result(
            name,
            false,
            "low space",
            format!(
                "low space: {} free < {}",
                human(free),
                human(target.min_free_bytes)
            ),
            Some(free),
            fs_type,
        );
    }
    result(
        name,
        true,
        "ok",
        format!("ok: {} free", human(free)),
        Some(free),
        fs_type,
    )
}

/// The pre-flight check of an S3 target (docs/s3.md "Pre-flight"): credentials readable, the
/// endpoint answers, the credentials are accepted, the bucket exists, a probe object can be
/// written and removed, and a repository under the prefix (if any) opens.
fn check_s3(target: &Target, place: &crate::targets::S3Place) -> TargetCheck {
    let name = target.name.as_str();
    let url = place.url();
    let store = match crate::targets::s3_store(place) {
        Ok(s) => s,
        Err(e) => return result(name, false, "error", e, None, None),
    };
    if let Err(e) = store.probe() {
        let state = if e.contains("reachable") || e.contains("TLS: ") {
            "unreachable"
        } else if e.contains("does not exist") {
            "missing"
        } else {
            "error"
        };
        return result(name, false, state, e, None, None);
    }
    use bms_engine::store::Store;
    match store.stat(bms_engine::store::Kind::Config, bms_engine::store::CONFIG) {
        Ok(Some(_)) => {
            if let Err(e) = open_target(target, Purpose::Check) {
                return result(
                    name,
                    false,
                    "unusable",
                    format!("{url} holds a repository that cannot be opened: {e}"),
                    None,
                    None,
                );
            }
        }
        Ok(None) => {}
        Err(e) => return result(name, false, "error", e.to_string(), None, None),
    }
    result(
        name,
        true,
        "ok",
        format!(
            "ok: bucket '{}' at {} is reachable and writable",
            place.bucket, place.endpoint
        ),
        None,
        None,
    )
}

/// What a run does with the directory: open the repository in it, or create one in an empty
/// directory (docs/operations.md). Says why a run would refuse, and what to do.
fn repository_usable(target: &Target, dir: &Path) -> Result<(), String> {
    if dir.join("config").exists() {
        return open_target(target, Purpose::Check)
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "{} holds a repository that cannot be opened: {e}",
                    dir.display()
                )
            });
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    // As for the run that creates the repository: lost+found, probes of concurrent checks and
    // a repository another run is creating right now do not count.
    let foreign = entries
        .filter(|e| {
            e.as_ref().map_or(true, |e| {
                !bms_engine::Repository::ignorable_in_new_dir(&e.file_name(), true)
            })
        })
        .count();
    if foreign > 0 {
        return Err(format!(
            "{} is not empty and holds no bms repository, so every run would refuse to create \
             one there: empty the directory, point the target at an empty or new directory, or \
             at an existing repository",
            dir.display()
        ));
    }
    Ok(())
}

fn probe_write(dir: &Path) -> io::Result<()> {
    use std::io::Write;
    // A name of its own: several runs of one bmsd may check one target at once.
    let probe = dir.join(bms_engine::fsutil::unique_name(
        bms_engine::repo::PROBE_PREFIX,
    ));
    let res = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(b"bms")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use bms_proto::api::TargetKind;

    #[test]
    fn parses_mountinfo_with_escapes_and_optional_fields() {
        let text =
            "36 35 98:0 / /mnt/nas\\040one rw,noatime master:1 - nfs4 server:/export rw,vers=4.2\n\
                    37 35 8:1 / /srv ro,relatime shared:2 - ext4 /dev/sda1 ro\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/nas one"));
        assert_eq!(m[0].fs_type, "nfs4");
        assert_eq!(m[0].source, "server:/export");
        assert!(m[1].options.contains(&"ro".to_string()));
    }

    #[test]
    fn plain_directory_is_not_mounted_for_nas() {
        let dir = tempfile::tempdir().unwrap();
        let spec = TargetSpec {
            kind: TargetKind::Nas,
            ..TargetSpec::disk("n", dir.path().to_string_lossy())
        };
        let c = check(&spec);
        assert_eq!(c.state, "not mounted", "{c:?}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
        let disk = TargetSpec {
            kind: TargetKind::Disk,
            min_free_bytes: u64::MAX,
            ..spec
        };
        let c = check(&disk);
        assert_eq!(c.state, "low space", "{c:?}");
        assert!(c.message.starts_with("low space: "), "{}", c.message);
    }
}
