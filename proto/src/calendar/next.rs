//! The next elapse: systemd's field-by-field search (`find_next()` in calendarspec.c),
//! re-implemented over [`Clock`] so that normalization and DST behave the same.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::component::{Component, USEC_PER_SEC};
use super::tm::{Clock, Tm};
use super::{CalendarSpec, SpecZone};

/// systemd gives up on years after this one.
pub(crate) const MAX_YEAR: i64 = 2199;
/// systemd's safety valve against endless searches.
const MAX_ITERATIONS: usize = 1000;
/// The largest time systemd accepts as a starting point (9999-12-30 23:59:59.999999 UTC).
const USEC_TIMESTAMP_FORMATTABLE_MAX: i128 = 253_402_214_399_999_999;

/// What `tm_within_bounds()` found after normalizing.
enum Bounds {
    /// Unchanged: the fields were valid.
    Same,
    /// Normalized forward; `tm` now holds the normalized time with lower fields reset.
    Moved,
    /// Out of range, unrepresentable or normalized backwards.
    Bad,
}

struct Search<'a> {
    spec: &'a CalendarSpec,
    clock: Clock,
    /// `tm_isdst` systemd asks for: -1, or 0/1 for an expression ending in `CET`/`CEST`.
    dst: i32,
}

pub(crate) fn next_after(
    spec: &CalendarSpec,
    after: Timestamp,
    local: &TimeZone,
) -> Option<Timestamp> {
    let (clock, dst) = match &spec.zone {
        SpecZone::Utc => (Clock::Utc, -1),
        SpecZone::Local => (Clock::zone(local.clone(), Vec::new()), -1),
        SpecZone::LocalAbbrev { dst, .. } => {
            (Clock::zone(local.clone(), Vec::new()), i32::from(*dst))
        }
        SpecZone::Named { tz, leaps, .. } => (Clock::zone(tz.clone(), leaps.clone()), -1),
    };
    let usec = after.as_nanosecond().div_euclid(1000);
    if usec > USEC_TIMESTAMP_FORMATTABLE_MAX {
        return None;
    }
    let usec = i64::try_from(usec + 1).ok()?;
    let mut search = Search { spec, clock, dst };
    let tm = search.clock.localtime(usec.div_euclid(USEC_PER_SEC))?;
    let (mut tm, tm_usec) = search.find_next(tm, usec.rem_euclid(USEC_PER_SEC))?;
    let t = search.clock.mktime(&mut tm)?;
    if t < 0 {
        return None;
    }
    Timestamp::from_microsecond(t.checked_mul(USEC_PER_SEC)?.checked_add(tm_usec)?).ok()
}

