//! Durations of the `within` rules: years, months, days and hours (`1y2m3d4h`), applied as
//! calendar arithmetic in the policy's time zone, the way restic does (docs/retention.md).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A `within` duration such as `7d`, `2m` (months) or `1y2m3d4h`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeepDuration {
    pub years: u32,
    pub months: u32,
    pub days: u32,
    pub hours: u32,
}

impl KeepDuration {
    pub fn days(days: u32) -> Self {
        KeepDuration {
            days,
            ..Default::default()
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == KeepDuration::default()
    }

    /// A rough length in hours, to pick the longer of two durations.
    fn approx_hours(&self) -> u64 {
        u64::from(self.years) * 8766
            + u64::from(self.months) * 730
            + u64::from(self.days) * 24
            + u64::from(self.hours)
    }

    pub fn longer_than(&self, other: &KeepDuration) -> bool {
        self.approx_hours() > other.approx_hours()
    }

    /// `latest` minus this duration: years, months and days subtracted from the local calendar
    /// date in `tz` (an overflowing day rolls into the next month, as 31 March minus one month
    /// is 3 March), then the hours as elapsed time.
    pub fn before(&self, latest: Timestamp, tz: &TimeZone) -> Timestamp {
        if latest == Timestamp::MIN {
            return Timestamp::MIN;
        }
        let local = latest.to_zoned(tz.clone());
        let dt = local.datetime();
        let months_total = i64::from(dt.year()) * 12 + i64::from(dt.month())
            - 1
            - i64::from(self.years) * 12
            - i64::from(self.months);
        let (y, m) = (months_total.div_euclid(12), months_total.rem_euclid(12) + 1);
        let day_offset = i64::from(dt.day()) - 1 - i64::from(self.days);
        let shifted = i16::try_from(y)
            .ok()
            .and_then(|y| Date::new(y, m as i8, 1).ok())
            .and_then(|first| first.checked_add(jiff::Span::new().days(day_offset)).ok())
            .map(|d| DateTime::from_parts(d, dt.time()));
        let Some(shifted) = shifted else {
            return Timestamp::MIN;
        };
        let local_ts = resolve_like_go(shifted, tz);
        local_ts
            .checked_sub(jiff::SignedDuration::from_hours(i64::from(self.hours)))
            .unwrap_or(Timestamp::MIN)
    }
}

/// The instant of a local date-time: the offset in force at the date-time read as UTC, corrected
/// once if that offset moves it into another period (how Go's `time.Date` resolves times in a
/// DST gap or overlap; restic relies on it).
fn resolve_like_go(dt: DateTime, tz: &TimeZone) -> Timestamp {
    let Ok(as_utc) = dt.to_zoned(TimeZone::UTC).map(|z| z.timestamp()) else {
        return Timestamp::MIN;
    };
    let first = tz.to_offset(as_utc);
    let guess = as_utc
        .checked_sub(jiff::SignedDuration::from_secs(i64::from(first.seconds())))
        .unwrap_or(as_utc);
    let offset = tz.to_offset(guess);
    as_utc
        .checked_sub(jiff::SignedDuration::from_secs(i64::from(offset.seconds())))
        .unwrap_or(as_utc)
}

impl fmt::Display for KeepDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return write!(f, "0h");
        }
        for (v, u) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if v > 0 {
                write!(f, "{v}{u}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for KeepDuration {
    type Err = Error;

    /// Parses `1y2m3d4h` (each unit at most once, in any order; `m` is months).
    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "invalid duration {s:?}: {why}; write numbers with units y (years), m (months), \
                 d (days), h (hours), e.g. 7d, 2m, 1y6m"
            ))
        };
        let mut d = KeepDuration::default();
        let mut seen = String::new();
        let mut num = String::new();
        for ch in s.trim().chars() {
            if ch.is_ascii_digit() {
                num.push(ch);
                continue;
            }
            if num.is_empty() {
                return Err(bad("a unit without a number"));
            }
            let v: u32 = num.parse().map_err(|_| bad("number too large"))?;
            if v > 100_000 {
                return Err(bad("number too large"));
            }
            num.clear();
            if seen.contains(ch) {
                return Err(bad("a unit given twice"));
            }
            seen.push(ch);
            match ch {
                'y' => d.years = v,
                'm' => d.months = v,
                'd' => d.days = v,
                'h' => d.hours = v,
                _ => return Err(bad(&format!("unknown unit {ch:?}"))),
            }
        }
        if !num.is_empty() {
            return Err(bad("a number without a unit"));
        }
        if seen.is_empty() {
            return Err(bad("empty"));
        }
        if d.is_zero() {
            return Err(bad("zero keeps nothing"));
        }
        Ok(d)
    }
}

impl Serialize for KeepDuration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for KeepDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
