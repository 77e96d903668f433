//! Scheduled reports through the real bmsd (docs/reports.md, "Scheduled reports"): a
//! `[[reports]]` entry due every two seconds writes its forms into a directory bmsd creates
//! (mode 0700, files 0600, no temp files left, names with the period), with the same CSV as
//! `bmsctl report` for that period, and mails them through an alert e-mail channel to a real
//! SMTP server (aiosmtpd): the HTML report as the body, text as its alternative, the other forms
//! attached. A directory whose parent is missing and an SMTP server that is down raise a
//! `report_failed` alert naming the cause, bmsd goes on, and a report that works again resolves
//! its alert. An entry naming an unknown channel is refused with the key and the reason.

use bms_tests::alerts_util::*;
use bms_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(40);

/// The report files in `dir` with extension `ext`, sorted (oldest period first).
fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn report_alert(d: &Daemon, name: &str) -> Option<Value> {
    alerts(d)
        .into_iter()
        .find(|a| a["key"] == format!("report_failed:{name}"))
}

#[test]
fn scheduled_reports_are_written_and_mailed_and_failures_raise_alerts() {
    let temp = tempfile::Builder::new()
        .prefix("bms-reports-")
        .tempdir()
        .unwrap();
    let dir = temp.path().to_owned();
    let smtp = SmtpServer::start(&dir.join("smtp"), None, "bms", "unused");
    let down_port = free_port();
    let out = dir.join("reports");
    let lost_parent = dir.join("not-mounted");
    let config = format!(
        r#"version = 1

[alerts]
[[alerts.channels]]
name = "mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "plain"
from = "bms <bms@example.org>"
to = ["ops@example.org"]

[[alerts.channels]]
name = "down"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {down_port}
tls = "plain"
from = "bms@example.org"
to = ["ops@example.org"]

# Alerts go to "mail" only, and only those of runs: the mails seen here are the reports.
[[alerts.routes]]
channels = ["mail"]
kinds = ["run_failed"]

[[reports]]
name = "ops"
calendar = "*:*:0/2"
formats = ["html", "csv", "json"]
jobs = ["home"]
directory = "{out}"
email = "mail"
to = ["boss@example.org"]

[[reports]]
name = "lost"
calendar = "*:*:0/2"
formats = ["csv"]
directory = "{lost}"

[[reports]]
name = "unsent"
calendar = "*:*:0/2"
email = "down"
"#,
        port = smtp.port,
        out = out.display(),
        lost = lost_parent.join("reports").display(),
    );
    let cfg_file = write_file(&dir, "bmsd.toml", &config);

    // --check-config names each report, its calendar, period (a day: the calendar's gap is
    // shorter), forms and destinations.
    let check = clean_command(bin("bmsd"))
        .args(["--check-config", "--config"])
        .arg(&cfg_file)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));
    let text = stdout(&check);
    assert!(
        text.contains(&format!(
            "scheduled reports: ops (*:*:0/2, day html+csv+json, to {}, mail via mail)",
            out.display()
        )),
        "{text}"
    );

    let d = Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg_file.display().to_string()],
        dir: Some(dir.clone()),
        ..Default::default()
    });
    let src = dir.join("src");
    runner_util::write_small_tree(&src);
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "home",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
    ]);
    assert_eq!(run_once(&d, "home")["state"], "succeeded");

    // A report made after the run: its JSON lists the run.
    let json_file = poll_until(WAIT, "a report listing the run", || {
        files(&out, "json").into_iter().rev().find(|p| {
            std::fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .is_some_and(|v| v["jobs"][0]["job"] == "home" && v["jobs"][0]["runs"] == 1)
        })
    });
    assert_eq!(mode(&out), 0o700, "report directory");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(report["jobs"].as_array().unwrap().len(), 1, "{report}");
    let (since, until) = (
        report["since"].as_str().unwrap().to_owned(),
        report["until"].as_str().unwrap().to_owned(),
    );
    let s: jiff::Timestamp = since.parse().unwrap();
    let u: jiff::Timestamp = until.parse().unwrap();
    assert_eq!(
        u.as_second() - s.as_second(),
        86400,
        "a day's report: {report}"
    );
    assert_eq!(
        u.as_second() % 2,
        0,
        "the period ends at the elapse: {until}"
    );
    // The name carries the period; every form of it is there, 0600.
    let stamp = |t: jiff::Timestamp| t.strftime("%Y%m%dT%H%M%SZ").to_string();
    let base = format!("ops_{}_{}", stamp(s), stamp(u));
    assert_eq!(
        json_file.file_name().unwrap().to_str().unwrap(),
        format!("{base}.json")
    );
    for ext in ["html", "csv", "json"] {
        let f = out.join(format!("{base}.{ext}"));
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
    for e in std::fs::read_dir(&out).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with('.'), "temp file left: {name}");
    }
    // The same code as `bmsctl report`: the CSV of the period is the one bmsctl prints.
    let csv_file = std::fs::read_to_string(out.join(format!("{base}.csv"))).unwrap();
    let ctl = d.ctl([
        "report", "--since", &since, "--until", &until, "--job", "home", "--format", "csv",
    ]);
    assert_ok(&ctl);
    assert_eq!(csv_file, stdout(&ctl));
    assert!(csv_file.starts_with(bms_proto::report::CSV_HEADER));
    let html = std::fs::read_to_string(out.join(format!("{base}.html"))).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<svg"));

    // The mail of the same report: to the report's recipients, HTML body with a text
    // alternative, CSV and JSON attached under the files' names.
    let subject_part = format!(
        "report ops, {} to {}",
        s.strftime("%Y-%m-%d %H:%M UTC"),
        u.strftime("%Y-%m-%d %H:%M UTC")
    );
    let mail = poll_until(WAIT, "the report's mail", || {
        smtp.messages().into_iter().find(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|x| x.contains(&subject_part))
                && m["attachments"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["filename"] == format!("{base}.json")))
        })
    });
    assert_eq!(
        mail["rcpt_tos"],
        serde_json::json!(["boss@example.org"]),
        "{mail}"
    );
    assert_eq!(mail["content_type"], "multipart/mixed", "{mail}");
    assert!(mail["html"].as_str().unwrap().contains("<svg"), "{mail}");
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("home") && text.contains("report from"),
        "{text}"
    );
    let atts = mail["attachments"].as_array().unwrap();
    let names: Vec<&str> = atts
        .iter()
        .map(|a| a["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [format!("{base}.csv"), format!("{base}.json")],
        "{mail}"
    );
    assert_eq!(atts[0]["content_type"], "text/csv");
    let att_json: Value = serde_json::from_str(atts[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(att_json["jobs"], report["jobs"]);

    // Failures: an alert each, naming the cause; bmsd goes on.
    let lost = poll_until(WAIT, "the alert of the lost directory", || {
        report_alert(&d, "lost")
    });
    assert_eq!(lost["kind"], "report_failed");
    assert_eq!(lost["severity"], "warning");
    let msg = lost["message"].as_str().unwrap();
    assert!(
        msg.contains("does not exist")
            && msg.contains(&lost_parent.join("reports").display().to_string()),
        "{msg}"
    );
    let unsent = poll_until(WAIT, "the alert of the SMTP server that is down", || {
        report_alert(&d, "unsent")
    });
    let msg = unsent["message"].as_str().unwrap();
    assert!(
        msg.contains("cannot mail it via channel 'down'")
            && msg.contains(&format!("127.0.0.1:{down_port}")),
        "{msg}"
    );
    assert!(d.log().contains("scheduled report failed"), "{}", d.log());
    assert_ok(&d.ctl(["status"]));

    // The file system comes back: the next report is written and resolves its alert.
    std::fs::create_dir(&lost_parent).unwrap();
    let id = lost["id"].as_i64().unwrap().to_string();
    poll_until(WAIT, "the lost report's alert resolved", || {
        (d.ctl_json(["alert", "show", &id])["alert"]["state"] == "resolved").then_some(())
    });
    let lost_files = files(&lost_parent.join("reports"), "csv");
    assert!(!lost_files.is_empty());
    assert!(lost_files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("lost_"));
    assert_eq!(mode(&lost_parent.join("reports")), 0o700);
}

#[test]
fn a_report_naming_an_unknown_channel_or_no_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (body, want) in [
        (
            "[[reports]]\nname = \"w\"\ncalendar = \"weekly\"\nemail = \"nobody\"\n",
            "email = 'nobody' names no channel",
        ),
        (
            "[[reports]]\nname = \"w\"\ncalendar = \"weekly\"\n",
            "needs directory",
        ),
        (
            "[[reports]]\nname = \"w\"\ncalendar = \"every tuesday\"\ndirectory = \"/srv/r\"\n",
            "calendar 'every tuesday'",
        ),
    ] {
        let f = write_file(dir.path(), "bmsd.toml", &format!("version = 1\n{body}"));
        let out = clean_command(bin("bmsd"))
            .args(["--check-config", "--config"])
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{body}");
        let err = stderr(&out);
        assert!(
            err.contains("key 'reports'") && err.contains(want) && err.contains("line 2"),
            "{body}: {err}"
        );
    }
}