impl Search<'_> {
    /// `mktime()` as systemd's callers see it: failures and times before 1970 are errors.
    fn mktime_ok(&mut self, tm: &mut Tm) -> bool {
        matches!(self.clock.mktime(tm), Some(t) if t >= 0)
    }

    fn within_bounds(&mut self, tm: &mut Tm) -> Bounds {
        if tm.year > MAX_YEAR {
            return Bounds::Bad;
        }
        let mut t = *tm;
        if !self.mktime_ok(&mut t) {
            return Bounds::Bad;
        }
        // A normalization carried into a higher field: restart the field below it.
        let cmp = if t.year != tm.year {
            let c = t.year.cmp(&tm.year);
            t.mon = 0;
            c
        } else if t.mon != tm.mon {
            let c = t.mon.cmp(&tm.mon);
            t.mday = 1;
            c
        } else if t.mday != tm.mday {
            let c = t.mday.cmp(&tm.mday);
            t.hour = 0;
            c
        } else if t.hour != tm.hour {
            let c = t.hour.cmp(&tm.hour);
            t.min = 0;
            c
        } else if t.min != tm.min {
            let c = t.min.cmp(&tm.min);
            t.sec = 0;
            c
        } else {
            t.sec.cmp(&tm.sec)
        };
        match cmp {
            std::cmp::Ordering::Less => Bounds::Bad,
            std::cmp::Ordering::Equal => Bounds::Same,
            std::cmp::Ordering::Greater => {
                *tm = t;
                Bounds::Moved
            }
        }
    }

    /// The day of month of the `day`-th last day of `tm`'s month, or -1.
    fn end_of_month(&mut self, tm: &Tm, day: i64) -> i64 {
        let mut t = *tm;
        t.mon += 1;
        t.mday = 1 - day;
        if !self.mktime_ok(&mut t) || t.mon != tm.mon {
            return -1;
        }
        t.mday
    }

    /// Moves `val` to the earliest value of `chain` at or after it. `None` if there is none,
    /// else whether `val` changed.
    fn find_matching(
        &mut self,
        chain: &[Component],
        eom: Option<&Tm>,
        val: &mut i64,
    ) -> Option<bool> {
        if chain.is_empty() {
            return Some(false);
        }
        let mut best: Option<i64> = None;
        for c in chain {
            let (start, stop) = match eom {
                Some(tm) => {
                    let start = self.end_of_month(tm, c.start);
                    let stop = self.end_of_month(tm, c.stop);
                    if stop > 0 {
                        (stop, start)
                    } else {
                        (start, stop)
                    }
                }
                None => (c.start, c.stop),
            };
            if start >= *val {
                if !matches!(best, Some(d) if d <= start) {
                    best = Some(start);
                }
            } else if c.repeat > 0 {
                let diff = *val - start;
                let k = start + c.repeat * (diff / c.repeat + i64::from(diff % c.repeat != 0));
                if !matches!(best, Some(d) if d <= k) && (stop < 0 || k <= stop) {
                    best = Some(k);
                }
            }
        }
        let d = best?;
        let changed = *val != d;
        *val = d;
        Some(changed)
    }

    fn matches_weekday(&mut self, tm: &Tm) -> bool {
        let Some(bits) = self.spec.weekdays else {
            return true;
        };
        let mut t = *tm;
        if !self.mktime_ok(&mut t) {
            return false;
        }
        let k = (t.wday + 6) % 7;
        bits & (1 << k) != 0
    }

    fn find_next(&mut self, start: Tm, start_usec: i64) -> Option<(Tm, i64)> {
        let spec = self.spec;
        let mut c = start;
        let mut usec = start_usec;
        // Once the search got stuck on a time that is not after the start (a DST change that
        // normalized backwards), tm_isdst is left to mktime() instead of the spec.
        let mut invalidate_dst = false;

        for _ in 0..MAX_ITERATIONS {
            let _ = self.clock.mktime(&mut c);
            if !invalidate_dst {
                c.isdst = self.dst;
            }

            let r = self.find_matching(&spec.year, None, &mut c.year)?;
            if r {
                (c.mon, c.mday, c.hour, c.min, c.sec, usec) = (0, 1, 0, 0, 0, 0);
            }
            if !matches!(self.within_bounds(&mut c), Bounds::Same) {
                return None;
            }

            let mut month = c.mon + 1;
            let r = self.find_matching(&spec.month, None, &mut month);
            c.mon = month - 1;
            if r == Some(true) {
                (c.mday, c.hour, c.min, c.sec, usec) = (1, 0, 0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Bad) => {
                    (c.year, c.mon, c.mday) = (c.year + 1, 0, 1);
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                Some(Bounds::Moved) => continue,
                Some(Bounds::Same) => {}
            }

            let eom_ref = c;
            let eom = spec.end_of_month.then_some(&eom_ref);
            let r = self.find_matching(&spec.day, eom, &mut c.mday);
            if r == Some(true) {
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Bad) => {
                    (c.mon, c.mday) = (c.mon + 1, 1);
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                Some(Bounds::Moved) => continue,
                Some(Bounds::Same) => {}
            }

            if !self.matches_weekday(&c) {
                c.mday += 1;
                (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                continue;
            }

            let r = self.find_matching(&spec.hour, None, &mut c.hour);
            if r == Some(true) {
                (c.min, c.sec, usec) = (0, 0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Bad) => {
                    c.mday += 1;
                    (c.hour, c.min, c.sec, usec) = (0, 0, 0, 0);
                    continue;
                }
                // The hour may not exist (DST): start again from the normalized time.
                Some(Bounds::Moved) => continue,
                Some(Bounds::Same) => {}
            }

            let r = self.find_matching(&spec.minute, None, &mut c.min);
            if r == Some(true) {
                (c.sec, usec) = (0, 0);
            }
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Bad) => {
                    c.hour += 1;
                    (c.min, c.sec, usec) = (0, 0, 0);
                    continue;
                }
                Some(Bounds::Moved) => continue,
                Some(Bounds::Same) => {}
            }

            let mut micro = c.sec * USEC_PER_SEC + usec;
            let r = self.find_matching(&spec.second, None, &mut micro);
            usec = micro % USEC_PER_SEC;
            c.sec = micro / USEC_PER_SEC;
            match r.map(|_| self.within_bounds(&mut c)) {
                None | Some(Bounds::Bad) => {
                    c.min += 1;
                    (c.sec, usec) = (0, 0);
                    continue;
                }
                Some(Bounds::Moved) => continue,
                Some(Bounds::Same) => {}
            }

            let fields = |t: &Tm| (t.year, t.mon, t.mday, t.hour, t.min, t.sec);
            let order = fields(&start)
                .cmp(&fields(&c))
                .then(start_usec.cmp(&(usec + 1)));
            if order.is_ge() {
                // Stuck: step an hour and let mktime() sort out the DST flag.
                invalidate_dst = true;
                c.hour += 1;
                continue;
            }
            return Some((c, usec));
        }
        None
    }
}
