//! Encrypted targets through the real bmsd and bmsctl (docs/operations.md "Encrypted targets"):
//! `target add --encrypt` makes the key file and says once what losing it means; a job with a
//! plain primary copies to an encrypted offsite target and one with an encrypted primary copies
//! to a plain one; verify, drill, restore, forget and prune open the encrypted repository with
//! its key; a wrong or missing key file fails the run with a message naming the target and the
//! file; and the key's bytes appear in no log, no `--json` output and not in the catalog.

use bms_tests::runner_util::*;
use bms_tests::*;
use serde_json::Value;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NEVER: &str = "2099-01-01 00:00:00";
const SECRET_NAME: &str = "zebra-quokka-ledger.txt";
const SECRET_TEXT: &str = "the walrus account number is 5150-KESTREL-88 and nobody may know it";

/// A daemon whose config file is `dir/etc/bmsd.toml`, so default key files go to `dir/etc/keys`;
/// every `--json` output of [`Env::json`] is kept for the leak search.
struct Env {
    d: Daemon,
    etc: PathBuf,
    outputs: RefCell<Vec<Vec<u8>>>,
    _temp: tempfile::TempDir,
}

impl Env {
    fn start() -> Env {
        let temp = tempfile::Builder::new()
            .prefix("bms-enc-")
            .tempdir()
            .unwrap();
        let etc = temp.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let config = write_file(&etc, "bmsd.toml", "version = 1\n");
        let d = Daemon::start_with(DaemonOpts {
            args: vec!["--config".into(), config.display().to_string()],
            dir: Some(temp.path().to_owned()),
            ..Default::default()
        });
        Env {
            d,
            etc,
            outputs: RefCell::new(Vec::new()),
            _temp: temp,
        }
    }

    /// `bmsctl --json ARGS` (must succeed), recorded.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.d.ctl_cmd().arg("--json").args(args).output().unwrap();
        self.outputs.borrow_mut().push(out.stdout.clone());
        self.outputs.borrow_mut().push(out.stderr.clone());
        assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `bmsctl --json ARGS` whatever its exit status, recorded.
    fn json_any(&self, args: &[&str]) -> std::process::Output {
        let out = self.d.ctl_cmd().arg("--json").args(args).output().unwrap();
        self.outputs.borrow_mut().push(out.stdout.clone());
        self.outputs.borrow_mut().push(out.stderr.clone());
        out
    }

    fn add_dir(&self, name: &str) -> PathBuf {
        let p = self.d.dir.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
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

    /// Runs `job` and waits for it and its copies; returns the backup run's detail.
    fn backup(&self, job: &str) -> Value {
        let id = self.json(&["job", "run", job])["id"].as_i64().unwrap();
        let done = self.d.wait_run_final(id, Duration::from_secs(120));
        poll_until(Duration::from_secs(60), "the copies to end", || {
            let runs = self.json(&["run", "list", "--job", job, "--limit", "100"]);
            let busy = runs["runs"].as_array().unwrap().iter().any(|r| {
                r["parent_run"].as_i64() == Some(id)
                    && matches!(r["state"].as_str(), Some("queued" | "running"))
            });
            (!busy).then_some(())
        });
        done
    }

    fn copies_of(&self, job: &str, parent: i64) -> Vec<Value> {
        let runs = self.json(&["run", "list", "--job", job, "--limit", "100"]);
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "copy" && r["parent_run"].as_i64() == Some(parent))
            .cloned()
            .collect()
    }

    /// Queues runs with `bmsctl verify ARGS` and waits for each; returns their final details.
    fn verify(&self, args: &[&str]) -> Vec<Value> {
        let mut all = vec!["verify"];
        all.extend_from_slice(args);
        let queued = self.json(&all);
        queued["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                self.d
                    .wait_run_final(r["id"].as_i64().unwrap(), Duration::from_secs(120))
            })
            .collect()
    }
}

fn write_secret_tree(src: &Path) {
    write_small_tree(src);
    std::fs::write(src.join(SECRET_NAME), SECRET_TEXT.repeat(50)).unwrap();
}

fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else if e.file_type().unwrap().is_file() {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn base64(data: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= c.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The forms key bytes could leak in: hex (both cases) and base64 (standard, URL-safe, with and
/// without padding), of the whole key and of its first 16 bytes.
fn key_forms(key: &[u8]) -> Vec<String> {
    const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = Vec::new();
    for part in [key, &key[..16]] {
        let hex: String = part.iter().map(|b| format!("{b:02x}")).collect();
        out.push(hex.to_uppercase());
        out.push(hex);
        for a in [STD, URL] {
            out.push(base64(part, a, true));
            out.push(base64(part, a, false));
        }
    }
    out
}

fn assert_no_key_in(what: &str, hay: &[u8], key: &[u8]) {
    assert!(!contains(hay, key), "{what} holds the raw key bytes");
    for form in key_forms(key) {
        assert!(
            !contains(hay, form.as_bytes()),
            "{what} holds the key as {form}"
        );
    }
}

#[test]
fn encrypted_targets_copy_both_ways_verify_restore_prune_and_leak_no_key() {
    let e = Env::start();
    let src = e.d.dir.join("src");
    write_secret_tree(&src);
    let local = e.add_dir("local");
    let vault = e.add_dir("vault");
    let plain2 = e.add_dir("plain2");
    e.json(&[
        "target",
        "add",
        "primary",
        "--path",
        local.to_str().unwrap(),
    ]);
    // `target add --encrypt` makes the key file (0600 in a 0700 directory) and says once that
    // losing every key loses the data, naming `bmsctl repo key export`.
    let out = e.d.ctl([
        "target",
        "add",
        "vault",
        "--path",
        vault.to_str().unwrap(),
        "--location",
        "offsite",
        "--encrypt",
    ]);
    assert_ok(&out);
    let note = stderr(&out);
    assert!(note.contains("losing every key"), "{note}");
    assert!(note.contains("bmsctl repo key export"), "{note}");
    assert_eq!(note.matches("losing every key").count(), 1, "{note}");
    let key_file = e.etc.join("keys/vault.key");
    assert!(stdout(&out).contains(&format!("key file {} (default)", key_file.display())));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_file), 0o600);
    assert_eq!(mode(&e.etc.join("keys")), 0o700);
    let key = std::fs::read(&key_file).unwrap();
    assert_eq!(key.len(), 32);
    let shown = e.json(&["target", "show", "vault"]);
    assert_eq!(shown["encrypt"], true, "{shown}");
    assert_eq!(shown["key_path"], key_file.display().to_string(), "{shown}");
    e.json(&[
        "target",
        "add",
        "plain2",
        "--path",
        plain2.to_str().unwrap(),
    ]);

    // Plain primary, encrypted offsite copy: the expected setup.
    e.job("j", &src, &["primary", "vault"]);
    let done = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let copies = e.copies_of("j", done["run"]["id"].as_i64().unwrap());
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert_eq!(copies[0]["state"], "succeeded", "{copies:#?}");
    let config: Value =
        serde_json::from_slice(&std::fs::read(vault.join("config")).unwrap()).unwrap();
    assert_eq!(
        config["encryption"]["algorithm"], "xchacha20poly1305-blake3",
        "{config}"
    );
    // Nothing of the names or contents is readable in the encrypted repository.
    for (p, bytes) in all_bytes(&vault) {
        assert!(!contains(&bytes, SECRET_NAME.as_bytes()), "{}", p.display());
        assert!(
            !contains(&bytes, &SECRET_TEXT.as_bytes()[..16]),
            "{}",
            p.display()
        );
        assert!(!contains(&bytes, b"zebra-quokka"), "{}", p.display());
    }
    // Without the key, the offline CLI cannot read it; with it, verify is clean.
    let out = clean_command(bin("bmsctl"))
        .args(["repo", "verify"])
        .arg(&vault)
        .output()
        .unwrap();
    assert_fails(&out, 2, "is encrypted: open it with its key file");
    let out = clean_command(bin("bmsctl"))
        .args(["repo", "verify", "--read-data"])
        .arg(&vault)
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert_ok(&out);

    // Encrypted primary, plain copy.
    e.job("k", &src, &["vault", "plain2"]);
    let done = e.backup("k");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let copies = e.copies_of("k", done["run"]["id"].as_i64().unwrap());
    assert_eq!(copies.len(), 1, "{copies:#?}");
    assert_eq!(copies[0]["state"], "succeeded", "{copies:#?}");
    // The plain copy opens without any key.
    let out = clean_command(bin("bmsctl"))
        .args(["repo", "verify", "--read-data"])
        .arg(&plain2)
        .output()
        .unwrap();
    assert_ok(&out);

    // Verify (re-reading every pack) and a restore drill open the encrypted target.
    for v in e.verify(&["--job", "k", "--target", "vault", "--read-data", "100"]) {
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    for v in e.verify(&["--drill", "--job", "k"]) {
        assert_eq!(v["run"]["state"], "succeeded", "{v}");
    }
    // Restore from the encrypted target is exact.
    let snaps = e.json(&["snapshot", "list", "--job", "k", "--target", "vault"]);
    let snap = snaps["snapshots"][0]["id"].as_str().unwrap().to_owned();
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

    // Forget and prune work on it too.
    let before = e.json(&["snapshot", "list", "--target", "vault"]);
    let n = before["snapshots"].as_array().unwrap().len();
    assert_eq!(n, 2, "{before}");
    e.json(&["snapshot", "forget", &snap]);
    let prune = e.json(&["prune", "--target", "vault"]);
    let id = prune["runs"][0]["id"].as_i64().unwrap();
    let done = e.d.wait_run_final(id, Duration::from_secs(120));
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let after = e.json(&["snapshot", "list", "--target", "vault"]);
    assert_eq!(after["snapshots"].as_array().unwrap().len(), 1, "{after}");
    let out = clean_command(bin("bmsctl"))
        .args(["repo", "verify"])
        .arg(&vault)
        .arg("--key-file")
        .arg(&key_file)
        .output()
        .unwrap();
    assert_ok(&out);

    // The export carries the setting, and applying it again changes nothing.
    let export = stdout(&e.d.ctl(["job", "export", "j"]));
    assert!(export.contains("encrypt = true"), "{export}");
    let f = write_file(&e.d.dir, "j.toml", &export);
    let v = e.json(&["apply", f.to_str().unwrap()]);
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 3, "{v}");

    // The key is nowhere: not in the daemon's log, any JSON output, or the catalog.
    e.json(&["status"]);
    e.json(&["target", "list"]);
    e.json(&["run", "list", "--limit", "100"]);
    assert_no_key_in("the daemon's log", e.d.log().as_bytes(), &key);
    for (i, o) in e.outputs.borrow().iter().enumerate() {
        assert_no_key_in(&format!("bmsctl output {i}"), o, &key);
    }
    for (p, bytes) in all_bytes(&e.d.state_dir()) {
        assert_no_key_in(&p.display().to_string(), &bytes, &key);
    }
}

#[test]
fn a_wrong_or_missing_key_file_fails_runs_with_the_target_and_the_file_named() {
    let e = Env::start();
    let src = e.d.dir.join("src");
    write_small_tree(&src);
    let vault = e.add_dir("vault");
    let key_file = e.d.dir.join("my.key");
    e.json(&[
        "target",
        "add",
        "vault",
        "--path",
        vault.to_str().unwrap(),
        "--encrypt",
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&key_file).unwrap().len(), 32);
    // key_file alone is refused: it applies to encrypted targets only.
    let plain = e.add_dir("plain");
    let out = e.json_any(&[
        "target",
        "add",
        "plain",
        "--path",
        plain.to_str().unwrap(),
        "--key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_fails(&out, 2, "--encrypt");
    e.job("j", &src, &["vault"]);
    let done = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    let good = std::fs::read(&key_file).unwrap();

    // Another key file: the run fails, naming the file and the target, and is no corruption.
    let mut other = vec![0u8; 32];
    xorshift_fill(&mut other, 7);
    std::fs::write(&key_file, &other).unwrap();
    let done = e.backup("j");
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let err = done["run"]["error"].as_str().unwrap();
    let want = format!(
        "the key file {} does not open the repository of target 'vault'",
        key_file.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(!err.contains("corrupt"), "{err}");
    for v in e.verify(&["--job", "j"]) {
        assert_eq!(v["run"]["state"], "failed", "{v}");
        let err = v["run"]["error"].as_str().unwrap();
        assert!(err.contains(&want), "{err}");
    }
    let snap = e.json(&["snapshot", "list", "--job", "j"])["snapshots"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let to = e.d.dir.join("restored");
    let out = e.json_any(&[
        "restore",
        &snap,
        "--target",
        "vault",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_fails(&out, 1, "does not open the repository of target 'vault'");
    assert!(!to.exists() || std::fs::read_dir(&to).unwrap().next().is_none());

    // No key file at all: the same, saying so.
    std::fs::remove_file(&key_file).unwrap();
    let done = e.backup("j");
    assert_eq!(done["run"]["state"], "failed", "{done}");
    let err = done["run"]["error"].as_str().unwrap();
    assert!(
        err.contains(&format!(
            "the key file {} of target 'vault' cannot be read",
            key_file.display()
        )),
        "{err}"
    );
    // bmsd is still there and runs again once the key file is back.
    e.json(&["status"]);
    std::fs::write(&key_file, &good).unwrap();
    let done = e.backup("j");
    assert_eq!(done["run"]["state"], "succeeded", "{done}");
    assert_no_key_in("the daemon's log", e.d.log().as_bytes(), &good);
    for o in e.outputs.borrow().iter() {
        assert_no_key_in("a bmsctl output", o, &good);
    }
}
