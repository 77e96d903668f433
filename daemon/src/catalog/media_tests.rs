use super::*;
use bms_tape::format::catalog::{Catalog as TapeCatalog, CatalogEntry};
use bms_tape::format::pax::Kind;

fn open() -> (tempfile::TempDir, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let c = Catalog::open(&dir.path().join("catalog.db")).unwrap();
    (dir, c)
}

fn pool(c: &mut Catalog) {
    c.add_pool(&Pool {
        name: "weekly".into(),
        media_type: "lto8".into(),
        retention_days: 28,
        vault: Some("ironmountain".into()),
        vault_days: 0,
    })
    .unwrap();
}

fn volume(barcode: &str, volume: u32, last: bool) -> TapeCatalog {
    TapeCatalog {
        snapshot: "snap-1".into(),
        job: "etc".into(),
        barcode: barcode.into(),
        media_set: "set-1".into(),
        volume,
        last,
        archive_file: 1,
        archive_bytes: 1 << 20,
        entries: vec![CatalogEntry {
            offset: 0,
            size: 5,
            hash: "ab".repeat(32),
            kind: Kind::File,
            path: format!("file-{volume}").into_bytes(),
        }],
    }
}

const ME: Actor = Actor { uid: 0 };

#[test]
fn lifecycle_label_allocate_full_expire_scratch() {
    let (_d, mut c) = open();
    pool(&mut c);
    assert!(
        c.add_pool(&c.pool("weekly").unwrap().unwrap()).is_err(),
        "duplicate pool"
    );
    let shelf = Location::Shelf("rack-1".into());
    c.add_medium("BMS001L8", "lto8", &shelf).unwrap();
    assert!(c.add_medium("BMS001L8", "lto8", &shelf).is_err());
    assert!(c.add_medium("bad code", "lto8", &shelf).is_err());
    assert!(c
        .add_medium("X1", "lto4", &shelf)
        .unwrap_err()
        .message
        .contains("lto9"));
    c.add_medium("RDX01", "rdx", &shelf).unwrap();
    assert!(
        c.allocate_medium("RDX01", "weekly", "s", 1).is_err(),
        "wrong type for the pool"
    );

    c.allocate_medium("BMS001L8", "weekly", "set-1", 1).unwrap();
    let m = c.medium("BMS001L8").unwrap().unwrap();
    assert_eq!(
        (m.state, m.pool.as_deref(), m.sequence),
        (MediaState::Writable, Some("weekly"), Some(1))
    );
    assert!(
        c.allocate_medium("BMS001L8", "weekly", "set-1", 1).is_err(),
        "not scratch any more"
    );

    c.record_media_write("BMS001L8", 1000, false, "2026-01-01T00:00:00.000Z")
        .unwrap();
    c.record_media_write("BMS001L8", 500, true, "2026-01-02T00:00:00.000Z")
        .unwrap();
    let m = c.medium("BMS001L8").unwrap().unwrap();
    assert_eq!(
        (m.state, m.write_count, m.bytes_written),
        (MediaState::Full, 2, 1500)
    );
    assert_eq!(
        m.expires_at.as_deref(),
        Some("2026-01-30T00:00:00.000Z"),
        "28 days after the last write"
    );
    assert!(c
        .record_media_write("BMS001L8", 1, false, "2026-01-03T00:00:00.000Z")
        .is_err());

    assert!(c
        .expire_media("2026-01-29T23:59:59.000Z")
        .unwrap()
        .is_empty());
    assert_eq!(
        c.expire_media("2026-01-30T00:00:00.000Z").unwrap(),
        vec!["BMS001L8"]
    );
    assert_eq!(
        c.medium("BMS001L8").unwrap().unwrap().state,
        MediaState::Expired
    );
    c.recycle_medium("BMS001L8").unwrap();
    let m = c.medium("BMS001L8").unwrap().unwrap();
    assert_eq!((m.state, m.media_set), (MediaState::Scratch, None));
    assert!(c.recycle_medium("BMS001L8").is_err());

    c.retire_medium("RDX01").unwrap();
    assert!(
        c.erase_medium("RDX01").is_err(),
        "retired media stay retired"
    );
    assert_eq!(c.media(Some("weekly")).unwrap().len(), 1);
    assert_eq!(c.media(None).unwrap().len(), 2);
}

