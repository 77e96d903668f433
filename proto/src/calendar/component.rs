//! One element of a component list: a value, a range or a repetition.

/// Microseconds per second; the seconds field is kept in microseconds.
pub(crate) const USEC_PER_SEC: i64 = 1_000_000;

/// `start`, optionally up to `stop`, optionally every `repeat`. `stop` is -1 when absent and
/// `repeat` 0 when absent. Ranges without an explicit step repeat every 1 (every second for the
/// seconds field, which is kept in microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Component {
    pub start: i64,
    pub stop: i64,
    pub repeat: i64,
}

impl Component {
    pub(crate) fn value(start: i64) -> Component {
        Component {
            start,
            stop: -1,
            repeat: 0,
        }
    }
}

/// Two-digit years: 0..69 are 2000..2069, 70..99 are 1970..1999.
pub(crate) fn fix_years(chain: &mut [Component]) {
    fn fix(v: &mut i64) {
        if (0..70).contains(v) {
            *v += 2000;
        } else if (70..100).contains(v) {
            *v += 1900;
        }
    }
    for c in chain {
        fix(&mut c.start);
        fix(&mut c.stop);
    }
}

/// Shortens ranges to a multiple of their step, turns ranges that cannot repeat into single
/// values, then sorts and removes duplicates (the sort only when there are several elements).
pub(crate) fn normalize_chain(chain: &mut Vec<Component>) {
    for c in chain.iter_mut() {
        if c.stop > c.start && c.repeat > 0 {
            c.stop -= (c.stop - c.start) % c.repeat;
        }
        if (c.stop > c.start && c.repeat > 0 && c.start + c.repeat > c.stop) || c.start == c.stop {
            c.repeat = 0;
            c.stop = -1;
        }
    }
    if chain.len() > 1 {
        chain.sort();
        chain.dedup();
    }
}

/// Whether every element lies within `from..=to`. For end-of-month days each further element
/// of the list is allowed three days less (systemd's check lowers its bound as it walks the
/// list; kept for compatibility).
pub(crate) fn chain_valid(chain: &[Component], from: i64, to: i64, end_of_month: bool) -> bool {
    let mut to = to;
    for c in chain {
        if end_of_month {
            to -= 3;
        }
        if c.start < from || c.start > to {
            return false;
        }
        if c.repeat > to - from {
            return false;
        }
        if c.stop >= 0 {
            if c.stop < from || c.stop > to {
                return false;
            }
            if c.start + c.repeat > c.stop {
                return false;
            }
        } else {
            if end_of_month && c.start - c.repeat < from {
                return false;
            }
            if !end_of_month && c.start + c.repeat > to {
                return false;
            }
        }
    }
    true
}

/// Appends the list as systemd prints it: zero-padded to `width`, the seconds (`usec`) with
/// six fractional digits when they have a fraction, `*` for an empty list and for a seconds
/// list containing "every second".
pub(crate) fn format_chain(out: &mut String, width: usize, chain: &[Component], usec: bool) {
    use std::fmt::Write as _;

    let d = if usec { USEC_PER_SEC } else { 1 };
    if chain.is_empty() {
        out.push('*');
        return;
    }
    // Any "every second from 0" element makes the whole seconds list print as `*`.
    if usec
        && chain
            .iter()
            .any(|c| c.start == 0 && c.stop < 0 && c.repeat == USEC_PER_SEC)
    {
        out.push('*');
        return;
    }
    for (i, c) in chain.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:0width$}", c.start / d);
        if c.start % d > 0 {
            let _ = write!(out, ".{:06}", c.start % d);
        }
        if c.stop > 0 {
            let _ = write!(out, "..{:0width$}", c.stop / d);
        }
        if c.stop % d > 0 {
            let _ = write!(out, ".{:06}", c.stop % d);
        }
        if c.repeat > 0 && !(c.stop > 0 && c.repeat == d) {
            let _ = write!(out, "/{}", c.repeat / d);
        }
        if c.repeat % d > 0 {
            let _ = write!(out, ".{:06}", c.repeat % d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_shortens_and_collapses() {
        let mut c = vec![Component {
            start: 1,
            stop: 10,
            repeat: 4,
        }];
        normalize_chain(&mut c);
        assert_eq!(
            c,
            vec![Component {
                start: 1,
                stop: 9,
                repeat: 4
            }]
        );
        let mut c = vec![Component {
            start: 1,
            stop: 5,
            repeat: 10,
        }];
        normalize_chain(&mut c);
        assert_eq!(c, vec![Component::value(1)]);
        let mut c = vec![
            Component::value(5),
            Component::value(1),
            Component::value(5),
        ];
        normalize_chain(&mut c);
        assert_eq!(c, vec![Component::value(1), Component::value(5)]);
    }

    #[test]
    fn end_of_month_bound_shrinks_along_the_list() {
        assert!(chain_valid(&[Component::value(28)], 1, 31, true));
        assert!(!chain_valid(
            &[Component::value(27), Component::value(28)],
            1,
            31,
            true
        ));
        assert!(chain_valid(
            &[Component::value(1), Component::value(2)],
            1,
            31,
            true
        ));
    }

    #[test]
    fn format_fractions() {
        let mut s = String::new();
        format_chain(
            &mut s,
            2,
            &[Component {
                start: 1_500_000,
                stop: 2_500_000,
                repeat: USEC_PER_SEC,
            }],
            true,
        );
        assert_eq!(s, "01.500000..02.500000");
        let mut s = String::new();
        format_chain(
            &mut s,
            2,
            &[Component {
                start: USEC_PER_SEC,
                stop: 3 * USEC_PER_SEC,
                repeat: 500_000,
            }],
            true,
        );
        assert_eq!(s, "01..03/0.500000");
    }
}
