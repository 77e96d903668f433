//! Hook process groups left behind by a bmsd that died (docs/operations.md, "Hooks"): every hook
//! runs in its own process group, recorded in its run with the leader's start time and the boot
//! id. At start-up the groups of interrupted runs are ended (SIGTERM, then SIGKILL) once they
//! are shown to still be those hooks, so that a reused process id is never signalled.

use crate::catalog::Catalog;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long a hook group gets to end after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(3);

/// What `/proc/PID/stat` says of a process: its state, process group and start time (clock
/// ticks after boot).
struct Stat {
    state: char,
    pgrp: i32,
    start: u64,
}

fn stat_of(pid: i32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let (_, rest) = text.rsplit_once(") ")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        pgrp: f.get(2)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
    })
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The identity recorded for a hook's process group: `BOOT_ID/START_TICKS` of its leader.
pub fn identity(pid: i32) -> Option<String> {
    stat_of(pid).map(|s| format!("{}/{}", boot_id(), s.start))
}

/// Live (not zombie) members of process group `pgid`.
fn members(pgid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat_of(*pid).is_some_and(|s| s.pgrp == pgid && s.state != 'Z'))
        .collect()
}

/// Whether group `pgid` is still the hook recorded as `recorded` (`BOOT_ID/START_TICKS`).
fn still_the_hook(pgid: i32, recorded: &str) -> bool {
    let Some((boot, start)) = recorded.split_once('/') else {
        return false;
    };
    let Ok(start) = start.parse::<u64>() else {
        return false;
    };
    if boot != boot_id() {
        return false;
    }
    match stat_of(pgid) {
        // The leader lives: it must be the very process that was recorded.
        Some(s) if s.state != 'Z' => s.start == start && s.pgrp == pgid,
        // The leader is gone: while any member of its group lives, the number cannot have been
        // given to another process, so the members are the hook's.
        _ => !members(pgid).is_empty(),
    }
}

/// Ends the hook process group `pgid` of run `run`; returns what was done, for the logs.
fn end_group(run: i64, pgid: i32, recorded: &str) -> Option<String> {
    if !still_the_hook(pgid, recorded) {
        return None;
    }
    let group = Pid::from_raw(pgid);
    let _ = killpg(group, Signal::SIGTERM);
    let deadline = Instant::now() + TERM_GRACE;
    while Instant::now() < deadline && !members(pgid).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let how = if members(pgid).is_empty() {
        "SIGTERM"
    } else {
        let _ = killpg(group, Signal::SIGKILL);
        "SIGKILL"
    };
    Some(format!(
        "killed hook process group {pgid} ({how}) left running by interrupted run {run}"
    ))
}

/// Ends the hook groups that the interrupted runs `runs` left, and notes it in their logs.
pub fn reap_leftovers(catalog: &mut Catalog, runs: &[i64]) {
    for &run in runs {
        let Ok(Some((pgid, recorded))) = catalog.hook_group(run) else {
            continue;
        };
        match end_group(run, pgid, &recorded) {
            Some(msg) => {
                warn!(run, "{msg}");
                if let Err(e) = catalog.append_run_log(run, &format!("bmsd start-up: {msg}")) {
                    warn!(run, "cannot note the killed hook in the run log: {e}");
                }
            }
            None => info!(
                run,
                pgid, "the hook of interrupted run {run} is no longer running"
            ),
        }
        if let Err(e) = catalog.set_hook_group(run, None) {
            warn!(run, "cannot clear the hook group of the run: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_or_foreign_group_is_not_the_hook() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let id = identity(pid).unwrap();
        assert!(still_the_hook(pid, &id));
        // Another start time (a reused number), or another boot: not the recorded hook.
        let (boot, start) = id.split_once('/').unwrap();
        let later = format!("{boot}/{}", start.parse::<u64>().unwrap() + 1);
        assert!(!still_the_hook(pid, &later));
        assert!(!still_the_hook(pid, &format!("other-boot/{start}")));
        assert!(!still_the_hook(pid, "garbage"));
        let msg = end_group(7, pid, &id).unwrap();
        assert!(msg.contains("SIGTERM") && msg.contains("run 7"), "{msg}");
        let _ = child.wait();
        assert!(members(pid).is_empty());
    }
}
