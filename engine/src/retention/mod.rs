//! Retention policies: which snapshots a policy keeps and why. Pure: no I/O.
//!
//! The semantics are restic's `forget` (docs/retention.md): the rules are a union; a calendar
//! rule (`hourly`, `daily`, `weekly`, `monthly`, `yearly`, `last`) walks the snapshots newest
//! first and keeps the first snapshot of each bucket it has not seen, until it has kept its count
//! of buckets (buckets without a snapshot do not count); `within` keeps what is younger than the
//! latest snapshot minus the duration; `within-<calendar>` keeps the newest snapshot of every
//! bucket inside that window; `tag` keeps snapshots carrying all tags of one of its lists.
//! Buckets are taken in the given time zone (bmsd: its own local time zone).
//! On top of restic: a policy whose rules would keep nothing is refused, and the latest complete
//! snapshot is always kept.

mod duration;

use std::collections::BTreeSet;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use duration::KeepDuration;

/// A retention policy. All counts 0 and no durations or tags means "keep everything".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    pub within: Option<KeepDuration>,
    pub within_hourly: Option<KeepDuration>,
    pub within_daily: Option<KeepDuration>,
    pub within_weekly: Option<KeepDuration>,
    pub within_monthly: Option<KeepDuration>,
    pub within_yearly: Option<KeepDuration>,
    /// Each entry is a set of tags; a snapshot carrying all of one set is kept.
    pub tags: Vec<Vec<String>>,
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub time: Timestamp,
    pub tags: Vec<String>,
    /// False for a partial snapshot (some files could not be read).
    pub complete: bool,
}

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    /// Why it is kept (`daily 2026-11-30`, `last 3`, `within 7d`); empty when removed.
    pub reasons: Vec<String>,
}

/// Reason given to the snapshot kept because it is the latest complete one.
pub const LATEST_COMPLETE: &str = "latest complete snapshot";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Bucket {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::Hour => "hourly",
            Bucket::Day => "daily",
            Bucket::Week => "weekly",
            Bucket::Month => "monthly",
            Bucket::Year => "yearly",
        }
    }

    /// The bucket's key and its label (`2026-11-30`, `2026-W48`, ...).
    fn key(self, t: &jiff::Zoned) -> (i64, String) {
        let (y, m, d, h) = (
            i64::from(t.year()),
            i64::from(t.month()),
            i64::from(t.day()),
            i64::from(t.hour()),
        );
        match self {
            Bucket::Hour => (
                ((y * 100 + m) * 100 + d) * 100 + h,
                format!("{y:04}-{m:02}-{d:02} {h:02}h"),
            ),
            Bucket::Day => ((y * 100 + m) * 100 + d, format!("{y:04}-{m:02}-{d:02}")),
            Bucket::Week => {
                let w = t.date().iso_week_date();
                let (wy, wn) = (i64::from(w.year()), i64::from(w.week()));
                (wy * 100 + wn, format!("{wy:04}-W{wn:02}"))
            }
            Bucket::Month => (y * 100 + m, format!("{y:04}-{m:02}")),
            Bucket::Year => (y, format!("{y:04}")),
        }
    }
}

impl Policy {
    /// Whether the policy has no rule at all (it then keeps everything).
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// Merges `other` into `self`, rule by rule keeping the larger (a target may keep more
    /// than its job, never less).
    pub fn merge_max(&mut self, other: &Policy) {
        self.last = self.last.max(other.last);
        self.hourly = self.hourly.max(other.hourly);
        self.daily = self.daily.max(other.daily);
        self.weekly = self.weekly.max(other.weekly);
        self.monthly = self.monthly.max(other.monthly);
        self.yearly = self.yearly.max(other.yearly);
        for (a, b) in [
            (&mut self.within, &other.within),
            (&mut self.within_hourly, &other.within_hourly),
            (&mut self.within_daily, &other.within_daily),
            (&mut self.within_weekly, &other.within_weekly),
            (&mut self.within_monthly, &other.within_monthly),
            (&mut self.within_yearly, &other.within_yearly),
        ] {
            *a = match (a.take(), b) {
                (Some(x), Some(y)) => Some(if y.longer_than(&x) { *y } else { x }),
                (x, y) => x.or(*y),
            };
        }
        for t in &other.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
    }

