//! The README's commands as tests read them (tests/tests/first_hour_*.rs): its sections, their
//! ```sh blocks, and the commands of a block with their trailing comments, so that what the README
//! tells a new user is what CI runs.

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One command of a shell block: the text as a user types it (continuation lines joined) and its
/// trailing `# comment`, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellLine {
    /// The command without its comment, continuation backslashes and newlines joined.
    pub command: String,
    /// The trailing comment without the `#`, trimmed; empty when there is none.
    pub comment: String,
    /// The 1-based line of the block where the command starts.
    pub line: usize,
}

/// The text of the `## heading` section (up to the next `## `); panics naming the heading when
/// the README has no such section.
pub fn section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let marker = format!("## {heading}");
    let start = markdown
        .lines()
        .scan(0usize, |pos, l| {
            let at = *pos;
            *pos += l.len() + 1;
            Some((at, l))
        })
        .find(|(_, l)| l.trim_end() == marker)
        .map(|(at, _)| at)
        .unwrap_or_else(|| panic!("README.md has no section '{marker}'"));
    let rest = &markdown[start + marker.len()..];
    let end = rest.find("\n## ").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

/// The contents of the ```sh fenced blocks of a text, in order.
pub fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for l in text.lines() {
        match current.as_mut() {
            None if l.trim() == "```sh" => current = Some(String::new()),
            None => {}
            Some(_) if l.trim() == "```" => blocks.extend(current.take()),
            Some(b) => {
                b.push_str(l);
                b.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unterminated ```sh block");
    blocks
}

/// Splits a line into its command and its trailing comment: a `#` that starts a word outside
/// quotes begins the comment, as in sh.
fn split_comment(line: &str) -> (String, String) {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && prev_space => {
                return (line[..i].trim().to_owned(), line[i + 1..].trim().to_owned());
            }
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    (line.trim().to_owned(), String::new())
}

/// The commands of a shell block: comment-only and empty lines skipped, lines ending in `\`
/// joined with the next.
pub fn commands(block: &str) -> Vec<ShellLine> {
    let mut out = Vec::new();
    let mut pending: Option<(String, String, usize)> = None;
    for (i, raw) in block.lines().enumerate() {
        let (cmd, comment) = split_comment(raw);
        if pending.is_none() && cmd.is_empty() {
            continue;
        }
        let (mut text, mut comments, start) =
            pending
                .take()
                .unwrap_or((String::new(), String::new(), i + 1));
        let continued = cmd.ends_with('\\');
        let part = cmd.trim_end_matches('\\').trim();
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(part);
        if !comment.is_empty() {
            if !comments.is_empty() {
                comments.push_str("; ");
            }
            comments.push_str(&comment);
        }
        if continued {
            pending = Some((text, comments, start));
        } else {
            out.push(ShellLine {
                command: text,
                comment: comments,
                line: start,
            });
        }
    }
    if let Some((text, comment, line)) = pending {
        out.push(ShellLine {
            command: text,
            comment,
            line,
        });
    }
    out
}

/// A notification socket for a daemon the test starts itself (as `NOTIFY_SOCKET`), open to
/// every user so that a daemon of an unprivileged user can report too.
pub struct Notify {
    pub socket: UnixDatagram,
}

impl Notify {
    pub fn bind(path: &Path) -> Notify {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let socket = UnixDatagram::bind(path).expect("bind notify socket");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        Notify { socket }
    }

    /// Waits for `READY=1` from `child`; panics with `log()` when it exits or does not come.
    pub fn wait_ready(&self, child: &mut Child, log: impl Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                if String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .any(|l| l == "READY=1")
                {
                    return;
                }
            }
            if let Ok(Some(st)) = child.try_wait() {
                panic!("bmsd exited ({st}) before READY=1; output:\n{}", log());
            }
        }
        panic!("bmsd sent no READY=1 within 30 s; output:\n{}", log());
    }
}

/// A daemon started by a command line of its own (a README line, a `setpriv` wrapper); its
/// process group is ended on drop.
pub struct Started {
    pub child: Child,
    pub log: PathBuf,
}

impl Started {
    pub fn spawn(mut cmd: Command, dir: &Path, notify: &Path) -> Started {
        let log = dir.join("bmsd.log");
        let f = std::fs::File::create(&log).unwrap();
        cmd.current_dir(dir)
            .env("NOTIFY_SOCKET", notify)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .process_group(0);
        Started {
            child: cmd.spawn().expect("spawn the run command"),
            log,
        }
    }

    pub fn wait_ready(&mut self, n: &Notify) {
        let log = self.log.clone();
        n.wait_ready(&mut self.child, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM to bmsd (`pid` from its status); it and the command around it must exit 0.
    pub fn stop(mut self, pid: &serde_json::Value) {
        let pid = nix::unistd::Pid::from_raw(pid.as_i64().expect("pid in status") as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "bmsd exited with {st}; log:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bmsd did not stop on SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let pg = nix::unistd::Pid::from_raw(-(self.child.id() as i32));
        let _ = nix::sys::signal::kill(pg, nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_join_continuations_and_keep_comments() {
        let block = "# a heading comment\n\
                     bmsctl status            # version\n\
                     \n\
                     bmsctl job add etc --exclude '*.tmp # not a comment' \\\n       \
                     --target local   # where\n\
                     curl -s http://x/#frag\n";
        let c = commands(block);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[0].command, "bmsctl status");
        assert_eq!(c[0].comment, "version");
        assert_eq!(c[0].line, 2);
        assert_eq!(
            c[1].command,
            "bmsctl job add etc --exclude '*.tmp # not a comment' --target local"
        );
        assert_eq!(c[1].comment, "where");
        assert_eq!(c[2].command, "curl -s http://x/#frag");
    }

    #[test]
    fn sections_and_blocks() {
        let md = "# t\n## A\ntext\n```sh\none\n```\n```\nnot sh\n```\n## B\n```sh\ntwo\n```\n";
        assert_eq!(sh_blocks(section(md, "A")), vec!["one\n".to_owned()]);
        assert_eq!(sh_blocks(section(md, "B")), vec!["two\n".to_owned()]);
    }
}
