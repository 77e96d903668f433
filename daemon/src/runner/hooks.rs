//! Pre- and post-backup hooks: `sh -c CMD` with a timeout, the run described in environment
//! variables, and the output captured into the run log.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

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
/// cancelled run or a shutdown), when the hook is killed and the result says `stopped`.
pub async fn run(
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
    stop: Option<&AtomicBool>,
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
    let mut child = match command.spawn() {
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
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_all = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let a = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let b = async {
            if let Some(s) = stderr.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(a, b);
        out.extend_from_slice(&err);
        out
    };
    let waited = tokio::select! {
        r = tokio::time::timeout(timeout, async {
            let output = read_all.await;
            (child.wait().await, output)
        }) => r.map_err(|_| false),
        _ = stop_requested(stop) => Err(true),
    };
    match waited {
        Ok((status, output)) => {
            let mut text = String::from_utf8_lossy(&output).into_owned();
            if text.len() > MAX_OUTPUT {
                let mut cut = MAX_OUTPUT;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push_str("\n[output cut at 64 KiB]");
            }
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
                output: text,
                stopped: false,
            }
        }
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
            HookResult {
                ok: false,
                how,
                output: String::new(),
                stopped,
            }
        }
    }
}
