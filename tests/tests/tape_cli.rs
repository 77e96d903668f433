//! `bmsctl tape ...` through the real binary on a virtual tape library (docs/tape.md): a tree
//! written across two small cartridges extracts with GNU tar alone, volume by volume; restore
//! of all and of one path is exact; scan and verify read the tape alone; a write-protected
//! cartridge and an unlabelled one fail with clear messages.

use std::path::Path;
use std::process::{Command, Output};

use bms_tests::{assert_ok, bin, clean_command, stdout};

fn ctl(args: &[&str]) -> Output {
    clean_command(bin("bmsctl"))
        .args(args)
        .output()
        .expect("run bmsctl")
}

fn ok(args: &[&str]) -> String {
    let out = ctl(args);
    assert_ok(&out);
    stdout(&out)
}

fn fail(args: &[&str]) -> String {
    let out = ctl(args);
    assert!(
        !out.status.success(),
        "bmsctl {args:?} succeeded: {}",
        stdout(&out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    for i in 0..6u8 {
        let data: Vec<u8> = (0..(1usize << 20) + usize::from(i))
            .map(|n| (n as u8) ^ i)
            .collect();
        std::fs::write(root.join(format!("a/file{i}")), data).unwrap();
    }
    std::fs::write(root.join("a/b/small.txt"), b"small\n").unwrap();
}

fn diff(a: &Path, b: &Path) {
    let out = Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "trees differ: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_tree_spans_two_cartridges_and_comes_back_with_tar_and_bmsctl() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, lib) = (tmp.path().join("src"), tmp.path().join("lib"));
    tree(&src);
    let lib_s = lib.to_str().unwrap();
    ok(&[
        "tape",
        "create-library",
        lib_s,
        "--slots",
        "4",
        "--drives",
        "1",
    ]);
    for (i, b) in ["T00001", "T00002", "T00003"].iter().enumerate() {
        let slot = (i + 1).to_string();
        ok(&[
            "tape",
            "add-cartridge",
            lib_s,
            b,
            "--slot",
            &slot,
            "--capacity",
            "6M",
        ]);
    }
    // An unlabelled cartridge is refused for writing.
    let e = fail(&[
        "tape",
        "write",
        lib_s,
        src.to_str().unwrap(),
        "--media",
        "T00003",
        "--snapshot",
        "s0",
    ]);
    assert!(e.contains("label it first"), "{e}");
    ok(&[
        "tape",
        "label",
        lib_s,
        "T00001",
        "--pool",
        "weekly",
        "--sequence",
        "1",
    ]);
    ok(&[
        "tape",
        "label",
        lib_s,
        "T00002",
        "--pool",
        "weekly",
        "--sequence",
        "2",
    ]);
    let out = ok(&[
        "tape",
        "write",
        lib_s,
        src.to_str().unwrap(),
        "--media",
        "T00001,T00002",
        "--snapshot",
        "s1",
        "--job",
        "etc",
    ]);
    assert!(
        out.contains("volume 1 on T00001") && out.contains("volume 2 on T00002"),
        "{out}"
    );

    // GNU tar alone, each volume on its own, together make the tree.
    let both = tmp.path().join("tar");
    std::fs::create_dir_all(&both).unwrap();
    for barcode in ["T00001", "T00002"] {
        // The cartridge is in its slot or still in the drive.
        let dir = ["slot-001", "slot-002", "drive-0"]
            .iter()
            .map(|d| lib.join(d).join(barcode))
            .find(|p| p.exists())
            .unwrap();
        let out = Command::new("tar")
            .args(["-x", "-b", "512", "-f"])
            .arg(dir.join("file-000001"))
            .arg("-C")
            .arg(&both)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    diff(&src, &both);

    let scan = ok(&["--json", "tape", "scan", lib_s, "T00002"]);
    let v: serde_json::Value = serde_json::from_str(&scan).unwrap();
    assert_eq!(v["archives"][0]["snapshot"], "s1");
    assert_eq!(v["archives"][0]["volume"], 2);
    assert_eq!(v["archives"][0]["last"], true);
    assert!(ok(&["tape", "verify", lib_s, "T00001"]).contains("every hash matches"));

    let all = tmp.path().join("all");
    ok(&[
        "tape",
        "restore",
        lib_s,
        "s1",
        "--target",
        all.to_str().unwrap(),
    ]);
    diff(&src, &all);
    let one = tmp.path().join("one");
    ok(&[
        "tape",
        "restore",
        lib_s,
        "s1",
        "--target",
        one.to_str().unwrap(),
        "--path",
        "a/b",
    ]);
    assert_eq!(
        std::fs::read(one.join("a/b/small.txt")).unwrap(),
        b"small\n"
    );
    assert!(!one.join("a/file0").exists());
    // Only one volume: the last is missing.
    let e = fail(&[
        "tape",
        "restore",
        lib_s,
        "s1",
        "--target",
        tmp.path().join("x").to_str().unwrap(),
        "--media",
        "T00001",
    ]);
    assert!(e.contains("last volume was not found"), "{e}");

    // Write-protected.
    ok(&["tape", "write-protect", lib_s, "T00002", "on"]);
    let e = fail(&[
        "tape",
        "write",
        lib_s,
        src.to_str().unwrap(),
        "--media",
        "T00002",
        "--snapshot",
        "s2",
    ]);
    assert!(e.contains("write-protected"), "{e}");
    // Still one archive on it: nothing was recorded by the failed write.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["--json", "tape", "scan", lib_s, "T00002"])).unwrap();
    assert_eq!(v["archives"].as_array().unwrap().len(), 1);
}
