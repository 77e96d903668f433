//! HTTPS and basic auth of the metrics endpoint (docs/metrics.md, "TLS and basic auth"), checked
//! with curl against the real bmsd: a private CA's certificate, bcrypt hashes made by Python's
//! bcrypt (not by the code under test), reloads that apply and reloads that are refused.

use bms_tests::alerts_util::TestCa;
use bms_tests::{clean_command, poll_until, Daemon, DaemonOpts};
use nix::sys::signal::Signal;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bcrypt_hash(password: &str) -> String {
    let out = Command::new(bms_tests::alerts_util::python())
        .args([
            "-c",
            "import bcrypt,sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
            password,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python3 bcrypt (is python3-bcrypt installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn config(ca: &TestCa, cert: &Path, users: &[(&str, &str)]) -> String {
    let mut s = format!(
        "version = 1\n[metrics]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n[metrics.basic_auth_users]\n",
        cert.display(),
        ca.key.display()
    );
    for (u, h) in users {
        s.push_str(&format!("{u} = \"{h}\"\n"));
    }
    s
}

/// curl's HTTP status (000 when no HTTP answer came) and body.
fn curl(url: &str, ca: &Path, user: Option<&str>) -> (String, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"]);
    if let Some(u) = user {
        cmd.args(["-u", u]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

fn generation(d: &Daemon) -> u64 {
    d.status_json()["config"]["generation"].as_u64().unwrap()
}

#[test]
fn https_and_basic_auth_guard_the_endpoint_and_follow_reloads() {
    let top = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&top.path().join("ca"));
    std::fs::set_permissions(&ca.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let h1 = bcrypt_hash("first-pass");
    let cfg = top.path().join("bmsd.toml");
    std::fs::write(&cfg, config(&ca, &ca.cert, &[("prom", &h1)])).unwrap();
    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        ..Default::default()
    });
    let addr = d.status_json()["metrics_address"]
        .as_str()
        .unwrap()
        .to_owned();
    let https = format!("https://{addr}/metrics");

    let (code, body) = curl(&https, &ca.ca, Some("prom:first-pass"));
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("bms_build_info"), "{body}");
    // /healthz is guarded too.
    let healthz = format!("https://{addr}/healthz");
    assert_eq!(curl(&healthz, &ca.ca, None).0, "401");
    assert_eq!(curl(&healthz, &ca.ca, Some("prom:first-pass")).0, "200");
    // No, wrong or unknown credentials: 401 with the challenge, and no metrics.
    for user in [None, Some("prom:guess"), Some("root:first-pass")] {
        let (code, body) = curl(&https, &ca.ca, user);
        assert_eq!(code, "401", "{user:?}: {body}");
        assert!(!body.contains("bms_"), "{body}");
    }
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(&ca.ca)
        .arg(&https)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(head.contains("www-authenticate: basic"), "{head}");
    // Plain HTTP gets no answer from the TLS endpoint.
    let (code, _) = curl(
        &format!("http://{addr}/metrics"),
        &ca.ca,
        Some("prom:first-pass"),
    );
    assert_ne!(code, "200");

    // A reload with a new password applies it.
    let h2 = bcrypt_hash("second-pass");
    std::fs::write(&cfg, config(&ca, &ca.cert, &[("prom", &h2)])).unwrap();
    d.signal(Signal::SIGHUP);
    poll_until(Duration::from_secs(10), "generation 2", || {
        (generation(&d) == 2).then_some(())
    });
    assert_eq!(curl(&https, &ca.ca, Some("prom:first-pass")).0, "401");
    assert_eq!(curl(&https, &ca.ca, Some("prom:second-pass")).0, "200");

    // A reload naming a missing certificate is refused; the endpoint keeps serving.
    std::fs::write(
        &cfg,
        config(&ca, &top.path().join("gone.pem"), &[("prom", &h1)]),
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    poll_until(Duration::from_secs(10), "the rejection in the log", || {
        d.log().contains("new configuration rejected").then_some(())
    });
    assert!(d.log().contains("tls_cert_file"), "{}", d.log());
    assert_eq!(generation(&d), 2);
    assert_eq!(curl(&https, &ca.ca, Some("prom:second-pass")).0, "200");
    // The hashes never reach the log.
    let log = d.log();
    assert!(
        !log.contains(&h1) && !log.contains(&h2),
        "a hash in the log"
    );
}

#[test]
fn unsafe_or_broken_web_options_are_refused_naming_the_key() {
    let top = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&top.path().join("ca"));
    let cfg = top.path().join("bmsd.toml");
    let check = |text: &str| {
        std::fs::write(&cfg, text).unwrap();
        let out = clean_command(bms_tests::bin("bmsd"))
            .arg("--check-config")
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A key that others may read.
    std::fs::set_permissions(&ca.key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = check(&config(&ca, &ca.cert, &[]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("metrics") && err.contains("readable by others") && err.contains("chmod 600"),
        "{err}"
    );
    std::fs::set_permissions(&ca.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A certificate that is not the key's.
    let (code, err) = check(&config(&ca, &ca.ca, &[]));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("tls_cert_file"), "{err}");
    // A password where a hash belongs: refused, and not repeated.
    let (code, err) = check(&config(&ca, &ca.cert, &[("prom", "hunter2-plain")]));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("not a bcrypt hash") && !err.contains("hunter2"),
        "{err}"
    );
    // One TLS file without the other.
    let (code, err) = check(&format!(
        "version = 1\n[metrics]\ntls_cert_file = \"{}\"\n",
        ca.cert.display()
    ));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("without tls_key_file"), "{err}");
    // The good table passes.
    let (code, err) = check(&config(&ca, &ca.cert, &[("prom", &bcrypt_hash("x"))]));
    assert_eq!(code, Some(0), "{err}");
}
