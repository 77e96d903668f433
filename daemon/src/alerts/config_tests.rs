//! Tests of the `[alerts]` section (daemon/src/alerts/config.rs).
use super::*;

fn parse(text: &str) -> Result<AlertsConfig, String> {
    toml::from_str::<AlertsFile>(text)
        .map_err(|e| e.to_string())?
        .resolve()
}

#[test]
fn channels_routes_and_pings_parse() {
    let c = parse(
        r#"
renotify_hours = 2
[[channels]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
tls = "plain"
from = "bms@example.org"
to = ["a@example.org", "b@example.org"]
[[channels]]
name = "hook"
kind = "webhook"
url = "http://127.0.0.1:1/x"
secret = "k"
[[routes]]
channels = ["hook"]
kinds = ["run_failed"]
min_severity = "critical"
[[pings]]
job = "home"
url = "http://127.0.0.1:1/p"
"#,
    )
    .unwrap();
    assert_eq!(c.renotify, Duration::from_secs(7200));
    let f = parse("renotify_hours = 0.5\ngive_up_hours = 0.0001\n").unwrap();
    assert_eq!(f.renotify, Duration::from_secs(1800));
    assert_eq!(f.give_up, Duration::from_secs(1));
    assert_eq!(
        parse("renotify_hours = 0\n").unwrap().renotify,
        Duration::ZERO
    );
    let e = parse("give_up_hours = -1\n").unwrap_err();
    assert!(e.contains("give_up_hours"), "{e}");
    assert_eq!(c.route("run_failed", "critical", Some("x")), ["hook"]);
    assert!(c.route("run_partial", "warning", Some("x")).is_empty());
    assert!(c.channel("ping:home").is_some());
    assert!(!format!("{c:?}").contains("http://127.0.0.1:1/x"));
    let sum = c.summary();
    assert!(
        sum.contains("hook (webhook http://127.0.0.1:1/***, signed)")
            && sum
                .contains("mail (email smtp://127.0.0.1:25 plain, to a@example.org b@example.org)")
            && sum.contains("ping:home (ping http://127.0.0.1:1/***)"),
        "{sum}"
    );
}

#[test]
fn unsafe_or_incomplete_channels_are_refused() {
    let e = parse("[[channels]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"mail.example.org\"\ntls = \"plain\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\n").unwrap_err();
    assert!(e.contains("unencrypted"), "{e}");
    let e = parse("[[channels]]\nname = \"t\"\nkind = \"teams\"\n").unwrap_err();
    assert!(e.contains("url_file"), "{e}");
    let e = parse("[[routes]]\nchannels = [\"nope\"]\n").unwrap_err();
    assert!(e.contains("not defined"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "hunter2").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = parse(&format!(
        "[[channels]]\nname = \"w\"\nkind = \"webhook\"\nurl_file = \"{}\"\n",
        f.display()
    ))
    .unwrap_err();
    assert!(e.contains("chmod 600") && !e.contains("hunter2"), "{e}");
}
