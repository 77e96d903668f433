//! The configuration file: --check-config, refusal of a bad file at start (naming key and line),
//! and SIGHUP reloads that apply a valid file and keep the old one when the new one is broken.

use bms_tests::*;
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

fn bmsd_check(config: &Path) -> std::process::Output {
    clean_command(bin("bmsd"))
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_a_valid_file_and_names_the_key_and_line_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_file(
        dir.path(),
        "good.toml",
        "version = 1\nlog_level = \"bmsd=debug,warn\"\nmax_connections = 16\nmax_concurrent_runs = 3\nmetrics_listen = \"127.0.0.1:9100\"\nrun_history_days = 30\n",
    );
    let out = bmsd_check(&good);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(text.contains(&good.display().to_string()), "{text}");
    assert!(
        text.contains("max_connections = 16") && text.contains("max_concurrent_runs = 3"),
        "{text}"
    );
    assert!(text.contains("metrics_listen = 127.0.0.1:9100"), "{text}");
    assert!(text.contains("run_history_days = 30"), "{text}");

    for (name, body, needles) in [
        (
            "unknown.toml",
            "version = 1\n\nsockett = \"/x\"\n",
            &["sockett", "line 3"][..],
        ),
        (
            "range.toml",
            "version = 1\nmax_connections = 0\n",
            &["max_connections", "line 2"],
        ),
        (
            "level.toml",
            "version = 1\nlog_level = \"verbose\"\n",
            &["log_level", "line 2"],
        ),
        (
            "listen.toml",
            "version = 1\n\n\nmetrics_listen = \"nowhere\"\n",
            &["metrics_listen", "line 4"],
        ),
        ("version.toml", "version = 7\n", &["version", "line 1"]),
        (
            "history.toml",
            "version = 1\n\nrun_history_days = 99999\n",
            &["run_history_days", "line 3", "0..=36500"],
        ),
        ("noversion.toml", "log_level = \"info\"\n", &["version"]),
        ("syntax.toml", "version = 1\nlog_level = \n", &["line 2"]),
        (
            "type.toml",
            "version = 1\nmax_connections = \"many\"\n",
            &["max_connections", "line 2"],
        ),
    ] {
        let f = write_file(dir.path(), name, body);
        let out = bmsd_check(&f);
        assert_eq!(out.status.code(), Some(1), "{name}: {out:?}");
        for n in needles {
            assert!(
                stderr(&out).contains(n),
                "{name}: message lacks {n:?}: {}",
                stderr(&out)
            );
        }
    }
    let out = bmsd_check(&dir.path().join("missing.toml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn invalid_config_at_start_exits_non_zero_naming_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let f = write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"info\"\nmax_conections = 4\n",
    );
    let state = dir.path().join("state");
    let out = clean_command(bin("bmsd"))
        .arg("--config")
        .arg(&f)
        .arg("--state-dir")
        .arg(&state)
        .arg("--socket")
        .arg(dir.path().join("bmsd.sock"))
        .args(["--log-target", "stderr"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("max_conections") && err.contains("line 3"),
        "{err}"
    );
    assert!(
        !dir.path().join("bmsd.sock").exists(),
        "a refused daemon bound its socket"
    );
    assert!(!state.exists(), "a refused daemon created its state dir");
}

/// Starts bmsd on `cfg` with RUST_LOG unset (empty), so the config decides the log level.
fn start_with_config(cfg: &Path) -> Daemon {
    Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        env: vec![("RUST_LOG".into(), String::new())],
        ..Default::default()
    })
}

fn generation(d: &Daemon) -> u64 {
    d.status_json()["config"]["generation"].as_u64().unwrap()
}

