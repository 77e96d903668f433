//! Verification after backup (`--verify-after-backup`): a `verify` run belonging to the backup
//! run; bit rot in the target's packs makes it fail and the backup run end with a warning.

use bms_tests::{assert_ok, Daemon};

fn runs(d: &Daemon) -> Vec<serde_json::Value> {
    d.ctl_json(["run", "list", "--job", "v"])["runs"]
        .as_array()
        .unwrap()
        .clone()
}

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn verify_after_backup_passes_then_catches_bit_rot() {
    let d = Daemon::start();
    let src = d.dir.join("vsrc");
    std::fs::create_dir_all(&src).unwrap();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("data.bin"), &data).unwrap();
    let s = src.to_str().unwrap();
    assert_ok(&d.ctl([
        "job",
        "add",
        "v",
        "--source",
        s,
        "--schedule",
        "daily",
        "--target",
        "local",
        "--verify-after-backup",
        "--read-data-percent",
        "100",
    ]));
    assert_ok(&d.ctl(["job", "run", "v", "--wait"]));
    let list = runs(&d);
    let backup = list.iter().find(|r| r["kind"] == "backup").unwrap();
    let verify = list
        .iter()
        .find(|r| r["kind"] == "verify")
        .expect("a verify run");
    assert_eq!(backup["state"], "succeeded", "{backup}");
    assert_eq!(verify["state"], "succeeded", "{verify}");
    assert_eq!(verify["parent_run"], backup["id"]);
    assert_eq!(verify["target"], "local");

    // Flip a byte in the middle of every pack of the target's repository.
    let status = d.status_json();
    let repo =
        std::path::Path::new(status["state_dir"].as_str().unwrap()).join("repos/local/packs");
    let mut packs = Vec::new();
    files(&repo, &mut packs);
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        std::fs::write(p, b).unwrap();
    }
    std::fs::write(src.join("more.bin"), b"a little more").unwrap();
    // The backup itself succeeds (it adds new data), the verification finds the damage.
    let out = d.ctl(["job", "run", "v", "--wait"]);
    assert_ok(&out);
    let list = runs(&d);
    let backup = list.iter().find(|r| r["kind"] == "backup").unwrap();
    let verify = list.iter().find(|r| r["kind"] == "verify").unwrap();
    assert_eq!(verify["state"], "failed", "{verify}");
    assert_eq!(verify["parent_run"], backup["id"]);
    assert_eq!(backup["state"], "warning", "{backup}");
    let err = backup["error"].as_str().unwrap();
    assert!(err.contains("verification of 'local' found"), "{err}");
    let detail = d.ctl_json(["run", "show", &verify["id"].to_string()]);
    assert!(
        !detail["log"].as_array().unwrap().is_empty(),
        "the problems are in the verify run's log"
    );
}
