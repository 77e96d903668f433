//! The help texts say what the commands do: exit status of `job run --wait`, options that exist
//! only where they work, help for every `--keep-*`, no `--socket` on offline commands, `bmsd
//! --print-manpage`, and `status` names the metrics address. Man pages and completions still
//! generate from the definitions.

use bms_tests::cli_checks::{add_job, ctl_offline};
use bms_tests::*;

fn help(args: &[&str]) -> String {
    let out = ctl_offline(args.iter().copied().chain(["--help"]));
    assert_ok(&out);
    stdout(&out)
}

#[test]
fn job_help_matches_what_the_commands_do() {
    let run = help(&["job", "run"]);
    assert!(!run.contains("exit 1 unless it succeeds"), "{run}");
    assert!(
        run.contains("exit 0 when it succeeds or ends with warnings"),
        "{run}"
    );

    let add = help(&["job", "add"]);
    assert!(add.contains("--disabled"), "{add}");
    assert!(!add.contains("--clear-excludes"), "{add}");
    let edit = help(&["job", "edit"]);
    assert!(!edit.contains("--disabled"), "{edit}");
    assert!(edit.contains("--clear-excludes"), "{edit}");
    for k in [
        "last",
        "hourly",
        "daily",
        "weekly",
        "monthly",
        "yearly",
        "within-days",
    ] {
        let flag = format!("--keep-{k} ");
        let at = add
            .find(&flag)
            .unwrap_or_else(|| panic!("no {flag} in job add --help: {add}"));
        let text: String = add[at..].lines().take(3).collect::<Vec<_>>().join(" ");
        assert!(text.contains("Retention"), "{flag}: {text}");
        assert!(!text.contains("not yet enforced"), "{flag}: {text}");
    }
    // Immutability is enforced: the help says what it does, not that it is only stored.
    let target = help(&["target", "add"]);
    assert!(!target.contains("stored, not yet enforced"), "{target}");
    assert!(
        target.contains("immutable attribute (chattr +i)"),
        "{target}"
    );

    // The options removed from a verb are refused as unknown (usage error, exit 2).
    assert_fails(
        &ctl_offline(["job", "edit", "x", "--disabled"]),
        2,
        "--disabled",
    );
    assert_fails(
        &ctl_offline(["job", "add", "x", "--clear-excludes"]),
        2,
        "--clear-excludes",
    );
}

#[test]
fn job_add_disabled_and_edit_clear_excludes_work() {
    let d = Daemon::start();
    add_job(&d, "off", &["--disabled", "--exclude", "*.tmp"]);
    let j = d.ctl_json(["job", "show", "off"]);
    assert_eq!(j["enabled"], false, "{j}");
    assert_eq!(j["excludes"], serde_json::json!(["*.tmp"]), "{j}");
    let j = d.ctl_json(["job", "edit", "off", "--clear-excludes"]);
    assert_eq!(j["excludes"], serde_json::json!([]), "{j}");
    let j = d.ctl_json([
        "job",
        "edit",
        "off",
        "--clear-excludes",
        "--exclude",
        "*.bak",
    ]);
    assert_eq!(j["excludes"], serde_json::json!(["*.bak"]), "{j}");
}

#[test]
fn offline_commands_do_not_offer_socket() {
    for cmd in [
        &["repo"][..],
        &["repo", "ls"],
        &["repo", "snapshots"],
        &["calendar"],
        &["completions"],
        &["manpages"],
    ] {
        let h = help(cmd);
        assert!(!h.contains("--socket"), "{cmd:?}: {h}");
    }
    for cmd in [&["repo", "ls"][..], &["calendar"]] {
        assert!(help(cmd).contains("--json"), "{cmd:?}");
    }
    for cmd in [&["completions"][..], &["manpages"]] {
        assert!(!help(cmd).contains("--json"), "{cmd:?}");
    }
    for cmd in [&["job", "list"][..], &["status"], &["run", "cancel"]] {
        let h = help(cmd);
        assert!(
            h.contains("--socket") && h.contains("--json"),
            "{cmd:?}: {h}"
        );
    }
    // --json does work offline.
    let out = ctl_offline(["--json", "calendar", "daily"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["normalized"], "*-*-* 00:00:00");
}

#[test]
fn man_pages_and_completions_generate() {
    let dir = tempfile::tempdir().unwrap();
    assert_ok(&ctl_offline(["manpages".as_ref(), dir.path().as_os_str()]));
    let page = std::fs::read_to_string(dir.path().join("bmsctl-job-add.1")).unwrap();
    assert!(page.contains("keep\\-daily"), "{page}");
    let repo_ls = std::fs::read_to_string(dir.path().join("bmsctl-repo-ls.1")).unwrap();
    assert!(!repo_ls.contains("socket"), "{repo_ls}");
    for shell in ["bash", "zsh", "fish"] {
        let out = ctl_offline(["completions", shell]);
        assert_ok(&out);
        assert!(stdout(&out).contains("keep-daily"), "{shell}");
    }
}

#[test]
fn bmsd_help_lists_print_manpage() {
    let out = clean_command(bin("bmsd")).arg("--help").output().unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("--print-manpage"), "{}", stdout(&out));
    let out = clean_command(bin("bmsd"))
        .arg("--print-manpage")
        .output()
        .unwrap();
    assert_ok(&out);
    assert!(stdout(&out).contains("print\\-manpage"));
}

#[test]
fn status_shows_the_metrics_address() {
    let d = Daemon::start();
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .expect("metrics address")
        .to_owned();
    let text = stdout(&d.ctl(["status"]));
    assert!(
        text.contains(&format!("metrics: http://{addr}/metrics")),
        "{text}"
    );
}
