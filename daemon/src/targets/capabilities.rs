//! What each kind of target supports: the one table that the handlers, the runner, the
//! pre-flight check and `bmsctl target show` read (docs/architecture.md, "Targets").

use bms_proto::api::TargetKind;

/// What a run or request wants to do with a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Write a job's backup into it (creating the repository in an empty directory).
    Backup,
    /// Copy a snapshot into it from another target (creating the repository likewise).
    CopyInto,
    /// Copy a snapshot out of it into another target.
    CopyFrom,
    /// Check its repository (and re-read data).
    Verify,
    /// Restore files out of it.
    RestoreFrom,
    /// Look at it before a run: the pre-flight check.
    Check,
    /// Remove snapshots and reclaim space (forget, prune): what can be backed up into can be
    /// pruned.
    Prune,
}

impl Purpose {
    /// Whether this purpose creates the repository when the directory is empty.
    pub fn creates(self) -> bool {
        matches!(self, Purpose::Backup | Purpose::CopyInto)
    }

    /// The purpose in words, for messages ("cannot {verb} a tape target yet").
    pub fn verb(self) -> &'static str {
        match self {
            Purpose::Backup => "back up into",
            Purpose::CopyInto => "copy into",
            Purpose::CopyFrom => "copy from",
            Purpose::Verify => "verify",
            Purpose::RestoreFrom => "restore from",
            Purpose::Check => "check",
            Purpose::Prune => "prune",
        }
    }
}

/// What a kind of target supports in this version of bms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub kind: TargetKind,
    pub backup: bool,
    pub copy_into: bool,
    pub copy_from: bool,
    pub verify: bool,
    pub restore_from: bool,
    /// The pre-flight check applies: exists, is a directory, writable, free space.
    pub preflight: bool,
    /// The pre-flight check also demands a mount point of the expected filesystem and source.
    pub mount_check: bool,
    /// Whether `immutable_days` is enforced: written objects are sealed (docs/operations.md
    /// "Immutability"); whether a given directory can hold seals is checked at `target add|edit`.
    pub immutability: bool,
}

/// The capabilities of a kind of target.
///
/// A tape target is a copy sink (docs/tape.md, "Tape targets"): a job's copy step streams a
/// snapshot of its primary target to tape; its pre-flight check looks at the library or device.
pub fn capabilities(kind: TargetKind) -> Capabilities {
    let directory = matches!(kind, TargetKind::Disk | TargetKind::Nas);
    // S3 targets (docs/s3.md) do all that disk targets do; their immutability is S3 Object Lock.
    let repository = directory || kind == TargetKind::S3;
    let tape = kind == TargetKind::Tape;
    Capabilities {
        kind,
        backup: repository,
        copy_into: repository || tape,
        copy_from: repository,
        verify: repository,
        restore_from: repository,
        preflight: repository || tape,
        mount_check: kind == TargetKind::Nas,
        immutability: repository,
    }
}

impl Capabilities {
    /// Whether the kind supports `purpose`.
    pub fn allows(&self, purpose: Purpose) -> bool {
        match purpose {
            Purpose::Backup => self.backup,
            Purpose::CopyInto => self.copy_into,
            Purpose::CopyFrom => self.copy_from,
            Purpose::Verify => self.verify,
            Purpose::RestoreFrom => self.restore_from,
            Purpose::Check => self.preflight,
            Purpose::Prune => self.backup,
        }
    }

    /// Whether jobs can write to targets of this kind (`supported` on the wire).
    pub fn writable(&self) -> bool {
        self.backup || self.copy_into
    }

    /// What the kind supports, in words, in a fixed order (`supports` on the wire).
    pub fn supports(&self) -> Vec<String> {
        [
            (self.backup, "backup"),
            (self.copy_into, "copy into"),
            (self.copy_from, "copy from"),
            // A tape target is verified by reading its latest archive back from tape
            // (docs/tape.md, "Verify and restore drills of tape targets").
            (self.verify || self.kind == TargetKind::Tape, "verify"),
            // A tape target is restored from through the catalog's record of its archives
            // (docs/tape.md, "Restore from a tape target"), not by opening a repository.
            (
                self.restore_from || self.kind == TargetKind::Tape,
                "restore",
            ),
            (self.preflight, "pre-flight check"),
            (self.mount_check, "mount check"),
            (self.immutability, "immutability"),
        ]
        .into_iter()
        .filter(|(yes, _)| *yes)
        .map(|(_, what)| what.to_owned())
        .collect()
    }

    /// The note a target of a kind that cannot be written carries (`note` on the wire).
    pub fn note(&self) -> Option<String> {
        (!self.writable()).then(|| {
            format!(
                "{} targets are not yet supported: jobs cannot write to this target yet; bms \
                 stores, lists and counts it, but cannot back up into, copy into, verify or \
                 restore from it",
                self.kind.as_str()
            )
        })
    }

    /// Why `purpose` is refused, for a target named `name`.
    pub fn refusal(&self, name: &str, purpose: Purpose) -> String {
        let kind = self.kind.as_str();
        if self.kind == TargetKind::Tape {
            return match purpose {
                Purpose::Backup | Purpose::Prune => format!(
                    "a tape target takes copies only: bms cannot {} target '{name}' (tape); make \
                     a disk or nas target the job's first target and give the tape as a further \
                     --target",
                    purpose.verb()
                ),
                _ => format!(
                    "tape targets are not yet supported for this: bms cannot {} target \
                     '{name}' (tape) yet; read the cartridges with `bmsctl tape restore` or \
                     `bmsctl tape verify` (docs/tape.md)",
                    purpose.verb()
                ),
            };
        }
        format!(
            "{kind} targets are not yet supported: bms cannot {} target '{name}' ({kind}) yet; \
             use a disk or nas target",
            purpose.verb()
        )
    }
}
