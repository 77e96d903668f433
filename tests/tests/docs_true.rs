//! The documentation says what the binaries do: every metric in docs/metrics.md is served by bmsd
//! (and every served one is documented), every key of docs/configuration.md is accepted and
//! reported by `bmsd --check-config`, and every `bmsctl` command and option the docs name exists.

use bms_tests::docs::{code_spans, http_get_with, repo_file, table_rows, ACCEPT_OPENMETRICS};
use bms_tests::{assert_ok, bin, clean_command, write_file, Daemon};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

#[test]
fn documented_metrics_are_the_served_ones() {
    let doc = repo_file("docs/metrics.md");
    let mut documented = BTreeMap::new();
    for row in table_rows(&doc, "metric") {
        let names = code_spans(&row[0]);
        assert!(!names.is_empty(), "a metrics row without a name: {row:?}");
        for name in names {
            documented.insert(name, row[1].clone());
        }
    }
    // Families with no sample are not served: a job with a verified backup, a checked target
    // and an alert channel (its counters start at 0) give every family one.
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("bmsd.toml");
    std::fs::write(
        &conf,
        "version = 1\n[alerts]\n[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\n",
    )
    .unwrap();
    let d = Daemon::start_with(bms_tests::DaemonOpts {
        args: vec!["--config".into(), conf.display().to_string()],
        ..Default::default()
    });
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"documented\n").unwrap();
    assert_ok(&d.ctl([
        "job",
        "add",
        "m1",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
        "--verify-after-backup",
        "true",
    ]));
    assert_ok(&d.ctl(["job", "run", "m1", "--wait"]));
    assert_ok(&d.ctl(["target", "check", "local"]));
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .expect("metrics address in status")
        .to_owned();
    let (head, body) = http_get_with(&addr, "/metrics", ACCEPT_OPENMETRICS);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // OpenMetrics names a family in `# TYPE`; its samples add `_total` (counter) or `_info` (info).
    let mut served = BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
            let name = match kind {
                "counter" => format!("{family}_total"),
                "info" => format!("{family}_info"),
                _ => family.to_owned(),
            };
            served.insert(name, kind.to_owned());
        }
    }
    assert!(served.len() > 5, "too few metric families:\n{body}");
    assert_eq!(
        documented, served,
        "docs/metrics.md (left) and what bmsd serves (right) differ"
    );
}

/// `key = value` lines of a TOML file without tables, comments skipped, quotes removed.
fn toml_pairs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

#[test]
fn documented_config_keys_are_accepted_and_reported_by_check_config() {
    let doc = repo_file("docs/configuration.md");
    let documented: BTreeMap<String, String> = table_rows(&doc, "key")
        .iter()
        .map(|row| {
            let key = code_spans(&row[0]).first().cloned().expect("key in `...`");
            let default = code_spans(&row[1]).first().cloned().unwrap_or_default();
            (key, default)
        })
        .collect();
    // The shipped sample sets every key, to the embedded defaults for root.
    let sample_text = repo_file("packaging/config/bmsd.toml");
    let sample = toml_pairs(&sample_text);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        sample.keys().collect::<Vec<_>>(),
        "keys of docs/configuration.md and packaging/config/bmsd.toml differ"
    );
    assert_eq!(
        documented, sample,
        "defaults (for root) in docs/configuration.md and the sample differ"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "bmsd.toml", &sample_text);
    let out = clean_command(bin("bmsd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reported = toml_pairs(&text);
    let mut expected = sample.clone();
    expected.remove("version");
    assert_eq!(
        reported, expected,
        "bmsd --check-config reports other keys or values than the file sets:\n{text}"
    );

    // A key the documentation does not list is refused, and named.
    let file = write_file(
        dir.path(),
        "extra.toml",
        &format!("{sample_text}\nno_such_key = 1\n"),
    );
    let out = clean_command(bin("bmsd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown key was accepted");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no_such_key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The subcommands and the help text of `bmsctl PATH... --help`.
fn help(path: &[String]) -> (BTreeSet<String>, String) {
    let out = clean_command(bin("bmsctl"))
        .args(path)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bmsctl {} --help failed",
        path.join(" ")
    );
    let subcommands = text
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    (subcommands, text)
}

fn is_word(t: &str) -> bool {
    !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'|')
}

/// Checks one documented command line (the words after `bmsctl`): its subcommands exist, and so
/// do its options.
fn check_command(words: &[&str], cache: &mut BTreeMap<Vec<String>, (BTreeSet<String>, String)>) {
    let mut words: Vec<&str> = words.to_vec();
    // Global options may come first.
    while let Some(w) = words.first() {
        match *w {
            "--json" => drop(words.remove(0)),
            "--socket" => drop(words.drain(..2.min(words.len()))),
            _ => break,
        }
    }
    let mut paths: Vec<Vec<String>> = vec![Vec::new()];
    let mut rest = words.as_slice();
    while let Some((w, tail)) = rest.split_first() {
        let (subs, _) = cache
            .entry(paths[0].clone())
            .or_insert_with(|| help(&paths[0]))
            .clone();
        if subs.is_empty() || !is_word(w) || w.starts_with('-') {
            break;
        }
        let mut next = Vec::new();
        for alt in w.split('|') {
            assert!(
                subs.contains(alt),
                "the docs name 'bmsctl {} {alt}', which is no command (have: {subs:?})",
                paths[0].join(" ")
            );
            for p in &paths {
                let mut p = p.clone();
                p.push(alt.to_owned());
                next.push(p);
            }
        }
        paths = next;
        rest = tail;
    }
    for p in &paths {
        let (_, text) = cache.entry(p.clone()).or_insert_with(|| help(p)).clone();
        for flag in rest.iter().filter(|t| t.starts_with("--")) {
            let flag = flag.split('=').next().unwrap_or(flag);
            if flag == "--json" || flag == "--socket" {
                continue;
            }
            assert!(
                text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
                "the docs give 'bmsctl {} {flag}', which bmsctl does not have",
                p.join(" ")
            );
        }
    }
}

/// README.md and docs/*.md.
fn doc_files() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    for e in std::fs::read_dir(&docs).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    files.sort();
    files
}

