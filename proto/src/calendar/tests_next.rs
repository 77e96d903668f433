//! Elapse calculations at the tricky edges; every expectation was checked against
//! `systemd-analyze calendar --base-time=@BASE --iterations=5` of systemd 252.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::CalendarSpec;

fn zone(name: &str) -> TimeZone {
    if name == "UTC" {
        return TimeZone::UTC;
    }
    match super::zone::load_named(name) {
        Some(z) => z.tz,
        None => panic!("time zone {name} is not installed"),
    }
}

fn ts(second: i64) -> Timestamp {
    match Timestamp::from_second(second) {
        Ok(t) => t,
        Err(e) => panic!("{second}: {e}"),
    }
}

/// The next five elapses (fewer if it stops) as Unix seconds.
fn upcoming(tz: &str, base: i64, expr: &str) -> Vec<i64> {
    let local = zone(tz);
    let spec = match CalendarSpec::parse_in(expr, &local) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    };
    spec.upcoming_in(ts(base), &local, 5)
        .iter()
        .map(|t| t.as_second())
        .collect()
}

#[test]
fn spring_forward_gap_is_skipped() {
    // Europe/Berlin 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    assert_eq!(
        upcoming("Europe/Berlin", 1_774_738_800, "*-*-* 02:30"),
        [
            1_774_830_600,
            1_774_917_000,
            1_775_003_400,
            1_775_089_800,
            1_775_176_200
        ]
    );
    assert_eq!(
        upcoming("Europe/Berlin", 1_774_738_800, "*:0/20"),
        [
            1_774_740_000,
            1_774_741_200,
            1_774_742_400,
            1_774_743_600,
            1_774_744_800
        ]
    );
    // America/New_York 2026-03-08 has no 02:30 either.
    assert_eq!(
        upcoming("America/New_York", 1_772_953_200, "02:30"),
        [
            1_773_037_800,
            1_773_124_200,
            1_773_210_600,
            1_773_297_000,
            1_773_383_400
        ]
    );
}

#[test]
fn fall_back_hour_runs_once() {
    // Europe/Berlin 2026-10-25: 03:00 CEST goes back to 02:00 CET. systemd uses the first
    // 02:xx hour and skips the repeated one.
    assert_eq!(
        upcoming("Europe/Berlin", 1_792_882_800, "hourly"),
        [
            1_792_886_400,
            1_792_893_600,
            1_792_897_200,
            1_792_900_800,
            1_792_904_400
        ]
    );
    assert_eq!(
        upcoming("Europe/Berlin", 1_792_882_800, "*-*-* 02:30"),
        [
            1_792_888_200,
            1_792_978_200,
            1_793_064_600,
            1_793_151_000,
            1_793_237_400
        ]
    );
    assert_eq!(
        upcoming("Europe/Berlin", 1_792_882_800, "*-*-* 2,3:0/30"),
        [
            1_792_886_400,
            1_792_888_200,
            1_792_893_600,
            1_792_895_400,
            1_792_976_400
        ]
    );
    assert_eq!(
        upcoming("America/New_York", 1_793_512_800, "01:30"),
        [
            1_793_514_600,
            1_793_601_000,
            1_793_687_400,
            1_793_773_800,
            1_793_860_200
        ]
    );
}

#[test]
fn negative_dst_does_not_get_stuck() {
    // Europe/Dublin's winter time is "negative DST"; systemd 252.38 steps an hour when the
    // search comes back to where it started.
    assert_eq!(
        upcoming("Europe/Dublin", 1_774_690_845, "0:58"),
        [
            1_774_745_880,
            1_774_828_680,
            1_774_915_080,
            1_775_001_480,
            1_775_087_880
        ]
    );
    assert_eq!(
        upcoming("Europe/Dublin", 1_774_735_200, "hourly"),
        [
            1_774_738_800,
            1_774_742_400,
            1_774_746_000,
            1_774_749_600,
            1_774_753_200
        ]
    );
}

