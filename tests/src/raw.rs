//! A raw Varlink client for protocol tests: write any bytes, read NUL-terminated replies.

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// One raw connection to bmsd's socket.
pub struct RawConn {
    pub stream: UnixStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects with a 10 s read timeout, so a missing reply fails the test instead of hanging it.
    pub fn connect(path: &Path) -> RawConn {
        let stream =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to bmsd");
    }

    /// Sends one JSON message with its NUL terminator and returns the reply.
    pub fn call(&mut self, msg: &Value) -> Value {
        let mut bytes = serde_json::to_vec(msg).expect("json");
        bytes.push(0);
        self.send(&bytes);
        self.read_message()
            .unwrap_or_else(|| panic!("no reply to {msg}"))
    }

    /// Reads the next message; `None` when the daemon closed the connection (EOF or reset).
    /// Panics on a read timeout or when the message is not JSON.
    pub fn read_message(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == 0) {
                let msg: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = &msg[..msg.len() - 1];
                return Some(serde_json::from_slice(text).unwrap_or_else(|e| {
                    panic!(
                        "bmsd sent a message that is not JSON ({e}): {}",
                        String::from_utf8_lossy(text)
                    )
                }));
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("reading from bmsd: {e}"),
            }
        }
    }
}

/// The `error` name of a reply, if it is an error.
pub fn error_name(reply: &Value) -> Option<&str> {
    reply.get("error").and_then(Value::as_str)
}
