use super::*;
use bms_proto::ErrorKind;

fn spec(kind: TargetKind, path: &str) -> TargetSpec {
    TargetSpec {
        kind,
        ..TargetSpec::disk("t", path)
    }
}

#[test]
fn every_kind_builds_its_variant() {
    let disk = Target::from_spec(&spec(TargetKind::Disk, "/srv/b")).unwrap();
    assert_eq!(
        disk.kind,
        Kind::Disk {
            path: "/srv/b".into()
        }
    );
    assert_eq!(disk.media, MediaType::Disk);
    assert_eq!(disk.dir(), Some(Path::new("/srv/b")));

    let nas = Target::from_spec(&TargetSpec {
        fs_type: Some("nfs4".into()),
        fs_source: Some("server:/export".into()),
        ..spec(TargetKind::Nas, "/mnt/nas")
    })
    .unwrap();
    assert_eq!(
        nas.kind,
        Kind::Nas {
            path: "/mnt/nas".into(),
            fs_type: Some("nfs4".into()),
            fs_source: Some("server:/export".into()),
        }
    );
    assert_eq!(nas.media, MediaType::Disk, "a NAS is disk");

    let tape = Target::from_spec(&spec(TargetKind::Tape, "/dev/nst0")).unwrap();
    assert_eq!(
        tape.kind,
        Kind::Tape {
            device: "/dev/nst0".into(),
            pool: None,
            drive: 0,
        }
    );
    assert_eq!(tape.media, MediaType::Tape);
    assert_eq!(tape.dir(), None);

    let s3 = Target::from_spec(&spec(TargetKind::S3, "s3://bucket/prefix")).unwrap();
    assert_eq!(
        s3.kind,
        Kind::S3(S3Place {
            endpoint: "https://s3.us-east-1.amazonaws.com".into(),
            bucket: "bucket".into(),
            prefix: "prefix".into(),
            region: "us-east-1".into(),
            virtual_host: true,
            credentials_file: None,
            lock_mode: bms_proto::api::ObjectLockMode::Compliance,
            ca_file: None,
            parallel: 8,
            part_size: 16 << 20,
        })
    );
    assert_eq!(s3.media, MediaType::Object);
    assert_eq!(
        s3.place(),
        "https://s3.us-east-1.amazonaws.com/bucket/prefix"
    );
    assert_eq!(s3.dir(), None);
    let minio = Target::from_spec(&TargetSpec {
        bucket: Some("bms".into()),
        prefix: Some("/host1/".into()),
        region: Some("eu-1".into()),
        credentials_file: Some("/etc/bms/s3.creds".into()),
        object_lock_mode: Some(bms_proto::api::ObjectLockMode::Governance),
        ..spec(TargetKind::S3, "http://127.0.0.1:9000")
    })
    .unwrap();
    assert_eq!(minio.place(), "http://127.0.0.1:9000/bms/host1");
    assert!(
        matches!(&minio.kind, Kind::S3(p) if p.lock_mode == bms_proto::api::ObjectLockMode::Governance)
    );
    let e = Target::from_spec(&TargetSpec {
        object_lock_mode: Some(bms_proto::api::ObjectLockMode::Governance),
        ..spec(TargetKind::Disk, "/srv/b")
    })
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("object_lock_mode"), "{e:?}");
    for t in [&disk, &nas, &tape] {
        let back = spec(t.kind(), &t.place());
        assert_eq!(back.kind, t.kind(), "the wire kind round-trips");
    }
}

#[test]
fn common_fields_are_kept() {
    let t = Target::from_spec(&TargetSpec {
        media_type: Some(MediaType::Optical),
        location: Location::Offsite,
        site: Some("vault".into()),
        immutable_days: 30,
        min_free_bytes: 5,
        ..spec(TargetKind::Disk, "/srv/b")
    })
    .unwrap();
    assert_eq!(t.name, "t");
    assert_eq!(t.media, MediaType::Optical);
    assert_eq!(t.location, Location::Offsite);
    assert_eq!(t.site.as_deref(), Some("vault"));
    assert_eq!((t.immutable_days, t.min_free_bytes), (30, 5));
}

fn refused(s: TargetSpec, field: &str, words: &str) {
    let e = Target::from_spec(&s).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e:?}");
    assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
    assert!(e.message.contains(words), "{}", e.message);
}

#[test]
fn nas_only_fields_are_refused_on_other_kinds() {
    for kind in [TargetKind::Disk, TargetKind::Tape, TargetKind::S3] {
        let path = if kind == TargetKind::S3 {
            "s3://b"
        } else {
            "/srv/b"
        };
        refused(
            TargetSpec {
                fs_type: Some("nfs4".into()),
                ..spec(kind, path)
            },
            "fs_type",
            "applies to nas targets only",
        );
        refused(
            TargetSpec {
                fs_source: Some("server:/x".into()),
                ..spec(kind, path)
            },
            "fs_source",
            "applies to nas targets only",
        );
    }
}

