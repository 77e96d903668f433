use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::*;
use crate::error::ErrorKind;
use crate::retention::Policy;
use crate::store::{Kind, LocalStore, ObjectReader, ObjectStat, ObjectWriter, Put, Seal, Store};
use crate::{BackupOptions, InitOptions, Repository, RestoreOptions, VerifyOptions};

/// A LocalStore that reports some objects as sealed (the contract of `Store::sealed_until`).
#[derive(Debug)]
struct SealingStore {
    inner: LocalStore,
    sealed: Mutex<HashSet<(Kind, String)>>,
    until: SystemTime,
}

impl Store for SealingStore {
    fn location(&self) -> &Path {
        self.inner.location()
    }
    fn locate(&self, kind: Kind, name: &str) -> PathBuf {
        self.inner.locate(kind, name)
    }
    fn check(&self) -> crate::Result<()> {
        self.inner.check()
    }
    fn list(&self, kind: Kind) -> crate::Result<Vec<String>> {
        self.inner.list(kind)
    }
    fn read(&self, kind: Kind, name: &str) -> crate::Result<Vec<u8>> {
        self.inner.read(kind, name)
    }
    fn open(&self, kind: Kind, name: &str) -> crate::Result<Box<dyn ObjectReader>> {
        self.inner.open(kind, name)
    }
    fn stat(&self, kind: Kind, name: &str) -> crate::Result<Option<ObjectStat>> {
        self.inner.stat(kind, name)
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8], mode: Put) -> crate::Result<bool> {
        self.inner.put(kind, name, data, mode)
    }
    fn create(&self, kind: Kind) -> crate::Result<Box<dyn ObjectWriter>> {
        self.inner.create(kind)
    }
    fn delete(&self, kind: Kind, name: &str) -> crate::Result<bool> {
        assert!(
            !self
                .sealed
                .lock()
                .unwrap()
                .contains(&(kind, name.to_string())),
            "deleted sealed {kind:?} {name}"
        );
        self.inner.delete(kind, name)
    }
    fn seal(&self, _: Kind, _: &str, _: SystemTime) -> crate::Result<Seal> {
        Ok(Seal::NotSupported)
    }
    fn sealed_until(&self, kind: Kind, name: &str) -> crate::Result<Option<SystemTime>> {
        let s = self.sealed.lock().unwrap();
        Ok(s.contains(&(kind, name.to_string())).then_some(self.until))
    }
    fn clean_tmp(&self, max_age: Duration) -> usize {
        self.inner.clean_tmp(max_age)
    }
    fn clean_lock_staging(&self, max_age: Duration) -> usize {
        self.inner.clean_lock_staging(max_age)
    }
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.finalize_xof().fill(&mut out);
    out
}

struct Fixture {
    _dir: tempfile::TempDir,
    src: PathBuf,
    repo_dir: PathBuf,
    store: Arc<SealingStore>,
    repo: Repository,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let repo_dir = dir.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();
    let store = Arc::new(SealingStore {
        inner: LocalStore::create_layout(&repo_dir, false).unwrap(),
        sealed: Mutex::new(HashSet::new()),
        until: SystemTime::now() + Duration::from_secs(86_400 * 30),
    });
    let opts = InitOptions {
        pack_size: 1 << 20,
        ..Default::default()
    };
    let repo = Repository::init_store(store.clone(), opts).unwrap();
    Fixture {
        _dir: dir,
        src,
        repo_dir,
        store,
        repo,
    }
}

impl Fixture {
    /// Snapshot `n`: four files, one of them rewritten each time.
    fn backup(&self, n: u64) -> String {
        for f in 0..4u64 {
            let seed = if f == n % 4 { n * 10 + f } else { f };
            let p = self.src.join(format!("f{f}"));
            if f == n % 4 || !p.exists() {
                std::fs::write(&p, noise(seed, 1_500_000 + (seed as usize % 7) * 1000)).unwrap();
            }
        }
        let opts = BackupOptions {
            sources: vec![self.src.clone()],
            job: "j".into(),
            host: "h".into(),
            ..Default::default()
        };
        self.repo
            .backup(&opts, &|_| {}, &AtomicBool::new(false))
            .unwrap()
            .snapshot_id
    }

