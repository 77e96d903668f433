//! A pre-hook left running by a bmsd killed with SIGKILL is ended when bmsd starts again: hooks
//! run in their own process group, recorded in the run, and start-up kills the leftover group of
//! an interrupted run (docs/operations.md, "Hooks").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bms_tests::runner_util::*;
use bms_tests::*;
use nix::sys::signal::Signal;

const NEVER: &str = "2099-01-01 00:00:00";

fn read_pid(p: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

#[test]
fn pre_hook_orphaned_by_kill_9_is_killed_at_restart() {
    let mut d = Daemon::start();
    let src = d.dir.join("src");
    write_small_tree(&src);
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    let sh_pid = d.dir.join("sh.pid");
    let child_pid = d.dir.join("child.pid");
    let pre = format!(
        "sleep 1000 & echo $! > {}.tmp; mv {0}.tmp {0}; echo $$ > {}.tmp; mv {1}.tmp {1}; wait",
        child_pid.display(),
        sh_pid.display()
    );
    d.ctl_json([
        "job",
        "add",
        "hooked",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "t",
        "--pre-hook",
        &pre,
        "--hook-timeout",
        "3600",
    ]);
    let id = d.start_run("hooked");
    let (sh, child) = poll_until(Duration::from_secs(30), "the pre-hook to start", || {
        Some((read_pid(&sh_pid)?, read_pid(&child_pid)?))
    });
    // The run records the hook's process group (read from the catalog, as bmsd writes it).
    let db = d.state_dir().join("catalog.db");
    let group: i64 = poll_until(Duration::from_secs(30), "the hook group recorded", || {
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        conn.query_row("SELECT hook_group FROM runs WHERE id = ?1", [id], |r| {
            r.get::<_, Option<i64>>(0)
        })
        .ok()
        .flatten()
    });
    assert_eq!(group, sh as i64);

    d.signal(Signal::SIGKILL);
    d.wait_exit(Duration::from_secs(10));
    assert!(
        !process_gone(sh) && !process_gone(child),
        "the hook died with bmsd"
    );

    d.spawn(&DaemonOpts {
        dir: Some(d.dir.clone()),
        ..Default::default()
    });
    assert!(
        process_gone(sh),
        "the hook's shell {sh} survived the restart"
    );
    assert!(
        process_gone(child),
        "the hook's child {child} survived the restart"
    );
    let detail = d.run_show(id);
    assert_eq!(detail["run"]["state"], "interrupted", "{detail}");
    let log = detail["log"].to_string();
    assert!(log.contains("killed hook process group"), "{detail}");
    assert!(
        d.log().contains(&format!("killed hook process group {sh}")),
        "{}",
        d.log()
    );
}
