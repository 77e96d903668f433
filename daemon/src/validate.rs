//! Validation of user input before anything is stored. Every error names the field.

use bms_proto::api::JobSpec;
use bms_proto::calendar::CalendarSpec;
pub use bms_proto::error::echo;
use bms_proto::ApiError;
use std::path::Path;

/// Names of targets and jobs: `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
pub fn name(field: &str, value: &str) -> Result<(), ApiError> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if value.is_empty() || value.len() > 64 || !ok_chars || value == "." || value == ".." {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field} '{}' is not a valid name: use 1 to 64 characters from A-Z a-z 0-9 . _ -",
                echo(value)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {max} characters without control characters"),
        ));
    }
    Ok(())
}

/// Parses a schedule, naming the field on error. A schedule that never elapses after now (a
/// date that does not exist such as `*-02-30`, or one in the past) is refused, as
/// `systemd-analyze calendar` reports it.
pub fn schedule(field: &str, expr: &str) -> Result<CalendarSpec, ApiError> {
    let spec =
        CalendarSpec::parse(expr).map_err(|e| ApiError::invalid(field, format!("{field}: {e}")))?;
    if spec.next_after(jiff::Timestamp::now()).is_none() {
        return Err(ApiError::invalid(
            field,
            format!(
                "{field}: calendar expression '{}' never elapses (normalized: {}): \
                 check the date, e.g. with 'bmsctl calendar'",
                echo(expr),
                spec.normalized()
            ),
        ));
    }
    Ok(spec)
}

/// Checks that a job's sources exist. This touches the filesystem (a source on a hung NFS
/// mount can block), so it runs on a blocking thread with a time limit, never on the catalog's.
pub async fn sources_exist(j: &JobSpec) -> Result<(), ApiError> {
    let sources = j.sources.clone();
    let check = tokio::task::spawn_blocking(move || {
        for s in &sources {
            if let Err(e) = std::fs::symlink_metadata(s) {
                return Err(ApiError::invalid(
                    "sources",
                    format!("source '{s}' does not exist or cannot be read by bmsd: {e}"),
                ));
            }
        }
        Ok(())
    });
    match tokio::time::timeout(std::time::Duration::from_secs(10), check).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::internal(format!("source check failed: {e}"))),
        Err(_) => Err(ApiError::invalid(
            "sources",
            "checking the sources took more than 10 s (a hung network mount?); fix the mount and try again",
        )),
    }
}

/// Checks a job definition, except that its targets exist (the catalog does that) and that its
/// sources exist ([`sources_exist`]).
pub fn job(j: &JobSpec) -> Result<CalendarSpec, ApiError> {
    name("name", &j.name)?;
    if j.name == bms_proto::api::CATALOG_JOB {
        return Err(ApiError::invalid(
            "name",
            format!(
                "job name '{}' is reserved for the catalog's own snapshots \
                 (docs/operations.md \"Recovering the catalog\"): choose another name",
                j.name
            ),
        ));
    }
    if j.sources.is_empty() {
        return Err(ApiError::invalid(
            "sources",
            "a job needs at least one source path",
        ));
    }
    for s in &j.sources {
        text("sources", s, 4096)?;
        let p = Path::new(s);
        if !p.is_absolute() {
            return Err(ApiError::invalid(
                "sources",
                format!("source '{s}' is a relative path: give an absolute path such as /srv/data"),
            ));
        }
    }
    for g in &j.excludes {
        globset::Glob::new(g).map_err(|e| {
            ApiError::invalid(
                "excludes",
                format!("exclude pattern '{g}' is not a valid glob: {e}"),
            )
        })?;
    }
    let spec = schedule("schedule", &j.schedule)?;
    if j.targets.is_empty() {
        return Err(ApiError::invalid(
            "targets",
            "a job needs at least one target",
        ));
    }
    for (i, t) in j.targets.iter().enumerate() {
        name("targets", t)?;
        if j.targets[..i].contains(t) {
            return Err(ApiError::invalid(
                "targets",
                format!("target '{t}' is listed twice"),
            ));
        }
    }
    if j.verify.read_data_percent > 100 {
        return Err(ApiError::invalid(
            "verify.read_data_percent",
            "verify.read_data_percent must be between 0 and 100",
        ));
    }
    if let Some(s) = &j.verify.schedule {
        schedule("verify.schedule", s)?;
    }
    if let Some(d) = &j.verify.drill {
        schedule("verify.drill.schedule", &d.schedule)?;
        if !(1..=100_000).contains(&d.sample_files) {
            return Err(ApiError::invalid(
                "verify.drill.sample_files",
                format!(
                    "verify.drill.sample_files must be between 1 and 100000 (got {})",
                    d.sample_files
                ),
            ));
        }
        if d.sample_bytes == 0 {
            return Err(ApiError::invalid(
                "verify.drill.sample_bytes",
                "verify.drill.sample_bytes must be more than 0, e.g. 256M",
            ));
        }
    }
    if j.verify.window_days == Some(0) || j.verify.window_days.is_some_and(|d| d > 3650) {
        return Err(ApiError::invalid(
            "verify.window_days",
            "verify.window_days must be between 1 and 3650 days",
        ));
    }
    crate::retention::policy_of(&j.retention).map_err(|mut e| {
        e.field = e.field.map(|f| format!("retention.{f}"));
        e
    })?;
    for (field, v) in [("hooks.pre", &j.hooks.pre), ("hooks.post", &j.hooks.post)] {
        if let Some(cmd) = v {
            if cmd.trim().is_empty() {
                return Err(ApiError::invalid(
                    field,
                    format!("{field} must not be empty"),
                ));
            }
            text(field, cmd, 4096)?;
        }
    }
    if j.hooks.timeout_secs == 0 {
        return Err(ApiError::invalid(
            "hooks.timeout_secs",
            "hooks.timeout_secs must be at least 1",
        ));
    }
    if j.randomized_delay_secs > 86_400 {
        return Err(ApiError::invalid(
            "randomized_delay_secs",
            "randomized_delay_secs must be at most 86400 (one day)",
        ));
    }
    Ok(spec)
}

/// Checks a target's retention rules, prune calendar and prune grace period.
pub fn target_retention(t: &bms_proto::api::TargetSpec) -> Result<(), ApiError> {
    if let Some(r) = &t.retention {
        crate::retention::policy_of(r).map_err(|mut e| {
            e.field = e.field.map(|f| format!("retention.{f}"));
            e
        })?;
    }
    if let Some(cal) = crate::retention::prune_calendar(t) {
        schedule("prune_schedule", &cal)?;
    }
    crate::retention::prune_grace(t)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "nas-1", "home.daily", "A_b", &"x".repeat(64)] {
            name("name", ok).unwrap();
        }
        for bad in ["", ".", "..", "a b", "a/b", "ä", &"x".repeat(65), "a\n"] {
            let e = name("name", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("name"));
        }
    }
}
