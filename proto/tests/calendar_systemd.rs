//! Acceptance test: our calendar expressions agree with `systemd-analyze calendar` (systemd 252,
//! which CI installs): the same normalized form and the same next five elapses, from fixed base
//! times chosen around daylight-saving changes, under several `TZ` settings; and the same
//! expressions rejected.

use std::process::Command;

use bms_proto::calendar::CalendarSpec;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::Timestamp;

const ITERATIONS: usize = 5;

/// 2026-03-28 00:00 UTC: a day before Europe/Berlin springs forward (2026-03-29 01:00 UTC).
const BERLIN_SPRING: i64 = 1_774_656_000;
/// 2026-10-24 23:00 UTC: two hours before Europe/Berlin falls back (2026-10-25 01:00 UTC).
const BERLIN_FALL: i64 = 1_792_882_800;
/// 2026-03-07 23:00 EST: three hours before America/New_York springs forward.
const NY_SPRING: i64 = 1_772_942_400;
/// 2026-10-31 23:00 EDT: three hours before America/New_York falls back.
const NY_FALL: i64 = 1_793_502_000;
/// 2025-02-08 08:59:39 UTC: an arbitrary odd moment.
const ODD: i64 = 1_739_005_179;

/// (TZ, base time, expression)
const AGREE: &[(&str, i64, &str)] = &[
    // Shorthands.
    ("UTC", BERLIN_SPRING, "minutely"),
    ("UTC", BERLIN_SPRING, "hourly"),
    ("UTC", BERLIN_SPRING, "daily"),
    ("UTC", BERLIN_SPRING, "weekly"),
    ("UTC", BERLIN_SPRING, "monthly"),
    ("UTC", BERLIN_SPRING, "yearly"),
    ("UTC", BERLIN_SPRING, "annually"),
    ("UTC", BERLIN_SPRING, "quarterly"),
    ("UTC", BERLIN_SPRING, "semiannually"),
    // Weekdays, lists, ranges, steps.
    ("UTC", BERLIN_SPRING, "Mon..Fri 02:00"),
    ("UTC", BERLIN_SPRING, "Mon-Fri 02:00"),
    ("UTC", BERLIN_SPRING, "Sat,Sun 10:30"),
    ("UTC", BERLIN_SPRING, "mon,WED,Friday *-*-* 18:00"),
    ("UTC", BERLIN_SPRING, "Tue *-*-1..7 03:00"),
    ("UTC", ODD, "Fri *-*-13"),
    ("UTC", BERLIN_SPRING, "*:0/15"),
    ("UTC", BERLIN_SPRING, "*-*-1 04:00"),
    ("UTC", BERLIN_SPRING, "*-*-1,15 06:00"),
    ("UTC", BERLIN_SPRING, "*-1/3-1 00:00"),
    ("UTC", BERLIN_SPRING, "*-*-* 9..17:00"),
    ("UTC", BERLIN_SPRING, "*-*-* 8..18/2:30"),
    ("UTC", BERLIN_SPRING, "2030..2035/2-06-15"),
    ("UTC", BERLIN_SPRING, "2026-12-24..26 18:00"),
    ("UTC", BERLIN_SPRING, "27-01-01"),
    // Seconds, steps of seconds, fractions (systemd prints whole seconds).
    ("UTC", BERLIN_SPRING, "*:*:0/5"),
    ("UTC", BERLIN_SPRING, "*-*-* 12:00:30"),
    ("UTC", BERLIN_SPRING, "*:*:*"),
    ("UTC", BERLIN_SPRING, "23:59:59"),
    ("UTC", BERLIN_SPRING, "*-*-* 08:15:10.5"),
    // Ends of months.
    ("UTC", BERLIN_SPRING, "*-*-31"),
    ("UTC", BERLIN_SPRING, "*-02-29"),
    ("UTC", BERLIN_SPRING, "*-02~03"),
    ("UTC", BERLIN_SPRING, "Mon *-05~07/1"),
    ("UTC", BERLIN_SPRING, "*-*~1"),
    ("UTC", BERLIN_SPRING, "*-*~02..03 12:00"),
    // Fixed times, never, @EPOCH.
    ("UTC", BERLIN_SPRING, "2027-01-01"),
    ("UTC", BERLIN_SPRING, "2023-02-29"),
    ("UTC", BERLIN_SPRING, "@1893456000"),
    // Time zones in the expression.
    ("UTC", BERLIN_SPRING, "12:00 Europe/Berlin"),
    ("UTC", BERLIN_SPRING, "Mon 09:00 America/New_York"),
    ("Europe/Berlin", BERLIN_SPRING, "daily UTC"),
    ("Europe/Berlin", BERLIN_SPRING, "*-*-* 02:30 Europe/Berlin"),
    (
        "Europe/Berlin",
        BERLIN_SPRING,
        "Mon..Fri 02:00 Europe/Berlin",
    ),
    ("Europe/Berlin", BERLIN_SPRING, "daily America/New_York"),
    ("America/New_York", NY_SPRING, "daily Europe/Berlin"),
    // The local zone's own abbreviation forces standard time.
    ("Europe/Berlin", BERLIN_SPRING, "daily CET"),
    // DST in the local zone: a gap in spring ...
    ("Europe/Berlin", BERLIN_SPRING, "*-*-* 02:30"),
    ("Europe/Berlin", BERLIN_SPRING, "hourly"),
    ("Europe/Berlin", BERLIN_SPRING + 82_800, "*:0/20"),
    ("America/New_York", NY_SPRING, "02:30"),
    ("America/New_York", NY_SPRING, "*:0/30"),
    ("America/New_York", NY_SPRING, "Sun 01:30"),
    // ... and a repeated hour in autumn.
    ("Europe/Berlin", BERLIN_FALL, "*-*-* 02:30"),
    ("Europe/Berlin", BERLIN_FALL, "hourly"),
    ("Europe/Berlin", BERLIN_FALL, "*:0/15"),
    ("Europe/Berlin", BERLIN_FALL, "*-*-* 2,3:0/30"),
    ("America/New_York", NY_FALL, "01:30"),
    ("America/New_York", NY_FALL, "hourly"),
    ("America/New_York", NY_FALL, "*:0/20"),
    // systemd gives up after two elapses here (normalization loops through the DST change).
    ("America/New_York", ODD, "*-*-09/16"),
];

