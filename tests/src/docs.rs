//! Reading the project's own documentation in tests (tests/tests/docs_true.rs): the repository's
//! files, the rows of a Markdown table, inline code spans, and a plain HTTP GET.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

/// A file of the repository, by its path from the top (e.g. "docs/metrics.md").
pub fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The cells of the data rows of the first table whose header row starts with `first_header`.
pub fn table_rows(markdown: &str, first_header: &str) -> Vec<Vec<String>> {
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut lines = markdown.lines().skip_while(|l| {
        !(l.trim_start().starts_with('|')
            && cells(l).first().map(String::as_str) == Some(first_header))
    });
    assert!(
        lines.next().is_some(),
        "no table with a '{first_header}' column"
    );
    lines
        .skip(1) // the | --- | line
        .take_while(|l| l.trim_start().starts_with('|'))
        .map(cells)
        .collect()
}

/// The inline code spans (`...`) of a text, in order.
pub fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// GET `path` from `addr` over plain HTTP/1.1; returns the head and the body.
pub fn http_get(addr: &str, path: &str) -> (String, String) {
    http_get_with(addr, path, "")
}

/// The OpenMetrics `Accept` header Prometheus sends (docs/metrics.md, "Formats").
pub const ACCEPT_OPENMETRICS: &str =
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";

/// [`http_get`] with extra header lines (each ending in `\r\n`).
pub fn http_get_with(addr: &str, path: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    (head.to_owned(), body.to_owned())
}
