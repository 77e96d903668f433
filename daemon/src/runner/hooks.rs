//! Pre- and post-backup hooks: `sh -c CMD` with a timeout, the run described in environment
//! variables, and the output captured into the run log.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::task::JoinHandle;

use crate::catalog::CatalogHandle;

/// Output kept per hook; the rest is cut with a note.
const MAX_OUTPUT: usize = 64 * 1024;

/// How a hook ended.
#[derive(Debug)]
pub struct HookResult {
    pub ok: bool,
    /// `exit 0`, `exit 3`, `killed by signal 9`, `timed out after 5 s`, `cannot start: ...`.
    pub how: String,
    pub output: String,
    /// Killed because the run was stopped (cancelled, timed out, shut down).
    pub stopped: bool,
}

/// Resolves once `stop` is set (checked every 100 ms); never without one.
async fn stop_requested(stop: Option<&AtomicBool>) {
    let Some(stop) = stop else {
        return std::future::pending().await;
    };
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a hook command and waits for it: at most `timeout`, and only until `stop` is set (a
/// cancelled run or a shutdown), when the hook is killed and the result says `stopped`. The hook
/// runs in its own process group, recorded in run `record.1` while it runs, so that a bmsd
/// restarted after a crash can end it (see `hook_groups`).
pub async fn run(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
    stop: Option<&AtomicBool>,
    record: (&CatalogHandle, i64),
) -> HookResult {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .kill_on_drop(true)
        .process_group(0);
    for (k, v) in env {
        command.env(k, v);
    }
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return HookResult {
                ok: false,
                how: format!("cannot start: {e}"),
                output: String::new(),
                stopped: false,
            }
        }
    };
    let group = child.id().map(|pid| pid as i32);
    let (catalog, run_id) = record;
    if let Some(pgid) = group {
        if let Some(identity) = super::hook_groups::identity(pgid) {
            let r = catalog
                .call(move |c| c.set_hook_group(run_id, Some((pgid, &identity))))
                .await;
            if let Err(e) = r {
                tracing::warn!(run = run_id, "cannot record the hook's process group: {e}");
            }
        }
    }
    let result = wait_for(child, timeout, stop).await;
    if group.is_some() {
        if let Err(e) = catalog.call(move |c| c.set_hook_group(run_id, None)).await {
            tracing::warn!(run = run_id, "cannot clear the hook's process group: {e}");
        }
    }
    result
}

/// Collects a started hook's output and waits for it (see [`run`]).
async fn wait_for(
    mut child: tokio::process::Child,
    timeout: Duration,
    stop: Option<&AtomicBool>,
) -> HookResult {
    // Output is read as it comes, stdout and stderr together, and kept up to MAX_OUTPUT bytes;
    // the rest is read and dropped so that a chatty hook cannot fill bmsd's memory.
    let captured = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(tokio::spawn(pump(out, captured.clone())));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(tokio::spawn(pump(err, captured.clone())));
    }
    // The hook ends when its shell exits, even if something it started in the background
    // keeps the output pipes open.
    let waited = tokio::select! {
        r = tokio::time::timeout(timeout, child.wait()) => r.map_err(|_| false),
        _ = stop_requested(stop) => Err(true),
    };
    let status = match waited {
        Ok(status) => status,
        Err(stopped) => {
            // Kill the whole process group: the shell and whatever it started.
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            let how = if stopped {
                "killed because the run was stopped".to_owned()
            } else {
                format!("timed out after {} s and was killed", timeout.as_secs())
            };
            return HookResult {
                ok: false,
                how,
                output: collect(readers, &captured).await,
                stopped,
            };
        }
    };
    let output = collect(readers, &captured).await;
    let (ok, how) = match status {
        Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
            (Some(0), _) => (true, "exit 0".to_owned()),
            (Some(c), _) => (false, format!("exit {c}")),
            (None, Some(sig)) => (false, format!("killed by signal {sig}")),
            (None, None) => (false, "ended abnormally".to_owned()),
        },
        Err(e) => (false, format!("cannot wait: {e}")),
    };
    HookResult {
        ok,
        how,
        output,
        stopped: false,
    }
}

/// Copies a pipe into `buf`, keeping at most MAX_OUTPUT + 1 bytes.
async fn pump(mut pipe: impl AsyncRead + Unpin, buf: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut b) = buf.lock() {
                    let room = (MAX_OUTPUT + 1).saturating_sub(b.len());
                    b.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    }
}

/// Lets the readers finish (1 s at most: background processes may hold the pipes) and returns
/// the output as text, cut at MAX_OUTPUT with a note.
async fn collect(readers: Vec<JoinHandle<()>>, buf: &Arc<Mutex<Vec<u8>>>) -> String {
    for mut r in readers {
        if tokio::time::timeout(Duration::from_secs(1), &mut r)
            .await
            .is_err()
        {
            r.abort();
        }
    }
    let bytes = buf.lock().map(|b| b.clone()).unwrap_or_default();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if text.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[output cut at 64 KiB]");
    }
    text
}
