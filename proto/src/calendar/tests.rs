//! Parser and normalization edge cases; every expectation was checked against
//! `systemd-analyze calendar` of systemd 252.

use jiff::tz::TimeZone;

use super::CalendarSpec;

fn zone(name: &str) -> TimeZone {
    match super::zone::load_named(name) {
        Some(z) => z.tz,
        None => panic!("time zone {name} is not installed"),
    }
}

fn norm_in(expr: &str, local: &TimeZone) -> Result<String, String> {
    CalendarSpec::parse_in(expr, local)
        .map(|spec| spec.normalized())
        .map_err(|e| e.to_string())
}

fn norm(expr: &str) -> Result<String, String> {
    norm_in(expr, &TimeZone::UTC)
}

#[test]
fn normalized_forms() {
    let cases = [
        ("minutely", "*-*-* *:*:00"),
        ("hourly", "*-*-* *:00:00"),
        ("DAILY", "*-*-* 00:00:00"),
        ("weekly", "Mon *-*-* 00:00:00"),
        ("monthly", "*-*-01 00:00:00"),
        ("anually", "*-01-01 00:00:00"),
        ("quarterly", "*-01,04,07,10-01 00:00:00"),
        ("semi-annually", "*-01,07-01 00:00:00"),
        ("Mon..Fri 02:00", "Mon..Fri *-*-* 02:00:00"),
        ("mon-wed", "Mon..Wed *-*-* 00:00:00"),
        ("MONDAY 1:2", "Mon *-*-* 01:02:00"),
        ("Mon, 02:00", "Mon *-*-* 02:00:00"),
        ("Mon,Wed..Sun", "Mon,Wed..Sun *-*-* 00:00:00"),
        ("Mon..Sun", "*-*-* 00:00:00"),
        ("Sat,Sun,Sat", "Sat,Sun *-*-* 00:00:00"),
        ("1..5/10:00", "*-*-* 01:00:00"),
        ("*:5..05", "*-*-* *:05:00"),
        ("*:*:1.5..3", "*-*-* *:*:01.500000..02.500000"),
        ("*:*:1..3/0.5", "*-*-* *:*:01..03/0.500000"),
        ("*:*:0.9999995", "*-*-* *:*:01"),
        ("*:*:0/1,5", "*-*-* *:*:*"),
        ("*:*:0.5/1,0/1", "*-*-* *:*:*"),
        ("*:*:0..59", "*-*-* *:*:00..59"),
        ("*:*:0/2,0", "*-*-* *:*:00,00/2"),
        ("*:3,1:0", "*-*-* *:01,03:00"),
        ("*:0/59", "*-*-* *:00/59:00"),
        ("1,2,3-*-* 00:00", "2001,2002,2003-*-* 00:00:00"),
        ("70-1-1", "1970-01-01 00:00:00"),
        ("20..25/2-1-1", "2020..2024/2-01-01 00:00:00"),
        ("*-02~1..3", "*-02~01..03 00:00:00"),
        ("*-02~1,2", "*-02~01,02 00:00:00"),
        ("*~*", "*-*-* 00:00:00"),
        ("Sun *-*~07/1", "Sun *-*~07/1 00:00:00"),
        ("2026-03-29  12:00", "2026-03-29 12:00:00"),
        ("Mon ", "Mon *-*-* 00:00:00"),
        ("@ 5", "1970-01-01 00:00:05 UTC"),
        ("@+5", "1970-01-01 00:00:05 UTC"),
        ("@-0", "1970-01-01 00:00:00 UTC"),
        ("@-18446744073709551615", "1970-01-01 00:00:01 UTC"),
        ("Mon @5", "Mon 1970-01-01 00:00:05 UTC"),
        ("@7258118399", "2199-12-31 23:59:59 UTC"),
        ("@1774656001 Europe/Berlin", "2026-03-28 00:00:01 UTC"),
        ("daily utc", "*-*-* 00:00:00 UTC"),
        ("daily Europe/Berlin", "*-*-* 00:00:00 Europe/Berlin"),
        ("daily GMT", "*-*-* 00:00:00 GMT"),
        ("daily Etc/GMT+5", "*-*-* 00:00:00 Etc/GMT+5"),
    ];
    for (expr, want) in cases {
        assert_eq!(norm(expr).as_deref(), Ok(want), "expression {expr:?}");
    }
}

#[test]
fn local_zone_abbreviations() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        norm_in("daily cet", &berlin).as_deref(),
        Ok("*-*-* 00:00:00 CET")
    );
    assert_eq!(
        norm_in("daily CEST", &berlin).as_deref(),
        Ok("*-*-* 00:00:00 CEST")
    );
    let ny = zone("America/New_York");
    assert_eq!(
        norm_in("daily EST", &ny).as_deref(),
        Ok("*-*-* 00:00:00 EST")
    );
    // Elsewhere "EST" is simply a zone file name.
    assert_eq!(
        norm_in("daily EST", &berlin).as_deref(),
        Ok("*-*-* 00:00:00 EST")
    );
    // "CET" is a zone file too, so it parses without the local meaning.
    assert!(norm_in("daily CEST", &ny).is_err());
}

