//! The grammar proper: weekdays, date, time, `@EPOCH`, with systemd's exact corner cases.

use super::component::{Component, USEC_PER_SEC};
use super::tm::breakdown;

/// systemd refuses longer comma lists than this (per field).
const MAX_LIST: usize = 241;
const INT_MAX: i64 = i32::MAX as i64;

const WEEKDAYS: [(&str, u8); 14] = [
    ("monday", 0),
    ("mon", 0),
    ("tuesday", 1),
    ("tue", 1),
    ("wednesday", 2),
    ("wed", 2),
    ("thursday", 3),
    ("thu", 3),
    ("friday", 4),
    ("fri", 4),
    ("saturday", 5),
    ("sat", 5),
    ("sunday", 6),
    ("sun", 6),
];

/// A parse failure: what was wrong, and where (the rest of the input from there).
pub(crate) struct Fail {
    pub what: &'static str,
    pub at: usize,
}

pub(crate) type PResult<T> = Result<T, Fail>;

/// The parsed fields before normalization.
#[derive(Default)]
pub(crate) struct Fields {
    pub weekdays: u8,
    pub end_of_month: bool,
    pub year: Vec<Component>,
    pub month: Vec<Component>,
    pub day: Vec<Component>,
    pub hour: Vec<Component>,
    pub minute: Vec<Component>,
    pub second: Vec<Component>,
    pub utc: bool,
}

pub(crate) struct Cursor<'a> {
    pub s: &'a [u8],
    pub pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<u8> {
        self.s.get(self.pos + n).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, what: &'static str) -> PResult<T> {
        Err(Fail { what, at: self.pos })
    }
}

pub(crate) fn parse_full(cur: &mut Cursor<'_>) -> PResult<Fields> {
    let mut f = Fields::default();
    parse_weekdays(cur, &mut f)?;
    if !parse_date(cur, &mut f)? {
        parse_time(cur, &mut f)?;
    }
    if !cur.at_end() {
        return cur.fail("unexpected text");
    }
    Ok(f)
}

fn match_weekday(cur: &Cursor<'_>) -> Option<(u8, usize)> {
    let rest = cur.s.get(cur.pos..)?;
    WEEKDAYS.iter().find_map(|(name, nr)| {
        let n = name.as_bytes();
        (rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n)).then_some((*nr, n.len()))
    })
}

fn parse_weekdays(cur: &mut Cursor<'_>, f: &mut Fields) -> PResult<()> {
    let mut range_from: Option<u8> = None;
    let mut first = true;
    loop {
        let Some((nr, len)) = match_weekday(cur) else {
            if first {
                return Ok(());
            }
            return cur.fail("unknown weekday or bad date");
        };
        if !matches!(cur.peek_at(len), None | Some(b'-' | b'.' | b',' | b' ')) {
            return cur.fail("unknown weekday or bad date");
        }
        f.weekdays |= 1 << nr;
        if let Some(from) = range_from {
            if from > nr {
                return cur.fail("weekday range runs backwards");
            }
            for day in from + 1..nr {
                f.weekdays |= 1 << day;
            }
        }
        cur.pos += len;
        match cur.peek() {
            None => return Ok(()),
            Some(b' ') => {
                cur.skip_spaces();
                return Ok(());
            }
            Some(b'.') => {
                if range_from.is_some() || cur.peek_at(1) != Some(b'.') {
                    return cur.fail("bad weekday range");
                }
                range_from = Some(nr);
                cur.pos += 2;
            }
            Some(b'-') => {
                if range_from.is_some() {
                    return cur.fail("bad weekday range");
                }
                range_from = Some(nr);
                cur.pos += 1;
            }
            Some(_) => {
                // A comma.
                range_from = None;
                cur.pos += 1;
            }
        }
        if matches!(cur.peek(), None | Some(b' ')) {
            if range_from.is_some() {
                return cur.fail("open weekday range");
            }
            cur.skip_spaces();
            return Ok(());
        }
        first = false;
    }
}