    /// Bytes of all pack and index files on disk.
    fn repo_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| {
                    let e = e.unwrap();
                    let m = e.metadata().unwrap();
                    if m.is_dir() {
                        walk(&e.path())
                    } else {
                        m.len()
                    }
                })
                .sum()
        }
        walk(&self.repo_dir.join("packs")) + walk(&self.repo_dir.join("index"))
    }

    fn verify_clean(&self) {
        let rep = self
            .repo
            .verify(
                &VerifyOptions {
                    read_data: true,
                    ..Default::default()
                },
                &|_| {},
            )
            .unwrap();
        assert!(rep.ok && rep.problems.is_empty(), "{:?}", rep.problems);
    }
}

/// Options of a prune that deletes what it condemns in the same run.
fn at_once() -> PruneOptions {
    PruneOptions {
        grace: Duration::ZERO,
        ..Default::default()
    }
}

fn no() -> AtomicBool {
    AtomicBool::new(false)
}

#[test]
fn prune_reclaims_what_the_dry_run_said_and_the_repository_verifies() {
    let fx = fixture();
    let ids: Vec<String> = (0..6).map(|n| fx.backup(n)).collect();
    let before = fx.repo_bytes();
    // Nothing forgotten yet: prune has nothing to do.
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert_eq!(s.packs_removed + s.packs_repacked, 0, "{s:?}");
    assert_eq!(fx.repo_bytes(), before);

    let gone = fx.repo.forget(&ids[..3], false, &no()).unwrap();
    assert_eq!(gone.removed.len(), 3);
    let list_before = std::fs::read(fx.repo_dir.join("condemned")).ok();
    let dry = fx
        .repo
        .prune(
            &PruneOptions {
                dry_run: true,
                ..Default::default()
            },
            &no(),
        )
        .unwrap();
    assert_eq!(fx.repo_bytes(), before, "a dry run changes nothing");
    assert_eq!(
        std::fs::read(fx.repo_dir.join("condemned")).ok(),
        list_before,
        "a dry run leaves the condemned list alone"
    );
    assert_eq!(dry.bytes_before, before);
    // With the default grace period nothing is deleted now; the figure after it is what a
    // prune deletes once the grace period is over.
    assert_eq!(dry.packs_removed, 0, "{dry:?}");
    assert_eq!(dry.grace_secs, 86_400);
    assert!(dry.packs_condemned > 0, "{dry:?}");
    assert!(dry.bytes_reclaimed_after_grace > 3_000_000, "{dry:?}");
    let dry_now = fx
        .repo
        .prune(
            &PruneOptions {
                dry_run: true,
                ..at_once()
            },
            &no(),
        )
        .unwrap();
    let done = fx.repo.prune(&at_once(), &no()).unwrap();
    let after = fx.repo_bytes();
    let reclaimed = before - after;
    assert_eq!(done.bytes_after, after);
    for said in [dry.bytes_reclaimed_after_grace, dry_now.bytes_reclaimed] {
        let diff = (reclaimed as f64 - said as f64).abs();
        assert!(
            diff <= reclaimed as f64 * 0.01,
            "dry run said {said}, prune reclaimed {reclaimed}"
        );
    }
    assert_eq!(done.packs_removed, dry.packs_condemned);
    assert_eq!(done.packs_removed, dry_now.packs_removed);
    assert_eq!(done.packs_repacked, dry.packs_repacked);
    assert_eq!(done.changes, dry_now.changes, "{done:?} {dry_now:?}");
    assert!(Condemned::load(&*fx.store).unwrap().packs.is_empty());
    fx.verify_clean();
    // What stays restores exactly.
    let out = fx._dir.path().join("out");
    fx.repo
        .restore(
            &RestoreOptions {
                snapshot: ids[5].clone(),
                target: out.clone(),
                paths: vec![],
                dry_run: false,
                overwrite: crate::Overwrite::Never,
            },
            &|_| {},
            &no(),
        )
        .unwrap();
    for f in 0..4 {
        let name = format!("f{f}");
        let restored = std::fs::read(out.join(fx.src.strip_prefix("/").unwrap()).join(&name));
        assert_eq!(
            restored.unwrap(),
            std::fs::read(fx.src.join(&name)).unwrap()
        );
    }
    // A second prune finds nothing more.
    let again = fx.repo.prune(&at_once(), &no()).unwrap();
    assert_eq!(again.packs_removed + again.packs_repacked, 0, "{again:?}");
}

