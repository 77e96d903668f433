//! The shipped systemd files: every unit passes `systemd-analyze verify` with nothing on stderr,
//! the service's `systemd-analyze security --offline=yes` score is the one docs/operations.md
//! gives and at most its threshold, every directive of the service is explained there, and the
//! sysusers and tmpfiles files create what they say. The bmsd.toml(5) page documents exactly the
//! keys the parser accepts.

use bms_tests::{bin, clean_command, docs::repo_file};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// The units with ExecStart= pointing at the binary just built (verify checks it exists).
fn units_in_temp() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    for name in ["bmsd.service", "bmsd.socket"] {
        let text = repo_file(&format!("packaging/systemd/{name}"))
            .replace("/usr/bin/bmsd", bin("bmsd").to_str().unwrap());
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        out.push(p);
    }
    (dir, out)
}

#[test]
fn every_unit_verifies_with_nothing_on_stderr() {
    let (_dir, units) = units_in_temp();
    for unit in &units {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(unit)
            .output()
            .expect("systemd-analyze (apt-get install systemd)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.trim().is_empty(),
            "systemd-analyze verify {}: {}\n{err}",
            unit.display(),
            out.status
        );
    }
    let service = repo_file("packaging/systemd/bmsd.service");
    for must in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=",
        "RuntimeDirectory=",
        "StateDirectory=",
        "ConfigurationDirectory=",
        "LimitNOFILE=",
        "CAP_DAC_READ_SEARCH",
        "CAP_LINUX_IMMUTABLE",
        "DeviceAllow=char-st rw",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "NoNewPrivileges=yes",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=",
    ] {
        assert!(service.contains(must), "bmsd.service lacks {must}");
    }
    let socket = repo_file("packaging/systemd/bmsd.socket");
    assert!(
        socket.contains("ListenStream=/run/bms/bmsd.sock"),
        "{socket}"
    );
}

/// The number in the first code span after `needle` in docs/operations.md.
fn documented_number(doc: &str, needle: &str) -> f64 {
    let at = doc
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} in docs/operations.md"));
    let rest = &doc[at + needle.len()..];
    let start = rest.find('`').expect("a `number`") + 1;
    let end = start + rest[start..].find('`').expect("closing `");
    rest[start..end].parse().expect("a number in `...`")
}

#[test]
fn security_score_is_documented_and_within_the_threshold() {
    let (_dir, units) = units_in_temp();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(&units[0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
    let doc = repo_file("docs/operations.md");
    let documented = documented_number(&doc, "bmsd.service` scores the unit ");
    let threshold = documented_number(&doc, "exposure threshold is ");
    assert!(
        score <= threshold,
        "exposure {score} is above the threshold {threshold} of docs/operations.md"
    );
    assert_eq!(
        score, documented,
        "docs/operations.md gives score {documented}, systemd-analyze says {score}"
    );
}

#[test]
fn every_service_directive_is_explained_in_operations_md() {
    let doc = repo_file("docs/operations.md");
    let section = &doc[doc.find("## The systemd unit").expect("unit section")..];
    let directives: BTreeSet<String> = repo_file("packaging/systemd/bmsd.service")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    let skip = [
        "Description",
        "Documentation",
        "After",
        "Wants",
        "ExecStart",
        "WantedBy",
        "Also",
    ];
    for d in directives.iter().filter(|d| !skip.contains(&d.as_str())) {
        assert!(
            section.contains(&format!("`{d}=")),
            "docs/operations.md \"The systemd unit\" does not explain {d}="
        );
    }
}

#[test]
fn sysusers_and_tmpfiles_create_groups_and_private_directories() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        std::fs::write(root.path().join("etc").join(f), "").unwrap();
    }
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo_path("packaging/systemd/bms.sysusers"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let groups = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
    for g in ["bms:", "bms-admin:"] {
        assert!(
            groups.lines().any(|l| l.starts_with(g)),
            "{g} missing in:\n{groups}"
        );
    }
    let out = Command::new("systemd-tmpfiles")
        .arg("--create")
        .arg(format!("--root={}", root.path().display()))
        .arg(repo_path("packaging/systemd/bms.tmpfiles"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (dir, mode) in [
        ("var/lib/bms", 0o700),
        ("run/bms", 0o755),
        ("etc/bms", 0o755),
    ] {
        let m = std::fs::metadata(root.path().join(dir)).unwrap();
        assert!(m.is_dir(), "{dir}");
        assert_eq!(m.permissions().mode() & 0o7777, mode, "{dir}");
    }
}

/// Keys the config parser accepts, from its own error for an unknown key.
fn parser_keys() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bmsd.toml");
    std::fs::write(&f, "version = 1\nno_such_key = 1\n").unwrap();
    let out = clean_command(bin("bmsd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let list = err
        .split("expected one of")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {err:?}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

#[test]
fn config_man_page_documents_exactly_the_parsers_keys() {
    let page = repo_file("packaging/man/bmsd.toml.5");
    assert!(page.starts_with(".TH bmsd.toml 5"), "not a section 5 page");
    let mut documented = BTreeSet::new();
    let mut lines = page.lines();
    while let Some(l) = lines.next() {
        if l == ".SH EXAMPLE" {
            break;
        }
        if l == ".TP" {
            if let Some(key) = lines.next().and_then(|k| k.strip_prefix(".B ")) {
                documented.insert(key.trim().to_string());
            }
        }
    }
    let keys = parser_keys();
    assert!(keys.len() >= 8 && keys.contains("state_dir"), "{keys:?}");
    assert_eq!(
        documented, keys,
        "packaging/man/bmsd.toml.5 and the config parser disagree on the keys"
    );
    // The page renders without warnings.
    let out = Command::new("man")
        .args(["--warnings", "-l", "-Tutf8"])
        .arg(repo_path("packaging/man/bmsd.toml.5"))
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.trim().is_empty(), "man warnings:\n{err}");
        }
    }
}