/// A decimal number; for seconds (`usec`) with an optional fraction, in microseconds.
fn parse_decimal(cur: &mut Cursor<'_>, usec: bool) -> PResult<i64> {
    if !cur.peek().is_some_and(|b| b.is_ascii_digit()) {
        return cur.fail("expected a number or '*'");
    }
    let start = cur.pos;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(b) = cur.peek().filter(u8::is_ascii_digit) {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        cur.pos += 1;
    }
    let too_large = Fail {
        what: "number too large",
        at: start,
    };
    if overflow {
        return Err(too_large);
    }
    if usec {
        value = match value.checked_mul(USEC_PER_SEC as u64) {
            Some(v) => v,
            None => return Err(too_large),
        };
        if cur.peek() == Some(b'.') && cur.peek_at(1) != Some(b'.') {
            cur.pos += 1;
            value = value.saturating_add(parse_fraction(cur)?);
        }
    }
    match i64::try_from(value) {
        Ok(v) if v <= INT_MAX => Ok(v),
        _ => Err(too_large),
    }
}

/// Six fractional digits, rounded by the seventh, further digits ignored.
fn parse_fraction(cur: &mut Cursor<'_>) -> PResult<u64> {
    let mut value = 0u64;
    for i in 0..6 {
        match cur.peek().filter(u8::is_ascii_digit) {
            Some(b) => {
                value = value * 10 + u64::from(b - b'0');
                cur.pos += 1;
            }
            None if i == 0 => return cur.fail("expected digits after the decimal point"),
            None => {
                value *= 10u64.pow(6 - i as u32);
                break;
            }
        }
    }
    if matches!(cur.peek(), Some(b'5'..=b'9')) {
        value += 1;
    }
    while cur.peek().is_some_and(|b| b.is_ascii_digit()) {
        cur.pos += 1;
    }
    Ok(value)
}

/// A comma list of `N`, `N..M`, `N/S`, `N..M/S`.
fn parse_list(cur: &mut Cursor<'_>, usec: bool) -> PResult<Vec<Component>> {
    let mut out = Vec::new();
    loop {
        if out.len() >= MAX_LIST {
            return cur.fail("too many list elements");
        }
        let start = parse_decimal(cur, usec)?;
        let mut stop = -1;
        let mut repeat = 0;
        if cur.peek() == Some(b'.') && cur.peek_at(1) == Some(b'.') {
            cur.pos += 2;
            stop = parse_decimal(cur, usec)?;
            repeat = if usec { USEC_PER_SEC } else { 1 };
        }
        if cur.peek() == Some(b'/') {
            cur.pos += 1;
            let at = cur.pos;
            repeat = parse_decimal(cur, usec)?;
            if repeat == 0 {
                return Err(Fail {
                    what: "repetition must not be 0",
                    at,
                });
            }
        } else {
            if start > INT_MAX - repeat {
                return cur.fail("number too large");
            }
            if usec && stop >= 0 && start + repeat > stop {
                return cur.fail("range of seconds shorter than one second needs a step");
            }
        }
        if !matches!(cur.peek(), None | Some(b' ' | b',' | b'-' | b'~' | b':')) {
            return cur.fail("unexpected character");
        }
        out.push(Component {
            start,
            stop,
            repeat,
        });
        if cur.peek() != Some(b',') {
            return Ok(out);
        }
        cur.pos += 1;
    }
}

/// `*` or a list. `*` is an empty list, except for seconds, where it means every second.
fn parse_chain(cur: &mut Cursor<'_>, usec: bool) -> PResult<Vec<Component>> {
    if cur.peek() == Some(b'*') {
        cur.pos += 1;
        return Ok(if usec {
            vec![Component {
                start: 0,
                stop: -1,
                repeat: USEC_PER_SEC,
            }]
        } else {
            Vec::new()
        });
    }
    parse_list(cur, usec)
}

