//! Immutability of disk, NAS and S3 targets (docs/operations.md "Immutability",
//! docs/repository-format.md "Immutability", docs/s3.md "Object Lock"): the check that a
//! target's filesystem can hold the immutable attribute (or its bucket has Object Lock), the
//! sealing step after a backup or copy, and the task that lifts seals whose time has passed on
//! the [trusted clock](clock) (S3 retentions lapse by themselves on the server's clock).

pub mod clock;

use crate::state::SharedRef;
use crate::targets::Target;
use bms_engine::Repository;
use bms_proto::api::{Event, TargetSpec};
use bms_proto::ApiError;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How often seals are checked for expiry (every second with a test clock).
pub const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// Why an S3 target cannot be immutable, None when it can (docs/s3.md "Object Lock"): the
/// bucket must be reachable and writable, with versioning Enabled, Object Lock enabled and no
/// default retention.
async fn s3_refusal(place: crate::targets::S3Place) -> Option<String> {
    tokio::task::spawn_blocking(move || crate::targets::s3_store(&place)?.lock_check())
        .await
        .unwrap_or_else(|e| Err(format!("the Object Lock check failed: {e}")))
        .err()
}

/// The length of an immutable day in seconds: 86400, or in debug builds the test hook
/// `BMS_TEST_IMMUTABLE_DAY_SECS` (docs/protocol.md "Test hooks"), so that tests can watch an S3
/// retention, which the server enforces on its own clock, run out.
fn day_secs() -> u64 {
    if cfg!(debug_assertions) {
        if let Some(n) = std::env::var("BMS_TEST_IMMUTABLE_DAY_SECS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|n| *n > 0)
        {
            return n;
        }
    }
    86_400
}

/// Refuses a target definition with `immutable_days > 0` whose directory cannot hold sealed
/// files: it must exist, be a disk or NAS target, and take the immutable attribute on a probe
/// file (which also proves bmsd holds CAP_LINUX_IMMUTABLE); an S3 target's bucket must pass
/// the Object Lock check.
pub async fn check_target_spec(spec: &TargetSpec) -> Result<(), ApiError> {
    if spec.immutable_days == 0 {
        return Ok(());
    }
    let target = Target::from_spec(spec)?;
    let refuse = |msg: String| {
        let mut e = ApiError::new(
            bms_proto::ErrorKind::NotSupported,
            format!("target '{}' cannot be immutable: {msg}", spec.name),
        );
        e.field = Some("immutable_days".into());
        e
    };
    if let crate::targets::Kind::S3(place) = &target.kind {
        return match s3_refusal(place.clone()).await {
            None => Ok(()),
            Some(why) => Err(refuse(why)),
        };
    }
    let Some(dir) = target.dir().map(ToOwned::to_owned) else {
        return Err(refuse(format!(
            "{} targets cannot hold immutable files yet; set immutable days to 0",
            spec.kind.as_str()
        )));
    };
    if !dir.is_dir() {
        return Err(refuse(format!(
            "{} does not exist or is not a directory; bms must check that its filesystem can \
             hold the immutable attribute: create (or mount) it first, then add the target",
            dir.display()
        )));
    }
    let probe = format!(
        "{}immutable-{}-{}",
        bms_engine::repo::PROBE_PREFIX,
        std::process::id(),
        bms_engine::id::ObjectId(bms_engine::fsutil::random_bytes().unwrap_or([0; 32])).short()
    );
    let why = tokio::task::spawn_blocking(move || bms_engine::store::seal::probe_dir(&dir, &probe))
        .await
        .map_err(|e| ApiError::internal(format!("the immutability check failed: {e}")))?;
    match why {
        None => Ok(()),
        Some(why) => Err(refuse(why)),
    }
}

/// Seals `snapshot` on `target` and what it needs until the snapshot's time plus the target's
/// immutable days (a seal already longer is kept), and records the seal in the catalog. `Ok` is
/// a line for the run log; `Err` says why the snapshot is not immutable.
pub async fn seal_step(
    shared: &SharedRef,
    target: &TargetSpec,
    snapshot: &str,
) -> Result<String, String> {
    let days = target.immutable_days;
    let (spec, id) = (target.clone(), snapshot.to_owned());
    let r = tokio::task::spawn_blocking(move || -> Result<_, bms_engine::Error> {
        let repo = open(&spec)?;
        let info = repo.find_snapshot(&id)?;
        let time: jiff::Timestamp = info.snapshot.time.parse().map_err(|e| {
            bms_engine::Error::corrupt(format!("snapshot {id}"), format!("bad time: {e}"))
        })?;
        let start = SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(time.as_second()).unwrap_or(0));
        let until = start + Duration::from_secs(u64::from(days) * day_secs());
        bms_engine::immutable::seal_snapshot(&repo, &info.id, until)
    })
    .await;
    let not = |why: String| {
        format!(
            "snapshot {snapshot} on '{}' is NOT immutable: {why}",
            target.name
        )
    };
    match r {
        Err(e) => Err(not(format!("the sealing task failed: {e}"))),
        Ok(Err(e)) => Err(not(e.to_string())),
        Ok(Ok(s)) if s.not_supported > 0 => Err(not(format!(
            "the filesystem of {} cannot hold the immutable attribute ({} object(s) left \
             unsealed): put the target on a local ext4, xfs or btrfs filesystem",
            target.path, s.not_supported
        ))),
        Ok(Ok(s)) => {
            let rec = crate::catalog::SealRecord {
                target: target.name.clone(),
                snapshot: s.snapshot.clone(),
                until: s.until.clone(),
                objects: s.objects(),
            };
            if let Err(e) = shared.catalog.call(move |c| c.record_seal(&rec)).await {
                // The files carry their own record; only verify's cross-check misses this one.
                warn!("cannot record the seal of snapshot {snapshot} in the catalog: {e}");
            }
            let line = format!(
                "sealed snapshot {} on '{}' with {} pack(s) and {} index file(s) until {} \
                 (immutable days {days})",
                s.snapshot, target.name, s.packs, s.index_files, s.until
            );
            info!("{line}");
            Ok(line)
        }
    }
}

