//! A real S3 server on loopback for the S3 target tests (docs/s3.md "Tests"): moto in server
//! mode (`pip install 'moto[server]'`, installed by `scripts/test --install`) on a free port,
//! waited for over HTTP; and a counting TCP proxy in front of it, which measures what bmsd sends
//! (requests by method, body bytes) and plays the server going away and coming back (moto keeps
//! its objects in memory, so killing moto itself would lose them: the proxy is what dies).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A moto S3 server; killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether an HTTP server answers on `port` (any status line).
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("HTTP/1.")
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers HTTP.
    pub fn start(dir: &std::path::Path) -> Moto {
        for _ in 0..3 {
            let port = free_port();
            let log = dir.join(format!("moto-{port}.log"));
            let out = std::fs::File::create(&log).expect("moto log");
            let child = Command::new("python3")
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect(
                    "cannot start moto (python3 -m moto.server): install it with \
                     `pip install 'moto[server]'` (scripts/test --install does)",
                );
            let mut m = Moto { child, port, log };
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if answers(port) {
                    return m;
                }
                if let Ok(Some(_)) = m.child.try_wait() {
                    break; // the port was taken meanwhile: try another
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = m.child.kill();
            let _ = m.child.wait();
            eprintln!(
                "moto did not come up on {port}: {}",
                std::fs::read_to_string(&m.log).unwrap_or_default()
            );
        }
        panic!("moto did not start: is `moto[server]` installed (pip install 'moto[server]')?");
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What went through a [`Proxy`].
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Requests by method.
    pub requests: BTreeMap<String, u64>,
    /// Body bytes of PUT requests.
    pub put_bytes: u64,
}

impl Counts {
    pub fn n(&self, method: &str) -> u64 {
        self.requests.get(method).copied().unwrap_or(0)
    }
}

/// A TCP proxy from a loopback port to moto that counts requests, and can be taken down
/// (listener closed, open connections reset) and brought back on the same port.
pub struct Proxy {
    pub port: u16,
    upstream: u16,
    counts: Arc<Mutex<Counts>>,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    /// Request body bytes per second of each connection at most (0: unlimited).
    rate: Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let port = listener.local_addr().expect("addr").port();
        let p = Proxy {
            port,
            upstream,
            counts: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
            conns: Arc::default(),
            rate: Arc::default(),
        };
        p.serve(listener);
        p
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Limits the upload rate of each connection (bytes per second; 0: none), so that a test
    /// can act while a run is uploading.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// The counts so far, and zeroes them.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        self.counts.lock().unwrap().clone()
    }

    /// The server goes away: no new connections, the open ones are reset.
    pub fn kill(&self) {
        self.up.store(false, Ordering::SeqCst);
        // Wake the accept loop so that it drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        // Until the port refuses connections.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the proxy did not go down");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server is back on the same port.
    pub fn revive(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("proxy rebind");
        self.up.store(true, Ordering::SeqCst);
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let (up, conns, counts, upstream, rate) = (
            self.up.clone(),
            self.conns.clone(),
            self.counts.clone(),
            self.upstream,
            self.rate.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    return; // drops the listener
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        conns.lock().unwrap().push(c);
                    }
                }
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut from = s2;
                    let mut to = c2;
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
                let (counts, rate) = (counts.clone(), rate.clone());
                std::thread::spawn(move || pump_requests(client, server, &counts, &rate));
            }
        });
    }
}

/// Forwards client→server, parsing request heads to count them and their bodies.
fn pump_requests(
    client: TcpStream,
    mut server: TcpStream,
    counts: &Mutex<Counts>,
    rate: &std::sync::atomic::AtomicU64,
) {
    let mut r = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match r.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(Shutdown::Write);
                    return;
                }
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let method = text.split(' ').next().unwrap_or("").to_owned();
        let len: u64 = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        {
            let mut c = counts.lock().unwrap();
            *c.requests.entry(method.clone()).or_default() += 1;
            if method == "PUT" {
                c.put_bytes += len;
            }
        }
        if server.write_all(&head).is_err() {
            return;
        }
        let mut left = len;
        let mut buf = vec![0u8; 64 << 10];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let Ok(n) = r.read(&mut buf[..want]) else {
                return;
            };
            if n == 0 || server.write_all(&buf[..n]).is_err() {
                return;
            }
            left -= n as u64;
            let bps = rate.load(Ordering::Relaxed);
            if bps > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64));
            }
        }
    }
}