fn wait_generation(d: &Daemon, want: u64) -> serde_json::Value {
    poll_until(
        Duration::from_secs(10),
        &format!("config generation {want}"),
        || {
            let s = d.status_json();
            (s["config"]["generation"] == want).then_some(s)
        },
    )
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_broken() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"info\"\n",
    );
    let mut d = start_with_config(&cfg);
    let s = d.status_json();
    assert_eq!(s["config"]["generation"], 1);
    assert_eq!(s["config"]["log_level"], "info");
    assert_eq!(s["config"]["max_concurrent_runs"], 2);
    assert_eq!(s["config"]["path"], cfg.display().to_string());
    let loaded1 = s["config"]["loaded_at"].clone();

    // A valid change is applied.
    write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"debug\"\nmax_concurrent_runs = 5\n",
    );
    d.signal(Signal::SIGHUP);
    let s = wait_generation(&d, 2);
    assert_eq!(s["config"]["log_level"], "debug");
    assert_eq!(s["config"]["max_concurrent_runs"], 5);
    assert!(s["config"]["loaded_at"].as_str() >= loaded1.as_str());
    d.wait_for_notify(
        "STATUS=ready: configuration reloaded",
        Duration::from_secs(5),
    );
    // The new level is live: debug lines appear now (a client connecting is logged at debug).
    // Each poll connects again, so the check does not hang on which earlier connection was logged.
    poll_until(Duration::from_secs(10), "a debug line in the log", || {
        let _ = d.status_json();
        d.log().contains("DEBUG").then_some(())
    });

    // Broken files are rejected and the old config stays: unknown key, then bad TOML.
    for (i, broken) in [
        "version = 1\nlog_level = \"warn\"\nbogus_key = 1\n",
        "version = 1\nlog_level = = \"warn\"\n",
    ]
    .iter()
    .enumerate()
    {
        write_file(dir.path(), "bmsd.toml", broken);
        d.signal(Signal::SIGHUP);
        poll_until(Duration::from_secs(10), "the rejection in the log", || {
            (count(&d.log(), "rejected") == i + 1).then_some(())
        });
        let s = d.status_json();
        assert_eq!(s["config"]["generation"], 2, "a broken config was counted");
        assert_eq!(s["config"]["log_level"], "debug");
        assert_eq!(s["config"]["max_concurrent_runs"], 5);
    }
    let log = d.log();
    assert!(
        log.contains("bogus_key"),
        "the rejection does not name the key:\n{log}"
    );
    d.wait_for_notify(
        "STATUS=ready: config reload failed, previous config kept",
        Duration::from_secs(5),
    );

    // A later valid reload becomes generation 3 (not 4 or 5): the broken ones did not count.
    write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"info\"\nmax_concurrent_runs = 7\n",
    );
    d.signal(Signal::SIGHUP);
    let s = wait_generation(&d, 3);
    assert_eq!(s["config"]["log_level"], "info");
    assert_eq!(s["config"]["max_concurrent_runs"], 7);
    assert_eq!(generation(&d), 3);
    // The daemon stayed the same process and still serves.
    assert_eq!(s["pid"], d.pid());
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn sighup_keeps_restart_only_settings_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nmax_connections = 8\n",
    );
    let d = start_with_config(&cfg);
    write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nmax_connections = 9\nlog_level = \"warn\"\n",
    );
    d.signal(Signal::SIGHUP);
    let s = wait_generation(&d, 2);
    assert_eq!(
        s["config"]["max_connections"], 8,
        "max_connections changed without a restart"
    );
    assert_eq!(s["config"]["log_level"], "warn");
    assert_eq!(s["socket"], d.socket().display().to_string());
    assert!(
        d.log()
            .contains("max_connections changed; it takes effect when bmsd restarts"),
        "{}",
        d.log()
    );
}

#[test]
fn log_level_pinned_by_rust_log_is_not_changed_by_reload() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"info\"\n",
    );
    // The default helper sets RUST_LOG=debug, which pins the filter.
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        ..Default::default()
    });
    assert_eq!(d.status_json()["config"]["log_level"], "debug");
    write_file(
        dir.path(),
        "bmsd.toml",
        "version = 1\nlog_level = \"error\"\n",
    );
    d.signal(Signal::SIGHUP);
    let s = wait_generation(&d, 2);
    assert_eq!(s["config"]["log_level"], "debug");
}
