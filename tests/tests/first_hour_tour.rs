//! The README's five-minute tour is a test: its commands, read from README.md, run in order
//! against a daemon on a temporary state dir and do what the README says (bms_tests::tour).
//! The test changes only what cannot be the same on a test machine, in one list below; the tour
//! backs up the machine's real /etc.

use bms_tests::docs::repo_file;
use bms_tests::tour::{expectation, run_tour, tour_commands, Expect, Substitutions};
use bms_tests::users::require_root;
use bms_tests::Daemon;
use std::path::Path;

/// The snapshot ID the README shows; the test puts the real one in its place.
const SNAPSHOT_PLACEHOLDER: &str = "1a2b3c4d";

fn substitutions(d: &Daemon, work: &Path) -> Substitutions {
    let metrics = d.status_json()["metrics_address"]
        .as_str()
        .expect("metrics address")
        .to_owned();
    vec![
        // The tour's daemon listens on the default port; the test's on a free one.
        ("127.0.0.1:9597".into(), metrics),
        // A restore needs an empty directory of its own.
        (
            "/tmp/restore".into(),
            work.join("restore").display().to_string(),
        ),
    ]
}

/// The ID of the newest snapshot of job `etc` in place of the README's example ID.
fn real_snapshot(d: &Daemon, cmd: &str) -> String {
    if !cmd.contains(SNAPSHOT_PLACEHOLDER) {
        return cmd.to_owned();
    }
    let list = d.ctl_json(["snapshot", "list", "--job", "etc"]);
    // The README shows a short prefix, as a user types it.
    let id = list["snapshots"][0]["id"]
        .as_str()
        .map(|id| id[..8].to_owned())
        .unwrap_or_else(|| format!("no-snapshot-yet ({list})"));
    cmd.replace(SNAPSHOT_PLACEHOLDER, &id)
}

fn tour(readme: &str) -> Result<Vec<String>, String> {
    let d = Daemon::start();
    let work = d.dir.join("work");
    std::fs::create_dir(&work).unwrap();
    let subs = substitutions(&d, &work);
    run_tour(readme, &d, &work, &subs, &real_snapshot)
}

#[test]
fn the_readme_tour_runs_as_written() {
    require_root();
    let readme = repo_file("README.md");
    let lines = tour_commands(&readme);
    assert!(lines.len() >= 15, "a short tour? {lines:?}");
    let fails: Vec<_> = lines
        .iter()
        .filter(|l| expectation(l) == Expect::Fails)
        .map(|l| l.command.clone())
        .collect();
    assert_eq!(
        fails,
        vec![
            "bmsctl target check nas1".to_owned(),
            "bmsctl doctor".to_owned()
        ],
        "the commands the README marks '# fails'"
    );
    let ran = tour(&readme).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ran.len(), lines.len());
}

#[test]
fn the_tour_test_fails_when_a_tour_command_does_not_exist() {
    require_root();
    let readme = repo_file("README.md");
    for (from, to) in [
        // A command that succeeds in the README.
        ("bmsctl job show etc", "bmsctl job shw etc"),
        // A command the README expects to fail: a usage error is not the failure it means.
        ("bmsctl target check nas1", "bmsctl target chek nas1"),
    ] {
        assert!(readme.contains(from), "the README has no `{from}`");
        let changed = readme.replacen(from, to, 1);
        let err = tour(&changed).expect_err("a tour with a command that does not exist passed");
        assert!(err.contains(to), "the failure does not name `{to}`: {err}");
    }
    // A follower that ends at once is caught too.
    let changed = readme.replacen("bmsctl events --job etc", "bmsctl evnts --job etc", 1);
    let err = tour(&changed).expect_err("a follower that does not exist passed");
    assert!(err.contains("evnts"), "{err}");
}
