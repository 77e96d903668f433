//! Tests of the encrypted store.

use super::*;
use crate::crypto::MasterKey;
use crate::store::LocalStore;

fn store() -> (tempfile::TempDir, Arc<dyn Store>, EncryptedStore) {
    let dir = tempfile::tempdir().unwrap();
    let plain: Arc<dyn Store> = Arc::new(LocalStore::create_layout(dir.path(), false).unwrap());
    let enc = EncryptedStore::new(plain.clone(), MasterKey::generate().keys());
    (dir, plain, enc)
}

#[test]
fn objects_round_trip_through_put_and_streamed_writes() {
    let (_d, plain, enc) = store();
    for len in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 77] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let name = format!("{len:064x}");
        assert!(enc.put(Kind::Index, &name, &data, Put::New).unwrap());
        assert_eq!(enc.read(Kind::Index, &name).unwrap(), data);
        let mut w = enc.create(Kind::Packs).unwrap();
        w.write_all(&data[..len / 2]).unwrap();
        w.write_all(&data[len / 2..]).unwrap();
        w.commit(&name).unwrap();
        let r = enc.open(Kind::Packs, &name).unwrap();
        assert_eq!(r.size().unwrap(), len as u64);
        assert_eq!(
            enc.stat(Kind::Packs, &name).unwrap().unwrap().size,
            len as u64
        );
        if len > 10 {
            let mut buf = vec![0u8; len - 10];
            r.read_exact_at(&mut buf, 5).unwrap();
            assert_eq!(buf, data[5..len - 5]);
        }
        let raw = plain.read(Kind::Packs, &name).unwrap();
        let runs: std::collections::HashSet<&[u8]> = data.windows(16).collect();
        assert!(len < 32 || !raw.windows(16).any(|w| runs.contains(w)));
    }
}

#[test]
fn reads_across_segments_match_and_damage_is_caught() {
    let (_d, plain, enc) = store();
    let len = 40 * SEGMENT + 123;
    let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
    let name = "ab".repeat(32);
    let mut w = enc.create(Kind::Packs).unwrap();
    w.write_all(&data).unwrap();
    w.commit(&name).unwrap();
    let r = enc.open(Kind::Packs, &name).unwrap();
    // Whole runs, runs that start or end inside a segment, the tail, and everything.
    let s = SEGMENT;
    for (from, to) in [
        (0, len),
        (0, 20 * s),
        (3, 20 * s + 9),
        (s, 39 * s),
        (20 * s + 9, len),
        (39 * s, len),
        (40 * s, len),
        (5 * s - 1, 5 * s + 1),
    ] {
        let mut buf = vec![0u8; to - from];
        r.read_exact_at(&mut buf, from as u64).unwrap();
        assert!(buf == data[from..to], "{from}..{to}");
    }
    assert_eq!(enc.read(Kind::Packs, &name).unwrap(), data);
    // One flipped byte in a middle segment: whole and partial reads over it fail, naming the
    // pack; reads elsewhere still work.
    let mut raw = plain.read(Kind::Packs, &name).unwrap();
    raw[HEADER + 17 * SEALED_SEGMENT + 100] ^= 1;
    plain.put(Kind::Packs, &name, &raw, Put::Replace).unwrap();
    let r = enc.open(Kind::Packs, &name).unwrap();
    for (from, to) in [(0, len), (16 * s, 18 * s), (17 * s + 5, 17 * s + 9)] {
        let mut buf = vec![0u8; to - from];
        let err = r.read_exact_at(&mut buf, from as u64).unwrap_err();
        assert!(err.to_string().contains("segment 17"), "{err}");
        assert!(err.to_string().contains(&name), "{err}");
    }
    let mut buf = vec![0u8; 10 * s];
    r.read_exact_at(&mut buf, 0).unwrap();
    assert!(buf == data[..10 * s]);
    let err = enc.read(Kind::Packs, &name).unwrap_err();
    assert!(err.to_string().contains("segment 17"), "{err}");
    // A truncated object fails as a whole.
    raw.truncate(raw.len() - 30);
    plain.put(Kind::Packs, &name, &raw, Put::Replace).unwrap();
    assert!(enc.read(Kind::Packs, &name).is_err());
}

#[test]
fn a_swapped_or_replaced_object_is_named() {
    let (_d, plain, enc) = store();
    enc.put(Kind::Snapshots, "old", b"older snapshot", Put::New)
        .unwrap();
    enc.put(Kind::Snapshots, "new", b"newer snapshot", Put::New)
        .unwrap();
    let old = plain.read(Kind::Snapshots, "old").unwrap();
    plain
        .put(Kind::Snapshots, "new", &old, Put::Replace)
        .unwrap();
    let err = enc.read(Kind::Snapshots, "new").unwrap_err();
    assert!(err.to_string().contains("snapshot new"), "{err}");
    assert!(err.to_string().contains("swapped or replayed"), "{err}");
    // The same object under another kind fails too.
    plain.put(Kind::Index, "old", &old, Put::New).unwrap();
    assert!(enc.read(Kind::Index, "old").is_err());
}
