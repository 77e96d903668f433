//! Runs the README's five-minute tour (tests/tests/first_hour_tour.rs): every command of the
//! section's ```sh blocks, in order, through `sh -c` as a user types it, against one daemon;
//! each must do what its trailing comment says. A comment starting with `fails` means the command
//! is expected to fail (exit 1, a failure, never a usage error); one mentioning `Ctrl-C` follows
//! a live stream: it must still be running after the rest of the tour, and end on SIGINT.
//! Everything else must succeed.

use crate::readme::{commands, section, sh_blocks, ShellLine};
use crate::{bin, clean_command, Daemon};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// What a tour command is expected to do, from its comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Succeeds,
    Fails,
    Follows,
}

pub fn expectation(line: &ShellLine) -> Expect {
    if line.comment.starts_with("fails") {
        Expect::Fails
    } else if line.comment.contains("Ctrl-C") {
        Expect::Follows
    } else {
        Expect::Succeeds
    }
}

/// The tour's commands, in order.
pub fn tour_commands(readme: &str) -> Vec<ShellLine> {
    sh_blocks(section(readme, "A five-minute tour"))
        .iter()
        .flat_map(|b| commands(b))
        .collect()
}

/// What the test changes in a command so that it runs on a test machine: (README text,
/// replacement). Each must be used at least once, so that the README cannot drift away from it.
pub type Substitutions = Vec<(String, String)>;

fn describe(l: &ShellLine, what: &str, out: &std::process::Output) -> String {
    format!(
        "tour command `{}` (block line {}, # {}) {what}: {}\nstdout:\n{}\nstderr:\n{}",
        l.command,
        l.line,
        l.comment,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the tour of `readme` in `work` against `d`. `dynamic` may substitute more at each
/// command (e.g. a snapshot ID only known once a backup ran). Returns the commands run, or the
/// first that did not do what the README says.
pub fn run_tour(
    readme: &str,
    d: &Daemon,
    work: &Path,
    subs: &Substitutions,
    dynamic: &dyn Fn(&Daemon, &str) -> String,
) -> Result<Vec<String>, String> {
    let lines = tour_commands(readme);
    if lines.is_empty() {
        return Err("the README's tour has no commands".into());
    }
    let bin_dir = bin("bmsctl")
        .parent()
        .map(Path::to_owned)
        .ok_or("no binary directory")?;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut used = vec![false; subs.len()];
    let mut followers: Vec<(ShellLine, Child)> = Vec::new();
    let mut ran = Vec::new();
    let result = (|| {
        for l in &lines {
            let mut cmd_text = l.command.clone();
            for (i, (from, to)) in subs.iter().enumerate() {
                if cmd_text.contains(from.as_str()) {
                    cmd_text = cmd_text.replace(from.as_str(), to);
                    used[i] = true;
                }
            }
            cmd_text = dynamic(d, &cmd_text);
            let mut cmd = clean_command("sh");
            cmd.arg("-c")
                .arg(&cmd_text)
                .current_dir(work)
                .env("BMS_SOCKET", d.socket())
                .env("PATH", &path)
                .stdin(Stdio::null());
            ran.push(cmd_text.clone());
            match expectation(l) {
                Expect::Follows => {
                    // Its own process group, as a shell job: Ctrl-C goes to the whole group.
                    let child = cmd
                        .process_group(0)
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .map_err(|e| format!("spawn `{cmd_text}`: {e}"))?;
                    followers.push((l.clone(), child));
                }
                e => {
                    let out = cmd.output().map_err(|e| format!("run `{cmd_text}`: {e}"))?;
                    eprintln!(
                        "$ {cmd_text}\n{}{}[{}]",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr),
                        out.status
                    );
                    match (e, out.status.code()) {
                        (Expect::Succeeds, Some(0)) | (Expect::Fails, Some(1)) => {}
                        (Expect::Succeeds, _) => return Err(describe(l, "failed", &out)),
                        (Expect::Fails, _) => {
                            return Err(describe(
                                l,
                                "should fail with exit 1 as the README says, but exited",
                                &out,
                            ))
                        }
                        (Expect::Follows, _) => {}
                    }
                }
            }
        }
        for (l, child) in followers.iter_mut() {
            if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!(
                    "tour command `{}` should follow until Ctrl-C, but ended with {st}: {err}",
                    l.command
                ));
            }
            let pid = nix::unistd::Pid::from_raw(-(child.id() as i32));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)
                .map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().map_err(|e| e.to_string())?.is_none() {
                if Instant::now() > deadline {
                    return Err(format!("`{}` did not end on Ctrl-C", l.command));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    })();
    for (_, mut c) in followers {
        let _ = c.kill();
        let _ = c.wait();
    }
    result?;
    for (i, (from, _)) in subs.iter().enumerate() {
        if !used[i] {
            return Err(format!(
                "the tour no longer contains `{from}`: update the test's substitutions"
            ));
        }
    }
    Ok(ran)
}