/// What the catalog's record of seals on `target` finds that the files alone cannot show: a
/// snapshot sealed beyond now whose file is gone, or lost its seal record (and perhaps its
/// attribute), or (S3) whose Object Lock retention was removed or shortened. Problems of kind
/// `seal`, as verify reports them.
pub async fn catalog_seal_problems(
    shared: &SharedRef,
    target: &TargetSpec,
) -> Vec<bms_engine::Problem> {
    // bmsd's wall clock, the one seals are lifted by (shifted in tests by BMS_TEST_CLOCK): a
    // seal lifted after its time is not a seal lost.
    let wall = clock::Clock::new(&shared.config().config.state_dir).wall();
    let now = bms_engine::store::seal::rfc3339(wall);
    let name = target.name.clone();
    let seals = match shared
        .catalog
        .call(move |c| c.seals_after(&name, &now))
        .await
    {
        Ok(s) if !s.is_empty() => s,
        Ok(_) => return Vec::new(),
        Err(e) => {
            warn!("cannot read the recorded seals of '{}': {e}", target.name);
            return Vec::new();
        }
    };
    let Ok(t) = Target::from_spec(target) else {
        return Vec::new();
    };
    tokio::task::spawn_blocking(move || {
        use bms_engine::store::{Kind, Store};
        // An S3 target's seal is the Object Lock retention of its objects (docs/s3.md "Object
        // Lock"): one removed or shortened (governance mode, with a bypass) is a seal lost.
        let (store, lost): (Box<dyn Store>, &str) = match (&t.kind, t.dir()) {
            (_, Some(dir)) => (
                Box::new(bms_engine::store::LocalStore::new(dir.to_owned())),
                "lost its seal record (user.bms.sealed_until)",
            ),
            (crate::targets::Kind::S3(place), None) => match crate::targets::s3_store(place) {
                Ok(s) => (Box::new(s), "lost its Object Lock retention"),
                Err(e) => {
                    warn!(
                        "cannot check the Object Lock retentions of '{}': {e}",
                        t.name
                    );
                    return Vec::new();
                }
            },
            _ => return Vec::new(),
        };
        let mut out = Vec::new();
        for s in seals {
            let recorded = s
                .until
                .parse::<jiff::Timestamp>()
                .ok()
                .map(SystemTime::from);
            let what = if store
                .stat(Kind::Snapshots, &s.snapshot)
                .ok()
                .flatten()
                .is_none()
            {
                "is missing from the repository".to_owned()
            } else {
                match store.sealed_until(Kind::Snapshots, &s.snapshot) {
                    Ok(None) => lost.to_owned(),
                    Ok(Some(u)) if recorded.is_some_and(|r| u < r) => format!(
                        "its seal now ends {}, before that",
                        bms_engine::store::seal::rfc3339(u)
                    ),
                    _ => continue,
                }
            };
            out.push(bms_engine::Problem {
                kind: "seal",
                message: format!(
                    "snapshot {} should be immutable until {} (bmsd sealed it) but {what}: \
                     check who changed the repository",
                    s.snapshot, s.until
                ),
                pack: None,
                chunks: vec![],
                snapshots: vec![s.snapshot],
                files: vec![],
            });
        }
        out
    })
    .await
    .unwrap_or_default()
}

