//! S3 targets through the real bmsd and bmsctl against moto on loopback (docs/s3.md):
//! a local disk primary with an S3 offsite copy backs up, copies, verifies with read-data and
//! restores exactly; the second copy sends only what is missing (counted at the endpoint); an
//! S3 target works as the primary too; the endpoint going away mid-backup fails the run with an
//! error naming it and writes no snapshot, and the next run reuses what was uploaded and leaves
//! no incomplete multipart upload; the secret key appears in no log, output or catalog.

use bms_tests::runner_util::*;
use bms_tests::s3_util::{Moto, Proxy};
use bms_tests::*;
use serde_json::Value;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";
const ACCESS: &str = "AKIATESTBMS0000";
const SECRET: &str = "s3cret-Pangolin-Quasar-7731-do-not-leak";
const BUCKET: &str = "bms-test";
/// Multipart threshold and part size for these tests (moto wants parts of 5 MiB or more).
const PART: usize = 5 << 20;

struct Env {
    d: Daemon,
    moto: Moto,
    proxy: Proxy,
    creds: PathBuf,
    outputs: RefCell<Vec<u8>>,
    _temp: tempfile::TempDir,
}

impl Env {
    fn start(retries: u32) -> Env {
        let temp_dir = tempfile::Builder::new()
            .prefix("bms-s3-")
            .tempdir()
            .unwrap();
        let temp = temp_dir.path().to_owned();
        let moto = Moto::start(&temp);
        let proxy = Proxy::start(moto.port);
        let creds = temp.join("s3.credentials");
        std::fs::write(
            &creds,
            format!("[default]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();
        // The bucket is made through the S3 API directly (bmsd never creates buckets).
        let admin = bms_s3::S3Store::new(bms_s3::Config::new(
            &moto.url(),
            BUCKET,
            "",
            bms_s3::Credentials::new(ACCESS, SECRET, None),
        ))
        .unwrap();
        admin.create_bucket().unwrap();
        let d = Daemon::start_with(DaemonOpts {
            dir: Some(temp),
            env: vec![
                ("BMS_TEST_S3_PART_SIZE".into(), PART.to_string()),
                ("BMS_TEST_S3_RETRIES".into(), retries.to_string()),
            ],
            ..Default::default()
        });
        Env {
            d,
            moto,
            proxy,
            creds,
            outputs: RefCell::new(Vec::new()),
            _temp: temp_dir,
        }
    }

    /// A store of the target's prefix that talks to moto directly (not counted by the proxy).
    fn direct(&self, prefix: &str) -> bms_s3::S3Store {
        bms_s3::S3Store::new(bms_s3::Config::new(
            &self.moto.url(),
            BUCKET,
            prefix,
            bms_s3::Credentials::new(ACCESS, SECRET, None),
        ))
        .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.d.ctl_cmd().arg("--json").args(args).output().unwrap();
        self.outputs.borrow_mut().extend(&out.stdout);
        self.outputs.borrow_mut().extend(&out.stderr);
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn add_s3(&self, name: &str, prefix: &str) -> Value {
        let url = self.proxy.url();
        let creds = self.creds.display().to_string();
        self.json(&[
            "target",
            "add",
            name,
            "--kind",
            "s3",
            "--url",
            &url,
            "--bucket",
            BUCKET,
            "--prefix",
            prefix,
            "--credentials-file",
            &creds,
        ])
    }

    fn job(&self, name: &str, src: &Path, targets: &[&str]) {
        let mut args = vec![
            "job",
            "add",
            name,
            "--source",
            src.to_str().unwrap(),
            "--schedule",
            NEVER,
        ];
        for t in targets {
            args.extend(["--target", t]);
        }
        self.json(&args);
    }

    /// Runs `job`, waits for it and its copies; returns the backup run and its copies.
    fn backup(&self, job: &str) -> (Value, Vec<Value>) {
        let id = self.json(&["job", "run", job])["id"].as_i64().unwrap();
        let done = self.d.wait_run_final(id, Duration::from_secs(300));
        let copies = poll_until(Duration::from_secs(300), "the copies to end", || {
            let runs = self.json(&["run", "list", "--job", job, "--limit", "100"]);
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
        });
        (done, copies)
    }

    /// Everything that could hold the secret: logs, outputs, the catalog and the state dir.
    fn assert_no_secret(&self) {
        let mut hay = self.outputs.borrow().clone();
        for e in std::fs::read_dir(&self.d.dir).unwrap().flatten() {
            let p = e.path();
            if p.is_file() && p != self.creds {
                hay.extend(std::fs::read(&p).unwrap_or_default());
            }
        }
        for e in std::fs::read_dir(self.d.state_dir()).unwrap().flatten() {
            if e.path().is_file() {
                hay.extend(std::fs::read(e.path()).unwrap_or_default());
            }
        }
        let needle = SECRET.as_bytes();
        assert!(
            !hay.windows(needle.len()).any(|w| w == needle),
            "the S3 secret key leaked into logs, outputs or the catalog"
        );
    }
}

#[test]
fn disk_primary_s3_copy_restores_exactly_and_second_copy_sends_only_missing_data() {
    let e = Env::start(4);
    let src = e.d.dir.join("src");
    let total = write_noise_tree(&src, 4, 6, 18);
    write_small_tree(&src.join("small"));
    let disk = e.d.dir.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    e.json(&["target", "add", "disk", "--path", disk.to_str().unwrap()]);
    let t = e.add_s3("offsite", "host1");
    assert_eq!(t["media"], "object", "{t}");
    assert_eq!(
        t["location"], "offsite",
        "an S3 target is offsite by default: {t}"
    );
    assert_eq!(t["bucket"], BUCKET, "{t}");
    assert!(t["supported"].as_bool().unwrap(), "{t}");
    let check = e.json(&["target", "check", "offsite"]);
    assert_eq!(check["ok"], true, "{check}");

    // A bucket that does not exist fails the check, saying so.
    let url = e.proxy.url();
    let creds = e.creds.display().to_string();
    e.json(&[
        "target",
        "add",
        "nobucket",
        "--kind",
        "s3",
        "--url",
        &url,
        "--bucket",
        "no-such-bucket",
        "--credentials-file",
        &creds,
    ]);
    let out = e.d.ctl(["target", "check", "nobucket"]);
    assert_fails(&out, 1, "failed its check: missing");
    assert!(
        stdout(&out).contains("bucket 'no-such-bucket' does not exist"),
        "{}",
        stdout(&out)
    );

    // --immutable-days on a bucket without Object Lock is refused with the reason (the rest of
    // Object Lock: tests/tests/s3_object_lock.rs).
    let out = e.d.ctl([
        "target",
        "add",
        "nolock",
        "--kind",
        "s3",
        "--url",
        &url,
        "--bucket",
        BUCKET,
        "--credentials-file",
        &creds,
        "--immutable-days",
        "1",
    ]);
    assert_fails(
        &out,
        1,
        "bucket 'bms-test' has no Object Lock configuration",
    );

    e.job("j", &src, &["disk", "offsite"]);
    e.proxy.take();
    let (done, copies) = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert_eq!(
        copies[0]["state"],
        "succeeded",
        "{copies:#?}\n{}",
        e.d.log()
    );
    let first = e.proxy.take();
    assert!(
        first.put_bytes >= total,
        "the first copy uploads the data: {first:?}, {total} bytes of files"
    );
    assert!(
        first.n("POST") > 0,
        "packs above {PART} bytes go as multipart uploads: {first:?}"
    );

    // A second backup with one small new file: its copy sends only the new blobs.
    std::fs::write(src.join("small/new.txt"), "a new file\n".repeat(100)).unwrap();
    let (done, copies) = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert_eq!(copies[0]["state"], "succeeded", "{copies:#?}");
    let second = e.proxy.take();
    eprintln!("first copy: {first:?}\nsecond copy: {second:?}");
    assert!(
        second.put_bytes < 256 << 10,
        "the second copy sends only what is missing: {second:?}"
    );
    assert_eq!(
        second.n("POST"),
        0,
        "no multipart upload for a small pack: {second:?}"
    );

    // verify --read-data through S3, then an exact restore from it.
    let q = e.json(&[
        "verify",
        "--job",
        "j",
        "--target",
        "offsite",
        "--read-data",
        "100",
    ]);
    for r in q["runs"].as_array().unwrap() {
        let v =
            e.d.wait_run_final(r["id"].as_i64().unwrap(), Duration::from_secs(300));
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    let snaps = e.d.snapshots("j", Some("offsite"));
    assert_eq!(snaps.len(), 2, "{snaps:#?}");
    let latest = snaps
        .iter()
        .max_by_key(|s| s["time"].as_str().unwrap_or_default().to_owned())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to = e.d.dir.join("restored");
    e.json(&[
        "restore",
        &latest,
        "--target",
        "offsite",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_trees_equal(&src, &to.join(src.strip_prefix("/").unwrap()));

    // Compliance counts the S3 copy as offsite, of media type object.
    let out = e.d.ctl(["--json", "compliance", "j"]);
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rule = |name: &str| -> Value {
        c["jobs"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {name}: {c}"))
    };
    assert_eq!(rule("offsite")["verdict"], "pass", "{c}");
    assert_eq!(rule("media")["verdict"], "pass", "disk and object: {c}");
    let copy = c["jobs"][0]["copies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["target"] == "offsite")
        .cloned()
        .unwrap_or_else(|| panic!("no evidence of the S3 copy: {c}"));
    assert_eq!(copy["location"], "offsite", "{copy}");

    // An S3 target as the primary.
    e.add_s3("direct", "host2");
    e.job("k", &src.join("small"), &["direct"]);
    let (done, _) = e.backup("k");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert_eq!(e.d.snapshots("k", Some("direct")).len(), 1);
    use bms_engine::store::{Kind, Store};
    assert_eq!(e.direct("host2").list(Kind::Snapshots).unwrap().len(), 1);
    e.assert_no_secret();
}

#[test]
fn endpoint_gone_mid_backup_fails_clearly_and_the_next_run_reuses_the_uploads() {
    let e = Env::start(1);
    let src = e.d.dir.join("src");
    let total = write_noise_tree(&src, 10, 8, 33);
    e.add_s3("offsite", "host1");
    e.job("j", &src, &["offsite"]);
    use bms_engine::store::{Kind, Store};
    let direct = e.direct("host1");
    // Slow enough that the run is still uploading when the endpoint goes away.
    e.proxy.throttle(16 << 20);
    let id = e.d.start_run("j");
    // Once a first data pack is complete on the server, the endpoint goes away mid-upload.
    // (Packs are uploaded in the background, several at once: the small last packs, of trees
    // and of the rest of the data, may complete before the full ones.)
    poll_every(
        Duration::from_secs(120),
        Duration::from_millis(50),
        "a first data pack to be uploaded",
        || {
            direct
                .list(Kind::Packs)
                .unwrap()
                .iter()
                .any(|p| {
                    direct
                        .stat(Kind::Packs, p)
                        .unwrap()
                        .is_some_and(|s| s.size > 8 << 20)
                })
                .then_some(())
        },
    );
    e.proxy.kill();
    let done = e.d.wait_run_final(id, Duration::from_secs(120));
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let err = done["run"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        err.contains(&format!("127.0.0.1:{}", e.proxy.port)),
        "the error names the endpoint: {err}"
    );
    assert!(
        err.contains("reachable"),
        "the error says what to check: {err}"
    );
    assert!(!err.contains(SECRET));
    assert!(
        direct.list(Kind::Snapshots).unwrap().is_empty(),
        "no snapshot is written"
    );
    let uploaded = direct.list(Kind::Packs).unwrap().len();

    e.proxy.revive();
    e.proxy.throttle(0);
    e.proxy.take();
    let id = e.d.start_run("j");
    let done = e.d.wait_run_final(id, Duration::from_secs(300));
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", e.d.log());
    let again = e.proxy.take();
    eprintln!("{uploaded} pack(s) survived; the second run sent {again:?} of {total} bytes");
    assert!(uploaded > 0);
    assert!(
        again.put_bytes < total,
        "the next run reuses the packs uploaded before: {again:?}\n{done}"
    );
    assert!(
        direct.incomplete_uploads().unwrap().is_empty(),
        "no incomplete multipart upload is left"
    );
    let q = e.json(&[
        "verify",
        "--job",
        "j",
        "--target",
        "offsite",
        "--read-data",
        "100",
    ]);
    for r in q["runs"].as_array().unwrap() {
        let v =
            e.d.wait_run_final(r["id"].as_i64().unwrap(), Duration::from_secs(300));
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    e.assert_no_secret();
}

#[test]
fn encrypted_s3_target_forgets_prunes_and_holds_only_sealed_objects() {
    let e = Env::start(4);
    let src = e.d.dir.join("src");
    write_small_tree(&src);
    let plain_text = "the otter ledger says 4471-WOMBAT in plain words\n".repeat(200);
    std::fs::write(src.join("ledger.txt"), &plain_text).unwrap();
    // A file only the first snapshot holds: prune reclaims its packs once it is forgotten.
    write_noise_tree(&src.join("gone"), 1, 3, 7);
    let key = e.d.dir.join("vault.key");
    let t = e.add_s3("vault", "enc");
    assert_eq!(t["encrypt"].as_bool(), None, "{t}");
    let key_arg = key.display().to_string();
    e.json(&[
        "target",
        "edit",
        "vault",
        "--encrypt",
        "--key-file",
        &key_arg,
    ]);
    e.job("j", &src, &["vault"]);
    let (done, _) = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", e.d.log());
    let first = done["run"]["snapshot"].as_str().unwrap().to_owned();
    std::fs::remove_dir_all(src.join("gone")).unwrap();
    let (done, _) = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");

    // The bucket holds only sealed objects: the config says so, and no object holds the text.
    use bms_engine::store::{Kind, Store, CONFIG};
    let direct = e.direct("enc");
    let config: Value =
        serde_json::from_slice(&direct.read(Kind::Config, CONFIG).unwrap()).unwrap();
    assert_ne!(config["encryption"]["algorithm"], "none", "{config}");
    let needle = b"4471-WOMBAT";
    for kind in [Kind::Packs, Kind::Index, Kind::Snapshots] {
        for name in direct.list(kind).unwrap() {
            let data = direct.read(kind, &name).unwrap();
            assert!(
                !data.windows(needle.len()).any(|w| w == needle),
                "{kind:?} {name}"
            );
        }
    }

    // Forget and prune reclaim the packs only the forgotten snapshot needed.
    let pack_bytes = || -> u64 {
        direct
            .list(Kind::Packs)
            .unwrap()
            .iter()
            .map(|n| direct.stat(Kind::Packs, n).unwrap().unwrap().size)
            .sum()
    };
    let before = pack_bytes();
    e.json(&["snapshot", "forget", &first]);
    let prune = e.json(&["prune", "--target", "vault"]);
    let id = prune["runs"][0]["id"].as_i64().unwrap();
    let done = e.d.wait_run_final(id, Duration::from_secs(300));
    assert_eq!(done["run"]["state"], "succeeded", "{done}\n{}", e.d.log());
    let after = pack_bytes();
    assert!(
        after + (2 << 20) < before,
        "prune reclaims the forgotten data: {before} -> {after} bytes of packs"
    );
    assert_eq!(e.d.snapshots("j", Some("vault")).len(), 1);

    let q = e.json(&[
        "verify",
        "--job",
        "j",
        "--target",
        "vault",
        "--read-data",
        "100",
    ]);
    for r in q["runs"].as_array().unwrap() {
        let v =
            e.d.wait_run_final(r["id"].as_i64().unwrap(), Duration::from_secs(300));
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    let snap = e.d.snapshots("j", Some("vault"))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to = e.d.dir.join("restored");
    e.json(&[
        "restore",
        &snap,
        "--target",
        "vault",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_trees_equal(&src, &to.join(src.strip_prefix("/").unwrap()));
    // The catalog's records can be taken back from the bucket.
    let r = e.json(&["catalog", "rebuild", "--target", "vault"]);
    assert_eq!(
        (r["added"].as_u64(), r["kept"].as_u64()),
        (Some(0), Some(1)),
        "{r:#}"
    );
    e.assert_no_secret();
}
