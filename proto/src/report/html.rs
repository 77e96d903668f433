//! The HTML form of the period report (docs/reports.md): one self-contained file, no external
//! assets, with inline SVG charts per job: runs per day by state, stored bytes over time, and
//! the compliance timeline of the five rules.

use crate::api::*;
use std::fmt::Write as _;

/// States in the chart's stacking order, with their colours.
const COLOURS: [(&str, &str); 6] = [
    ("succeeded", "#2e7d32"),
    ("warning", "#f9a825"),
    ("failed", "#c62828"),
    ("interrupted", "#6a1b9a"),
    ("cancelled", "#757575"),
    ("skipped", "#90a4ae"),
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn chart(j: &JobReport) -> String {
    let days: Vec<(&String, u64)> = j
        .runs_by_day
        .iter()
        .map(|(d, m)| (d, m.values().sum()))
        .collect();
    let max = days.iter().map(|d| d.1).max().unwrap_or(0).max(1);
    let (bar, gap, height) = (24u64, 8u64, 120u64);
    let width = (days.len() as u64 * (bar + gap)).max(200) + 40;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" width=\"{width}\" height=\"{}\" \
         aria-label=\"runs per day by state of {}\">",
        height + 40,
        esc(&j.job)
    );
    for (i, (day, _)) in days.iter().enumerate() {
        let x = 30 + i as u64 * (bar + gap);
        let mut y = height + 10;
        let by = &j.runs_by_day[*day];
        for (state, colour) in COLOURS {
            let n = by.get(state).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n * height / max;
            y -= h;
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{h}\" fill=\"{colour}\">\
                 <title>{day}: {n} {state}</title></rect>"
            );
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            x + bar / 2,
            height + 25,
            esc(day.get(5..).unwrap_or(day))
        );
    }
    let _ = write!(
        s,
        "<text x=\"2\" y=\"18\" font-size=\"10\">{max}</text><line x1=\"28\" y1=\"{0}\" x2=\"{width}\" y2=\"{0}\" stroke=\"#000\"/></svg>",
        height + 10
    );
    s
}

