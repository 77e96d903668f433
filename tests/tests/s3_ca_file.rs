//! S3 targets over TLS with a private CA (docs/s3.md "TLS"), through the real bmsd and bmsctl
//! against moto behind a TLS front on loopback: without `--ca-file` the pre-flight and a run fail
//! naming the certificate problem; a CA file that is missing, not PEM or of another CA is refused
//! naming the file or the certificate; with the right one backup, verify and restore work. And
//! the S3 tuning options (`--s3-parallel`, `--s3-part-size`) are stored, shown, bounds-checked
//! and reset with 0.

use bms_tests::runner_util::*;
use bms_tests::s3_util::Moto;
use bms_tests::tls_front::{fixtures, TlsFront};
use bms_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";
const ACCESS: &str = "AKIATESTBMS0001";
const SECRET: &str = "s3cret-Tls-Okapi-4410-do-not-leak";
const BUCKET: &str = "bms-tls";

fn json(d: &Daemon, args: &[&str]) -> Value {
    let out = d.ctl_cmd().arg("--json").args(args).output().unwrap();
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs the job, waits for it; its final record.
fn run(d: &Daemon, job: &str) -> Value {
    let id = json(d, &["job", "run", job])["id"].as_i64().unwrap();
    d.wait_run_final(id, Duration::from_secs(300))
}

#[test]
fn ca_file_makes_a_private_ca_endpoint_work_and_bad_ones_are_refused_naming_the_file() {
    let temp_dir = tempfile::Builder::new()
        .prefix("bms-s3tls-")
        .tempdir()
        .unwrap();
    let temp = temp_dir.path().to_owned();
    let moto = Moto::start(&temp);
    let front = TlsFront::start(moto.port);
    bms_s3::S3Store::new(bms_s3::Config::new(
        &moto.url(),
        BUCKET,
        "",
        bms_s3::Credentials::new(ACCESS, SECRET, None),
    ))
    .unwrap()
    .create_bucket()
    .unwrap();
    let creds = temp.join("s3.credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = Daemon::start_with(DaemonOpts {
        dir: Some(temp.clone()),
        ..Default::default()
    });
    let src = d.dir.join("src");
    write_noise_tree(&src, 2, 3, 41);
    write_small_tree(&src.join("small"));

    let url = front.url();
    let t = json(
        &d,
        &[
            "target",
            "add",
            "tls",
            "--kind",
            "s3",
            "--url",
            &url,
            "--bucket",
            BUCKET,
            "--prefix",
            "host1",
            "--credentials-file",
            creds.to_str().unwrap(),
        ],
    );
    assert!(t.get("ca_file").is_none(), "{t}");

    // Without the CA: the check fails naming the certificate problem and what to do.
    let out = d.ctl(["target", "check", "tls"]);
    assert_fails(&out, 1, "failed its check: unreachable");
    let text = stdout(&out);
    assert!(
        text.contains("certificate") && text.contains("--ca-file"),
        "{text}"
    );
    json(
        &d,
        &[
            "job",
            "add",
            "j",
            "--source",
            src.to_str().unwrap(),
            "--target",
            "tls",
            "--schedule",
            NEVER,
        ],
    );
    let failed = run(&d, "j");
    assert_eq!(failed["run"]["state"], "failed", "{failed}");
    assert!(
        failed.to_string().contains("certificate"),
        "the run names the certificate problem: {failed}"
    );
    assert!(d.snapshots("j", Some("tls")).is_empty());

    // CA files that do not help: each refused at the check, naming the file or the problem.
    let garbage = temp.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let broken = temp.join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let missing = temp.join("missing.pem");
    let other = fixtures().join("other-ca.pem");
    for (file, state, words) in [
        (&missing, "error", "No such file"),
        (&garbage, "error", "no certificate in it"),
        (&broken, "error", "broken.pem"),
        (&other, "unreachable", "certificate"),
    ] {
        let f = file.to_str().unwrap();
        let e = json(&d, &["target", "edit", "tls", "--ca-file", f]);
        assert_eq!(e["ca_file"], f, "{e}");
        let out = d.ctl(["target", "check", "tls"]);
        assert_fails(&out, 1, &format!("failed its check: {state}"));
        let text = stdout(&out);
        assert!(text.contains(words), "{f}: {text}");
        if file != &other {
            assert!(text.contains(f), "the message names the file: {text}");
        }
    }
    let failed = run(&d, "j");
    assert_eq!(failed["run"]["state"], "failed", "{failed}");

    // The CA that signed the endpoint's certificate: check, backup, verify, restore.
    let ca = fixtures().join("ca.pem");
    json(
        &d,
        &["target", "edit", "tls", "--ca-file", ca.to_str().unwrap()],
    );
    let check = json(&d, &["target", "check", "tls"]);
    assert_eq!(check["ok"], true, "{check}");
    let shown = stdout(&d.ctl(["target", "show", "tls"]));
    assert!(shown.contains(ca.to_str().unwrap()), "{shown}");
    let done = run(&d, "j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", d.log());
    let q = json(
        &d,
        &[
            "verify",
            "--job",
            "j",
            "--target",
            "tls",
            "--read-data",
            "100",
        ],
    );
    for r in q["runs"].as_array().unwrap() {
        let v = d.wait_run_final(r["id"].as_i64().unwrap(), Duration::from_secs(300));
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    let snaps = d.snapshots("j", Some("tls"));
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let to = d.dir.join("restored");
    json(
        &d,
        &[
            "restore",
            snaps[0]["id"].as_str().unwrap(),
            "--target",
            "tls",
            "--to",
            to.to_str().unwrap(),
        ],
    );
    assert_trees_equal(&src, &to.join(src.strip_prefix("/").unwrap()));

    // "" clears the CA file: the endpoint is untrusted again.
    let e = json(&d, &["target", "edit", "tls", "--ca-file", ""]);
    assert!(e.get("ca_file").is_none(), "{e}");
    assert_fails(
        &d.ctl(["target", "check", "tls"]),
        1,
        "failed its check: unreachable",
    );
}

#[test]
fn s3_parallel_and_part_size_are_stored_shown_bounded_and_reset() {
    let d = Daemon::start();
    let add = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "target",
            "add",
            name,
            "--kind",
            "s3",
            "--url",
            "http://127.0.0.1:9",
            "--bucket",
            "bkt",
        ];
        args.extend(extra);
        d.ctl(args)
    };
    assert_fails(
        &add("p0", &["--s3-parallel", "65"]),
        2,
        "s3_parallel 65 is out of range: give 1 to 64",
    );
    assert_fails(
        &add("p1", &["--s3-part-size", "1MiB"]),
        2,
        "give 5MiB to 512MiB",
    );
    assert_fails(
        &d.ctl([
            "target",
            "add",
            "disk1",
            "--path",
            "/tmp",
            "--s3-parallel",
            "4",
        ]),
        2,
        "applies to s3 targets only",
    );
    let out = add("tuned", &["--s3-parallel", "16", "--s3-part-size", "32MiB"]);
    assert_ok(&out);
    let t = json(&d, &["target", "show", "tuned"]);
    assert_eq!(t["s3_parallel"], 16, "{t}");
    assert_eq!(t["s3_part_size"], 32u64 << 20, "{t}");
    let shown = stdout(&d.ctl(["target", "show", "tuned"]));
    assert!(
        shown.contains("16 requests") && shown.contains("32.0 MiB"),
        "{shown}"
    );
    // 0 is back to the default.
    let t = json(
        &d,
        &[
            "target",
            "edit",
            "tuned",
            "--s3-parallel",
            "0",
            "--s3-part-size",
            "0",
        ],
    );
    assert!(
        t.get("s3_parallel").is_none() && t.get("s3_part_size").is_none(),
        "{t}"
    );
    let shown = stdout(&d.ctl(["target", "show", "tuned"]));
    assert!(
        shown.contains("8 requests (default)") && shown.contains("16 MiB (default)"),
        "{shown}"
    );
}