fn open(spec: &TargetSpec) -> Result<Repository, bms_engine::Error> {
    let t = Target::from_spec(spec).map_err(|e| bms_engine::Error::InvalidArgument(e.message))?;
    Ok(crate::targets::open_target(
        &t,
        crate::targets::Purpose::Verify,
    )?)
}

/// The task that lifts expired seals: at start and every [`EXPIRE_EVERY`], it reads the
/// trusted clock; a tamper raises `TamperDetected` once and expires nothing.
pub async fn run(shared: SharedRef, cancel: CancellationToken) {
    let clock = clock::Clock::new(&shared.config().config.state_dir);
    let every = match clock.test_file() {
        Some(f) => {
            warn!(
                "{} is set: bmsd's clocks are shifted by the offsets in {} and seals are \
                 checked every second; this is for tests only, never set it in production",
                clock::TEST_CLOCK_ENV,
                f.display()
            );
            Duration::from_secs(1)
        }
        None => EXPIRE_EVERY,
    };
    loop {
        pass(&shared, &clock).await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn pass(shared: &SharedRef, clock: &clock::Clock) {
    let c = clock.clone();
    let verdict = match tokio::task::spawn_blocking(move || c.check()).await {
        Ok(v) => v,
        Err(e) => {
            warn!("the clock check failed: {e}");
            return;
        }
    };
    let now = match verdict {
        clock::Verdict::Trusted(now) => now,
        clock::Verdict::Tampered { tamper, new } => {
            if new {
                error!("clock tamper: {}", tamper.detail);
                shared.events.publish(Event::TamperDetected {
                    target: None,
                    what: "clock".into(),
                    detail: tamper.detail,
                });
            }
            return;
        }
    };
    let targets = match shared.catalog.call(|c| c.list_targets()).await {
        Ok(t) => t,
        Err(e) => {
            warn!("cannot list targets to expire seals: {e}");
            return;
        }
    };
    for t in targets {
        let spec = t.spec;
        let Ok(target) = Target::from_spec(&spec) else {
            continue;
        };
        let Some(dir) = target.dir().map(ToOwned::to_owned) else {
            continue;
        };
        if !bms_engine::store::LocalStore::has_config(&dir) {
            continue;
        }
        let r = tokio::task::spawn_blocking(move || {
            let repo = crate::targets::open_target(&target, crate::targets::Purpose::Verify)?;
            bms_engine::immutable::expire(&repo, now)
        })
        .await;
        match r {
            Ok(Ok(s)) => {
                if !s.unsealed.is_empty() {
                    info!(
                        target = %spec.name,
                        "lifted {} expired seal(s) on '{}': {}",
                        s.unsealed.len(),
                        spec.name,
                        s.unsealed.join(", ")
                    );
                }
                for e in s.errors {
                    warn!(target = %spec.name, "cannot lift a seal on '{}': {e}", spec.name);
                }
            }
            Ok(Err(e)) => warn!("cannot expire seals on '{}': {e}", spec.name),
            Err(e) => warn!("the seal expiry task failed on '{}': {e}", spec.name),
        }
    }
}
