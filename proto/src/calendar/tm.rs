//! Broken-down time and a re-implementation of glibc's `mktime()`.
//!
//! systemd walks calendar fields through `struct tm` and lets `mktime()` normalize them; what
//! it does with local times that do not exist (spring forward) or exist twice (fall back)
//! decides which elapses systemd produces. glibc resolves such times by probing from its
//! previous result's UTC offset, so [`Clock`] keeps that guess as glibc does.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// `struct tm`, with a full year, `mon` 0..11 and `isdst` -1 (unknown), 0 or 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tm {
    pub year: i64,
    pub mon: i64,
    pub mday: i64,
    pub hour: i64,
    pub min: i64,
    pub sec: i64,
    pub isdst: i32,
    /// 0 = Sunday.
    pub wday: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..12).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (`month` 1..12) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds of a wall-clock reading since 1970-01-01 00:00 of the same clock; fields need not
/// be in range.
pub(crate) fn civil_seconds(year: i64, mon: i64, mday: i64, hour: i64, min: i64, sec: i64) -> i64 {
    let year = year + mon.div_euclid(12);
    let mon = mon.rem_euclid(12);
    let days = days_from_civil(year, mon + 1, 1) + mday - 1;
    days * 86_400 + hour * 3600 + min * 60 + sec
}

/// Splits wall-clock seconds into fields.
pub(crate) fn breakdown(civil: i64, isdst: i32) -> Tm {
    let days = civil.div_euclid(86_400);
    let rem = civil.rem_euclid(86_400);
    let (year, month, mday) = civil_from_days(days);
    Tm {
        year,
        mon: month - 1,
        mday,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
        isdst,
        wday: (days + 4).rem_euclid(7),
    }
}

fn tm_civil(tm: &Tm) -> i64 {
    civil_seconds(tm.year, tm.mon, tm.mday, tm.hour, tm.min, tm.sec)
}

/// Whether two `tm_isdst` values disagree (only if both are known).
fn isdst_differ(a: i32, b: i32) -> bool {
    (a == 0) != (b == 0) && a >= 0 && b >= 0
}

/// `gmtime`/`timegm` or `localtime`/`mktime` of one zone.
pub(crate) enum Clock {
    Utc,
    Zone {
        zone: Zone,
        /// glibc's `localtime_offset`: `t - wall clock` of the previous `mktime()` result.
        guess: i64,
    },
}

/// A time zone as glibc's `localtime()` sees it: jiff's offsets plus the zone file's leap
/// seconds (only the `right/` zones have any).
pub(crate) struct Zone {
    pub tz: TimeZone,
    /// (time of the leap, total correction from then on), ascending.
    pub leaps: Vec<(i64, i64)>,
}

impl Clock {
    pub(crate) fn zone(tz: TimeZone, leaps: Vec<(i64, i64)>) -> Clock {
        Clock::Zone {
            zone: Zone { tz, leaps },
            guess: 0,
        }
    }

    /// `localtime_r`/`gmtime_r`.
    pub(crate) fn localtime(&self, t: i64) -> Option<Tm> {
        match self {
            Clock::Utc => Some(breakdown(t, 0)),
            Clock::Zone { zone, .. } => convert(zone, t),
        }
    }

    /// `mktime`/`timegm`: normalizes `tm` and returns its time, or `None` (leaving `tm`
    /// untouched) where glibc fails.
    pub(crate) fn mktime(&mut self, tm: &mut Tm) -> Option<i64> {
        match self {
            Clock::Utc => {
                let t = tm_civil(tm);
                *tm = breakdown(t, 0);
                Some(t)
            }
            Clock::Zone { zone, guess } => mktime_zone(zone, guess, tm),
        }
    }
}

/// `localtime_r`: the zone's offset at `t`, less the leap seconds before it; during a leap
/// second the seconds field reads 60.
fn convert(zone: &Zone, t: i64) -> Option<Tm> {
    let ts = Timestamp::from_second(t).ok()?;
    let info = zone.tz.to_offset_info(ts);
    let offset = i64::from(info.offset().seconds());
    let mut correction = 0;
    let mut hit = 0;
    if let Some(i) = zone.leaps.iter().rposition(|&(when, _)| when <= t) {
        correction = zone.leaps[i].1;
        let previous = if i == 0 { 0 } else { zone.leaps[i - 1].1 };
        if t == zone.leaps[i].0 && correction > previous {
            hit = 1;
            let mut j = i;
            while j > 0
                && zone.leaps[j].0 == zone.leaps[j - 1].0 + 1
                && zone.leaps[j].1 == zone.leaps[j - 1].1 + 1
            {
                hit += 1;
                j -= 1;
            }
        }
    }
    let mut tm = breakdown(
        t.checked_add(offset)?.checked_sub(correction)?,
        i32::from(info.dst().is_dst()),
    );
    tm.sec += hit;
    Some(tm)
}

