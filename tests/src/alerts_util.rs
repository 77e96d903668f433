//! Real receivers for the alert tests on loopback: an HTTP server that records every request
//! (webhooks, Teams, pings), an SMTP server (aiosmtpd, with STARTTLS from a test CA made with
//! the openssl CLI), and a black hole that accepts connections and never answers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes a secret file with mode 0600.
pub fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write secret");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    p
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// An HTTP/1.1 server on 127.0.0.1 that records requests and answers with `status`.
pub struct HttpReceiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
    pub status: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

impl HttpReceiver {
    pub fn start() -> HttpReceiver {
        HttpReceiver::start_on(0)
    }

    /// Listens on `port` (0: any).
    pub fn start_on(port: u16) -> HttpReceiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind HTTP receiver");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(AtomicU16::new(200));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, st) = (requests.clone(), status.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut stream) = conn else { continue };
                if let Some(req) = read_request(&mut stream) {
                    r.lock().expect("lock").push(req);
                    let code = s.load(Ordering::SeqCst);
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                }
            }
        });
        HttpReceiver {
            port,
            requests,
            status,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn at(&self, prefix: &str) -> Vec<Request> {
        self.received()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections and never answers: a peer that hangs.
pub struct BlackHole {
    pub port: u16,
    _listener: TcpListener,
}

impl BlackHole {
    pub fn start() -> BlackHole {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind black hole");
        BlackHole {
            port: l.local_addr().expect("addr").port(),
            _listener: l,
        }
    }
}

/// A private CA and a server certificate for 127.0.0.1 and localhost, made with openssl.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("ca dir");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=bms test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        TestCa {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        }
    }
}

const SMTP_SCRIPT: &str = r#"
import sys, json, os, ssl, email, email.policy, warnings
warnings.simplefilter("ignore")
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

port, outdir, cert, key, user, password, mode = sys.argv[1:8]

class Handler:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = msg.get_body(('plain',))
        html = msg.get_body(('html',))
        Handler.n += 1
        rec = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
               "subject": str(msg["subject"]), "from": str(msg["from"]), "to": str(msg["to"]),
               "content_type": msg.get_content_type(),
               "text": text.get_content() if text else None,
               "html": html.get_content() if html else None,
               "tls": session.ssl is not None
                      or server.transport.get_extra_info("ssl_object") is not None,
               "auth": getattr(session, "authenticated", False),
               "attachments": [{"filename": a.get_filename(),
                                "content_type": a.get_content_type(),
                                "content": a.get_payload(decode=True).decode("utf-8", "replace")}
                               for a in msg.iter_attachments()]}
        tmp = os.path.join(outdir, ".%d.tmp" % Handler.n)
        with open(tmp, "w") as f:
            f.write(json.dumps(rec))
        os.rename(tmp, os.path.join(outdir, "%04d.json" % Handler.n))
        return "250 OK stored"

