//! Time zones named in expressions, and the local zone's abbreviations.

use std::io::Read as _;

use jiff::tz::TimeZone;
use jiff::Timestamp;

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A zone named in an expression, with the leap seconds its file lists (the `right/` zones),
/// which glibc applies and jiff does not.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NamedZone {
    pub tz: TimeZone,
    /// (time of the leap, total correction from then on), ascending.
    pub leaps: Vec<(i64, i64)>,
}

/// Loads the zone `name` the way systemd accepts it: `UTC`, or a name made of letters, digits,
/// `-`, `_`, `+` and single `/`s naming a regular TZif file under `/usr/share/zoneinfo`
/// (case-sensitive, as the file system is).
pub(crate) fn load_named(name: &str) -> Option<NamedZone> {
    if name.is_empty() {
        return None;
    }
    if name == "UTC" {
        return Some(NamedZone {
            tz: TimeZone::UTC,
            leaps: Vec::new(),
        });
    }
    if name.starts_with('/') || name.len() >= 4096 {
        return None;
    }
    let mut slash = false;
    for b in name.bytes() {
        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/')) {
            return None;
        }
        if b == b'/' {
            if slash {
                return None;
            }
            slash = true;
        } else {
            slash = false;
        }
    }
    if slash {
        return None;
    }
    let path = format!("{ZONEINFO}/{name}");
    let mut file = std::fs::File::open(&path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).ok()?;
    if !data.starts_with(b"TZif") {
        return None;
    }
    let tz = TimeZone::tzif(name, &data).ok()?;
    Some(NamedZone {
        tz,
        leaps: tzif_leaps(&data).unwrap_or_default(),
    })
}

/// The leap-second records of a TZif file (from its 64-bit part when there is one).
fn tzif_leaps(data: &[u8]) -> Option<Vec<(i64, i64)>> {
    fn be32(data: &[u8], at: usize) -> Option<usize> {
        let b: [u8; 4] = data.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_be_bytes(b)).ok()
    }
    // Header: magic, version, 15 reserved bytes, then isutcnt isstdcnt leapcnt timecnt typecnt charcnt.
    let counts = |at: usize| -> Option<[usize; 6]> {
        let mut c = [0; 6];
        for (i, v) in c.iter_mut().enumerate() {
            *v = be32(data, at + 20 + 4 * i)?;
        }
        Some(c)
    };
    let [isut, isstd, leapcnt, timecnt, typecnt, charcnt] = counts(0)?;
    let v1_len = timecnt * 5 + typecnt * 6 + charcnt + leapcnt * 8 + isstd + isut;
    let (block, time_size, leapcnt, timecnt, typecnt, charcnt) = if *data.get(4)? >= b'2' {
        let second = 44 + v1_len;
        let [_, _, leapcnt, timecnt, typecnt, charcnt] = counts(second)?;
        (second + 44, 8, leapcnt, timecnt, typecnt, charcnt)
    } else {
        (44, 4, leapcnt, timecnt, typecnt, charcnt)
    };
    let mut at = block + timecnt * (time_size + 1) + typecnt * 6 + charcnt;
    let mut leaps = Vec::with_capacity(leapcnt.min(1000));
    for _ in 0..leapcnt {
        let raw = data.get(at..at + time_size)?;
        let when = if time_size == 8 {
            i64::from_be_bytes(raw.try_into().ok()?)
        } else {
            i64::from(i32::from_be_bytes(raw.try_into().ok()?))
        };
        let corr = data.get(at + time_size..at + time_size + 4)?;
        leaps.push((when, i64::from(i32::from_be_bytes(corr.try_into().ok()?))));
        at += time_size + 4;
    }
    Some(leaps)
}

/// The local zone's standard and daylight-saving abbreviations, as glibc sets `tzname[0]` and
/// `tzname[1]`: the most recent of each kind among the zone's transitions; a zone that never
/// observed daylight saving time uses its standard name for both.
pub(crate) fn local_abbreviations(tz: &TimeZone) -> [String; 2] {
    // Debian's zone files list transitions up to 2037.
    let probe = Timestamp::from_second(2_145_916_800).unwrap_or(Timestamp::UNIX_EPOCH);
    let mut names: [Option<String>; 2] = [None, None];
    for transition in tz.preceding(probe).take(2000) {
        let kind = usize::from(transition.dst().is_dst());
        if names[kind].is_none() {
            names[kind] = Some(transition.abbreviation().to_string());
            if names[1 - kind].is_some() {
                break;
            }
        }
    }
    let standard = match names[0].take() {
        Some(name) => name,
        None => tz.to_offset_info(probe).abbreviation().to_string(),
    };
    let daylight = names[1].take().unwrap_or_else(|| standard.clone());
    [standard, daylight]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_systemd() {
        assert!(load_named("UTC").is_some());
        assert!(load_named("Europe/Berlin").is_some());
        assert!(load_named("europe/berlin").is_none());
        assert!(load_named("Europe//Berlin").is_none());
        assert!(load_named("Europe/").is_none());
        assert!(load_named("/etc/localtime").is_none());
        assert!(load_named("../zoneinfo/UTC").is_none());
        assert!(load_named("Europe").is_none());
        assert!(load_named("02:00").is_none());
    }

    #[test]
    fn leap_seconds_of_right_zones() {
        let leaps = load_named("right/UTC").map(|z| z.leaps).unwrap_or_default();
        assert_eq!(leaps.len(), 27);
        assert_eq!(leaps.last().map(|l| l.1), Some(27));
        assert!(load_named("Europe/Berlin").is_some_and(|z| z.leaps.is_empty()));
    }

    #[test]
    fn abbreviations() {
        let berlin = load_named("Europe/Berlin").map(|z| local_abbreviations(&z.tz));
        assert_eq!(berlin, Some(["CET".to_string(), "CEST".to_string()]));
        let ny = load_named("America/New_York").map(|z| local_abbreviations(&z.tz));
        assert_eq!(ny, Some(["EST".to_string(), "EDT".to_string()]));
        assert_eq!(
            local_abbreviations(&TimeZone::UTC),
            ["UTC".to_string(), "UTC".to_string()]
        );
    }
}