/// The date, if there is one. `Ok(true)` for `@EPOCH`, which includes the time.
fn parse_date(cur: &mut Cursor<'_>, f: &mut Fields) -> PResult<bool> {
    if cur.at_end() {
        return Ok(false);
    }
    if cur.peek() == Some(b'@') {
        cur.pos += 1;
        parse_epoch(cur, f)?;
        return Ok(true);
    }
    let begin = cur.pos;
    let first = parse_chain(cur, false)?;
    if matches!(cur.peek(), None | Some(b':')) {
        // That was the hour.
        cur.pos = begin;
        return Ok(false);
    }
    match cur.peek() {
        Some(b'~') => f.end_of_month = true,
        Some(b'-') => {}
        _ => return cur.fail("bad date"),
    }
    cur.pos += 1;
    let second = parse_chain(cur, false)?;
    if matches!(cur.peek(), None | Some(b' ')) {
        cur.skip_spaces();
        f.month = first;
        f.day = second;
        return Ok(false);
    }
    if f.end_of_month {
        return cur.fail("'~' only goes between month and day");
    }
    match cur.peek() {
        Some(b'~') => f.end_of_month = true,
        Some(b'-') => {}
        _ => return cur.fail("bad date"),
    }
    cur.pos += 1;
    let third = parse_chain(cur, false)?;
    if !matches!(cur.peek(), None | Some(b' ')) {
        return cur.fail("bad date");
    }
    cur.skip_spaces();
    f.year = first;
    f.month = second;
    f.day = third;
    Ok(false)
}

/// `@SECONDS`, read like `strtoul()` (spaces and a sign allowed), as a UTC date and time.
fn parse_epoch(cur: &mut Cursor<'_>, f: &mut Fields) -> PResult<()> {
    let at = cur.pos;
    let mut p = cur.pos;
    while matches!(
        cur.s.get(p),
        Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    ) {
        p += 1;
    }
    let negative = cur.s.get(p) == Some(&b'-');
    if matches!(cur.s.get(p), Some(b'+' | b'-')) {
        p += 1;
    }
    let digits_from = p;
    let mut value: u64 = 0;
    let mut overflow = false;
    while let Some(b) = cur.s.get(p).filter(|b| b.is_ascii_digit()) {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        p += 1;
    }
    if p == digits_from {
        return cur.fail("expected seconds since the epoch");
    }
    if overflow {
        return Err(Fail {
            what: "number too large",
            at,
        });
    }
    cur.pos = p;
    // Like strtoul, "-N" wraps around; as a time_t that is simply -N.
    let seconds = if negative {
        value.wrapping_neg()
    } else {
        value
    } as i64;
    if !(-(1i64 << 40)..(1i64 << 40)).contains(&seconds) {
        return Err(Fail {
            what: "time out of range",
            at,
        });
    }
    let tm = breakdown(seconds, 0);
    f.year = vec![Component::value(tm.year)];
    f.month = vec![Component::value(tm.mon + 1)];
    f.day = vec![Component::value(tm.mday)];
    f.hour = vec![Component::value(tm.hour)];
    f.minute = vec![Component::value(tm.min)];
    f.second = vec![Component::value(tm.sec * USEC_PER_SEC)];
    f.utc = true;
    Ok(())
}

/// `H:M` or `H:M:S`; nothing at all means 00:00:00.
fn parse_time(cur: &mut Cursor<'_>, f: &mut Fields) -> PResult<()> {
    if cur.at_end() {
        f.hour = vec![Component::value(0)];
        f.minute = vec![Component::value(0)];
        f.second = vec![Component::value(0)];
        return Ok(());
    }
    let hour = parse_chain(cur, false)?;
    if cur.peek() != Some(b':') {
        return cur.fail("expected ':' after the hour");
    }
    cur.pos += 1;
    let minute = parse_chain(cur, false)?;
    let second = if cur.at_end() {
        vec![Component::value(0)]
    } else {
        if cur.peek() != Some(b':') {
            return cur.fail("expected ':' after the minute");
        }
        cur.pos += 1;
        let second = parse_chain(cur, true)?;
        if !cur.at_end() {
            return cur.fail("unexpected text after the time");
        }
        second
    };
    f.hour = hour;
    f.minute = minute;
    f.second = second;
    Ok(())
}
