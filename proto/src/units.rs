//! Sizes and durations for people: `1.5 GiB`, `12 min`.

/// Formats a byte count with binary units and one decimal (`12 B`, `5.0 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Seconds as `42 s`, `12 min`, `3.5 h`.
pub fn secs_text(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::human_bytes(12), "12 B");
        assert_eq!(super::human_bytes(5 << 30), "5.0 GiB");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
    }
}

/// `90s`, `30m`, `2h`, `1d`, or a number of seconds: the durations of the command line and of
/// target settings such as `prune_grace`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86400),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && *n <= 100 * 365 * 86400)
        .map(|n| n * mult)
        .ok_or_else(|| format!("'{s}' is not a duration such as 90s, 30m, 2h or 1d"))
}

#[cfg(test)]
mod duration_tests {
    use super::parse_duration;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration(" 2h "), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86400));
        assert_eq!(parse_duration("600"), Ok(600));
        for bad in ["", "0", "h", "-1h", "1w", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