#[test]
fn bad_definitions_name_the_field() {
    refused(
        spec(TargetKind::Disk, "rel/dir"),
        "path",
        "must be absolute",
    );
    refused(spec(TargetKind::Tape, "nst0"), "path", "must be absolute");
    refused(spec(TargetKind::Nas, "/"), "path", "root directory");
    refused(spec(TargetKind::S3, "/srv/b"), "path", "s3://bucket/prefix");
    refused(spec(TargetKind::S3, "http://h:9000"), "bucket", "--bucket");
    refused(
        TargetSpec {
            bucket: Some("b".into()),
            ..spec(TargetKind::S3, "http://h:9000")
        },
        "bucket",
        "not a valid bucket name",
    );
    refused(
        TargetSpec {
            bucket: Some("bkt".into()),
            ..spec(TargetKind::S3, "http://h:9000/bkt")
        },
        "path",
        "--prefix",
    );
    refused(
        TargetSpec {
            bucket: Some("bkt".into()),
            prefix: Some("a//b".into()),
            ..spec(TargetKind::S3, "http://h:9000")
        },
        "prefix",
        "single '/'",
    );
    refused(
        TargetSpec {
            bucket: Some("bkt".into()),
            credentials_file: Some("creds".into()),
            ..spec(TargetKind::S3, "http://h:9000")
        },
        "credentials_file",
        "must be absolute",
    );
    refused(
        TargetSpec {
            bucket: Some("bkt".into()),
            ca_file: Some("ca.pem".into()),
            ..spec(TargetKind::S3, "http://h:9000")
        },
        "ca_file",
        "must be absolute",
    );
    for n in [0, 65] {
        refused(
            TargetSpec {
                bucket: Some("bkt".into()),
                s3_parallel: Some(n),
                ..spec(TargetKind::S3, "http://h:9000")
            },
            "s3_parallel",
            "give 1 to 64",
        );
    }
    for n in [(5 << 20) - 1, (512 << 20) + 1] {
        refused(
            TargetSpec {
                bucket: Some("bkt".into()),
                s3_part_size: Some(n),
                ..spec(TargetKind::S3, "http://h:9000")
            },
            "s3_part_size",
            "5MiB to 512MiB",
        );
    }
    let tuned = Target::from_spec(&TargetSpec {
        bucket: Some("bkt".into()),
        ca_file: Some("/etc/bms/ca.pem".into()),
        s3_parallel: Some(64),
        s3_part_size: Some(5 << 20),
        ..spec(TargetKind::S3, "https://h:9000")
    })
    .unwrap();
    let Kind::S3(p) = tuned.kind else {
        panic!("not s3")
    };
    assert_eq!(
        (p.ca_file.as_deref(), p.parallel, p.part_size),
        (Some(Path::new("/etc/bms/ca.pem")), 64, 5 << 20)
    );
    for (field, t) in [
        (
            "ca_file",
            TargetSpec {
                ca_file: Some("/etc/ca.pem".into()),
                ..spec(TargetKind::Disk, "/srv/b")
            },
        ),
        (
            "s3_parallel",
            TargetSpec {
                s3_parallel: Some(4),
                ..spec(TargetKind::Disk, "/srv/b")
            },
        ),
    ] {
        refused(t, field, "applies to s3 targets only");
    }
    refused(
        TargetSpec {
            bucket: Some("bkt".into()),
            ..spec(TargetKind::Disk, "/srv/b")
        },
        "bucket",
        "applies to s3 targets only",
    );
    refused(
        spec(TargetKind::Disk, &format!("/{}", "x".repeat(5000))),
        "path",
        "at most 4096",
    );
    refused(
        TargetSpec {
            name: "a b".into(),
            ..spec(TargetKind::Disk, "/srv/b")
        },
        "name",
        "not a valid name",
    );
    refused(
        TargetSpec {
            site: Some("a\nb".into()),
            ..spec(TargetKind::Disk, "/srv/b")
        },
        "site",
        "control characters",
    );
    refused(
        TargetSpec {
            immutable_days: 36501,
            ..spec(TargetKind::Disk, "/srv/b")
        },
        "immutable_days",
        "at most 36500",
    );
    refused(
        TargetSpec {
            fs_type: Some("x".repeat(300)),
            ..spec(TargetKind::Nas, "/mnt/n")
        },
        "fs_type",
        "at most 256",
    );
}

