//! Alerts reach real receivers on loopback (docs/alerts.md): e-mail over STARTTLS with a test CA
//! and over plain SMTP (aiosmtpd), a Teams Workflows envelope and a signed generic webhook
//! (an HTTP server of the test), healthchecks-style pings in order; secrets never leak; repeats
//! deduplicate and one "resolved" notice follows the first success.

use bms_tests::alerts_util::*;
use bms_tests::poll_until;
use serde_json::Value;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-smtp-pa55word";
const HOOK_SECRET: &str = "hmac-key-0123456789";

#[test]
fn a_failure_mails_over_starttls_posts_teams_and_signed_webhook_pings_and_leaks_no_secret() {
    let top = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&top.path().join("ca"));
    let smtp = SmtpServer::start(&top.path().join("smtp"), Some(&ca), "bms", PASSWORD);
    let http = HttpReceiver::start();
    let secrets = top.path();
    let pw = secret_file(secrets, "smtp.pw", PASSWORD);
    let teams_url = http.url("/teams/workflows/abcdef?sig=TEAMS-SIG-SECRET");
    let hook_url = http.url("/hook/HOOK-PATH-SECRET");
    let teams_file = secret_file(secrets, "teams.url", &teams_url);
    let hook_file = secret_file(secrets, "hook.url", &hook_url);
    let key_file = secret_file(secrets, "hook.key", HOOK_SECRET);
    let ping_url = http.url("/ping/uuid-1");
    let cfg = format!(
        r#"
[[alerts.channels]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "starttls"
tls_ca_file = "{ca}"
username = "bms"
password_file = "{pw}"
from = "bms <bms@example.org>"
to = ["ops@example.org", "oncall@example.org"]

[[alerts.channels]]
name = "teams"
kind = "teams"
url_file = "{teams}"

[[alerts.channels]]
name = "hook"
kind = "webhook"
url_file = "{hook}"
secret_file = "{key}"

[[alerts.pings]]
job = "home"
url = "{ping_url}"
"#,
        port = smtp.port,
        ca = ca.ca.display(),
        pw = pw.display(),
        teams = teams_file.display(),
        hook = hook_file.display(),
        key = key_file.display(),
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);

    set_failing(&d, true);
    let run = run_once(&d, "home");
    assert_eq!(run["state"], "failed", "{run}");

    // E-mail: STARTTLS, authenticated, both recipients, subject with host, job and state, both parts.
    let mails = poll_until(WAIT, "the failure e-mail", || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    let m = &mails[0];
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth"], true, "{m}");
    let mut rcpt: Vec<&str> = m["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    rcpt.sort();
    assert_eq!(rcpt, ["oncall@example.org", "ops@example.org"]);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.contains(&host) && subject.contains("job home") && subject.contains("OPEN"),
        "{subject}"
    );
    assert!(subject.contains("run failed"), "{subject}");
    assert_eq!(m["content_type"], "multipart/alternative", "{m}");
    let text = m["text"].as_str().expect("text part");
    let html = m["html"].as_str().expect("html part");
    assert!(text.contains("backup of job 'home' failed"), "{text}");
    assert!(html.contains("<table>") && html.contains("home"), "{html}");

    // Teams: a valid Workflows envelope with an Adaptive Card ≤ 1.4.
    let teams = poll_until(WAIT, "the Teams post", || {
        let r = http.at("/teams/");
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(teams[0].method, "POST");
    assert!(teams[0].path.contains("sig=TEAMS-SIG-SECRET"));
    let env = teams[0].json();
    assert_teams_envelope(&env);
    assert!(env.to_string().contains("home"));

    // Webhook: the documented payload, signed with the secret.
    let hooks = poll_until(WAIT, "the webhook post", || {
        let r = http.at("/hook/");
        (!r.is_empty()).then_some(r)
    });
    let h = &hooks[0];
    let sig = h.header("X-Bms-Signature").expect("signature header");
    assert_eq!(sig, hmac_sha256(HOOK_SECRET, &h.body));
    assert_ne!(sig, hmac_sha256("wrong key", &h.body));
    let body = h.json();
    assert_eq!(body["schema"], "bms.alert.v1");
    assert_eq!(body["event"], "raised");
    assert_eq!(body["alert"]["kind"], "run_failed");
    assert_eq!(body["alert"]["job"], "home");
    assert_eq!(body["alert"]["severity"], "critical");

    // Pings: start then fail; then a good run pings start then success.
    set_failing(&d, false);
    let ok = run_once(&d, "home");
    assert_eq!(ok["state"], "succeeded", "{ok}");
    let pings = poll_until(WAIT, "four pings", || {
        let p = http.at("/ping/");
        (p.len() >= 4).then_some(p)
    });
    let paths: Vec<&str> = pings.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/ping/uuid-1/start",
            "/ping/uuid-1/fail",
            "/ping/uuid-1/start",
            "/ping/uuid-1"
        ]
    );

    // Secrets appear nowhere: log, alert show --json, status --json, the config dump.
    let alert_id = alerts(&d)[0]["id"].as_i64().unwrap();
    let show = d.ctl(["--json", "alert", "show", &alert_id.to_string()]);
    bms_tests::assert_ok(&show);
    let status = d.ctl(["--json", "status"]);
    let dump = bms_tests::clean_command(bms_tests::bin("bmsd"))
        .args(["--check-config", "--config"])
        .arg(d.dir.join("bmsd.toml"))
        .output()
        .unwrap();
    assert!(dump.status.success(), "{}", bms_tests::stderr(&dump));
    let dump_text = bms_tests::stdout(&dump);
    // Each channel's target, redacted.
    for want in [
        format!(
            "mail (email smtp://127.0.0.1:{} starttls, to ops@example.org oncall@example.org, user bms, password ***)",
            smtp.port
        ),
        format!("teams (teams http://127.0.0.1:{}/***)", http.port),
        format!("hook (webhook http://127.0.0.1:{}/***, signed)", http.port),
        format!("ping:home (ping http://127.0.0.1:{}/***)", http.port),
    ] {
        assert!(dump_text.contains(&want), "no `{want}` in {dump_text}");
    }
    let test = d.ctl(["--json", "alert", "test", "hook"]);
    bms_tests::assert_ok(&test);
    let log = d.log();
    for (what, text) in [
        ("log", log.as_str()),
        ("alert show", &bms_tests::stdout(&show)),
        ("status", &bms_tests::stdout(&status)),
        ("config dump", &dump_text),
        ("alert test", &bms_tests::stdout(&test)),
    ] {
        for secret in [
            PASSWORD,
            "TEAMS-SIG-SECRET",
            "HOOK-PATH-SECRET",
            HOOK_SECRET,
            "uuid-1",
        ] {
            assert!(
                !text.contains(secret),
                "{what} shows secret {secret}:\n{text}"
            );
        }
    }
    // The alert records the delivered notifications.
    let detail: Value = serde_json::from_slice(&show.stdout).unwrap();
    let channels: Vec<&str> = detail["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["channel"].as_str().unwrap())
        .collect();
    assert!(
        channels.contains(&"mail") && channels.contains(&"teams") && channels.contains(&"hook")
    );
}

#[test]
fn a_failure_mails_over_implicit_tls_with_the_test_ca_and_a_wrong_ca_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&top.path().join("ca"));
    let other_ca = TestCa::new(&top.path().join("other-ca"));
    let smtp = SmtpServer::start_implicit(&top.path().join("smtp"), &ca, "bms", PASSWORD);
    let pw = secret_file(top.path(), "smtp.pw", PASSWORD);
    let channel = |name: &str, ca: &TestCa| {
        format!(
            "[[channels]]\nname = \"{name}\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {}\ntls = \"tls\"\ntls_ca_file = \"{}\"\nusername = \"bms\"\n\
             password_file = \"{}\"\nfrom = \"bms@example.org\"\nto = [\"ops@example.org\"]\n",
            smtp.port,
            ca.ca.display(),
            pw.display()
        )
    };
    let cfg = format!("{}{}", channel("mail", &ca), channel("wrongca", &other_ca));
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    set_failing(&d, true);
    assert_eq!(run_once(&d, "home")["state"], "failed");
    let mails = poll_until(WAIT, "the e-mail over implicit TLS", || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    let m = &mails[0];
    assert_eq!(m["tls"], true, "{m}");
    assert_eq!(m["auth"], true, "{m}");
    assert_eq!(m["rcpt_tos"][0], "ops@example.org");
    assert!(
        m["subject"].as_str().unwrap().contains("run failed OPEN"),
        "{m}"
    );
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("backup of job 'home' failed"));
    assert!(m["html"].as_str().unwrap().contains("home"));
    // The same server under a CA bmsd does not trust: the attempt fails on the certificate.
    let id = alerts(&d)[0]["id"].as_i64().unwrap();
    let tried = poll_until(WAIT, "an attempt of the channel with the wrong CA", || {
        let v = d.ctl_json(["alert", "show", &id.to_string()]);
        v["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["channel"] == "wrongca" && !n["attempts"].as_array().unwrap().is_empty())
            .cloned()
    });
    let a = &tried["attempts"][0];
    assert_eq!(a["ok"], false, "{a}");
    assert!(
        a["detail"].as_str().unwrap().contains("SMTP 127.0.0.1"),
        "{a}"
    );
    assert_eq!(
        smtp.messages().len(),
        1,
        "mail went through an untrusted TLS"
    );
    assert!(!d.log().contains(PASSWORD));
}

#[test]
fn ten_failures_make_one_alert_and_one_notice_then_one_resolved_notice_over_plain_smtp() {
    let top = tempfile::tempdir().unwrap();
    let smtp = SmtpServer::start(&top.path().join("smtp"), None, "-", "-");
    let http = HttpReceiver::start();
    let cfg = format!(
        r#"
[[channels]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "plain"
from = "bms@example.org"
to = ["ops@example.org"]

[[channels]]
name = "hook"
kind = "webhook"
url = "{}"
"#,
        smtp.port,
        http.url("/hook")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    set_failing(&d, true);
    for _ in 0..10 {
        assert_eq!(run_once(&d, "home")["state"], "failed");
    }
    let a = poll_until(WAIT, "the alert counted 10", || {
        let a = alerts(&d);
        (a.len() == 1 && a[0]["count"] == 10).then_some(a)
    });
    assert_eq!(a[0]["state"], "open");
    assert_eq!(a[0]["kind"], "run_failed");
    let id = a[0]["id"].as_i64().unwrap();
    let open = d.ctl_json(["alert", "list", "--state", "open"]);
    assert_eq!(open["alerts"].as_array().unwrap().len(), 1);

    set_failing(&d, false);
    assert_eq!(run_once(&d, "home")["state"], "succeeded");
    // Both notices of each channel delivered (raised, resolved), and nothing else.
    let detail = poll_until(WAIT, "raised and resolved delivered", || {
        let v = d.ctl_json(["alert", "show", &id.to_string()]);
        let n = v["notifications"].as_array().unwrap().clone();
        (n.len() == 4 && n.iter().all(|n| n["state"] == "delivered")).then_some(v)
    });
    assert_eq!(detail["alert"]["state"], "resolved");
    assert_eq!(detail["alert"]["count"], 10);
    let mails = smtp.messages();
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[0]["tls"], false);
    assert!(mails[0]["subject"].as_str().unwrap().contains("OPEN"));
    assert!(
        mails[1]["subject"].as_str().unwrap().contains("RESOLVED"),
        "{}",
        mails[1]
    );
    assert!(mails[1]["text"].as_str().unwrap().contains("home"));
    assert!(mails[1]["html"].as_str().unwrap().contains("RESOLVED"));
    let hooks = http.at("/hook");
    let events: Vec<String> = hooks
        .iter()
        .map(|h| h.json()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["raised", "resolved"]);
    // Another success sends nothing more; a later failure is a new alert. The router handles
    // events in order, so once the new alert is there the success before it was handled.
    assert_eq!(run_once(&d, "home")["state"], "succeeded");
    set_failing(&d, true);
    assert_eq!(run_once(&d, "home")["state"], "failed");
    let now = poll_until(WAIT, "a second alert", || {
        let a = alerts(&d);
        (a.len() == 2).then_some(a)
    });
    assert_ne!(now[0]["id"].as_i64().unwrap(), id);
    let again = d.ctl_json(["alert", "show", &id.to_string()]);
    assert_eq!(again["notifications"].as_array().unwrap().len(), 4);
}

#[test]
fn unsafe_channels_and_exposed_secret_files_are_refused_at_start_and_on_reload() {
    let top = tempfile::tempdir().unwrap();
    let url = top.path().join("hook.url");
    std::fs::write(&url, "http://127.0.0.1:9/EXPOSED-SECRET").unwrap();
    let bad = bms_tests::write_file(
        top.path(),
        "bad.toml",
        &format!(
            "version = 1\n[alerts]\n[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl_file = \"{}\"\n",
            url.display()
        ),
    );
    let out = bms_tests::clean_command(bms_tests::bin("bmsd"))
        .args(["--check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = bms_tests::stderr(&out);
    assert!(err.contains("chmod 600") && err.contains("alerts"), "{err}");
    assert!(!err.contains("EXPOSED-SECRET"), "{err}");

    let http = HttpReceiver::start();
    let cfg = format!(
        "[[channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        http.url("/ok")
    );
    let (d, _temp) = daemon_with_alerts(&cfg, "home", &[]);
    std::fs::write(
        d.dir.join("bmsd.toml"),
        "version = 1\n[alerts]\n[[alerts.channels]]\nname = \"mail\"\nkind = \"email\"\n\
         smtp_host = \"mail.example.org\"\ntls = \"plain\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\n",
    )
    .unwrap();
    d.signal(nix::sys::signal::Signal::SIGHUP);
    poll_until(WAIT, "the reload refused", || {
        d.log().contains("new configuration rejected").then_some(())
    });
    assert!(d.log().contains("unencrypted"), "{}", d.log());
    // The previous channels stay in force.
    let ok = d.ctl_json(["alert", "test", "hook"]);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(http.at("/ok").len(), 1);
}
