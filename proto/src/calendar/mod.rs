//! systemd calendar expressions (`systemd.time(7)`), parsed and evaluated exactly like
//! `systemd-analyze calendar` of systemd 252.
//!
//! ```
//! use bms_proto::calendar::CalendarSpec;
//! use jiff::{tz::TimeZone, Timestamp};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec = CalendarSpec::parse_in("Mon..Fri 02:00", &TimeZone::UTC)?;
//! assert_eq!(spec.normalized(), "Mon..Fri *-*-* 02:00:00");
//! let after: Timestamp = "2026-03-27T12:00:00Z".parse()?;
//! let next = spec.next_after_in(after, &TimeZone::UTC);
//! assert_eq!(next, Some("2026-03-30T02:00:00Z".parse()?));
//! # Ok(())
//! # }
//! ```
//!
//! Supported: the shorthands (`minutely`, `hourly`, `daily`, `weekly`, `monthly`, `yearly`,
//! `annually`, `quarterly`, `semiannually` and systemd's other spellings), weekday lists and
//! ranges, dates with lists, ranges and steps, the last-day-of-month `~` form, times with
//! optional (fractional) seconds, `@EPOCH`, and a trailing time zone: `UTC`, any zone file
//! under `/usr/share/zoneinfo`, or the local zone's own abbreviations (`CET`, `CEST`).
//!
//! Elapse times follow systemd's algorithm (Debian's 252.38, which includes the fix for
//! zones with negative DST such as Europe/Dublin), quirks included:
//! - local times inside a spring-forward gap are skipped; of a repeated (fall-back) hour only
//!   the occurrence glibc's `mktime()` picks is used (the first one in Europe and America).
//!   The private module `tm` re-implements glibc's `mktime()` for that reason;
//! - nothing elapses after 2199, and a search that takes more than 1000 steps gives up
//!   (systemd reports "infinite loop"), e.g. `*-*-09/16` in America/New_York after
//!   2025-02-25: [`CalendarSpec::next_after_in`] returns `None` where systemd fails;
//! - an expression ending in the local zone's abbreviation (`CET`, `CEST`) forces standard or
//!   daylight time, which is why [`CalendarSpec::parse_in`] takes the local zone;
//! - the leap seconds of the `right/` zones count, as glibc counts them (only for zones named
//!   in the expression).

mod component;
mod format;
mod grammar;
mod next;
mod parse;
mod tm;
mod zone;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_next;

use jiff::tz::TimeZone;
use jiff::Timestamp;

pub(crate) use component::Component;

/// A parsed calendar expression. Compare two specs with `==` or their [`normalized`] forms.
///
/// [`normalized`]: CalendarSpec::normalized
#[derive(Clone, Debug, PartialEq)]
pub struct CalendarSpec {
    /// Bit 0 = Monday .. bit 6 = Sunday; `None` = every day.
    pub(crate) weekdays: Option<u8>,
    /// The day components count from the end of the month (`~`).
    pub(crate) end_of_month: bool,
    pub(crate) year: Vec<Component>,
    pub(crate) month: Vec<Component>,
    pub(crate) day: Vec<Component>,
    pub(crate) hour: Vec<Component>,
    pub(crate) minute: Vec<Component>,
    /// Seconds, in microseconds. Never empty.
    pub(crate) second: Vec<Component>,
    pub(crate) zone: SpecZone,
}

/// Which clock a spec is evaluated in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SpecZone {
    /// The caller's local zone.
    Local,
    /// The caller's local zone with daylight saving time forced on or off, as systemd does when
    /// the expression ends in one of the local zone's abbreviations (`CET`, `CEST`).
    LocalAbbrev {
        dst: bool,
        name: String,
    },
    Utc,
    /// A zone named in the expression (`Europe/Berlin`), with its leap seconds if any.
    Named {
        name: String,
        tz: TimeZone,
        leaps: Vec<(i64, i64)>,
    },
}

/// Why an expression was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid calendar expression '{expr}': {reason}")]
pub struct CalendarError {
    expr: String,
    reason: String,
}

impl CalendarError {
    pub(crate) fn new(expr: &str, reason: impl Into<String>) -> CalendarError {
        CalendarError {
            expr: expr.to_string(),
            reason: reason.into(),
        }
    }

    /// The expression as given.
    pub fn expression(&self) -> &str {
        &self.expr
    }

    /// What is wrong with it, without the expression.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl CalendarSpec {
    /// Parses `expr` as systemd does, with the system time zone (`TZ`, else `/etc/localtime`)
    /// as the local zone (it only matters for expressions ending in a local abbreviation such
    /// as `CET`).
    pub fn parse(expr: &str) -> Result<CalendarSpec, CalendarError> {
        CalendarSpec::parse_in(expr, &TimeZone::system())
    }

    /// Parses `expr` as systemd does when its local zone is `local`.
    pub fn parse_in(expr: &str, local: &TimeZone) -> Result<CalendarSpec, CalendarError> {
        parse::parse(expr, local)
    }

    /// systemd's "Normalized form", e.g. `Mon..Fri *-*-* 02:00:00`.
    pub fn normalized(&self) -> String {
        format::normalized(self)
    }

    /// The time zone named in the expression, if any (`UTC`, `Europe/Berlin`, `CET`).
    pub fn time_zone_name(&self) -> Option<&str> {
        match &self.zone {
            SpecZone::Local => None,
            SpecZone::Utc => Some("UTC"),
            SpecZone::LocalAbbrev { name, .. } | SpecZone::Named { name, .. } => Some(name),
        }
    }

    /// The first elapse strictly after `after`, evaluated in the spec's own time zone if it names
    /// one, else in `local`. `None` if the expression never elapses again (systemd stops at the
    /// year 2199).
    pub fn next_after_in(&self, after: Timestamp, local: &TimeZone) -> Option<Timestamp> {
        next::next_after(self, after, local)
    }

    /// [`next_after_in`](CalendarSpec::next_after_in) with the system time zone (honours `TZ`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        self.next_after_in(after, &TimeZone::system())
    }

    /// The next `n` elapses after `after` (fewer if the expression stops elapsing).
    pub fn upcoming_in(&self, after: Timestamp, local: &TimeZone, n: usize) -> Vec<Timestamp> {
        let mut out = Vec::with_capacity(n.min(64));
        let mut at = after;
        while out.len() < n {
            match self.next_after_in(at, local) {
                Some(next) => {
                    out.push(next);
                    at = next;
                }
                None => break,
            }
        }
        out
    }
}

impl std::fmt::Display for CalendarSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.normalized())
    }
}

impl std::str::FromStr for CalendarSpec {
    type Err = CalendarError;

    fn from_str(s: &str) -> Result<CalendarSpec, CalendarError> {
        CalendarSpec::parse(s)
    }
}
