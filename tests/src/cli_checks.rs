//! Helpers for the tests of bmsctl's command line: a reader that closes the pipe early, and a
//! quick way to define jobs.

use crate::{assert_ok, bin, clean_command, Daemon};
use std::io::{BufRead, BufReader};
use std::process::{Command, ExitStatus, Stdio};

/// What a command did when its reader went away after the first line (`cmd | head -1`).
pub struct ClosedPipe {
    pub first_line: String,
    pub status: ExitStatus,
    pub stderr: String,
}

/// Runs `cmd` with standard output on a pipe, reads one line, closes the pipe and waits for the
/// command to end.
pub fn head_1(mut cmd: Command) -> ClosedPipe {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first_line = String::new();
    {
        let out = child.stdout.take().expect("stdout");
        let mut r = BufReader::new(out);
        r.read_line(&mut first_line).expect("read the first line");
        // Dropping the reader closes the pipe, as `head -1` does when it exits.
    }
    let out = child.wait_with_output().expect("wait");
    ClosedPipe {
        first_line,
        status: out.status,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// bmsctl without a daemon (offline commands, --help).
pub fn ctl_offline<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    clean_command(bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl")
}

/// Adds job `name` backing up `dir/src` to the target `local`, with extra options.
pub fn add_job(d: &Daemon, name: &str, extra: &[&str]) -> std::process::Output {
    let src = d.dir.join("src");
    std::fs::create_dir_all(&src).expect("src dir");
    let src = src.display().to_string();
    let mut args = vec![
        "job",
        "add",
        name,
        "--source",
        &src,
        "--schedule",
        "daily",
        "--target",
        "local",
    ];
    args.extend_from_slice(extra);
    let out = d.ctl(&args);
    assert_ok(&out);
    out
}
