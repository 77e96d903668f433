//! Rendering the period report (docs/reports.md) as text, JSON, CSV or HTML. `bmsctl report`
//! and bmsd's scheduled reports both render through [`render`], so a report looks the same
//! whichever of them wrote it.

mod html;
mod text;

use crate::api::ReportReply;

pub use html::html;
pub use text::{csv, text, CSV_HEADER};

/// The forms of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Json,
    Csv,
    /// One self-contained HTML file with inline SVG charts.
    Html,
}

impl Format {
    pub const ALL: [Format; 4] = [Format::Text, Format::Json, Format::Csv, Format::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }

    /// The file name extension of the form.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Text => "txt",
            other => other.as_str(),
        }
    }

    /// Its MIME type (with the character set for text types).
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// The named periods, each ending at the time the report is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// 24 hours.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        [Period::Day, Period::Week, Period::Month]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    pub fn days(self) -> i64 {
        match self {
            Period::Day => 1,
            Period::Week => 7,
            Period::Month => 30,
        }
    }

    /// The start of the period that ends at `until`.
    pub fn since(self, until: jiff::Timestamp) -> Result<jiff::Timestamp, jiff::Error> {
        until.checked_sub(jiff::SignedDuration::from_hours(24 * self.days()))
    }

    /// The shortest period that covers the time between two elapses of a schedule `gap_secs`
    /// apart: a daily (or more frequent) schedule reports on a day, a weekly one on a week,
    /// anything rarer on a month.
    pub fn for_gap(gap_secs: i64) -> Period {
        if gap_secs <= 86_400 {
            Period::Day
        } else if gap_secs <= 7 * 86_400 {
            Period::Week
        } else {
            Period::Month
        }
    }
}

/// The report in `format`, ready to print or write.
pub fn render(r: &ReportReply, format: Format) -> String {
    match format {
        Format::Json => {
            // The reply is plain data (strings, numbers, maps with string keys): it always encodes.
            let mut s = serde_json::to_string_pretty(r).unwrap_or_else(|e| {
                serde_json::json!({"error": format!("cannot encode the report: {e}")}).to_string()
            });
            s.push('\n');
            s
        }
        Format::Csv => csv(r),
        Format::Text => text(r),
        Format::Html => html(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_schedule() {
        assert_eq!(Period::for_gap(2), Period::Day);
        assert_eq!(Period::for_gap(86_400), Period::Day);
        assert_eq!(Period::for_gap(86_401), Period::Week);
        assert_eq!(Period::for_gap(7 * 86_400), Period::Week);
        assert_eq!(Period::for_gap(28 * 86_400), Period::Month);
        let until: jiff::Timestamp = "2026-12-08T06:00:00Z".parse().unwrap();
        assert_eq!(
            Period::Week.since(until).unwrap().to_string(),
            "2026-12-01T06:00:00Z"
        );
    }

    #[test]
    fn every_format_renders_an_empty_report() {
        let r = ReportReply {
            generated_at: "2026-12-08T06:00:00Z".into(),
            since: "2026-12-01T06:00:00Z".into(),
            until: "2026-12-08T06:00:00Z".into(),
            jobs: vec![],
        };
        for f in Format::ALL {
            assert_eq!(Format::parse(f.as_str()), Some(f));
            let s = render(&r, f);
            assert!(!s.is_empty(), "{f:?}");
        }
        assert!(render(&r, Format::Csv).starts_with(CSV_HEADER));
        let v: serde_json::Value = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(v["since"], "2026-12-01T06:00:00Z");
    }
}