    /// A one-line description (`last 3, daily 7, within 30d, tag manual`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (n, v) in [
            ("last", self.last),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ] {
            if v > 0 {
                parts.push(format!("{n} {v}"));
            }
        }
        for (n, v) in [
            ("within", &self.within),
            ("within-hourly", &self.within_hourly),
            ("within-daily", &self.within_daily),
            ("within-weekly", &self.within_weekly),
            ("within-monthly", &self.within_monthly),
            ("within-yearly", &self.within_yearly),
        ] {
            if let Some(d) = v {
                parts.push(format!("{n} {d}"));
            }
        }
        for t in &self.tags {
            parts.push(format!("tag {}", t.join(",")));
        }
        if parts.is_empty() {
            "keep everything (no rule)".into()
        } else {
            parts.join(", ")
        }
    }

    /// Applies the policy, restic's way, without the safety rules of [`Policy::apply`].
    /// Returns one decision per snapshot, newest first. Snapshots later than `now` do not count
    /// as the latest for the `within` rules.
    pub fn apply_rules(&self, snaps: &[Candidate], tz: &TimeZone, now: Timestamp) -> Vec<Decision> {
        let mut order: Vec<&Candidate> = snaps.iter().collect();
        order.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
        if self.is_empty() {
            return order
                .iter()
                .map(|c| Decision {
                    id: c.id.clone(),
                    keep: true,
                    reasons: vec!["no retention rule".into()],
                })
                .collect();
        }
        let latest = order
            .iter()
            .map(|c| c.time)
            .filter(|t| *t < now)
            .max()
            .unwrap_or(Timestamp::MIN);
        let cutoff = |d: &KeepDuration| d.before(latest, tz);
        let within = self.within.as_ref().map(|d| (d, cutoff(d)));
        let mut counted: Vec<(Option<Bucket>, u32, Option<i64>)> = [
            (None, self.last),
            (Some(Bucket::Hour), self.hourly),
            (Some(Bucket::Day), self.daily),
            (Some(Bucket::Week), self.weekly),
            (Some(Bucket::Month), self.monthly),
            (Some(Bucket::Year), self.yearly),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(b, n)| (b, n, None))
        .collect();
        let mut windows: Vec<(Bucket, KeepDuration, Timestamp, Option<i64>)> = [
            (Bucket::Hour, &self.within_hourly),
            (Bucket::Day, &self.within_daily),
            (Bucket::Week, &self.within_weekly),
            (Bucket::Month, &self.within_monthly),
            (Bucket::Year, &self.within_yearly),
        ]
        .into_iter()
        .filter_map(|(b, d)| d.map(|d| (b, d, cutoff(&d), None)))
        .collect();
        let mut out = Vec::with_capacity(order.len());
        for (nr, c) in order.iter().enumerate() {
            let mut reasons = Vec::new();
            for set in &self.tags {
                if set.iter().all(|t| c.tags.contains(t)) {
                    reasons.push(format!("tag {}", set.join(",")));
                }
            }
            if let Some((d, t)) = &within {
                if c.time > *t {
                    reasons.push(format!("within {d}"));
                }
            }
            let local = c.time.to_zoned(tz.clone());
            for (bucket, left, last) in counted.iter_mut() {
                if *left == 0 {
                    continue;
                }
                let (key, label) = match bucket {
                    None => (nr as i64, String::new()),
                    Some(b) => b.key(&local),
                };
                if *last != Some(key) {
                    *last = Some(key);
                    *left -= 1;
                    reasons.push(match bucket {
                        None => format!("last {}", nr + 1),
                        Some(b) => format!("{} {label}", b.name()),
                    });
                }
            }
            for (bucket, d, t, last) in windows.iter_mut() {
                if c.time > *t {
                    let (key, label) = bucket.key(&local);
                    if *last != Some(key) {
                        *last = Some(key);
                        reasons.push(format!("within-{} {d}: {label}", bucket.name()));
                    }
                }
            }
            out.push(Decision {
                id: c.id.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
        out
    }

    /// Applies the policy with bms's safety rules: a non-empty policy that would keep none of
    /// the snapshots is refused, and the latest complete snapshot (the latest at all when every
    /// one is partial) is always kept. Decisions are newest first.
    pub fn apply(
        &self,
        snaps: &[Candidate],
        tz: &TimeZone,
        now: Timestamp,
    ) -> Result<Vec<Decision>> {
        let mut out = self.apply_rules(snaps, tz, now);
        if out.is_empty() {
            return Ok(out);
        }
        if out.iter().all(|d| !d.keep) {
            return Err(Error::InvalidArgument(format!(
                "the retention policy ({}) would remove all {} snapshots: refused; add a rule \
                 that keeps recent snapshots (e.g. --keep-last 1)",
                self.describe(),
                out.len()
            )));
        }
        let complete: BTreeSet<&str> = snaps
            .iter()
            .filter(|c| c.complete)
            .map(|c| c.id.as_str())
            .collect();
        let pick = out
            .iter()
            .position(|d| complete.contains(d.id.as_str()))
            .unwrap_or(0);
        if let Some(d) = out.get_mut(pick) {
            if !d.keep {
                d.keep = true;
                d.reasons.push(LATEST_COMPLETE.into());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