#[test]
fn systemd_gives_up_where_it_gives_up() {
    // Day 41 normalizes into DST, which normalizes back before the start: systemd reports an
    // "infinite loop" from 2025-02-25 on.
    assert_eq!(
        upcoming("America/New_York", 1_739_005_179, "*-*-09/16"),
        [1_739_077_200, 1_740_459_600]
    );
    // Forcing CEST (the local zone's DST name) in winter never elapses; CET works until summer.
    assert_eq!(
        upcoming("Europe/Berlin", 1_774_656_000, "daily CEST"),
        Vec::<i64>::new()
    );
    assert_eq!(
        upcoming("Europe/Berlin", 1_774_656_000, "daily CET"),
        [1_774_738_800]
    );
    // Impossible dates and the year 2199 limit.
    assert_eq!(upcoming("UTC", 1_774_656_000, "*-02-30"), Vec::<i64>::new());
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "2023-02-29"),
        Vec::<i64>::new()
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "2199-12-31 23:59:59"),
        [7_258_118_399]
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "@1774656001"),
        [1_774_656_001]
    );
    assert_eq!(upcoming("UTC", 1_774_656_000, "@5"), Vec::<i64>::new());
}

#[test]
fn calendar_edges() {
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "*-02-29"),
        [
            1_835_395_200,
            1_961_625_600,
            2_087_856_000,
            2_214_086_400,
            2_340_316_800
        ]
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "Mon *-02-29"),
        [
            2_340_316_800,
            3_223_929_600,
            4_486_147_200,
            5_369_760_000,
            6_253_372_800
        ]
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "*-*-31"),
        [
            1_774_915_200,
            1_780_185_600,
            1_785_456_000,
            1_788_134_400,
            1_793_404_800
        ]
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "*-02~01"),
        [
            1_803_772_800,
            1_835_395_200,
            1_866_931_200,
            1_898_467_200,
            1_930_003_200
        ]
    );
    assert_eq!(
        upcoming("UTC", 1_774_656_000, "*-*~02..03"),
        [
            1_774_742_400,
            1_774_828_800,
            1_777_334_400,
            1_777_420_800,
            1_780_012_800
        ]
    );
    assert_eq!(
        upcoming("Europe/Berlin", 1_774_656_000, "daily Asia/Tokyo"),
        [
            1_774_710_000,
            1_774_796_400,
            1_774_882_800,
            1_774_969_200,
            1_775_055_600
        ]
    );
    // Leap seconds of the right/ zones count, as glibc counts them.
    assert_eq!(
        upcoming("UTC", 1_483_228_700, "23:59:59 right/UTC"),
        [
            1_483_228_825,
            1_483_315_226,
            1_483_401_626,
            1_483_488_026,
            1_483_574_426
        ]
    );
}

#[test]
fn sub_second_elapses() {
    let spec = match CalendarSpec::parse_in("*:*:1..3/0.5", &TimeZone::UTC) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    };
    let got: Vec<i64> = spec
        .upcoming_in(ts(1_774_656_000), &TimeZone::UTC, 5)
        .iter()
        .map(|t| t.as_microsecond())
        .collect();
    let base = 1_774_656_000_000_000;
    assert_eq!(
        got,
        [1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000].map(|d| base + d)
    );
    // Strictly after: from an elapse itself, and from a time with nanoseconds.
    let after = ts(1_774_656_001)
        .checked_add(jiff::SignedDuration::from_nanos(1))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    assert_eq!(
        spec.next_after_in(after, &TimeZone::UTC)
            .map(|t| t.as_microsecond()),
        Some(base + 1_500_000)
    );
}

#[test]
fn extreme_starting_points() {
    let daily = match CalendarSpec::parse_in("daily", &TimeZone::UTC) {
        Ok(spec) => spec,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(daily.next_after_in(Timestamp::MAX, &TimeZone::UTC), None);
    assert_eq!(daily.next_after_in(ts(7_258_118_400), &TimeZone::UTC), None);
    let _ = daily.next_after_in(Timestamp::MIN, &TimeZone::UTC);
    let _ = daily.next_after_in(ts(-1), &zone("Europe/Berlin"));
    assert_eq!(
        daily
            .next_after_in(ts(0), &TimeZone::UTC)
            .map(|t| t.as_second()),
        Some(86_400)
    );
    assert!(daily.upcoming_in(ts(0), &TimeZone::UTC, 0).is_empty());
}
