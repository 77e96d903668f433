//! Time zones named in expressions, and the local zone's abbreviations.

use std::io::Read as _;

use jiff::tz::TimeZone;
use jiff::Timestamp;

const ZONEINFO: &str = "/usr/share/zoneinfo";

/// Loads the zone `name` the way systemd accepts it: `UTC`, or a name made of letters, digits,
/// `-`, `_`, `+` and single `/`s naming a regular TZif file under `/usr/share/zoneinfo`
/// (case-sensitive, as the file system is).
pub(crate) fn load_named(name: &str) -> Option<TimeZone> {
    if name.is_empty() {
        return None;
    }
    if name == "UTC" {
        return Some(TimeZone::UTC);
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
    TimeZone::tzif(name, &data).ok()
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
    fn abbreviations() {
        let berlin = load_named("Europe/Berlin").map(|tz| local_abbreviations(&tz));
        assert_eq!(berlin, Some(["CET".to_string(), "CEST".to_string()]));
        let ny = load_named("America/New_York").map(|tz| local_abbreviations(&tz));
        assert_eq!(ny, Some(["EST".to_string(), "EDT".to_string()]));
        assert_eq!(
            local_abbreviations(&TimeZone::UTC),
            ["UTC".to_string(), "UTC".to_string()]
        );
    }
}