def check(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login.decode() == user and auth_data.password.decode() == password
    return AuthResult(success=ok)

kw = {}
if cert != "-":
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if mode == "implicit":
        # TLS from the first byte; aiosmtpd does not count that as TLS for AUTH, it is.
        kw = dict(ssl_context=ctx, authenticator=check, auth_required=True,
                  auth_require_tls=False)
    else:
        kw = dict(tls_context=ctx, require_starttls=True, authenticator=check,
                  auth_required=True)
c = Controller(Handler(), hostname="127.0.0.1", port=int(port), **kw)
c.start()
print("READY", flush=True)
sys.stdin.read()
c.stop()
"#;

/// aiosmtpd on 127.0.0.1 storing each message as JSON (subject, recipients, text and HTML
/// parts, attachments, whether it came over TLS) in `dir`.
pub struct SmtpServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

/// Debian's python3, which holds the python3-* test packages.
pub fn python() -> &'static str {
    // Debian's python3 carries python3-aiosmtpd (.ci/run installs it).
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

impl SmtpServer {
    /// Plain SMTP when `tls` is None; else STARTTLS required with that CA's server certificate,
    /// and AUTH with `user`/`password` required after it.
    pub fn start(dir: &Path, tls: Option<&TestCa>, user: &str, password: &str) -> SmtpServer {
        SmtpServer::start_mode(dir, tls, user, password, "starttls")
    }

    /// Implicit TLS (TLS from the first byte, as on port 465) with that CA's server certificate,
    /// AUTH with `user`/`password` required.
    pub fn start_implicit(dir: &Path, ca: &TestCa, user: &str, password: &str) -> SmtpServer {
        SmtpServer::start_mode(dir, Some(ca), user, password, "implicit")
    }

    fn start_mode(
        dir: &Path,
        tls: Option<&TestCa>,
        user: &str,
        password: &str,
        mode: &str,
    ) -> SmtpServer {
        std::fs::create_dir_all(dir).expect("smtp dir");
        let script = dir.join("smtpd.py");
        std::fs::write(&script, SMTP_SCRIPT).expect("script");
        let port = free_port();
        let (cert, key) = match tls {
            Some(ca) => (ca.cert.display().to_string(), ca.key.display().to_string()),
            None => ("-".into(), "-".into()),
        };
        let mut child = Command::new(python())
            .arg(&script)
            .arg(port.to_string())
            .arg(dir)
            .args([&cert, &key, user, password, mode])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read READY");
        assert_eq!(
            line.trim(),
            "READY",
            "aiosmtpd did not start (is python3-aiosmtpd installed?)"
        );
        SmtpServer {
            port,
            dir: dir.to_owned(),
            child,
        }
    }

    /// The messages received so far, in order.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("read smtp dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("json")
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Checks the fields the Adaptive Card schema requires and what Teams Workflows accepts: the
/// message envelope, one attachment of the adaptive card content type, `type` AdaptiveCard, a
/// version of at most 1.4, and body elements that each have a known `type` and their required
/// fields (TextBlock.text, FactSet.facts[].title/value).
pub fn assert_teams_envelope(v: &serde_json::Value) {
    assert_eq!(v["type"], "message", "{v}");
    let atts = v["attachments"].as_array().expect("attachments");
    assert_eq!(atts.len(), 1, "{v}");
    assert_eq!(
        atts[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &atts[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    let version = card["version"].as_str().expect("version is a string");
    let (major, minor) = version.split_once('.').expect("version M.m");
    let (major, minor): (u32, u32) = (major.parse().expect("major"), minor.parse().expect("minor"));
    assert!(
        major == 1 && minor <= 4,
        "card version {version} is above 1.4"
    );
    let body = card["body"].as_array().expect("body");
    assert!(!body.is_empty());
    for el in body {
        match el["type"].as_str() {
            Some("TextBlock") => assert!(el["text"].is_string(), "{el}"),
            Some("FactSet") => {
                for f in el["facts"].as_array().expect("facts") {
                    assert!(f["title"].is_string() && f["value"].is_string(), "{f}");
                }
            }
            other => panic!("unexpected element type {other:?}"),
        }
    }
}

/// `sha256=HEX` of HMAC-SHA256(`key`, `body`).
pub fn hmac_sha256(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A bmsd started with `[alerts]` = `alerts_toml` in its config file, a disk target `t` and a job
/// `job` whose pre-hook fails while the file `dir/fail` exists. Keep the returned TempDir.
pub fn daemon_with_alerts(
    alerts_toml: &str,
    job: &str,
    extra: &[&str],
) -> (crate::Daemon, tempfile::TempDir) {
    let temp = tempfile::Builder::new()
        .prefix("bms-alerts-")
        .tempdir()
        .expect("tempdir");
    let dir = temp.path().to_owned();
    let config = dir.join("bmsd.toml");
    // Tables of the snippet (`[[channels]]`) live under `[alerts]`.
    let body = alerts_toml
        .replace("[[alerts.", "[[")
        .replace("[[", "[[alerts.");
    std::fs::write(&config, format!("version = 1\n\n[alerts]\n{body}\n")).expect("config");
    let d = crate::Daemon::start_with(crate::DaemonOpts {
        args: vec!["--config".into(), config.display().to_string()],
        dir: Some(dir.clone()),
        ..Default::default()
    });
    let src = dir.join("src");
    crate::runner_util::write_small_tree(&src);
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    d.ctl_json([
        "target",
        "add",
        "t",
        "--path",
        repo.to_str().expect("utf-8"),
    ]);
    let hook = format!("test ! -e {}", dir.join("fail").display());
    let mut args = vec![
        "job",
        "add",
        job,
        "--source",
        src.to_str().expect("utf-8"),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
        "--pre-hook",
        &hook,
    ];
    args.extend_from_slice(extra);
    d.ctl_json(args);
    (d, temp)
}

/// Makes the job's next runs fail (`true`) or succeed.
pub fn set_failing(d: &crate::Daemon, failing: bool) {
    let f = d.dir.join("fail");
    if failing {
        std::fs::write(&f, "").expect("flag");
    } else {
        let _ = std::fs::remove_file(&f);
    }
}

/// Runs the job and waits for its end; returns the run record.
pub fn run_once(d: &crate::Daemon, job: &str) -> serde_json::Value {
    let id = d.start_run(job);
    d.wait_run_final(id, Duration::from_secs(60))["run"].clone()
}

/// `bmsctl --json alert list`.
pub fn alerts(d: &crate::Daemon) -> Vec<serde_json::Value> {
    d.ctl_json(["alert", "list"])["alerts"]
        .as_array()
        .expect("alerts")
        .clone()
}

/// Adds job `name` whose backups finish with warnings (a partial snapshot): its source holds the
/// repository of its own target `NAME-t`, which the backup leaves out. Returns the source dir.
pub fn add_partial_job(d: &crate::Daemon, name: &str) -> PathBuf {
    let src = d.dir.join(format!("{name}-src"));
    crate::runner_util::write_small_tree(&src);
    let repo = src.join("repo");
    std::fs::create_dir_all(&repo).expect("repo dir");
    let target = format!("{name}-t");
    d.ctl_json([
        "target",
        "add",
        &target,
        "--path",
        repo.to_str().expect("utf-8"),
    ]);
    d.ctl_json([
        "job",
        "add",
        name,
        "--source",
        src.to_str().expect("utf-8"),
        "--schedule",
        "2099-01-01",
        "--target",
        &target,
    ]);
    src
}

/// The `(alert kind, event)` of each notice `http` received under `prefix`, in order.
pub fn notice_events(http: &HttpReceiver, prefix: &str) -> Vec<(String, String)> {
    http.at(prefix)
        .iter()
        .map(|r| {
            let v = r.json();
            (
                v["alert"]["kind"].as_str().unwrap_or("").to_owned(),
                v["event"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}
