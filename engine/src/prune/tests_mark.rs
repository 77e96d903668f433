//! Tests of prune's record of the last mark: the phase-1 skip and the early end.

use super::*;

/// Moves every condemnation time of the list back two days (past the default grace).
fn age_condemned(fx: &Fixture) -> Condemned {
    let mut aged = Condemned::load(&*fx.store).unwrap();
    for t in aged.packs.values_mut() {
        *t -= 2 * 86_400;
    }
    aged.save(&*fx.store).unwrap();
    aged
}

#[test]
fn a_prune_with_nothing_changed_since_its_mark_ends_at_once() {
    let fx = fixture();
    let ids: Vec<String> = (0..6).map(|n| fx.backup(n)).collect();
    fx.repo.forget(&ids[..3], false, &no()).unwrap();
    let first = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(first.packs_condemned > 0, "{first:?}");
    let listed = Condemned::load(&*fx.store).unwrap();
    let mark = listed.mark.clone().expect("phase 1 records its mark");
    assert_eq!(mark.snapshots.len(), 3);
    assert!(mark.settled.is_some(), "{mark:?}");
    let second = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(
        second.notes.iter().any(|n| n.contains("nothing to do")),
        "{second:?}"
    );
    assert_eq!(second.packs_waiting, first.packs_condemned, "{second:?}");
    assert_eq!(second.bytes_waiting, first.bytes_waiting, "{second:?}");
    assert_eq!(second.changes, 0, "{second:?}");
    assert_eq!(Condemned::load(&*fx.store).unwrap(), listed);
    // A new snapshot is a change: the next prune marks again.
    fx.backup(7);
    let third = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(
        !third.notes.iter().any(|n| n.contains("nothing to do")),
        "{third:?}"
    );
    assert_eq!(third.snapshots, 4, "{third:?}");
    fx.verify_clean();
}

#[test]
fn after_the_grace_a_prune_marks_only_the_new_snapshots_and_they_rescue_what_they_reuse() {
    let fx = fixture();
    let _s0 = fx.backup(0);
    let s1 = fx.backup(1);
    let _s5 = fx.backup(5);
    fx.repo.forget(&[s1], false, &no()).unwrap();
    let first = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(first.packs_condemned > 0, "{first:?}");
    // After the condemnation, a backup writes the forgotten version of f1 again: it reuses
    // chunks of the condemned packs.
    let v1 = noise(11, 1_500_000 + (11 % 7) * 1000);
    std::fs::write(fx.src.join("f1"), &v1).unwrap();
    let opts = BackupOptions {
        sources: vec![fx.src.clone()],
        job: "j".into(),
        host: "h".into(),
        ..Default::default()
    };
    let again = fx.repo.backup(&opts, &|_| {}, &no()).unwrap().snapshot_id;
    let aged = age_condemned(&fx);
    let s = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("only the snapshots made since")),
        "phase 2 alone, from the record: {s:?}"
    );
    assert!(s.packs_rescued > 0, "the reused packs are rescued: {s:?}");
    assert_eq!(
        s.packs_rescued + s.packs_removed,
        aged.packs.len() as u64,
        "{s:?}"
    );
    let left = Condemned::load(&*fx.store).unwrap();
    assert!(left.packs.is_empty(), "{left:?}");
    let mark = left.mark.expect("phase 2 records its mark");
    assert!(mark.snapshots.contains(&again), "{mark:?}");
    // New snapshots came since phase 1's mark: the repository is not called settled.
    assert!(mark.settled.is_none(), "{mark:?}");
    fx.verify_clean();
    let out = fx._dir.path().join("out");
    fx.repo
        .restore(
            &RestoreOptions {
                snapshot: again,
                target: out.clone(),
                paths: vec![],
                dry_run: false,
                overwrite: crate::Overwrite::Never,
            },
            &|_| {},
            &no(),
        )
        .unwrap();
    let restored = std::fs::read(out.join(fx.src.strip_prefix("/").unwrap()).join("f1")).unwrap();
    assert!(restored == v1, "f1 restores exactly");
    // The next prune marks everything again (nothing is due, and the record is not settled)
    // and finds the repository clean.
    let next = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert_eq!(next.packs_condemned, 0, "{next:?}");
    assert_eq!(next.packs_repacked, 0, "{next:?}");
}

#[test]
fn a_forget_since_the_mark_makes_prune_mark_everything() {
    let fx = fixture();
    let ids: Vec<String> = (0..6).map(|n| fx.backup(n)).collect();
    fx.repo.forget(&ids[..2], false, &no()).unwrap();
    let first = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(first.packs_condemned > 0, "{first:?}");
    fx.repo.forget(&ids[2..4], false, &no()).unwrap();
    age_condemned(&fx);
    let s = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(
        !s.notes
            .iter()
            .any(|n| n.contains("only the snapshots made since")),
        "{s:?}"
    );
    // Phase 1 condemned what the second forget freed; phase 2 deleted what had waited.
    assert!(s.packs_condemned > 0, "{s:?}");
    assert!(s.packs_removed > 0, "{s:?}");
    fx.verify_clean();
}

#[test]
fn another_repack_threshold_makes_prune_mark_everything() {
    let fx = fixture();
    let ids: Vec<String> = (0..6).map(|n| fx.backup(n)).collect();
    fx.repo.forget(&ids[..3], false, &no()).unwrap();
    fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    let opts = PruneOptions {
        repack_below_percent: 100,
        ..Default::default()
    };
    let s = fx.repo.prune(&opts, &no()).unwrap();
    assert!(
        !s.notes.iter().any(|n| n.contains("nothing to do")),
        "{s:?}"
    );
    assert!(s.blobs_live > 0, "a full mark: {s:?}");
    assert_eq!(
        Condemned::load(&*fx.store)
            .unwrap()
            .mark
            .map(|m| m.repack_below),
        Some(100)
    );
}