/// Expressions systemd rejects.
const REJECT: &[&str] = &[
    "Mon..Fu 02:00",
    "Fri..Mon",
    "Mon..",
    "*/2:00",
    "25:00",
    "*:60",
    "*:0/0",
    "*:*:0..0.5",
    "*-13-01",
    "*-*-32",
    "*-02~29",
    "2026~01~01",
    "2200-01-01",
    "1969-12-31",
    "12",
    "*-*-* 02:00 ",
    "daily europe/berlin",
    "fortnightly",
    "@-1",
    "UTC",
];

struct SystemdResult {
    normalized: String,
    elapses: Vec<i64>,
}

fn run_systemd(tz: &str, base: i64, expr: &str, iterations: usize) -> std::process::Output {
    let output = Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--iterations={iterations}"))
        .arg(format!("--base-time=@{base}"))
        .arg("--")
        .arg(expr)
        .env("TZ", tz)
        .env("LC_ALL", "C")
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output();
    match output {
        Ok(output) => output,
        Err(e) => panic!(
            "cannot run systemd-analyze ({e}): install systemd (e.g. `apt-get install systemd`); \
             this test compares our calendar expressions with it"
        ),
    }
}

/// A timestamp as systemd prints it: `Sat 2026-03-28 00:00:00 UTC`.
fn parse_utc_line(value: &str) -> i64 {
    let fields: Vec<&str> = value.split_whitespace().collect();
    assert!(
        fields.len() == 4 && fields[3] == "UTC",
        "unexpected timestamp from systemd-analyze: {value:?}"
    );
    let civil: DateTime = match format!("{}T{}", fields[1], fields[2]).parse() {
        Ok(civil) => civil,
        Err(e) => panic!("unexpected timestamp {value:?}: {e}"),
    };
    match civil.to_zoned(TimeZone::UTC) {
        Ok(zoned) => zoned.timestamp().as_second(),
        Err(e) => panic!("unexpected timestamp {value:?}: {e}"),
    }
}

