//! A small blocking Varlink client over the daemon's Unix socket.

use crate::api::Method;
use crate::error::ApiError;
use crate::varlink::{self, Call, Reply};

/// Largest reply the client accepts. Requests are bounded by the daemon's 1 MiB limit; replies
/// come from the trusted daemon and may list a long history.
pub const MAX_REPLY: usize = 64 * 1024 * 1024;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a call did not get a reply from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to bmsd at {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("connection to bmsd lost: {0}")]
    Io(#[from] io::Error),
    #[error("bmsd sent a reply that is not valid: {0}")]
    BadReply(String),
    #[error("{0}")]
    Api(#[from] ApiError),
    /// The request is larger than one message may be; nothing was sent, or bmsd refused it.
    #[error("the request is {size} bytes, larger than the {limit} bytes (1 MiB) bmsd accepts in one message: send less at once")]
    TooLarge { size: usize, limit: usize },
}

/// One connection to bmsd.
pub struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no NUL: a large reply arrives in many reads, and each
    /// read's bytes are searched once, not the whole reply again.
    scanned: usize,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Client {
            stream,
            buf: Vec::new(),
            scanned: 0,
        })
    }

    /// Limits how long a single read may wait for the daemon (none: wait as long as it takes).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Calls a typed method and returns its typed reply.
    pub fn call<M: Method>(&mut self, request: &M) -> Result<M::Reply, ClientError> {
        let params =
            serde_json::to_value(request).map_err(|e| ClientError::BadReply(e.to_string()))?;
        let method = format!("{}.{}", crate::INTERFACE, M::NAME);
        let reply = self.call_raw(&method, params)?;
        reply
            .decode()
            .map_err(|e| ClientError::BadReply(format!("{method}: {e}")))
    }

    /// Calls any method by its full name; an error reply becomes `ClientError::Api`.
    pub fn call_raw(
        &mut self,
        method: &str,
        parameters: serde_json::Value,
    ) -> Result<Reply, ClientError> {
        let parameters = match parameters {
            serde_json::Value::Object(m) => Some(m),
            serde_json::Value::Null => None,
            other => {
                return Err(ClientError::BadReply(format!(
                    "parameters must be a JSON object, not {other}"
                )))
            }
        };
        let call = Call {
            method: method.to_owned(),
            parameters,
            more: false,
            oneway: false,
            upgrade: false,
        };
        let bytes = varlink::encode(&call).map_err(|e| ClientError::BadReply(e.to_string()))?;
        self.send_call(&bytes)?;
        let reply = self.read_reply()?;
        if let Some(name) = &reply.error {
            return Err(ApiError::from_wire(name, reply.parameters_value().as_ref()).into());
        }
        Ok(reply)
    }

    /// Calls a method with `"more": true` and hands each reply to `on_reply` until the last one
    /// (`continues: false`) or until `on_reply` returns false.
    pub fn call_more<M: Method>(
        &mut self,
        request: &M,
        mut on_reply: impl FnMut(M::Reply) -> bool,
    ) -> Result<(), ClientError> {
        let parameters = match serde_json::to_value(request) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            Ok(_) => None,
            Err(e) => return Err(ClientError::BadReply(e.to_string())),
        };
        let call = Call {
            method: format!("{}.{}", crate::INTERFACE, M::NAME),
            parameters,
            more: true,
            oneway: false,
            upgrade: false,
        };
        let bytes = varlink::encode(&call).map_err(|e| ClientError::BadReply(e.to_string()))?;
        self.send_call(&bytes)?;
        loop {
            let reply = self.read_reply()?;
            if let Some(name) = &reply.error {
                return Err(ApiError::from_wire(name, reply.parameters_value().as_ref()).into());
            }
            let continues = reply.continues;
            let parsed: M::Reply = reply
                .decode()
                .map_err(|e| ClientError::BadReply(format!("{}: {e}", M::NAME)))?;
            if !on_reply(parsed) || !continues {
                return Ok(());
            }
        }
    }

    /// Sends one encoded call. A call over the message limit is not sent at all; a write that
    /// bmsd cuts short (it closes a connection whose message is too large) is answered with
    /// bmsd's own error reply when it sent one, else with [`ClientError::TooLarge`] or the I/O
    /// error.
    fn send_call(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        // The encoded call ends with its NUL, which the limit does not count.
        let size = bytes.len().saturating_sub(1);
        if size > varlink::MAX_MESSAGE {
            return Err(ClientError::TooLarge {
                size,
                limit: varlink::MAX_MESSAGE,
            });
        }
        match send_all(&self.stream, bytes) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) =>
            {
                // What bmsd said before it closed, if anything; it never waits long.
                let _ = self.stream.set_read_timeout(Some(Duration::from_secs(5)));
                match self.read_reply() {
                    Ok(reply) => match &reply.error {
                        Some(name) => {
                            Err(ApiError::from_wire(name, reply.parameters_value().as_ref()).into())
                        }
                        None => Err(ClientError::Io(e)),
                    },
                    Err(_) if size > varlink::MAX_MESSAGE / 2 => Err(ClientError::TooLarge {
                        size,
                        limit: varlink::MAX_MESSAGE,
                    }),
                    Err(_) => Err(ClientError::Io(e)),
                }
            }
            Err(e) => Err(ClientError::Io(e)),
        }
    }

    /// Reads the next reply (used directly for streamed `more` replies).
    pub fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let msg = self.read_message()?;
        serde_json::from_slice(&msg).map_err(|e| ClientError::BadReply(e.to_string()))
    }

    /// Reads the next NUL-terminated message and returns its bytes without the NUL.
    fn read_message(&mut self) -> Result<Vec<u8>, ClientError> {
        const CHUNK: usize = 1024 * 1024;
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|b| *b == 0) {
                let end = self.scanned + pos;
                let rest = self.buf.split_off(end + 1);
                let mut msg = std::mem::replace(&mut self.buf, rest);
                msg.truncate(end);
                self.scanned = 0;
                return Ok(msg);
            }
            self.scanned = self.buf.len();
            if self.buf.len() > MAX_REPLY {
                return Err(ClientError::BadReply("reply larger than 64 MiB".into()));
            }
            let len = self.buf.len();
            self.buf.resize(len + CHUNK, 0);
            let read = self.stream.read(&mut self.buf[len..]);
            self.buf.truncate(len + *read.as_ref().unwrap_or(&0));
            let n = read?;
            if n == 0 {
                return Err(ClientError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "bmsd closed the connection",
                )));
            }
        }
    }
}

