//! The recovery point objective of a job (docs/compliance.md, "RPO"): the job's `rpo_secs`, else
//! twice the longest gap between two consecutive elapses of its schedule.

use bms_proto::api::JobSpec;
use bms_proto::calendar::CalendarSpec;
use std::collections::HashMap;

/// Elapses looked at to find the longest gap.
const ELAPSES: usize = 64;

/// The RPO when the schedule gives none (it never elapses twice again): seven days.
pub const FALLBACK_RPO_SECS: u64 = 7 * 86400;

/// The RPO of `job` in seconds and where it comes from (`job`, `schedule` or `default`).
/// `cache` keeps the result per schedule expression for one evaluation.
pub fn rpo_of(
    job: &JobSpec,
    now: i64,
    cache: &mut HashMap<String, Option<u64>>,
) -> (u64, &'static str) {
    if let Some(r) = job.rpo_secs.filter(|r| *r > 0) {
        return (r, "job");
    }
    let gap = cache
        .entry(job.schedule.clone())
        .or_insert_with(|| longest_gap(&job.schedule, now))
        .to_owned();
    match gap {
        Some(g) => (g.saturating_mul(2), "schedule"),
        None => (FALLBACK_RPO_SECS, "default"),
    }
}

fn longest_gap(expr: &str, now: i64) -> Option<u64> {
    let spec = CalendarSpec::parse(expr).ok()?;
    let start = jiff::Timestamp::from_second(now).ok()?;
    let times = spec.upcoming_in(start, &jiff::tz::TimeZone::system(), ELAPSES);
    times
        .windows(2)
        .map(|w| (w[1].as_second() - w[0].as_second()).max(0) as u64)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpo_is_twice_the_longest_gap() {
        let now = crate::compliance::unix_of("2026-12-02T10:00:00Z").unwrap();
        let mut job: JobSpec = serde_json::from_value(serde_json::json!({
            "name": "etc", "sources": ["/etc"], "schedule": "*-*-* 02:00:00 UTC", "targets": ["a"]
        }))
        .unwrap();
        let mut cache = HashMap::new();
        assert_eq!(rpo_of(&job, now, &mut cache), (2 * 86400, "schedule"));
        job.schedule = "Mon..Fri 02:00 UTC".into();
        assert_eq!(rpo_of(&job, now, &mut cache), (6 * 86400, "schedule"));
        job.rpo_secs = Some(3600);
        assert_eq!(rpo_of(&job, now, &mut cache), (3600, "job"));
    }
}
