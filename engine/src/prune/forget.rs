//! Forget: removing snapshot files, by id or by a retention policy. The data they referenced
//! stays until a prune.

use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lock::{self, LockKind};
use crate::repo::Repository;
use crate::retention::{Candidate, Policy};
use crate::snapshot::{self, SnapshotInfo};
use crate::store::Kind;

/// One snapshot and what forget decided for it.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetDecision {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub job: String,
    pub host: String,
    pub keep: bool,
    /// Why it is kept (`daily 2026-11-30`, `last 3`, `within 7d`, `immutable until …`).
    pub reasons: Vec<String>,
}

/// What forget did (or would do, for a dry run).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ForgetSummary {
    pub dry_run: bool,
    /// Every snapshot considered, newest first per group (job, host).
    pub decisions: Vec<ForgetDecision>,
    /// Ids of the snapshots removed (to be removed, for a dry run).
    pub removed: Vec<String>,
}

fn decision(s: &SnapshotInfo, keep: bool, reasons: Vec<String>) -> ForgetDecision {
    ForgetDecision {
        id: s.id.clone(),
        short_id: s.short_id.clone(),
        time: s.snapshot.time.clone(),
        job: s.snapshot.job.clone(),
        host: s.snapshot.host.clone(),
        keep,
        reasons,
    }
}

fn sealed_until(repo: &Repository, id: &str) -> Result<Option<String>> {
    Ok(repo
        .store()
        .sealed_until(Kind::Snapshots, id)?
        .filter(|u| *u > SystemTime::now())
        .map(|u| {
            jiff::Timestamp::try_from(u)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "a later time".into())
        }))
}

impl Repository {
    /// Removes the snapshots named by `specs` (ids, unique prefixes or `latest`). Refuses the
    /// whole request, removing nothing, if one of them is sealed.
    pub fn forget(
        &self,
        specs: &[String],
        dry_run: bool,
        cancel: &AtomicBool,
    ) -> Result<ForgetSummary> {
        if specs.is_empty() {
            return Err(Error::InvalidArgument(
                "name at least one snapshot to forget".into(),
            ));
        }
        let _lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Exclusive,
            "forget",
            self.lock_wait(),
            cancel,
        )?;
        let list = self.snapshots()?;
        let mut chosen: Vec<&SnapshotInfo> = Vec::new();
        for spec in specs {
            let s = snapshot::resolve(&list, spec)?;
            if !chosen.iter().any(|c| c.id == s.id) {
                chosen.push(s);
            }
        }
        for s in &chosen {
            if let Some(until) = sealed_until(self, &s.id)? {
                return Err(Error::Immutable {
                    what: format!("snapshot {}", s.short_id),
                    until,
                });
            }
        }
        let mut out = ForgetSummary {
            dry_run,
            ..Default::default()
        };
        for s in chosen {
            if !dry_run {
                self.store().delete(Kind::Snapshots, &s.id)?;
            }
            out.removed.push(s.id.clone());
            out.decisions.push(decision(s, false, vec![]));
        }
        Ok(out)
    }

    /// Applies `policy` to the snapshots `select` accepts, separately for each (job, host),
    /// in time zone `tz`, and removes what it does not keep. Sealed snapshots are kept and
    /// say until when. A group the policy would empty is refused (nothing is removed).
    pub fn forget_policy(
        &self,
        policy: &Policy,
        select: &dyn Fn(&SnapshotInfo) -> bool,
        tz: &TimeZone,
        dry_run: bool,
        cancel: &AtomicBool,
    ) -> Result<ForgetSummary> {
        let _lock = lock::acquire_in(
            self.store().clone(),
            LockKind::Exclusive,
            if dry_run {
                "forget (dry run)"
            } else {
                "forget"
            },
            self.lock_wait(),
            cancel,
        )?;
        let list: Vec<SnapshotInfo> = self.snapshots()?.into_iter().filter(select).collect();
        let mut groups: Vec<((String, String), Vec<&SnapshotInfo>)> = Vec::new();
        for s in &list {
            let key = (s.snapshot.job.clone(), s.snapshot.host.clone());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(s),
                None => groups.push((key, vec![s])),
            }
        }
        let now = jiff::Timestamp::now();
        let mut out = ForgetSummary {
            dry_run,
            ..Default::default()
        };
        let mut plan = Vec::new();
        for (_, members) in &groups {
            let cands: Vec<Candidate> = members
                .iter()
                .map(|s| Candidate {
                    id: s.id.clone(),
                    time: s
                        .snapshot
                        .time
                        .parse()
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                    tags: s.snapshot.tags.clone(),
                    complete: !s.snapshot.partial,
                })
                .collect();
            for d in policy.apply(&cands, tz, now)? {
                let Some(s) = members.iter().find(|s| s.id == d.id) else {
                    continue;
                };
                let mut keep = d.keep;
                let mut reasons = d.reasons;
                if !keep {
                    if let Some(until) = sealed_until(self, &s.id)? {
                        keep = true;
                        reasons.push(format!("immutable until {until}"));
                    }
                }
                plan.push((*s, keep, reasons));
            }
        }
        for (s, keep, reasons) in plan {
            if !keep {
                if !dry_run {
                    self.store().delete(Kind::Snapshots, &s.id)?;
                }
                out.removed.push(s.id.clone());
            }
            out.decisions.push(decision(s, keep, reasons));
        }
        Ok(out)
    }
}