#[test]
fn forget_refuses_a_sealed_snapshot_with_the_date() {
    let fx = fixture();
    let a = fx.backup(0);
    let b = fx.backup(1);
    fx.store
        .sealed
        .lock()
        .unwrap()
        .insert((Kind::Snapshots, a.clone()));
    let e = fx
        .repo
        .forget(&[b.clone(), a.clone()], false, &no())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Immutable);
    let until = jiff::Timestamp::try_from(fx.store.until)
        .unwrap()
        .to_string();
    assert!(e.to_string().contains(&until), "{e}");
    // Nothing was removed, not even the unsealed one.
    assert_eq!(fx.repo.snapshots().unwrap().len(), 2);
    // A policy keeps the sealed one and says why.
    let p = Policy {
        last: 1,
        ..Default::default()
    };
    let s = fx
        .repo
        .forget_policy(&p, &|_| true, &jiff::tz::TimeZone::UTC, false, &no())
        .unwrap();
    assert!(s.removed.is_empty(), "{s:?}");
    let d = s.decisions.iter().find(|d| d.id == a).unwrap();
    assert!(d.keep);
    assert!(
        d.reasons[0].starts_with("immutable until "),
        "{:?}",
        d.reasons
    );
}

#[test]
fn prune_keeps_sealed_packs_and_index_files_and_reports_them() {
    let fx = fixture();
    let ids: Vec<String> = (0..4).map(|n| fx.backup(n)).collect();
    let packs = fx.store.list(Kind::Packs).unwrap();
    let index = fx.store.list(Kind::Index).unwrap();
    {
        let mut s = fx.store.sealed.lock().unwrap();
        for p in &packs {
            s.insert((Kind::Packs, p.clone()));
        }
        s.insert((Kind::Index, index[0].clone()));
    }
    fx.repo.forget(&ids[..3], false, &no()).unwrap();
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert_eq!(s.packs_removed + s.packs_repacked, 0, "{s:?}");
    assert!(s.sealed_kept.iter().any(|o| o.kind == "pack"));
    assert!(s
        .sealed_kept
        .iter()
        .any(|o| o.kind == "index file" && o.id == index[0]));
    for p in &packs {
        assert!(fx.store.stat(Kind::Packs, p).unwrap().is_some());
    }
    // Once the seals are gone, the space is reclaimed.
    fx.store.sealed.lock().unwrap().clear();
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert!(s.packs_removed + s.packs_repacked > 0, "{s:?}");
    fx.verify_clean();
}

#[test]
fn prune_refuses_when_a_snapshot_cannot_be_read() {
    let fx = fixture();
    let a = fx.backup(0);
    std::fs::write(fx.repo_dir.join("snapshots").join(&a), b"{broken").unwrap();
    let e = fx.repo.prune(&at_once(), &no()).unwrap_err();
    assert!(e.to_string().contains("cannot know which data"), "{e}");
}

#[test]
fn unindexed_packs_left_by_an_interrupted_run_are_removed() {
    let fx = fixture();
    fx.backup(0);
    // Lose the index: every pack is unindexed; the snapshot still needs them.
    for i in fx.store.list(Kind::Index).unwrap() {
        fx.store.delete(Kind::Index, &i).unwrap();
    }
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert_eq!(s.packs_removed, 0, "live unindexed packs are kept: {s:?}");
    fx.verify_clean();
    let ids: Vec<String> = fx
        .repo
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    fx.backup(1);
    fx.repo.forget(&ids, false, &no()).unwrap();
    // The first snapshot's data is reclaimed: its packs are removed, or repacked where the second
    // snapshot shares some of their chunks.
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert!(s.packs_removed + s.packs_repacked > 0, "{s:?}");
    assert!(s.bytes_reclaimed > 0, "{s:?}");
    fx.verify_clean();
}

