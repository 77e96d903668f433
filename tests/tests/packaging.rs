//! The shipped files are valid: the systemd unit passes `systemd-analyze verify`, the sample
//! config is accepted by `bmsd --check-config`, and man pages and completions generate.

use bms_tests::{assert_ok, bin, clean_command, stdout};
use std::path::PathBuf;
use std::process::Command;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    let unit = std::fs::read_to_string(repo_file("packaging/systemd/bmsd.service")).unwrap();
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec="),
        "unit must use sd-notify and the watchdog"
    );
    let dir = tempfile::tempdir().unwrap();
    // Point ExecStart at the binary just built, so verify can check it is executable.
    let unit = unit.replace("/usr/bin/bmsd", bin("bmsd").to_str().unwrap());
    let path = dir.path().join("bmsd.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze is needed for this test (apt-get install systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {}\n{err}",
        out.status
    );
}

#[test]
fn shipped_sample_config_is_valid_and_matches_defaults() {
    let out = clean_command(bin("bmsd"))
        .arg("--check-config")
        .arg("--config")
        .arg(repo_file("packaging/config/bmsd.toml"))
        .output()
        .unwrap();
    assert_ok(&out);
    let text = stdout(&out);
    for line in [
        "state_dir = /var/lib/bms",
        "socket = /run/bms/bmsd.sock",
        "max_concurrent_runs = 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn check_config_rejects_bad_file_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bmsd.toml");
    std::fs::write(
        &f,
        "version = 1\nlog_level = \"info\"\nmax_conections = 3\n",
    )
    .unwrap();
    let out = clean_command(bin("bmsd"))
        .arg("--check-config")
        .arg("--config")
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_conections") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn man_pages_and_completions_generate_from_clap() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(
        &clean_command(bin("bmsctl"))
            .arg("manpages")
            .arg(dir.path())
            .output()
            .unwrap(),
    );
    for page in [
        "bmsctl.1",
        "bmsctl-target.1",
        "bmsctl-job-add.1",
        "bmsctl-apply.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page))
            .unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is not a man page");
    }
    let out = clean_command(bin("bmsd"))
        .arg("--print-manpage")
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains(".TH bmsd 8"), "{}", stdout(&out));
    for shell in ["bash", "zsh", "fish"] {
        let out = clean_command(bin("bmsctl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert_ok(&out);
        let text = stdout(&out);
        assert!(
            text.contains("bmsctl") && text.contains("target"),
            "{shell} completion lacks commands"
        );
    }
}