#[test]
fn rejected() {
    let cases = [
        "",
        " daily",
        "daily ",
        "fortnightly",
        "Mon..Fu 02:00",
        "Fri..Mon",
        "Mon-",
        "Mon..",
        "Mon.Tue",
        "Mon,,Tue",
        "Mondays",
        "Mo",
        "*/2:00",
        "*-*-* 02:00 ",
        "*-*-* 02:00..03:00:00",
        "12",
        "12:",
        ":12",
        "1:2:3:4",
        "24:00",
        "0:60",
        "*:*:60",
        "*:0/60",
        "*:0/0",
        "*:*:0/0",
        "*:*:0..0.5",
        "*:*:1.",
        "*:*:1...2",
        "*:*:.5",
        "*:*:*,5",
        "*:*:2148",
        "*:2147483648",
        "*:59:50/45",
        "*-*-0",
        "*-*-32",
        "*-13-1",
        "*-0-1",
        "5..1:00",
        "1969-12-31",
        "2200-01-01",
        "0..99-1-1",
        "*-*~0",
        "*-*~29",
        "*-*~1/2",
        "*-02~3..1",
        "*-02~28,27",
        "2026~01-01",
        "2026~01~01",
        "@",
        "@-1",
        "@7258118400",
        "@99999999999999999999",
        "@5 12:00",
        "@5.5",
        "UTC",
        "  UTC",
        "Europe/Berlin",
        "daily europe/berlin",
        "daily  Europe/Berlin",
        "daily Europe/",
        "12:00 UTC UTC",
        "2026-03-29 Sun",
        "Mon\u{1}",
        "12:00\u{e9}",
    ];
    for expr in cases {
        assert!(
            norm(expr).is_err(),
            "{expr:?} should be rejected: {:?}",
            norm(expr)
        );
    }
}

#[test]
fn list_length_limit() {
    let list = |n: usize| {
        (0..n)
            .map(|i| (i % 60).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    assert!(norm(&format!("*:*:{}", list(241))).is_ok());
    assert!(norm(&format!("*:*:{}", list(242))).is_err());
}

#[test]
fn error_messages_name_the_problem() {
    assert_eq!(
        norm("Mon..Fu 02:00"),
        Err("invalid calendar expression 'Mon..Fu 02:00': unknown weekday or bad date at 'Fu 02:00'".to_string())
    );
    let Err(e) = CalendarSpec::parse_in("*:0/0", &TimeZone::UTC) else {
        panic!("accepted *:0/0");
    };
    assert_eq!(e.expression(), "*:0/0");
    assert!(e.reason().contains("repetition"), "{e}");
    let Err(e) = norm("25:00") else {
        panic!("accepted 25:00");
    };
    assert!(e.contains("hour"), "{e}");
    assert!(norm("").is_err_and(|e| e.contains("empty")));
}

#[test]
fn specs_compare_and_display() {
    let a = CalendarSpec::parse_in("Mon..Fri 2:00", &TimeZone::UTC);
    let b = CalendarSpec::parse_in("mon-fri 02:00:00", &TimeZone::UTC);
    assert!(matches!((&a, &b), (Ok(a), Ok(b)) if a == b));
    if let Ok(a) = a {
        assert_eq!(a.to_string(), "Mon..Fri *-*-* 02:00:00");
        assert_eq!(a.time_zone_name(), None);
    }
    let berlin = CalendarSpec::parse_in("daily Europe/Berlin", &TimeZone::UTC);
    assert!(berlin.is_ok_and(|s| s.time_zone_name() == Some("Europe/Berlin")));
}

/// A small deterministic generator: no dependency needed for a little fuzzing.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn never_panics_on_odd_input() {
    const TOKENS: &[&str] = &[
        "Mon",
        "sun",
        "Friday",
        "..",
        ".",
        "-",
        "~",
        ",",
        " ",
        ":",
        "*",
        "/",
        "0",
        "1",
        "7",
        "12",
        "23",
        "29",
        "31",
        "59",
        "60",
        "99",
        "2026",
        "2199",
        "2200",
        "4294967296",
        "@",
        "+",
        "UTC",
        " UTC",
        "Europe/Berlin",
        "GMT",
        "CET",
        "daily",
        "0.5",
        ".9999999",
        "é",
        "\t",
        "\0",
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let berlin = zone("Europe/Berlin");
    let after = jiff::Timestamp::from_second(1_774_738_800).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    for _ in 0..20_000 {
        let len = 1 + rng.next() % 10;
        let expr: String = (0..len).map(|_| rng.pick(TOKENS)).collect();
        if let Ok(spec) = CalendarSpec::parse_in(&expr, &berlin) {
            let _ = spec.normalized();
            let times = spec.upcoming_in(after, &berlin, 3);
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{expr:?}: {times:?}");
            assert!(times.iter().all(|t| *t > after), "{expr:?}");
        }
    }
}

#[test]
fn unknown_time_zones_are_named() {
    for (expr, zone) in [
        ("daily Europe/Nowhere", "Europe/Nowhere"),
        ("Mon..Fri 02:00 Europe/Nowhere", "Europe/Nowhere"),
        ("*-*-* 12:00:00 XYZ", "XYZ"),
        ("daily europe/berlin", "europe/berlin"),
    ] {
        let Err(e) = norm(expr) else {
            panic!("accepted {expr}");
        };
        assert!(
            e.contains(&format!("unknown time zone '{zone}'")),
            "{expr}: {e}"
        );
    }
    // Other mistakes keep the parser's own message.
    let e = norm("2026-03-29 Sun").unwrap_err();
    assert!(!e.contains("time zone"), "{e}");
    let e = norm("Mon..Fu 02:00").unwrap_err();
    assert!(!e.contains("time zone"), "{e}");
}

#[test]
fn impossible_dates_parse_but_never_elapse() {
    let now: jiff::Timestamp = "2026-12-01T20:00:00Z".parse().unwrap();
    for expr in ["*-02-30", "*-04-31 12:00", "2020-01-01"] {
        let spec = CalendarSpec::parse_in(expr, &TimeZone::UTC).unwrap();
        assert_eq!(spec.next_after_in(now, &TimeZone::UTC), None, "{expr}");
    }
    let spec = CalendarSpec::parse_in("*-02-29", &TimeZone::UTC).unwrap();
    assert!(spec.next_after_in(now, &TimeZone::UTC).is_some());
}
