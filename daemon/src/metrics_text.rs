//! The Prometheus text format 0.0.4, for scrapers that do not ask for OpenMetrics
//! (docs/metrics.md, "Formats"): the OpenMetrics text that prometheus-client encodes, with each
//! family named as its samples are (`bms_runs_total` for a counter, `bms_build_info` for an
//! info), `info` and `unknown` types as `gauge` and `untyped`, and without `# UNIT`, `_created`
//! samples and `# EOF`.

/// The content type of the 0.0.4 text format.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(head: &str) -> bool {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .any(|(_, v)| v.contains("application/openmetrics-text"))
}

/// Converts OpenMetrics text to the 0.0.4 text format.
pub fn to_text_004(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // The family being written: its OpenMetrics name and its type there.
    let mut family = (String::new(), String::new());
    let mut pending_help: Option<(String, String)> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name.to_owned(), text.to_owned()));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (new_name, new_kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                "gaugehistogram" | "stateset" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((help_name, text)) = pending_help.take() {
                if help_name == name {
                    out.push_str(&format!("# HELP {new_name} {text}\n"));
                }
            }
            out.push_str(&format!("# TYPE {new_name} {new_kind}\n"));
            family = (name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = line.split(['{', ' ']).next().unwrap_or("");
        if family.1 == "counter" && sample == format!("{}_created", family.0) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_renamed_as_their_samples_and_openmetrics_only_lines_dropped() {
        let om = "# HELP bms_build Version of bmsd.\n# TYPE bms_build info\nbms_build_info{version=\"0.1.0\"} 1\n\
                  # HELP bms_runs Finished runs.\n# TYPE bms_runs counter\nbms_runs_total{job=\"a\"} 3\nbms_runs_created{job=\"a\"} 1.7e9\n\
                  # HELP bms_up Up.\n# TYPE bms_up gauge\n# UNIT bms_up seconds\nbms_up 1.0\n# EOF\n";
        let text = to_text_004(om);
        assert_eq!(
            text,
            "# HELP bms_build_info Version of bmsd.\n# TYPE bms_build_info gauge\nbms_build_info{version=\"0.1.0\"} 1\n\
             # HELP bms_runs_total Finished runs.\n# TYPE bms_runs_total counter\nbms_runs_total{job=\"a\"} 3\n\
             # HELP bms_up Up.\n# TYPE bms_up gauge\nbms_up 1.0\n"
        );
    }

    #[test]
    fn accept_header_decides_the_format() {
        assert!(wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n"
        ));
        assert!(!wants_openmetrics(
            "GET /metrics HTTP/1.1\r\nAccept: */*\r\n"
        ));
        assert!(!wants_openmetrics("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
    }
}
