//! The `[[reports]]` entries of bmsd.toml (docs/reports.md, "Scheduled reports"): each names a
//! calendar, a period, the forms, an optional job filter, and where the report goes (a
//! directory, e-mail through an `[[alerts.channels]]` entry of kind `email`, or both).

use crate::alerts::config::{AlertsConfig, ChannelKind};
use bms_proto::calendar::CalendarSpec;
use bms_proto::report::{Format, Period};
use serde::Deserialize;
use std::path::PathBuf;

/// One `[[reports]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFile {
    name: String,
    calendar: String,
    period: Option<String>,
    #[serde(default)]
    formats: Vec<String>,
    #[serde(default)]
    jobs: Vec<String>,
    directory: Option<PathBuf>,
    email: Option<String>,
    #[serde(default)]
    to: Vec<String>,
}

/// A scheduled report in force.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledReport {
    pub name: String,
    /// The calendar as written (parsed again where it is used; it parsed here).
    pub calendar: String,
    pub period: Period,
    /// The forms written and attached, in the order given (default: html).
    pub formats: Vec<Format>,
    /// Only these jobs (empty: every job).
    pub jobs: Vec<String>,
    pub directory: Option<PathBuf>,
    /// The e-mail channel whose SMTP server and sender carry the report.
    pub email: Option<String>,
    /// The recipients (empty: the channel's own `to`).
    pub to: Vec<String>,
}

/// The period a calendar suggests: the gap between its next two elapses (docs/reports.md).
fn period_of(cal: &CalendarSpec) -> Period {
    let now = jiff::Timestamp::now();
    let gap = cal
        .next_after(now)
        .and_then(|a| Some((a, cal.next_after(a)?)))
        .map(|(a, b)| b.as_second() - a.as_second())
        .unwrap_or(0);
    Period::for_gap(gap)
}

fn good_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !n.starts_with('.')
}

impl ReportFile {
    /// Checks one entry against the alert channels it may name.
    pub fn resolve(self, alerts: &AlertsConfig) -> Result<ScheduledReport, String> {
        let name = self.name;
        if !good_name(&name) {
            return Err(format!(
                "report name '{name}' is not allowed: use up to 64 letters, digits, '-', '_' or '.' (it goes into file names)"
            ));
        }
        let ctx = |m: String| format!("report '{name}': {m}");
        let cal = CalendarSpec::parse(&self.calendar).map_err(|e| {
            ctx(format!(
                "calendar '{}' is not a systemd calendar expression such as 'Mon *-*-* 06:00:00': {e}",
                self.calendar
            ))
        })?;
        let period = match &self.period {
            None => period_of(&cal),
            Some(p) => Period::parse(p)
                .ok_or_else(|| ctx(format!("period = '{p}' is not one of day, week, month")))?,
        };
        let mut formats = Vec::new();
        for f in &self.formats {
            let f = Format::parse(f)
                .ok_or_else(|| ctx(format!("format '{f}' is not one of text, json, csv, html")))?;
            if !formats.contains(&f) {
                formats.push(f);
            }
        }
        if formats.is_empty() {
            formats.push(Format::Html);
        }
        if let Some(d) = &self.directory {
            if !d.is_absolute() {
                return Err(ctx(format!(
                    "directory '{}' must be an absolute path",
                    d.display()
                )));
            }
        }
        if let Some(ch) = &self.email {
            match alerts.channel(ch).map(|c| &c.kind) {
                Some(ChannelKind::Email(_)) => {}
                Some(_) => {
                    return Err(ctx(format!(
                        "email = '{ch}' is not an e-mail channel; name an [[alerts.channels]] entry of kind \"email\""
                    )))
                }
                None => {
                    return Err(ctx(format!(
                        "email = '{ch}' names no channel; add it under [[alerts.channels]] with kind = \"email\""
                    )))
                }
            }
        } else if !self.to.is_empty() {
            return Err(ctx(
                "to needs email = \"CHANNEL\", the e-mail channel that sends the report".into(),
            ));
        }
        for a in &self.to {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|e| ctx(format!("'{a}' is not an e-mail address: {e}")))?;
        }
        if self.directory.is_none() && self.email.is_none() {
            return Err(ctx(
                "a report needs directory = \"/PATH\", email = \"CHANNEL\", or both".into(),
            ));
        }
        for j in &self.jobs {
            if j.is_empty() || j.contains(':') {
                return Err(ctx(format!("'{j}' is not a job name")));
            }
        }
        Ok(ScheduledReport {
            name,
            calendar: self.calendar,
            period,
            formats,
            jobs: self.jobs,
            directory: self.directory,
            email: self.email,
            to: self.to,
        })
    }
}