/// glibc's `__mktime_internal` with `localtime` as the conversion.
fn mktime_zone(tz: &Zone, guess: &mut i64, tp: &mut Tm) -> Option<i64> {
    let isdst = tp.isdst;
    let sec_requested = tp.sec;
    // Out-of-range seconds are clamped for the search and added back at the end (leap seconds).
    let sec = tp.sec.clamp(0, 59);
    let civil = civil_seconds(tp.year, tp.mon, tp.mday, tp.hour, tp.min, sec);

    // First assume the same UTC offset as last time.
    let t0 = civil.checked_add(*guess)?;
    let (mut t, mut t1, mut t2) = (t0, t0, t0);
    let mut dst2 = false;
    let mut remaining_probes = 6;
    let mut tm;
    let mut matched = true;
    loop {
        tm = convert(tz, t)?;
        let dt = civil - tm_civil(&tm);
        if dt == 0 {
            break;
        }
        let oscillating = t == t1
            && t != t2
            && (tm.isdst < 0
                || if isdst < 0 {
                    i32::from(dst2) <= i32::from(tm.isdst != 0)
                } else {
                    (isdst != 0) != (tm.isdst != 0)
                });
        if oscillating {
            // Inside a spring-forward gap: glibc answers with the time `dt` away.
            matched = false;
            break;
        }
        remaining_probes -= 1;
        if remaining_probes == 0 {
            return None;
        }
        t1 = t2;
        t2 = t;
        t = t.checked_add(dt)?;
        dst2 = tm.isdst != 0;
    }

    if matched && isdst_differ(isdst, tm.isdst) {
        // The requested tm_isdst differs: borrow the UTC offset of a nearby time that has it.
        const STRIDE: i64 = 601_200;
        const DELTA_BOUND: i64 = 536_454_000 / 2 + STRIDE;
        let mut found = None;
        let mut delta = STRIDE;
        'search: while delta < DELTA_BOUND {
            for direction in [-1, 1] {
                let ot = t + delta * direction;
                let otm = convert(tz, ot)?;
                if !isdst_differ(isdst, otm.isdst) {
                    let gt = ot + (civil - tm_civil(&otm));
                    if let Some(gtm) = convert(tz, gt) {
                        found = Some((gt, gtm));
                        break 'search;
                    }
                }
            }
            delta += STRIDE;
        }
        let (gt, gtm) = found?;
        t = gt;
        tm = gtm;
    }

    *guess = t - civil;
    if sec_requested != tm.sec {
        let adjustment = i64::from(sec == 0 && tm.sec == 60) - sec + sec_requested;
        t = t.checked_add(adjustment)?;
        tm = convert(tz, t)?;
    }
    *tp = tm;
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_roundtrip() {
        for days in [-800_000, -1, 0, 59, 365, 11_016, 20_000, 84_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(breakdown(0, 0).wday, 4);
        assert_eq!(
            civil_seconds(2025, 12, 1, 0, 0, 0),
            civil_seconds(2026, 0, 1, 0, 0, 0)
        );
        assert_eq!(
            civil_seconds(2026, 1, 29, 0, 0, 0),
            civil_seconds(2026, 2, 1, 0, 0, 0)
        );
    }

    fn tm(y: i64, mon: i64, d: i64, h: i64, m: i64, isdst: i32) -> Tm {
        Tm {
            year: y,
            mon: mon - 1,
            mday: d,
            hour: h,
            min: m,
            sec: 0,
            isdst,
            wday: 0,
        }
    }

    #[test]
    fn mktime_gap_and_overlap_like_glibc() {
        let Some(berlin) = super::super::zone::load_named("Europe/Berlin") else {
            panic!("no Europe/Berlin");
        };
        let mut clock = Clock::zone(berlin.tz, berlin.leaps);
        // 02:30 does not exist on 2026-03-29: glibc moves it to 03:30 CEST (01:30 UTC).
        let mut t = tm(2026, 3, 29, 2, 30, -1);
        assert_eq!(clock.mktime(&mut t), Some(1_774_747_800));
        assert_eq!((t.hour, t.min, t.isdst), (3, 30, 1));
        // 02:30 exists twice on 2026-10-25; the previous offset (CEST here) decides.
        let mut t = tm(2026, 10, 24, 12, 0, -1);
        clock.mktime(&mut t);
        let mut t = tm(2026, 10, 25, 2, 30, -1);
        assert_eq!(clock.mktime(&mut t), Some(1_792_888_200));
        let mut t = tm(2026, 10, 26, 12, 0, -1);
        clock.mktime(&mut t);
        let mut t = tm(2026, 10, 25, 2, 30, -1);
        assert_eq!(clock.mktime(&mut t), Some(1_792_891_800));
        // An explicit isdst picks that occurrence.
        let mut t = tm(2026, 10, 25, 2, 30, 1);
        assert_eq!(clock.mktime(&mut t), Some(1_792_888_200));
    }
}