#[test]
fn capabilities_by_kind() {
    let all = [
        Purpose::Backup,
        Purpose::CopyInto,
        Purpose::CopyFrom,
        Purpose::Verify,
        Purpose::RestoreFrom,
        Purpose::Check,
    ];
    for kind in [TargetKind::Disk, TargetKind::Nas] {
        let c = capabilities(kind);
        assert!(all.iter().all(|p| c.allows(*p)), "{kind:?}");
        assert!(c.writable());
        assert_eq!(c.note(), None);
        assert!(c.immutability, "immutability on {kind:?}");
    }
    assert!(!capabilities(TargetKind::Disk).mount_check);
    assert!(capabilities(TargetKind::Nas).mount_check);
    assert_eq!(
        capabilities(TargetKind::Nas).supports(),
        [
            "backup",
            "copy into",
            "copy from",
            "verify",
            "restore",
            "pre-flight check",
            "mount check",
            "immutability"
        ]
    );
    let s3 = capabilities(TargetKind::S3);
    assert!(all.iter().all(|p| s3.allows(*p)));
    assert!(s3.writable() && s3.immutability && !s3.mount_check);
    assert_eq!(s3.note(), None);
    // A tape target is a copy sink (docs/tape.md, "Tape targets").
    let c = capabilities(TargetKind::Tape);
    assert!(c.allows(Purpose::CopyInto) && c.allows(Purpose::Check));
    for p in [
        Purpose::Backup,
        Purpose::CopyFrom,
        Purpose::Verify,
        Purpose::RestoreFrom,
        Purpose::Prune,
    ] {
        assert!(!c.allows(p), "{p:?}");
    }
    assert!(c.writable());
    assert_eq!(c.note(), None);
    assert_eq!(
        c.supports(),
        ["copy into", "verify", "restore", "pre-flight check"]
    );
    assert!(c
        .refusal("lto", Purpose::Backup)
        .contains("takes copies only"));
}

#[test]
fn tape_fields_belong_to_tape_targets() {
    refused(
        TargetSpec {
            pool: Some("weekly".into()),
            ..spec(TargetKind::Disk, "/srv/b")
        },
        "pool",
        "tape targets only",
    );
    refused(
        TargetSpec {
            encrypt: true,
            ..spec(TargetKind::Tape, "/dev/nst0")
        },
        "encrypt",
        "GNU tar",
    );
    let t = Target::from_spec(&TargetSpec {
        pool: Some("weekly".into()),
        drive: Some(1),
        ..spec(TargetKind::Tape, "/srv/vtl")
    })
    .unwrap();
    assert_eq!(
        tape::parts(&t),
        Some((Path::new("/srv/vtl"), Some("weekly"), 1))
    );
}

#[test]
fn open_target_refuses_a_repository_on_a_tape_target() {
    {
        let (kind, path) = (TargetKind::Tape, "/dev/nst0");
        let t = Target::from_spec(&spec(kind, path)).unwrap();
        for (purpose, why) in [
            (Purpose::Backup, "takes copies only"),
            (Purpose::RestoreFrom, "bmsctl tape restore"),
        ] {
            let e = open_target(&t, purpose).unwrap_err();
            assert!(matches!(e, OpenError::NotSupported { .. }), "{e:?}");
            let msg = e.to_string();
            assert!(msg.contains(why), "{msg}");
            assert!(msg.contains(purpose.verb()), "{msg}");
            assert!(msg.contains("'t'"), "{msg}");
            let api = ApiError::from(e);
            assert_eq!(api.kind, ErrorKind::NotSupported);
            let api = ApiError::from(t.require(purpose).unwrap_err());
            assert_eq!(api.kind, ErrorKind::NotSupported, "{api:?}");
        }
    }
}

#[test]
fn open_target_creates_only_for_writes() {
    let dir = tempfile::tempdir().unwrap();
    let t = Target::from_spec(&spec(TargetKind::Disk, &dir.path().to_string_lossy())).unwrap();
    let e = open_target(&t, Purpose::Verify).unwrap_err();
    assert!(
        matches!(
            e,
            OpenError::Repository(bms_engine::Error::NotARepository { .. })
        ),
        "{e:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    open_target(&t, Purpose::Backup).unwrap();
    assert!(dir.path().join("config").exists());
    open_target(&t, Purpose::RestoreFrom).unwrap();
    t.require(Purpose::RestoreFrom).unwrap();

    let full = tempfile::tempdir().unwrap();
    std::fs::write(full.path().join("foreign"), b"x").unwrap();
    let t = Target::from_spec(&spec(TargetKind::Disk, &full.path().to_string_lossy())).unwrap();
    let e = open_target(&t, Purpose::CopyInto).unwrap_err();
    assert!(
        matches!(
            e,
            OpenError::Repository(bms_engine::Error::AlreadyExists { .. })
        ),
        "{e:?}"
    );
}

#[test]
fn runs_on_the_same_tape_drive_share_one_lock() {
    use super::tape::{drive_lock, TapeSink};
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let lib = bms_tape::library::VirtualLibrary::create(&tmp.path().join("vtl"), 2, 2).unwrap();
    let sink = |drive| TapeSink::Library {
        library: lib.clone(),
        drive,
    };
    let (a, b, other) = (
        drive_lock(&sink(0)),
        drive_lock(&sink(0)),
        drive_lock(&sink(1)),
    );
    assert!(Arc::ptr_eq(&a, &b));
    assert!(!Arc::ptr_eq(&a, &other));
    let held = a.lock().unwrap();
    assert!(b.try_lock().is_err(), "a second run waits for the drive");
    assert!(other.try_lock().is_ok(), "another drive is free");
    drop(held);
    assert!(b.try_lock().is_ok());
}
