//! The HTML form of `bmsctl report` (docs/reports.md): one self-contained file, no external
//! assets, with an inline SVG bar chart per job of runs per day by state.

use bms_proto::api::*;
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
