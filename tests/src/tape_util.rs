//! Helpers of the tape e2e tests (tests/tests/tape_*.rs): a daemon with a short media wait, a
//! virtual library with cartridges in the inventory, a pool, a tape target and a job, and GNU
//! tar on a cartridge's tape files.

use crate::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A daemon whose tape copies wait `wait` seconds for a medium.
pub fn daemon(wait: u32) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("bms-tape-cfg-")
        .tempdir()
        .expect("tempdir")
        .keep();
    let cfg = write_file(
        &dir,
        "bmsd.toml",
        &format!("version = 1\nmedia_wait_secs = {wait}\n"),
    );
    Daemon::start_with(DaemonOpts {
        args: vec!["--config".into(), cfg.display().to_string()],
        ..Default::default()
    })
}

/// A source tree of `files` files of a little over 1 MiB each, a subdirectory and a symlink.
pub fn tree(root: &Path, files: u8) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    for i in 0..files {
        let data: Vec<u8> = (0..(1usize << 20) + usize::from(i) * 7)
            .map(|n| (n as u8).wrapping_mul(31) ^ i)
            .collect();
        std::fs::write(root.join(format!("a/file{i}")), data).unwrap();
    }
    std::fs::write(root.join("a/b/small.txt"), b"small\n").unwrap();
    let _ = std::fs::remove_file(root.join("a/link"));
    std::os::unix::fs::symlink("b/small.txt", root.join("a/link")).unwrap();
}

/// A library with `carts` cartridges of `capacity`, pool `weekly` (LTO-8, `retention_days`),
/// every cartridge in the inventory as scratch, the tape target `lto`
/// and the job `j` backing up `src` to both.
pub fn setup(
    d: &Daemon,
    carts: &[&str],
    capacity: &str,
    retention_days: u32,
    files: u8,
) -> (PathBuf, PathBuf) {
    let lib = d.dir.join("vtl");
    let l = lib.to_str().unwrap();
    assert_ok(&d.ctl(["tape", "create-library", l, "--slots", "4"]));
    for (i, c) in carts.iter().enumerate() {
        let slot = (i + 1).to_string();
        assert_ok(&d.ctl([
            "tape",
            "add-cartridge",
            l,
            c,
            "--slot",
            &slot,
            "--capacity",
            capacity,
        ]));
        d.ctl_json([
            "media",
            "add",
            c,
            "--media-type",
            "lto8",
            "--location",
            &format!("slot:lto/slot-{slot}"),
        ]);
    }
    d.ctl_json([
        "pool",
        "add",
        "weekly",
        "--media-type",
        "lto8",
        "--retention-days",
        &retention_days.to_string(),
        "--vault",
        "iron",
    ]);
    let t = d.ctl_json([
        "target", "add", "lto", "--kind", "tape", "--path", l, "--pool", "weekly",
    ]);
    assert_eq!(
        t["supports"],
        serde_json::json!(["copy into", "verify", "restore", "pre-flight check"]),
        "{t}"
    );
    // `local` is bmsd's default disk target.
    let src = d.dir.join("src");
    tree(&src, files);
    d.ctl_json([
        "job",
        "add",
        "j",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "daily",
        "--target",
        "local",
        "--target",
        "lto",
    ]);
    (lib, src)
}

/// Runs the job and returns its tape copy run.
pub fn run_copy(d: &Daemon) -> Value {
    let out = d.ctl(["job", "run", "j", "--wait"]);
    let runs = d.ctl_json(["run", "list", "--job", "j"]);
    runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "copy" && r["target"] == "lto")
        .cloned()
        .unwrap_or_else(|| panic!("no tape copy run: {runs} ({})", stdout(&out)))
}

pub fn medium(d: &Daemon, b: &str) -> Value {
    d.ctl_json(["media", "show", b])
}

/// Extracts tape file `file` of cartridge `cart` with GNU tar alone into `to`.
pub fn tar_extract(lib: &Path, cart: &str, file: u32, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let path = find_cartridge(lib, cart).join(format!("file-{file:06}"));
    let out = Command::new("tar")
        .args(["-x", "-b", "512", "-f"])
        .arg(&path)
        .arg("-C")
        .arg(to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar -x {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn find_cartridge(lib: &Path, cart: &str) -> PathBuf {
    for e in std::fs::read_dir(lib).unwrap().flatten() {
        let p = e.path().join(cart);
        if p.is_dir() {
            return p;
        }
    }
    panic!("cartridge {cart} not found in {}", lib.display())
}

/// The path of `src` inside an archive: the snapshot's paths without the leading `/`.
pub fn inside(root: &Path, src: &Path) -> PathBuf {
    root.join(src.strip_prefix("/").unwrap())
}

/// `bmsctl compliance j --json`, parsed.
pub fn compliance(d: &Daemon) -> Value {
    let out = d.ctl(["--json", "compliance", "j"]);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// The verdict of `rule` of the only job.
pub fn verdict(v: &Value, rule: &str) -> String {
    v["jobs"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == rule)
        .map(|r| r["verdict"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}
