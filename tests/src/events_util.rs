//! Follows bmsd's event stream through `bmsctl --json events` for tests of the event bus.

use crate::Daemon;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `bmsctl --json events`; stopped when dropped.
pub struct EventStream {
    child: Child,
    rx: mpsc::Receiver<Value>,
    /// Every event seen so far, in order (the `event` objects).
    pub seen: Vec<Value>,
    /// Replies that said events were missed.
    pub missed: u64,
}

impl EventStream {
    /// Starts following (of `job` only, when given) and returns once subscribed.
    pub fn start(d: &Daemon, job: Option<&str>) -> EventStream {
        let mut cmd = d.ctl_cmd();
        cmd.args(["--json", "events"]);
        if let Some(j) = job {
            cmd.args(["--job", j]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn bmsctl events");
        let out = child.stdout.take().expect("stdout of bmsctl events");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bmsctl events printed {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        let hello = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("bmsctl events: no first (subscribed) reply");
        assert!(
            hello["event"].is_null(),
            "first reply is not the empty one: {hello}"
        );
        EventStream {
            child,
            rx,
            seen: Vec::new(),
            missed: 0,
        }
    }

    /// Reads events until `done` holds for the events seen so far; panics after `timeout`.
    pub fn wait(&mut self, timeout: Duration, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.missed += v["missed"].as_u64().unwrap_or(0);
                    if !v["event"].is_null() {
                        self.seen.push(v["event"].clone());
                    }
                }
                Err(_) => panic!(
                    "no {what} within {timeout:?}; events seen:\n{:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for run `id`'s `RunFinished` and returns that run's events, in order.
    pub fn run_events(&mut self, id: i64, timeout: Duration) -> Vec<Value> {
        self.wait(timeout, &format!("end of run {id}"), |seen| {
            seen.iter()
                .any(|e| e["type"] == "RunFinished" && run_of(e) == Some(id))
        });
        self.seen
            .iter()
            .filter(|e| run_of(e) == Some(id))
            .cloned()
            .collect()
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run an event is about.
pub fn run_of(e: &Value) -> Option<i64> {
    e["run"]["id"].as_i64().or_else(|| e["run"].as_i64())
}

/// The `type`s of events, in order, with runs of `RunProgress` folded into one.
pub fn kinds(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let t = e["type"].as_str().unwrap_or("?").to_owned();
        if t == "RunProgress" && out.last().map(String::as_str) == Some("RunProgress") {
            continue;
        }
        out.push(t);
    }
    out
}
