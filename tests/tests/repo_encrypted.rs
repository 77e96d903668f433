//! Encrypted repositories through the real bmsctl (docs/repository-format.md, "Encryption"):
//! `repo init --encrypt`, backup, verify --read-data, exact restore; a wrong key file or
//! passphrase exits 1 with the clear message and writes nothing; key slots (add a passphrase,
//! remove the key-file slot, open with the passphrase, the last slot is kept); no --json output
//! holds the master key in hex or base64.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bms_tests::*;

fn ctl(args: &[&str]) -> Output {
    clean_command(bin("bmsctl"))
        .env("BMS_TEST_FAST_KDF", "1")
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            let data = fs::read(&p).unwrap();
            out.push((p, data));
        }
    }
    out.sort();
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn encrypted_repository_round_trip_wrong_keys_and_key_slots() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("Marrakesh-dossier")).unwrap();
    let content = "Pelican-budget figures that nobody may read. ".repeat(500);
    fs::write(src.join("Marrakesh-dossier/Pelican-budget.txt"), &content).unwrap();
    let repo = tmp.path().join("repo");
    let key = tmp.path().join("keys/repo.key");

    let out = ctl(&["repo", "init", s(&repo), "--encrypt", "--key-file", s(&key)]);
    assert_ok(&out);
    assert!(stderr(&out).contains("losing the data"), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kf = ["--key-file", s(&key)];
    let mut jsons = Vec::new();
    let mut run_json = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = ctl(&all);
        assert_ok(&out);
        jsons.push(stdout(&out));
    };
    run_json(&["repo", "backup", s(&repo), s(&src), kf[0], kf[1]]);
    run_json(&["repo", "snapshots", s(&repo), kf[0], kf[1]]);
    run_json(&["repo", "verify", s(&repo), "--read-data", kf[0], kf[1]]);
    run_json(&["repo", "key", "list", s(&repo)]);

    for (p, data) in files(&repo) {
        for needle in ["Marrakesh", "Pelican"] {
            assert!(
                !data.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} holds {needle}",
                p.display()
            );
        }
    }

    // Restore with the key is exact.
    let to = tmp.path().join("restored");
    assert_ok(&ctl(&[
        "repo",
        "restore",
        s(&repo),
        "latest",
        "--to",
        s(&to),
        kf[0],
        kf[1],
    ]));
    let restored = to.join(src.strip_prefix("/").unwrap());
    assert_eq!(
        fs::read_to_string(restored.join("Marrakesh-dossier/Pelican-budget.txt")).unwrap(),
        content
    );

    // Wrong key file, wrong passphrase, no key: exit 1 (2 for no key), nothing written.
    let before = files(&repo);
    let wrong = tmp.path().join("wrong.key");
    fs::write(&wrong, [7u8; 32]).unwrap();
    let out = ctl(&["repo", "backup", s(&repo), s(&src), "--key-file", s(&wrong)]);
    assert_fails(&out, 1, "the key file does not open this repository");
    let pass_wrong = write_file(tmp.path(), "wrong-pass", "not it\n");
    let out = ctl(&[
        "repo",
        "snapshots",
        s(&repo),
        "--passphrase-file",
        s(&pass_wrong),
    ]);
    assert_fails(&out, 1, "the passphrase does not open this repository");
    let out = ctl(&["repo", "snapshots", s(&repo)]);
    assert_fails(&out, 2, "is encrypted");
    assert!(
        files(&repo) == before,
        "a refused command changed the repository"
    );

    // Key slots: add a passphrase, remove the key-file slot, open with the passphrase.
    let pass = write_file(tmp.path(), "pass", "correct horse battery staple\n");
    let pf = ["--passphrase-file", s(&pass)];
    let out = ctl(&[
        "repo",
        "key",
        "add",
        s(&repo),
        "--new-passphrase-file",
        s(&pass),
        kf[0],
        kf[1],
    ]);
    assert_ok(&out);
    let list = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["--json", "repo", "key", "list"];
        all.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&stdout(&ctl(&all))).unwrap();
        v["slots"].as_array().unwrap().clone()
    };
    let slots = list(&[s(&repo)]);
    assert_eq!(slots.len(), 2);
    let file_slot = slots.iter().find(|x| x["kind"] == "key-file").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ok(&ctl(&[
        "repo",
        "key",
        "remove",
        s(&repo),
        &file_slot,
        pf[0],
        pf[1],
    ]));
    assert_fails(
        &ctl(&["repo", "snapshots", s(&repo), kf[0], kf[1]]),
        1,
        "the key file does not open this repository",
    );
    run_json(&["repo", "snapshots", s(&repo), pf[0], pf[1]]);
    let last = list(&[s(&repo)]);
    assert_eq!(last.len(), 1);
    let out = ctl(&[
        "repo",
        "key",
        "remove",
        s(&repo),
        last[0]["id"].as_str().unwrap(),
        pf[0],
        pf[1],
    ]);
    assert_fails(&out, 2, "last one");

    // Rotating the passphrase: the old one stops working, the new one opens.
    let new_pass = write_file(tmp.path(), "new-pass", "a brand new passphrase\n");
    assert_ok(&ctl(&[
        "repo",
        "key",
        "rotate-passphrase",
        s(&repo),
        "--new-passphrase-file",
        s(&new_pass),
        pf[0],
        pf[1],
    ]));
    assert_fails(
        &ctl(&["repo", "snapshots", s(&repo), pf[0], pf[1]]),
        1,
        "passphrase does not open",
    );
    assert_ok(&ctl(&[
        "repo",
        "snapshots",
        s(&repo),
        "--passphrase-file",
        s(&new_pass),
    ]));

    // The export is the only output with the key; no --json output holds it.
    let out = ctl(&[
        "repo",
        "key",
        "export",
        s(&repo),
        "--passphrase-file",
        s(&new_pass),
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    let body = text.split_once("checksum").unwrap().0;
    let hex: String = body
        .lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect();
    assert_eq!(hex.len(), 64, "{text}");
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let b64 = base64(&bytes);
    for j in &jsons {
        assert!(
            !j.contains(&hex) && !j.contains(&b64),
            "key material in --json output: {j}"
        );
    }
    for (p, data) in files(&repo) {
        let text = String::from_utf8_lossy(&data);
        assert!(
            !text.contains(&hex) && !text.contains(&b64),
            "{} holds the key",
            p.display()
        );
        assert!(
            !data.windows(32).any(|w| w == bytes.as_slice()),
            "{} holds the key",
            p.display()
        );
    }
}
