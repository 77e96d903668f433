//! `bmsctl calendar EXPR`: the next elapse times of a schedule, computed offline.

use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::calendar::CalendarSpec;

pub fn run(expr: &str, iterations: usize, json: bool) -> CliResult {
    let spec = CalendarSpec::parse(expr).map_err(|e| CliError::usage(e.to_string()))?;
    let tz = jiff::tz::TimeZone::system();
    let next = spec.upcoming_in(jiff::Timestamp::now(), &tz, iterations.clamp(1, 1000));
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
    if local.is_empty() {
        println!("    Next elapse: never");
    }
    for (i, t) in local.iter().enumerate() {
        if i == 0 {
            println!("    Next elapse: {t}");
        } else {
            println!("       Iter. #{}: {t}", i + 1);
        }
    }
    Ok(())
}