/// The long options (`--name`) of a help text.
fn options_of(help: &str) -> BTreeSet<String> {
    help.split_whitespace()
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| {
            w.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_owned()
        })
        .collect()
}

/// Every long option of bmsctl (all subcommands) and of bmsd.
fn all_options() -> BTreeSet<String> {
    let mut options = BTreeSet::new();
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let (subs, text) = help(&path);
        options.extend(options_of(&text));
        for s in subs.into_iter().filter(|s| s != "help") {
            let mut p = path.clone();
            p.push(s);
            todo.push(p);
        }
    }
    let out = clean_command(bin("bmsd")).arg("--help").output().unwrap();
    options.extend(options_of(&String::from_utf8_lossy(&out.stdout)));
    options
}

#[test]
fn documented_options_exist() {
    let options = all_options();
    assert!(options.contains("--verify-after-backup"), "{options:?}");
    let mut checked = 0;
    // performance.md quotes the options of other tools (restic, borg).
    for f in doc_files().iter().filter(|f| *f != "docs/performance.md") {
        for span in code_spans(&repo_file(f)) {
            let Some(first) = span.split_whitespace().next() else {
                continue;
            };
            if !first.starts_with("--") {
                continue;
            }
            let name = first.split('=').next().unwrap_or(first);
            let known = match name.strip_suffix('*') {
                Some(prefix) => options.iter().any(|o| o.starts_with(prefix)),
                None => options.contains(name),
            };
            assert!(
                known,
                "{f} names the option `{span}`, which neither bmsctl nor bmsd has"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} options found in the docs");
}

#[test]
fn documented_bmsctl_commands_and_options_exist() {
    let files = doc_files();
    let mut cache = BTreeMap::new();
    let mut checked = 0;
    for f in &files {
        let text = repo_file(f);
        let mut lines: Vec<String> = Vec::new();
        let mut in_block = false;
        let mut pending = String::new();
        for line in text.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if in_block {
                let code = line.split(" #").next().unwrap_or(line).trim_end();
                pending.push_str(code.trim_end_matches('\\'));
                pending.push(' ');
                if !code.ends_with('\\') {
                    lines.push(std::mem::take(&mut pending));
                }
            } else {
                lines.extend(code_spans(line));
            }
        }
        for l in lines {
            let l = l.trim();
            let Some(rest) = l.strip_prefix("bmsctl ") else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            check_command(&words, &mut cache);
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} bmsctl lines found in the docs"
    );
}