/// Seconds since the epoch of an RFC 3339 time.
fn secs(t: &str) -> Option<i64> {
    t.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Bytes added by the period's backups, a running total per day, as a line with points.
fn stored_chart(j: &JobReport) -> String {
    let (w, h, left) = (520u64, 120u64, 70u64);
    let mut s = format!(
        "<svg role=\"img\" width=\"{}\" height=\"{}\" aria-label=\"stored bytes over time of {}\">",
        w + left + 20,
        h + 40,
        esc(&j.job)
    );
    let pts: Vec<(&String, u64)> = j.stored_by_day.iter().map(|(d, b)| (d, *b)).collect();
    let max = pts.iter().map(|p| p.1).max().unwrap_or(0).max(1);
    let step = if pts.len() > 1 {
        w / (pts.len() as u64 - 1)
    } else {
        0
    };
    let coords: Vec<(u64, u64)> = pts
        .iter()
        .enumerate()
        .map(|(i, (_, b))| (left + i as u64 * step, 10 + h - b * h / max))
        .collect();
    if coords.is_empty() {
        let _ = write!(
            s,
            "<text x=\"{left}\" y=\"60\" font-size=\"11\">no backups in the period</text>"
        );
    } else {
        let line: Vec<String> = coords.iter().map(|(x, y)| format!("{x},{y}")).collect();
        let _ = write!(
            s,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
            line.join(" ")
        );
        for ((x, y), (day, b)) in coords.iter().zip(&pts) {
            let _ = write!(
                s,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"#1565c0\"><title>{day}: {}</title></circle>\
                 <text x=\"{x}\" y=\"{}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                crate::units::human_bytes(*b),
                h + 25,
                esc(day.get(5..).unwrap_or(day))
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"2\" y=\"18\" font-size=\"10\">{}</text>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/></svg>",
        crate::units::human_bytes(max),
        left - 10,
        h + 10,
        w + left + 10,
        h + 10
    );
    s
}

fn verdict_colour(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Pass) => "#2e7d32",
        Some(Verdict::Fail) => "#c62828",
        _ => "#90a4ae",
    }
}

/// One band per rule across the period, coloured by its verdict, changing where the history
/// recorded a change.
fn timeline_chart(r: &ReportReply, j: &JobReport) -> String {
    let (w, row, left) = (520i64, 22i64, 150i64);
    let start = secs(&r.since).unwrap_or(0);
    let end = secs(&r.until)
        .unwrap_or(start)
        .min(secs(&r.generated_at).unwrap_or(i64::MAX))
        .max(start + 1);
    let x = |t: i64| left + (t.clamp(start, end) - start) * w / (end - start);
    let rules = [
        Rule::Copies,
        Rule::Media,
        Rule::Offsite,
        Rule::ImmutableOrOffline,
        Rule::Errors,
    ];
    let mut s = format!(
        "<svg role=\"img\" width=\"{}\" height=\"{}\" aria-label=\"compliance timeline of {}\">",
        left + w + 20,
        rules.len() as i64 * row + 30,
        esc(&j.job)
    );
    for (i, rule) in rules.iter().enumerate() {
        let y = 5 + i as i64 * row;
        let changes: Vec<&ComplianceChange> = j
            .compliance_changes
            .iter()
            .filter(|c| c.rule == *rule)
            .collect();
        let now = j.rules.iter().find(|x| x.rule == *rule).map(|x| x.verdict);
        let mut verdict = match changes.first() {
            Some(c) => c.from,
            None => now,
        };
        let mut from = start;
        let band = |s: &mut String, a: i64, b: i64, v: Option<Verdict>| {
            let (xa, xb) = (x(a), x(b));
            if xb > xa {
                let _ = write!(
                    s,
                    "<rect x=\"{xa}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{}\"><title>{}: {}</title></rect>",
                    xb - xa,
                    row - 6,
                    verdict_colour(v),
                    rule.as_str(),
                    v.map(|v| v.as_str()).unwrap_or("not evaluated")
                );
            }
        };
        for c in &changes {
            let t = secs(&c.time).unwrap_or(start);
            band(&mut s, from, t, verdict);
            from = t;
            verdict = Some(c.to);
        }
        band(&mut s, from, end, verdict);
        let _ = write!(
            s,
            "<text x=\"2\" y=\"{}\" font-size=\"11\">{}</text>",
            y + row - 10,
            rule.as_str()
        );
    }
    let _ = write!(
        s,
        "<text x=\"{left}\" y=\"{0}\" font-size=\"9\">{1}</text>\
         <text x=\"{2}\" y=\"{0}\" font-size=\"9\" text-anchor=\"end\">{3}</text></svg>",
        rules.len() as i64 * row + 20,
        esc(r.since.get(..16).unwrap_or(&r.since)),
        left + w,
        esc(r.until.get(..16).unwrap_or(&r.until))
    );
    s
}

fn ratio(r: Option<f64>) -> String {
    r.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

pub fn html(r: &ReportReply) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bms report {} to {}</title>\
         <style>body{{font-family:sans-serif;margin:2em;color:#111}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:2px 6px;text-align:left}}section{{page-break-inside:avoid}}\
         .legend span{{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}}</style></head><body>\n\
         <h1>Backup report</h1><p>{} until {} (generated {})</p>\n<p class=\"legend\">",
        esc(&r.since),
        esc(&r.until),
        esc(&r.since),
        esc(&r.until),
        esc(&r.generated_at)
    );
    for (state, colour) in COLOURS {
        let _ = write!(o, "<span style=\"background:{colour}\"></span>{state}");
    }
    o.push_str("</p>\n");
    if r.jobs.is_empty() {
        o.push_str("<p>There are no jobs.</p>");
    }
    for j in &r.jobs {
        let _ = write!(
            o,
            "<section><h2>{}</h2><table>\
             <tr><th>runs</th><td>{}</td></tr><tr><th>success rate</th><td>{}</td></tr>\
             <tr><th>bytes read</th><td>{}</td></tr><tr><th>bytes added</th><td>{}</td></tr>\
             <tr><th>dedup ratio</th><td>{}</td></tr><tr><th>compression ratio</th><td>{}</td></tr>\
             <tr><th>last success</th><td>{}</td></tr>\
             <tr><th>longest gap</th><td>{} s (RPO {} s{})</td></tr>\
             <tr><th>3-2-1-1-0 now</th><td>{}</td></tr></table>",
            esc(&j.job),
            j.runs,
            j.success_rate
                .map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or_else(|| "-".into()),
            j.bytes_read,
            j.bytes_added,
            ratio(j.dedup_ratio),
            ratio(j.compression_ratio),
            esc(j.last_success.as_deref().unwrap_or("never")),
            j.longest_gap_secs,
            j.rpo_secs,
            if j.rpo_met { "" } else { ", over the RPO" },
            if j.compliant {
                "compliant"
            } else {
                "not compliant"
            }
        );
        o.push_str("<h3>Runs per day</h3>");
        o.push_str(&chart(j));
        o.push_str("<h3>Stored bytes over time</h3>");
        o.push_str(&stored_chart(j));
        o.push_str("<h3>Compliance timeline</h3>");
        o.push_str(&timeline_chart(r, j));
        o.push_str("<h3>Rules</h3><table><tr><th>rule</th><th>verdict</th><th>reason</th></tr>");
        for rule in &j.rules {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                rule.rule.as_str(),
                rule.verdict.as_str(),
                esc(&rule.reason)
            );
        }
        o.push_str("</table>");
        if !j.drills.is_empty() {
            o.push_str("<h3>Restore drills</h3><table><tr><th>run</th><th>target</th><th>state</th><th>finished</th><th>sample</th><th>rate</th><th>projected full restore</th></tr>");
            for d in &j.drills {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} files, {}</td><td>{}/s</td><td>{}</td></tr>",
                    d.run,
                    esc(d.target.as_deref().unwrap_or("")),
                    d.state.as_str(),
                    esc(d.finished_at.as_deref().unwrap_or("")),
                    d.files_sampled,
                    crate::units::human_bytes(d.bytes_sampled),
                    crate::units::human_bytes(d.bytes_per_sec as u64),
                    crate::units::secs_text(d.rto_secs)
                );
            }
            o.push_str("</table>");
        }
        if !j.failures.is_empty() {
            o.push_str("<h3>Failures</h3><table><tr><th>run</th><th>kind</th><th>state</th><th>queued</th><th>error</th></tr>");
            for f in &j.failures {
                let _ = write!(
                    o,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    f.run,
                    f.kind.as_str(),
                    f.state.as_str(),
                    esc(&f.queued_at),
                    esc(f.error.as_deref().unwrap_or(""))
                );
            }
            o.push_str("</table>");
        }
        o.push_str("</section>\n");
    }
    o.push_str("</body></html>\n");
    o
}
