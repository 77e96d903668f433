//! The parser: systemd's grammar with its exact corner cases (what it accepts and rejects).

use jiff::tz::TimeZone;

use super::component::{chain_valid, fix_years, normalize_chain, Component, USEC_PER_SEC};
use super::grammar::{parse_full, Cursor, Fields};
use super::next::MAX_YEAR;
use super::{zone, CalendarError, CalendarSpec, SpecZone};

const MIN_YEAR: i64 = 1970;

fn ends_with_ci(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

pub(crate) fn parse(expr: &str, local: &TimeZone) -> Result<CalendarSpec, CalendarError> {
    let bytes = expr.as_bytes();
    let mut body = bytes;
    let mut zone = SpecZone::Local;

    // A trailing zone: " UTC", one of the local zone's abbreviations, or a zone file name.
    if ends_with_ci(bytes, b" UTC") {
        zone = SpecZone::Utc;
        body = &bytes[..bytes.len() - 4];
    } else {
        let names = zone::local_abbreviations(local);
        let found = names.iter().enumerate().find(|(_, name)| {
            let n = name.as_bytes();
            !n.is_empty()
                && bytes.len() > n.len()
                && ends_with_ci(bytes, n)
                && bytes[bytes.len() - n.len() - 1] == b' '
        });
        if let Some((dst, name)) = found {
            body = &bytes[..bytes.len() - name.len() - 1];
            zone = SpecZone::LocalAbbrev {
                dst: dst == 1,
                name: name.clone(),
            };
        } else if let Some(space) = bytes.iter().rposition(|&b| b == b' ') {
            let candidate = std::str::from_utf8(&bytes[space + 1..]).unwrap_or("");
            if let Some(named) = zone::load_named(candidate) {
                zone = if candidate == "UTC" {
                    SpecZone::Utc
                } else {
                    SpecZone::Named {
                        name: candidate.to_string(),
                        tz: named.tz,
                        leaps: named.leaps,
                    }
                };
                body = &bytes[..space];
            }
        }
    }

    if body.is_empty() {
        return Err(CalendarError::new(expr, "empty expression"));
    }
    let mut fields = match shorthand(body) {
        Some(fields) => fields,
        None => {
            let mut cur = Cursor { s: body, pos: 0 };
            parse_full(&mut cur).map_err(|fail| {
                if matches!(zone, SpecZone::Local) {
                    if let Some(e) = unknown_zone(expr, body) {
                        return e;
                    }
                }
                let rest = String::from_utf8_lossy(body.get(fail.at..).unwrap_or_default());
                if rest.is_empty() {
                    CalendarError::new(expr, format!("{} at the end", fail.what))
                } else {
                    CalendarError::new(expr, format!("{} at '{}'", fail.what, rest))
                }
            })?
        }
    };
    if fields.utc {
        zone = SpecZone::Utc;
    }
    finish(expr, &mut fields)?;
    Ok(CalendarSpec {
        weekdays: (fields.weekdays > 0 && fields.weekdays < 127).then_some(fields.weekdays),
        end_of_month: fields.end_of_month,
        year: fields.year,
        month: fields.month,
        day: fields.day,
        hour: fields.hour,
        minute: fields.minute,
        second: fields.second,
        zone,
    })
}

/// The error for an expression that is valid but for a last word that names no time zone, when
/// that word looks like one (`Europe/Nowhere`, `XYZ`): "unknown time zone" says more than the
/// parser's complaint about the characters it could not read.
fn unknown_zone(expr: &str, body: &[u8]) -> Option<CalendarError> {
    let space = body.iter().rposition(|&b| b == b' ')?;
    let (head, word) = (
        &body[..space],
        std::str::from_utf8(&body[space + 1..]).ok()?,
    );
    let zone_like =
        word.contains('/') || (word.len() >= 3 && word.bytes().all(|b| b.is_ascii_uppercase()));
    if !zone_like || head.is_empty() {
        return None;
    }
    let head_ok = shorthand(head).is_some() || parse_full(&mut Cursor { s: head, pos: 0 }).is_ok();
    head_ok.then(|| {
        CalendarError::new(
            expr,
            format!(
                "unknown time zone '{}': give UTC, a zone of /usr/share/zoneinfo such as \
                 Europe/Berlin (names are case-sensitive), or leave it out for local time",
                word.escape_debug()
            ),
        )
    })
}

/// Normalizes and validates the fields.
fn finish(expr: &str, f: &mut Fields) -> Result<(), CalendarError> {
    if f.end_of_month && f.day.is_empty() {
        f.end_of_month = false;
    }
    fix_years(&mut f.year);
    for chain in [
        &mut f.year,
        &mut f.month,
        &mut f.day,
        &mut f.hour,
        &mut f.minute,
        &mut f.second,
    ] {
        normalize_chain(chain);
    }
    let checks: [(&[Component], i64, i64, bool, &str); 6] = [
        (
            &f.year,
            MIN_YEAR,
            MAX_YEAR,
            false,
            "year out of range (1970..2199)",
        ),
        (&f.month, 1, 12, false, "month out of range (1..12)"),
        (
            &f.day,
            1,
            31,
            f.end_of_month,
            "day out of range (1..31, ~ at most 28 days back)",
        ),
        (&f.hour, 0, 23, false, "hour out of range (0..23)"),
        (&f.minute, 0, 59, false, "minute out of range (0..59)"),
        (
            &f.second,
            0,
            60 * USEC_PER_SEC - 1,
            false,
            "second out of range (0..59)",
        ),
    ];
    for (chain, from, to, eom, what) in checks {
        if !chain_valid(chain, from, to, eom) {
            return Err(CalendarError::new(
                expr,
                format!("{what}, or a range or step that never fits"),
            ));
        }
    }
    Ok(())
}

fn consts(hour: Option<i64>, minute: Option<i64>) -> Fields {
    Fields {
        hour: hour.map(Component::value).into_iter().collect(),
        minute: minute.map(Component::value).into_iter().collect(),
        second: vec![Component::value(0)],
        ..Fields::default()
    }
}

fn shorthand(body: &[u8]) -> Option<Fields> {
    let word = std::str::from_utf8(body).ok()?.to_ascii_lowercase();
    let values = |v: &[i64]| v.iter().copied().map(Component::value).collect::<Vec<_>>();
    let fields = match word.as_str() {
        "minutely" => consts(None, None),
        "hourly" => consts(None, Some(0)),
        "daily" => consts(Some(0), Some(0)),
        "weekly" => Fields {
            weekdays: 1,
            ..consts(Some(0), Some(0))
        },
        "monthly" => Fields {
            day: values(&[1]),
            ..consts(Some(0), Some(0))
        },
        "annually" | "yearly" | "anually" => Fields {
            month: values(&[1]),
            day: values(&[1]),
            ..consts(Some(0), Some(0))
        },
        "quarterly" => Fields {
            month: values(&[1, 4, 7, 10]),
            day: values(&[1]),
            ..consts(Some(0), Some(0))
        },
        "biannually" | "bi-annually" | "semiannually" | "semi-annually" => Fields {
            month: values(&[1, 7]),
            day: values(&[1]),
            ..consts(Some(0), Some(0))
        },
        _ => return None,
    };
    Some(fields)
}