/// Checks every entry; names are unique.
pub fn resolve(
    entries: Vec<ReportFile>,
    alerts: &AlertsConfig,
) -> Result<Vec<ScheduledReport>, String> {
    let mut out: Vec<ScheduledReport> = Vec::new();
    for e in entries {
        let r = e.resolve(alerts)?;
        if out.iter().any(|x| x.name == r.name) {
            return Err(format!("report '{}' is defined twice", r.name));
        }
        out.push(r);
    }
    Ok(out)
}

/// The reports for `bmsd --check-config`: name, calendar, period, forms and destinations.
pub fn summary(reports: &[ScheduledReport]) -> String {
    if reports.is_empty() {
        return "none".into();
    }
    reports
        .iter()
        .map(|r| {
            let mut to = Vec::new();
            if let Some(d) = &r.directory {
                to.push(format!("to {}", d.display()));
            }
            if let Some(ch) = &r.email {
                to.push(format!("mail via {ch}"));
            }
            format!(
                "{} ({}, {} {}, {})",
                r.name,
                r.calendar,
                r.period.as_str(),
                r.formats
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                to.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<ScheduledReport>, String> {
        #[derive(Deserialize)]
        struct F {
            reports: Vec<ReportFile>,
        }
        let f: F = toml::from_str(text).map_err(|e| e.to_string())?;
        resolve(f.reports, &AlertsConfig::default())
    }

    #[test]
    fn defaults_follow_the_calendar() {
        let r = parse(
            "[[reports]]\nname = \"weekly\"\ncalendar = \"Mon *-*-* 06:00:00\"\ndirectory = \"/srv/r\"\n\
             [[reports]]\nname = \"daily\"\ncalendar = \"daily\"\ndirectory = \"/srv/r\"\nformats = [\"csv\", \"json\", \"csv\"]\n\
             [[reports]]\nname = \"monthly\"\ncalendar = \"monthly\"\nperiod = \"month\"\ndirectory = \"/srv/r\"\n",
        )
        .unwrap();
        assert_eq!(r[0].period, Period::Week);
        assert_eq!(r[0].formats, vec![Format::Html]);
        assert_eq!(r[1].period, Period::Day);
        assert_eq!(r[1].formats, vec![Format::Csv, Format::Json]);
        assert_eq!(r[2].period, Period::Month);
        assert!(summary(&r).contains("weekly (Mon *-*-* 06:00:00, week html, to /srv/r)"));
    }

    #[test]
    fn bad_entries_are_refused_with_the_reason() {
        for (text, want) in [
            (
                "name = \"a b\"\ncalendar = \"daily\"\ndirectory = \"/r\"",
                "not allowed",
            ),
            (
                "name = \"a\"\ncalendar = \"someday\"\ndirectory = \"/r\"",
                "calendar 'someday'",
            ),
            ("name = \"a\"\ncalendar = \"daily\"", "needs directory"),
            (
                "name = \"a\"\ncalendar = \"daily\"\ndirectory = \"r\"",
                "absolute",
            ),
            (
                "name = \"a\"\ncalendar = \"daily\"\nemail = \"ops\"",
                "names no channel",
            ),
            (
                "name = \"a\"\ncalendar = \"daily\"\ndirectory = \"/r\"\nperiod = \"year\"",
                "period = 'year'",
            ),
            (
                "name = \"a\"\ncalendar = \"daily\"\ndirectory = \"/r\"\nformats = [\"pdf\"]",
                "format 'pdf'",
            ),
            (
                "name = \"a\"\ncalendar = \"daily\"\ndirectory = \"/r\"\nto = [\"x@y\"]",
                "to needs email",
            ),
        ] {
            let e = parse(&format!("[[reports]]\n{text}\n")).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let e = parse(
            "[[reports]]\nname = \"a\"\ncalendar = \"daily\"\ndirectory = \"/r\"\n\
             [[reports]]\nname = \"a\"\ncalendar = \"daily\"\ndirectory = \"/r\"\n",
        )
        .unwrap_err();
        assert!(e.contains("defined twice"), "{e}");
    }
}