/// Writes all of `bytes` with `MSG_NOSIGNAL`: a daemon that closed the connection gives an
/// `EPIPE` error, never a SIGPIPE (bmsctl runs with SIGPIPE's default action).
fn send_all(stream: &UnixStream, mut bytes: &[u8]) -> io::Result<()> {
    use nix::sys::socket::{send, MsgFlags};
    use std::os::fd::AsRawFd;
    while !bytes.is_empty() {
        match send(stream.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;

    fn server(
        answer: Option<Vec<u8>>,
    ) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b);
            if let Some(a) = answer {
                s.write_all(&a).unwrap();
            }
            // Closing with the rest of the call unread makes the client's write fail.
        });
        (dir, path, t)
    }

    fn big_params(bytes: usize) -> serde_json::Value {
        serde_json::json!({"blob": "x".repeat(bytes)})
    }

    #[test]
    fn a_call_over_the_limit_is_refused_before_sending_naming_the_limit() {
        let (_d, path, _t) = server(None);
        let mut c = Client::connect(&path).unwrap();
        let e = c
            .call_raw(
                "org.bms.Manager.Status",
                big_params(varlink::MAX_MESSAGE + 10),
            )
            .unwrap_err();
        assert!(matches!(e, ClientError::TooLarge { .. }), "{e:?}");
        assert!(e.to_string().contains("1048576 bytes"), "{e}");
    }

    #[test]
    fn a_write_cut_short_reports_the_daemons_error_reply() {
        let err = ApiError::new(
            crate::ErrorKind::ProtocolError,
            "message larger than 1048576 bytes; connection closed",
        );
        let reply = Reply::error(err.kind.wire_name(), err.wire_parameters());
        let (_d, path, t) = server(Some(varlink::encode(&reply).unwrap()));
        let mut c = Client::connect(&path).unwrap();
        let e = c
            .call_raw(
                "org.bms.Manager.Status",
                big_params(varlink::MAX_MESSAGE - 100),
            )
            .unwrap_err();
        t.join().unwrap();
        assert!(!e.to_string().contains("Broken pipe"), "{e}");
        match e {
            ClientError::Api(a) => assert!(a.message.contains("1048576"), "{a:?}"),
            other => panic!("expected the daemon's reply, got {other:?}"),
        }
    }

    #[test]
    fn a_write_cut_short_without_a_reply_names_the_limit() {
        let (_d, path, t) = server(None);
        let mut c = Client::connect(&path).unwrap();
        let e = c
            .call_raw(
                "org.bms.Manager.Status",
                big_params(varlink::MAX_MESSAGE - 100),
            )
            .unwrap_err();
        t.join().unwrap();
        assert!(matches!(e, ClientError::TooLarge { .. }), "{e:?}");
        assert!(!e.to_string().contains("Broken pipe"), "{e}");
    }

    #[test]
    fn replies_split_over_many_reads_and_sent_back_to_back_each_arrive_whole() {
        let big = Reply::ok(big_params(3 * 1024 * 1024 + 7));
        let small = Reply::ok(serde_json::json!({"n": 1}));
        let mut bytes = varlink::encode(&big).unwrap();
        bytes.extend(varlink::encode(&small).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            // Small writes: the client sees the first reply in many pieces.
            for piece in bytes.chunks(4093) {
                s.write_all(piece).unwrap();
            }
        });
        let mut c = Client::connect(&path).unwrap();
        let first = c.read_reply().unwrap();
        assert_eq!(first.parameters_value(), big.parameters_value());
        let second = c.read_reply().unwrap();
        assert_eq!(second.parameters_value(), small.parameters_value());
        t.join().unwrap();
        let e = c.read_reply().unwrap_err();
        assert!(e.to_string().contains("closed the connection"), "{e}");
    }
}
