//! S3 Object Lock as the immutability of an S3 target (docs/s3.md "Object Lock"), through the
//! real bmsd and bmsctl against moto on loopback: `--immutable-days` is refused on a bucket
//! without Object Lock or with a default retention and accepted on one with it; a backup copied
//! to the S3 target gives every snapshot, index file and pack a COMPLIANCE retention until the
//! snapshot's time plus the immutable days, and the next backup extends the retention of what it
//! still needs; deleting a locked object version through the S3 API with bmsd's own credentials
//! fails; forget and prune refuse with the retain-until date; `bmsctl compliance` counts the copy
//! as offsite, media type object, immutable until that date; after the date forget and prune go
//! through and the bytes leave the bucket (no version or delete marker is left behind). A
//! governance target writes GOVERNANCE retentions, which a bypass can lift.
//!
//! moto enforces retention against the real clock, so the test shortens the immutable day with
//! the debug-build hook `BMS_TEST_IMMUTABLE_DAY_SECS` (docs/protocol.md "Test hooks") and waits
//! for the retain-until dates it read back from the bucket.

use bms_s3::{Config, Credentials, Req, S3Store};
use bms_tests::runner_util::*;
use bms_tests::s3_util::Moto;
use bms_tests::*;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const NEVER: &str = "2099-01-01 00:00:00";
const ACCESS: &str = "AKIATESTBMSLOCK0";
const SECRET: &str = "lock-secret-Okapi-3317";
const BUCKET: &str = "bms-locked";
/// Seconds an "immutable day" lasts in this test: long enough for the checks before expiry on a
/// loaded machine, short enough to wait for.
const DAY: u64 = 75;

fn store(moto: &Moto, bucket: &str, prefix: &str) -> S3Store {
    S3Store::new(Config::new(
        &moto.url(),
        bucket,
        prefix,
        Credentials::new(ACCESS, SECRET, None),
    ))
    .unwrap()
}

fn add_s3(
    d: &Daemon,
    moto: &Moto,
    creds: &Path,
    name: &str,
    bucket: &str,
    extra: &[&str],
) -> std::process::Output {
    let url = moto.url();
    let creds = creds.display().to_string();
    let mut args = vec![
        "target",
        "add",
        name,
        "--kind",
        "s3",
        "--url",
        &url,
        "--bucket",
        bucket,
        "--prefix",
        name,
        "--credentials-file",
        &creds,
        "--immutable-days",
        "1",
    ];
    args.extend_from_slice(extra);
    d.ctl(args)
}

fn backup(d: &Daemon, job: &str) -> Vec<Value> {
    let id = d.ctl_json(["job", "run", job])["id"].as_i64().unwrap();
    let done = d.wait_run_final(id, Duration::from_secs(300));
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", d.log());
    poll_until(Duration::from_secs(300), "the copies to end", || {
        let runs = d.ctl_json(["run", "list", "--job", job, "--limit", "100"]);
        let copies: Vec<Value> = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["parent_run"].as_i64() == Some(id))
            .cloned()
            .collect();
        let busy = copies
            .iter()
            .any(|r| matches!(r["state"].as_str(), Some("queued" | "running")));
        (!busy).then_some(copies)
    })
}

/// Every key under the store's prefix whose current version has a retention, with it.
fn retentions(s: &S3Store, prefix: &str) -> Vec<(String, bms_s3::Retention)> {
    let mut out = Vec::new();
    for v in s.list_versions(&format!("{prefix}/")).unwrap() {
        if v.latest && !v.delete_marker {
            if let Some(r) = s.retention_of(&v.key, None).unwrap() {
                out.push((v.key, r));
            }
        }
    }
    out
}

fn prune(d: &Daemon, target: &str) -> Value {
    let q = d.ctl_json(["prune", "--target", target]);
    let run = q["runs"][0]["id"].as_i64().expect("a prune run");
    let done = d.wait_run_final(run, Duration::from_secs(300));
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", d.log());
    done
}