#[test]
fn a_tape_copy_is_complete_only_with_its_last_volume_and_evidence_follows_moves() {
    let (_d, mut c) = open();
    pool(&mut c);
    for b in ["A1", "A2"] {
        c.add_medium(b, "lto8", &Location::Slot("lib/1".into()))
            .unwrap();
        c.allocate_medium(b, "weekly", "set-1", 1).unwrap();
    }
    // A copy that failed after its first volume records nothing as complete.
    let failed = c.begin_tape_archive("etc", "tape1", "snap-0").unwrap();
    c.record_tape_volume(failed, &volume("A1", 1, false))
        .unwrap();
    assert_eq!(
        c.finish_tape_archive(failed, Some("end of medium"))
            .unwrap(),
        "failed"
    );
    let missing = c.begin_tape_archive("etc", "tape1", "snap-0").unwrap();
    c.record_tape_volume(missing, &volume("A1", 1, false))
        .unwrap();
    assert_eq!(
        c.finish_tape_archive(missing, None).unwrap(),
        "failed",
        "no last volume"
    );
    assert!(c.media_evidence("etc").unwrap().is_empty());

    let id = c.begin_tape_archive("etc", "tape1", "snap-1").unwrap();
    c.record_tape_volume(id, &volume("A1", 1, false)).unwrap();
    c.record_tape_volume(id, &volume("A2", 2, true)).unwrap();
    assert_eq!(c.finish_tape_archive(id, None).unwrap(), "complete");
    let ev = c.media_evidence("etc").unwrap();
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| !e.offsite && !e.in_drive && e.media_type == "lto8"));
    let loc = c.tape_file_location("snap-1", b"file-2").unwrap().unwrap();
    assert_eq!((loc.barcode.as_str(), loc.volume), ("A2", 2));

    c.move_medium("A2", &Location::Drive("drive0".into()), None, ME)
        .unwrap();
    c.move_medium(
        "A1",
        &Location::Vault("ironmountain".into()),
        Some("2026-02-01T00:00:00.000Z"),
        ME,
    )
    .unwrap();
    assert!(c
        .move_medium("A1", &Location::Vault(String::new()), None, ME)
        .is_err());
    let ev = c.media_evidence("etc").unwrap();
    let a1 = ev.iter().find(|e| e.barcode == "A1").unwrap();
    assert!(a1.offsite && !a1.in_drive);
    assert!(ev.iter().find(|e| e.barcode == "A2").unwrap().in_drive);

    // Rotation: A1 comes back on its date; a full medium of a pool with a vault goes out.
    assert!(c
        .media_due("2026-01-31T00:00:00.000Z")
        .unwrap()
        .come_back
        .is_empty());
    assert_eq!(
        c.media_due("2026-02-01T00:00:00.000Z").unwrap().come_back,
        vec!["A1"]
    );
    c.record_media_write("A2", 10, true, "2026-01-01T00:00:00.000Z")
        .unwrap();
    assert_eq!(
        c.media_due("2026-01-02T00:00:00.000Z").unwrap().to_vault,
        vec![("A2".to_string(), "ironmountain".to_string())]
    );

    // Erasing a medium makes the archives on it stop counting.
    c.erase_medium("A2").unwrap();
    assert_eq!(
        c.tape_archive_state(id).unwrap().as_deref(),
        Some("overwritten")
    );
    assert!(c.media_evidence("etc").unwrap().is_empty());
}

#[test]
fn scanned_catalogs_rebuild_the_archive_records() {
    let (_d, mut c) = open();
    pool(&mut c);
    c.add_medium("A1", "lto8", &Location::Shelf(String::new()))
        .unwrap();
    c.add_medium("A2", "lto8", &Location::Shelf(String::new()))
        .unwrap();
    let ids = c
        .import_tape_catalogs("tape1", &[volume("A1", 1, false)])
        .unwrap();
    assert_eq!(
        c.tape_archive_state(ids[0]).unwrap().as_deref(),
        Some("partial")
    );
    let again = c
        .import_tape_catalogs("tape1", &[volume("A2", 2, true)])
        .unwrap();
    assert_eq!(again, ids, "the same archive");
    assert_eq!(
        c.tape_archive_state(ids[0]).unwrap().as_deref(),
        Some("complete")
    );
    assert_eq!(c.media_evidence("etc").unwrap().len(), 2);
    assert!(c.tape_file_location("snap-1", b"file-1").unwrap().is_some());
}
