//! `bmsctl calendar EXPR`: the next elapse times of a schedule, computed offline.

use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::calendar::CalendarSpec;

/// Prints the next `iterations` elapses; an expression that never elapses again is refused
/// (exit 2), as job schedules refuse it.
pub fn run(expr: &str, iterations: u64, json: bool) -> CliResult {
    let spec = CalendarSpec::parse(expr).map_err(|e| CliError::usage(e.to_string()))?;
    let tz = jiff::tz::TimeZone::system();
    let n = usize::try_from(iterations.clamp(1, 10_000)).unwrap_or(1);
    let next = spec.upcoming_in(jiff::Timestamp::now(), &tz, n);
    if next.is_empty() {
        return Err(CliError::usage(format!(
            "calendar expression '{}' never elapses (normalized: {}): no such date after now \
             (e.g. *-02-30, or a date in the past)",
            bms_proto::error::echo(expr),
            spec.normalized()
        )));
    }
    let local: Vec<String> = next
        .iter()
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .collect();
    if json {
        let utc: Vec<String> = next.iter().map(|t| t.to_string()).collect();
        return output::json(&serde_json::json!({
            "expression": expr,
            "normalized": spec.normalized(),
            "next": local,
            "next_utc": utc,
        }));
    }
    println!("  Original form: {expr}");
    println!("Normalized form: {}", spec.normalized());
    for (i, t) in local.iter().enumerate() {
        if i == 0 {
            println!("    Next elapse: {t}");
        } else {
            println!("       Iter. #{}: {t}", i + 1);
        }
    }
    Ok(())
}