fn parse_output(stdout: &str) -> SystemdResult {
    let mut normalized = None;
    let mut elapses = Vec::new();
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if key == "Normalized form" {
            normalized = Some(value.to_string());
        } else if key == "Next elapse" || key.starts_with("Iter") {
            if value == "never" {
                break;
            }
            // Outside UTC, systemd adds the time in UTC on the next line.
            let utc = match lines.get(i + 1).and_then(|l| l.strip_prefix("(in UTC):")) {
                Some(utc) => utc.trim(),
                None => value,
            };
            elapses.push(parse_utc_line(utc));
        }
    }
    let Some(normalized) = normalized else {
        panic!("no normalized form in systemd-analyze output:\n{stdout}");
    };
    SystemdResult {
        normalized,
        elapses,
    }
}

/// systemd's answer. When systemd fails part-way ("Failed to determine next elapse"), it prints
/// nothing, so ask again for fewer iterations: what it can compute is what we must compute.
fn systemd(tz: &str, base: i64, expr: &str) -> SystemdResult {
    for iterations in (1..=ITERATIONS).rev() {
        let out = run_systemd(tz, base, expr, iterations);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return parse_output(&String::from_utf8_lossy(&out.stdout));
        }
        assert!(
            stderr.contains("Failed to determine next elapse"),
            "systemd-analyze rejected {expr:?} (TZ={tz}): {stderr}"
        );
    }
    panic!("systemd-analyze cannot compute even one elapse of {expr:?} (TZ={tz})");
}

fn local_zone(tz: &str) -> TimeZone {
    match TimeZone::get(tz) {
        Ok(zone) => zone,
        Err(e) => panic!("time zone {tz} is not installed: {e}"),
    }
}

#[test]
fn agrees_with_systemd_analyze() {
    assert!(AGREE.len() >= 40);
    let mut failures = Vec::new();
    for &(tz, base, expr) in AGREE {
        let want = systemd(tz, base, expr);
        let local = local_zone(tz);
        let spec = match CalendarSpec::parse_in(expr, &local) {
            Ok(spec) => spec,
            Err(e) => {
                failures.push(format!(
                    "{expr:?} (TZ={tz}): systemd accepts it, we say: {e}"
                ));
                continue;
            }
        };
        let after = match Timestamp::from_second(base) {
            Ok(t) => t,
            Err(e) => panic!("bad base time {base}: {e}"),
        };
        // systemd prints whole seconds.
        let ours: Vec<i64> = spec
            .upcoming_in(after, &local, ITERATIONS)
            .iter()
            .map(|t| t.as_second())
            .collect();
        if spec.normalized() != want.normalized || ours != want.elapses {
            failures.push(format!(
                "{expr:?} (TZ={tz}, base @{base}):\n  systemd: {} {:?}\n  ours:    {} {ours:?}",
                want.normalized,
                want.elapses,
                spec.normalized()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "disagreements with systemd-analyze:\n{}",
        failures.join("\n")
    );
}

#[test]
fn rejects_what_systemd_rejects() {
    assert!(REJECT.len() >= 15);
    for &expr in REJECT {
        for tz in ["UTC", "Europe/Berlin"] {
            let out = run_systemd(tz, BERLIN_SPRING, expr, 1);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && stderr.contains("Failed to parse calendar specification"),
                "systemd-analyze (TZ={tz}) accepts {expr:?}; stdout:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
            let ours = CalendarSpec::parse_in(expr, &local_zone(tz));
            assert!(ours.is_err(), "we accept {expr:?} (TZ={tz}): {ours:?}");
        }
    }
}
