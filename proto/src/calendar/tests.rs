//! Parser and normalization edge cases (checked against systemd-analyze 252).

use jiff::tz::TimeZone;

use super::CalendarSpec;

fn norm(expr: &str) -> String {
    match CalendarSpec::parse_in(expr, &TimeZone::UTC) {
        Ok(spec) => spec.normalized(),
        Err(e) => format!("ERR {e}"),
    }
}

#[test]
fn placeholder() {
    assert_eq!(norm("daily"), "*-*-* 00:00:00");
}