#[test]
fn condemned_packs_wait_for_the_grace_period_and_stay_readable() {
    let fx = fixture();
    let ids: Vec<String> = (0..6).map(|n| fx.backup(n)).collect();
    fx.repo.forget(&ids[..3], false, &no()).unwrap();
    let before = fx.repo_bytes();
    let first = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(first.packs_condemned > 0, "{first:?}");
    assert_eq!(first.packs_removed, 0, "{first:?}");
    assert_eq!(first.packs_waiting, first.packs_condemned, "{first:?}");
    let listed = Condemned::load(&*fx.store).unwrap();
    assert_eq!(listed.packs.len() as u64, first.packs_condemned);
    // Nothing was deleted; the repacked blobs are in new, indexed packs.
    assert!(fx.repo_bytes() >= before);
    fx.verify_clean();
    // A second prune within the grace period deletes nothing and keeps the times.
    let second = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert_eq!(second.packs_removed, 0, "{second:?}");
    assert_eq!(second.packs_condemned, 0, "{second:?}");
    assert_eq!(Condemned::load(&*fx.store).unwrap(), listed);
    // Two days later (the condemnation times moved back) the default grace has passed.
    let mut aged = listed.clone();
    for t in aged.packs.values_mut() {
        *t -= 2 * 86_400;
    }
    aged.save(&*fx.store).unwrap();
    let dry = fx
        .repo
        .prune(
            &PruneOptions {
                dry_run: true,
                ..Default::default()
            },
            &no(),
        )
        .unwrap();
    assert_eq!(dry.packs_removed, first.packs_condemned, "{dry:?}");
    let mid = fx.repo_bytes();
    let third = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert_eq!(third.packs_removed, first.packs_condemned, "{third:?}");
    assert_eq!(third.packs_waiting, 0, "{third:?}");
    let reclaimed = mid - fx.repo_bytes();
    let diff = (reclaimed as f64 - dry.bytes_reclaimed as f64).abs();
    assert!(
        diff <= reclaimed as f64 * 0.01,
        "dry run said {}, prune reclaimed {reclaimed}",
        dry.bytes_reclaimed
    );
    assert!(Condemned::load(&*fx.store).unwrap().packs.is_empty());
    fx.verify_clean();
}

#[test]
fn a_backup_that_reuses_a_condemned_pack_rescues_it() {
    let fx = fixture();
    let s0 = fx.backup(0);
    let s1 = fx.backup(1);
    let _s5 = fx.backup(5);
    let _ = s0;
    // Forget the snapshot that alone holds the first version of f1: its chunks are condemned.
    fx.repo.forget(&[s1], false, &no()).unwrap();
    let first = fx.repo.prune(&PruneOptions::default(), &no()).unwrap();
    assert!(first.packs_condemned > 0, "{first:?}");
    let condemned = Condemned::load(&*fx.store).unwrap();
    // A backup writes that version again: it reuses the chunks of the condemned packs, which
    // are still indexed.
    let v1 = noise(11, 1_500_000 + (11 % 7) * 1000);
    std::fs::write(fx.src.join("f1"), &v1).unwrap();
    let opts = BackupOptions {
        sources: vec![fx.src.clone()],
        job: "j".into(),
        host: "h".into(),
        ..Default::default()
    };
    let again = fx.repo.backup(&opts, &|_| {}, &no()).unwrap().snapshot_id;
    // Even a prune without grace keeps what the new snapshot needs.
    let s = fx.repo.prune(&at_once(), &no()).unwrap();
    assert!(
        s.packs_rescued > 0 || s.packs_repacked > 0,
        "the reused packs are rescued or their live chunks copied: {s:?}"
    );
    let left = Condemned::load(&*fx.store).unwrap();
    assert!(left.packs.len() < condemned.packs.len() || left.packs.is_empty());
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
}

#[test]
fn a_grace_period_below_the_lock_lease_is_refused() {
    if std::env::var_os(GRACE_ENV).is_some() {
        return;
    }
    let e = effective_grace(Duration::from_secs(60)).unwrap_err();
    assert!(e.to_string().contains("at least 300s"), "{e}");
    assert_eq!(
        effective_grace(DEFAULT_GRACE).unwrap(),
        Duration::from_secs(86_400)
    );
}

/// The record of the last mark (docs/repository-format.md "The record of the last mark").
#[path = "tests_mark.rs"]
mod mark;