fn snapshot_ids(d: &Daemon, job: &str, target: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = d
        .snapshots(job, Some(target))
        .iter()
        .map(|s| {
            (
                s["time"].as_str().unwrap_or_default().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn object_lock_keeps_s3_copies_until_their_retain_until_date_then_lets_the_bytes_go() {
    let temp = tempfile::Builder::new()
        .prefix("bms-s3lock-")
        .tempdir()
        .unwrap();
    let moto = Moto::start(temp.path());
    let creds: PathBuf = temp.path().join("s3.credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
    store(&moto, "bms-plain", "").create_bucket().unwrap();
    store(&moto, BUCKET, "").create_bucket_with(true).unwrap();
    // A bucket with Object Lock and a default retention rule.
    let defaulted = store(&moto, "bms-default", "");
    defaulted.create_bucket_with(true).unwrap();
    let rule = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule>\
                <DefaultRetention><Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention>\
                </Rule></ObjectLockConfiguration>";
    let admin = bms_s3::Client::new(Config::new(
        &moto.url(),
        "bms-default",
        "",
        Credentials::new(ACCESS, SECRET, None),
    ))
    .unwrap();
    admin
        .send(
            &Req::new(bms_s3::Method::PUT, None)
                .query("object-lock", "")
                .body(rule.as_bytes()),
        )
        .unwrap();

    std::fs::create_dir_all(temp.path().join("d")).unwrap();
    let d = Daemon::start_with(DaemonOpts {
        dir: Some(temp.path().join("d")),
        env: vec![("BMS_TEST_IMMUTABLE_DAY_SECS".into(), DAY.to_string())],
        ..Default::default()
    });

    // Refused with the reason: no Object Lock; a default retention. Accepted: Object Lock.
    let out = add_s3(&d, &moto, &creds, "plain", "bms-plain", &[]);
    assert_fails(
        &out,
        1,
        "bucket 'bms-plain' has no Object Lock configuration",
    );
    let out = add_s3(&d, &moto, &creds, "defaulted", "bms-default", &[]);
    assert_fails(&out, 1, "has a default retention (GOVERNANCE 1 days)");
    let out = add_s3(&d, &moto, &creds, "locked", BUCKET, &[]);
    assert_ok(&out);
    let shown = d.ctl_json(["target", "show", "locked"]);
    assert_eq!(shown["immutable_days"], 1, "{shown}");
    assert!(
        shown["supports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "immutability"),
        "{shown}"
    );
    assert!(stdout(&d.ctl(["target", "show", "locked"])).contains("object lock mode"));

    // The usual setup: a local disk primary, the S3 target the offsite copy.
    let disk = d.dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    d.ctl_json(["target", "add", "disk", "--path", disk.to_str().unwrap()]);
    let src = d.dir.join("src");
    write_small_tree(&src);
    let mut noise = vec![0u8; 2 << 20];
    xorshift_fill(&mut noise, 77);
    std::fs::write(src.join("gone.bin"), &noise).unwrap();
    d.ctl_json([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "disk",
        "--target",
        "locked",
        "--keep-last",
        "1",
    ]);
    let copies = backup(&d, "j");
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert_eq!(copies[0]["state"], "succeeded", "{copies:#?}\n{}", d.log());
    let direct = store(&moto, BUCKET, "locked");
    let first = retentions(&direct, "locked");
    assert!(
        first.iter().any(|(k, _)| k.contains("/snapshots/"))
            && first.iter().any(|(k, _)| k.contains("/packs/"))
            && first.iter().any(|(k, _)| k.contains("/index/")),
        "every snapshot, pack and index file has a retention: {first:#?}"
    );
    assert!(
        first.iter().all(|(_, r)| r.mode == "COMPLIANCE"),
        "{first:#?}"
    );
    assert!(
        !first
            .iter()
            .any(|(k, _)| k.ends_with("/config") || k.contains("/locks/") || k.contains("/keys/")),
        "the config and lock files stay mutable: {first:#?}"
    );

    // The next backup, a second later, extends what it still needs and no retention shrinks.
    let snap1 = snapshot_ids(&d, "j", "locked");
    assert_eq!(snap1.len(), 1);
    let (t1, id1) = snap1[0].clone();
    let t1: jiff::Timestamp = t1.parse().unwrap();
    poll_until(
        Duration::from_secs(10),
        "the clock to pass the first snapshot's second",
        || (jiff::Timestamp::now().as_second() > t1.as_second()).then_some(()),
    );
    std::fs::remove_file(src.join("gone.bin")).unwrap();
    std::fs::write(src.join("new.txt"), b"a second snapshot\n").unwrap();
    let copies = backup(&d, "j");
    assert_eq!(copies[0]["state"], "succeeded", "{copies:#?}\n{}", d.log());
    let second = retentions(&direct, "locked");
    let mut extended = 0;
    for (k, r) in &first {
        if let Some((_, r2)) = second.iter().find(|(k2, _)| k2 == k) {
            assert!(r2.until >= r.until, "the retention of {k} shrank");
            extended += usize::from(r2.until > r.until);
        }
    }
    assert!(
        extended > 0,
        "no retention was extended: {first:#?}\n{second:#?}"
    );

    // Deleting the locked version through the S3 API with the same credentials fails.
    let snap_key = format!("locked/snapshots/{id1}");
    let versions = direct.versions(&snap_key).unwrap();
    assert_eq!(versions.len(), 1, "{versions:?}");
    let e = direct
        .delete_version(&snap_key, &versions[0].id)
        .expect_err("a locked version cannot be deleted");
    assert_eq!(e.status(), Some(403), "{e:?}");
    assert_eq!(direct.versions(&snap_key).unwrap(), versions);

    // Forget and prune refuse, naming the retain-until date.
    let until1 = second
        .iter()
        .find(|(k, _)| *k == snap_key)
        .map(|(_, r)| r.until)
        .expect("the snapshot's retention");
    let date1 = bms_s3::s3_time(until1);
    assert!(
        SystemTime::now() < until1,
        "the machine is too slow for DAY={DAY}"
    );
    let out = d.ctl(["snapshot", "forget", &id1, "--target", "locked"]);
    assert_fails(&out, 1, &format!("immutable until {date1}"));
    let done = prune(&d, "locked");
    let log = done.to_string();
    assert!(log.contains(&format!("immutable until {date1}")), "{done}");
    assert_eq!(snapshot_ids(&d, "j", "locked").len(), 2);
    assert_eq!(direct.versions(&snap_key).unwrap(), versions);

    // Compliance: the S3 copy is offsite, media type object, immutable until its date.
    let (_, id2) = snapshot_ids(&d, "j", "locked")[1].clone();
    let until2 = second
        .iter()
        .find(|(k, _)| *k == format!("locked/snapshots/{id2}"))
        .map(|(_, r)| r.until)
        .expect("the second snapshot's retention");
    let out = d.ctl(["--json", "compliance", "j"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("compliance JSON");
    let copy = v["jobs"][0]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["target"] == "locked")
        .expect("the S3 copy's evidence")
        .clone();
    assert_eq!(copy["location"], "offsite", "{copy}");
    assert_eq!(copy["media"][0]["media_type"], "object", "{copy}");
    let evidence = copy["immutable_until"]
        .as_str()
        .expect("immutable until")
        .to_owned();
    let evidence_t: jiff::Timestamp = evidence.parse().unwrap();
    assert_eq!(
        SystemTime::from(evidence_t),
        until2,
        "the evidence is the retain-until date: {copy}"
    );
    let rule = v["jobs"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "immutable_or_offline")
        .expect("the immutable rule")
        .clone();
    assert_eq!(rule["verdict"], "pass", "{rule}");
    assert!(
        rule["reason"]
            .as_str()
            .unwrap()
            .contains("locked immutable until"),
        "{rule}"
    );
    let explain = stdout(&d.ctl(["compliance", "j", "--explain"]));
    assert!(explain.contains("locked immutable until"), "{explain}");

    // After the last retain-until date, forget and prune go through and the bytes leave.
    let last = retentions(&direct, "locked")
        .iter()
        .map(|(_, r)| r.until)
        .max()
        .unwrap();
    poll_until(
        Duration::from_secs(DAY * 3),
        "the retentions to pass",
        || (SystemTime::now() > last + Duration::from_secs(1)).then_some(()),
    );
    let bytes = |s: &S3Store| -> u64 {
        s.list_versions("locked/")
            .unwrap()
            .iter()
            .map(|v| v.size)
            .sum()
    };
    let before = bytes(&direct);
    assert_ok(&d.ctl(["snapshot", "forget", &id1, "--target", "locked"]));
    assert!(
        direct.versions(&snap_key).unwrap().is_empty(),
        "the forgotten snapshot left a version or delete marker"
    );
    prune(&d, "locked");
    let after = bytes(&direct);
    assert!(
        after + (1 << 20) < before,
        "prune did not remove the forgotten data: {before} -> {after} bytes"
    );
    let left = direct.list_versions("locked/").unwrap();
    assert!(
        left.iter().all(|v| v.latest && !v.delete_marker),
        "old versions or delete markers are left: {left:#?}"
    );
    // What is left is whole.
    let q = d.ctl_json([
        "verify",
        "--job",
        "j",
        "--target",
        "locked",
        "--read-data",
        "100",
    ]);
    let id = q["runs"][0]["id"].as_i64().expect("a verify run");
    let done = d.wait_run_final(id, Duration::from_secs(300));
    assert_eq!(done["run"]["state"], "succeeded", "{done}");

    // Governance: the retention mode is GOVERNANCE, and a bypass may delete (bms never does).
    let out = add_s3(
        &d,
        &moto,
        &creds,
        "gov",
        BUCKET,
        &["--object-lock-mode", "governance"],
    );
    assert_ok(&out);
    d.ctl_json([
        "job",
        "add",
        "g",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "gov",
    ]);
    assert_eq!(
        d.ctl_json(["target", "show", "gov"])["object_lock_mode"],
        "governance"
    );
    let export = stdout(&d.ctl(["job", "export", "g"]));
    assert!(
        export.contains("object_lock_mode = \"governance\""),
        "{export}"
    );
    let out = d.ctl([
        "target",
        "add",
        "d2",
        "--path",
        disk.to_str().unwrap(),
        "--object-lock-mode",
        "compliance",
    ]);
    assert_fails(&out, 2, "object_lock_mode applies to s3 targets only");
    backup(&d, "g");
    let gov = store(&moto, BUCKET, "gov");
    let locks = retentions(&gov, "gov");
    assert!(
        !locks.is_empty() && locks.iter().all(|(_, r)| r.mode == "GOVERNANCE"),
        "{locks:#?}"
    );
    let (key, _) = locks
        .iter()
        .find(|(k, _)| k.contains("/snapshots/"))
        .unwrap()
        .clone();
    let version = gov.versions(&key).unwrap()[0].id.clone();
    assert_eq!(
        gov.delete_version(&key, &version).unwrap_err().status(),
        Some(403)
    );
    let client = bms_s3::Client::new(Config::new(
        &moto.url(),
        BUCKET,
        "",
        Credentials::new(ACCESS, SECRET, None),
    ))
    .unwrap();
    // A governance retention shortened behind bms's back (with a bypass) is a seal problem of
    // bmsd's verification, which holds the date it sealed.
    let shorter = bms_s3::s3_time(SystemTime::now() + Duration::from_secs(3));
    let body = format!(
        "<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>{shorter}</RetainUntilDate></Retention>"
    );
    client
        .send(
            &Req::new(bms_s3::Method::PUT, Some(&key))
                .query("retention", "")
                .header("x-amz-bypass-governance-retention", "true")
                .body(body.as_bytes()),
        )
        .unwrap();
    let q = d.ctl_json(["verify", "--job", "g", "--target", "gov"]);
    let id = q["runs"][0]["id"].as_i64().expect("a verify run");
    let done = d.wait_run_final(id, Duration::from_secs(300));
    let log = done["log"].to_string();
    assert!(
        log.contains(&format!("its seal now ends {shorter}, before that")),
        "{done}"
    );
    client
        .send(
            &Req::new(bms_s3::Method::DELETE, Some(&key))
                .query("versionId", &version)
                .header("x-amz-bypass-governance-retention", "true"),
        )
        .expect("a governance retention yields to a bypass");
    assert!(gov.versions(&key).unwrap().is_empty());
}
