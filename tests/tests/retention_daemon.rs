//! End-to-end tests of retention through bmsd and bmsctl: `snapshot forget` by id and by a
//! job's policy, `prune --dry-run` listing every snapshot's fate and the bytes to reclaim,
//! `prune` runs with their statistics in `run list`/`run show`, a target that keeps more than
//! its job (and survives export/apply), and prune runs on a target's calendar.

use bms_tests::runner_util::{daemon_with_job, daemon_with_job_opts, write_noise_tree};
use bms_tests::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

/// Runs `job` `n` times, changing the source before each run; returns the snapshot ids.
fn backups(d: &Daemon, job: &str, src: &Path, n: u64, seed: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        write_noise_tree(&src.join(format!("gen{}", (seed + i) % 3)), 2, 1, seed + i);
        let id = d.start_run(job);
        let r = d.wait_run_final(id, LONG);
        assert_eq!(r["run"]["state"], "succeeded", "{r}");
        ids.push(r["run"]["snapshot"].as_str().unwrap().to_string());
    }
    ids
}

fn repo_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                repo_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// The pack files of a repository, by path.
fn pack_files(repo: &Path) -> std::collections::BTreeSet<std::path::PathBuf> {
    fn walk(p: &Path, out: &mut std::collections::BTreeSet<std::path::PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(e.path());
            }
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(&repo.join("packs"), &mut out);
    assert!(!out.is_empty(), "no packs under {}", repo.display());
    out
}

fn verify_clean(repo: &Path) {
    let out = bms_tests::storage::bmsctl([
        "--json",
        "repo",
        "verify",
        repo.to_str().unwrap(),
        "--read-data",
    ]);
    assert_ok(&out);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
}

fn decisions(t: &Value) -> Vec<(bool, String)> {
    t["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["keep"].as_bool().unwrap(),
                d["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })
        .collect()
}

#[test]
fn forget_by_policy_then_prune_reclaims_what_the_dry_run_said() {
    let (d, src, repo) = daemon_with_job("docs", &["--keep-last", "2"]);
    let ids = backups(&d, "docs", &src, 5, 1);

    // Forget by policy, dry: every snapshot with keep/remove and the rule; nothing removed.
    let v = d.ctl_json([
        "snapshot",
        "forget",
        "--job",
        "docs",
        "--apply-policy",
        "--dry-run",
    ]);
    let t = &v["targets"][0];
    assert_eq!(t["target"], "t");
    let dec = decisions(t);
    assert_eq!(dec.len(), 5, "{v}");
    assert_eq!(dec[0], (true, "last 1".to_string()));
    assert_eq!(dec[1], (true, "last 2".to_string()));
    assert!(dec[2..].iter().all(|(k, _)| !k), "{v}");
    assert_eq!(
        d.snapshots("docs", None).len(),
        5,
        "a dry run removes nothing"
    );
    let text = stdout(&d.ctl([
        "snapshot",
        "forget",
        "--job",
        "docs",
        "--apply-policy",
        "--dry-run",
    ]));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("remove")).count(),
        3,
        "{text}"
    );

    // Prune dry run: the same decisions and the bytes prune would reclaim.
    let before = repo_bytes(&repo);
    let dry = d.ctl_json(["prune", "--dry-run"]);
    assert!(dry["runs"].as_array().unwrap().is_empty(), "{dry}");
    let targets = dry["targets"].as_array().unwrap();
    // The default target has no repository yet: nothing to prune there.
    assert!(
        targets
            .iter()
            .any(|t| t["target"] == "local" && t["removed"].as_array().unwrap().is_empty()),
        "{dry}"
    );
    let t = targets.iter().find(|t| t["target"] == "t").unwrap();
    assert_eq!(t["removed"].as_array().unwrap().len(), 3, "{dry}");
    let promised = t["prune"]["bytes_reclaimed"].as_u64().unwrap();
    assert!(promised > 1_000_000, "{dry}");
    assert_eq!(repo_bytes(&repo), before, "a dry run changes nothing");
    let text = stdout(&d.ctl(["prune", "--dry-run"]));
    assert!(text.contains("would reclaim"), "{text}");
    assert!(text.contains("last 2"), "{text}");

    // The real prune is a run with statistics.
    let v = d.ctl_json(["prune", "--target", "t"]);
    let id = v["runs"][0]["id"].as_i64().unwrap();
    let r = d.wait_run_final(id, LONG);
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    assert_eq!(r["run"]["kind"], "prune");
    let stats = &r["run"]["prune"];
    assert_eq!(stats["snapshots_removed"], 3, "{r}");
    let reclaimed = stats["bytes_reclaimed"].as_u64().unwrap();
    let measured = before - repo_bytes(&repo);
    // Snapshot files (a few hundred bytes each) are outside prune's own count.
    assert!(
        (measured as f64 - promised as f64).abs() <= measured as f64 * 0.01,
        "dry run said {promised}, prune reclaimed {measured} ({reclaimed} by its count)"
    );
    let listed = d.runs(None);
    assert!(
        listed.iter().any(|x| x["id"] == id
            && x["kind"] == "prune"
            && x["prune"]["bytes_reclaimed"].as_u64() == Some(reclaimed)),
        "{listed:#?}"
    );
    let shown = stdout(&d.ctl(["run", "show", &id.to_string()]));
    assert!(
        shown.contains("remove"),
        "the run log lists the decisions: {shown}"
    );

    // The catalog and the repository agree; what stays verifies and restores.
    let left: Vec<String> = d
        .snapshots("docs", None)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ids[3..].to_vec());
    verify_clean(&repo);
    let out = d.dir.join("restored");
    assert_ok(&d.ctl(["restore", &ids[4], "--to", out.to_str().unwrap()]));
    bms_tests::runner_util::assert_trees_equal(&src, &out.join(src.strip_prefix("/").unwrap()));
    let audit = audit_actions(&d);
    assert!(
        audit
            .iter()
            .any(|(a, o)| a == "snapshot.forget" && o == "t"),
        "{audit:?}"
    );
    assert!(
        audit.iter().any(|(a, o)| a == "prune.request" && o == "t"),
        "{audit:?}"
    );
}

#[test]
fn forget_by_id_updates_the_catalog_and_refuses_with_reasons() {
    let (d, src, repo) = daemon_with_job("docs", &[]);
    let ids = backups(&d, "docs", &src, 2, 7);
    // No policy: applying it would remove nothing, and is refused with what to do.
    assert_fails(
        &d.ctl(["snapshot", "forget", "--job", "docs", "--apply-policy"]),
        2,
        "no retention rule",
    );
    assert_fails(
        &d.ctl(["snapshot", "forget", "deadbeefdeadbeef"]),
        1,
        "no catalogued snapshot",
    );
    assert_fails(&d.ctl(["snapshot", "forget", "abc"]), 2, "at least 8 hex");
    let v = d.ctl_json(["snapshot", "forget", &ids[0][..12]]);
    assert_eq!(v["targets"][0]["removed"][0], ids[0].as_str(), "{v}");
    let left: Vec<Value> = d.snapshots("docs", None);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], ids[1].as_str());
    let out = bms_tests::storage::bmsctl(["--json", "repo", "snapshots", repo.to_str().unwrap()]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1, "{v}");
    // The forget is in the audit trail.
    assert!(audit_actions(&d)
        .iter()
        .any(|(a, _)| a == "snapshot.forget"));
}

#[test]
fn a_target_keeps_more_than_its_job_and_the_rule_survives_export_and_apply() {
    let (d, src, _repo) = daemon_with_job("docs", &["--keep-last", "1"]);
    backups(&d, "docs", &src, 4, 11);
    let v = d.ctl_json([
        "target",
        "edit",
        "t",
        "--keep-last",
        "3",
        "--keep-within",
        "1y",
    ]);
    assert_eq!(v["retention"]["keep_last"], 3, "{v}");
    assert_eq!(v["retention"]["keep_within"], "1y", "{v}");
    let dry = d.ctl_json(["prune", "--dry-run", "--job", "docs"]);
    let kept = decisions(&dry["targets"][0])
        .iter()
        .filter(|(k, _)| *k)
        .count();
    assert_eq!(kept, 4, "within 1y keeps all: {dry}");
    d.ctl_json(["target", "edit", "t", "--keep-within", ""]);
    let dry = d.ctl_json(["prune", "--dry-run", "--job", "docs"]);
    let dec = decisions(&dry["targets"][0]);
    assert_eq!(dec.iter().filter(|(k, _)| *k).count(), 3, "{dry}");
    assert_eq!(dec[2], (true, "last 3".to_string()));
    let shown = stdout(&d.ctl(["target", "show", "t"]));
    assert!(shown.contains("last 3 (raises its jobs' rules)"), "{shown}");
    // Bad rules are refused with the field.
    assert_fails(
        &d.ctl(["target", "edit", "t", "--keep-within", "3x"]),
        2,
        "invalid duration",
    );
    assert_fails(
        &d.ctl(["job", "edit", "docs", "--keep-within-daily", "0d"]),
        2,
        "zero keeps nothing",
    );
    // Export and apply: unchanged.
    let export = stdout(&d.ctl(["job", "export", "docs"]));
    assert!(export.contains("keep_last = 3"), "{export}");
    let f = write_file(&d.dir, "docs.toml", &export);
    let v = d.ctl_json(["apply", &f.display().to_string()]);
    assert_eq!(v["unchanged"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn prune_runs_on_the_target_calendar() {
    let (d, src, _repo) = daemon_with_job("docs", &["--keep-last", "1"]);
    backups(&d, "docs", &src, 2, 21);
    assert_fails(
        &d.ctl(["target", "edit", "t", "--prune-schedule", "sometimes"]),
        2,
        "prune_schedule",
    );
    d.ctl_json(["target", "edit", "t", "--prune-schedule", "*:*:0/2"]);
    let run = poll_until(LONG, "a scheduled prune run", || {
        d.runs(None)
            .into_iter()
            .find(|r| r["kind"] == "prune" && r["trigger"] == "schedule")
    });
    let r = d.wait_run_final(run["id"].as_i64().unwrap(), LONG);
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    assert_eq!(r["run"]["target"], "t");
    assert_eq!(d.snapshots("docs", None).len(), 1);
    d.ctl_json(["target", "edit", "t", "--prune-schedule", "never"]);
}

#[test]
fn a_target_sets_its_own_prune_grace_period_never_below_the_lock_lease() {
    // Without the test hook that shortens every grace period to 0.
    let opts = DaemonOpts {
        env: vec![("BMS_TEST_PRUNE_GRACE".into(), String::new())],
        ..Default::default()
    };
    let (d, src, repo) = daemon_with_job_opts(opts, "docs", &["--keep-last", "1"]);
    // Four backups rewrite one directory, so the first snapshot's copy of it is unused.
    backups(&d, "docs", &src, 4, 31);
    let out = d.ctl(["target", "edit", "t", "--prune-grace", "1m"]);
    assert_fails(&out, 2, "prune_grace");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 300s"),
        "{out:?}"
    );
    assert_fails(
        &d.ctl(["target", "edit", "t", "--prune-grace", "soon"]),
        2,
        "not a duration",
    );
    assert!(stdout(&d.ctl(["target", "show", "t"])).contains("24h (default)"));
    d.ctl_json(["target", "edit", "t", "--prune-grace", "36h"]);
    let shown = d.ctl_json(["target", "show", "t"]);
    assert_eq!(shown["prune_grace"], "36h", "{shown}");

    let dry = d.ctl_json(["prune", "--dry-run", "--target", "t"]);
    assert_eq!(dry["targets"][0]["prune"]["grace_secs"], 36 * 3600, "{dry}");
    // The real prune condemns and waits the target's grace period: no pack is deleted yet.
    let packs_before = pack_files(&repo);
    let v = d.ctl_json(["prune", "--target", "t"]);
    let r = d.wait_run_final(v["runs"][0]["id"].as_i64().unwrap(), LONG);
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    let stats = &r["run"]["prune"];
    assert_eq!(stats["grace_secs"], 36 * 3600, "{r}");
    assert_eq!(stats["snapshots_removed"], 3, "{r}");
    assert!(stats["packs_condemned"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(stats["packs_removed"].as_u64().unwrap_or(0), 0, "{r}");
    let packs_after = pack_files(&repo);
    assert!(
        packs_before.is_subset(&packs_after),
        "deleted before the grace period: {:?}",
        packs_before.difference(&packs_after).collect::<Vec<_>>()
    );
    verify_clean(&repo);

    // Back to the default; the grace period survives export and apply.
    d.ctl_json(["target", "edit", "t", "--prune-grace", "7d"]);
    let export = stdout(&d.ctl(["job", "export", "docs"]));
    assert!(export.contains("prune_grace = \"7d\""), "{export}");
    d.ctl_json(["target", "edit", "t", "--prune-grace", ""]);
    let shown = d.ctl_json(["target", "show", "t"]);
    assert!(shown.get("prune_grace").is_none(), "{shown}");
    let f = write_file(&d.dir, "docs.toml", &export);
    d.ctl_json(["apply", &f.display().to_string()]);
    assert_eq!(d.ctl_json(["target", "show", "t"])["prune_grace"], "7d");
}

#[test]
fn a_backup_run_overlapping_a_prune_run_loses_nothing() {
    // Prune pauses after its mark (holding only the `prune` lock) until the gate exists.
    let gates = tempfile::tempdir().unwrap();
    let gate = gates.path().join("gate");
    let d = Daemon::start_with(DaemonOpts {
        env: vec![(
            "BMS_TEST_PRUNE_PAUSE".into(),
            gate.to_str().unwrap().to_string(),
        )],
        ..Default::default()
    });
    let src = d.dir.join("src");
    let repo = d.dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    write_noise_tree(&src.join("gen1"), 2, 1, 1);
    d.ctl_json(["target", "add", "t", "--path", repo.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "docs",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        "2099-01-01",
        "--target",
        "t",
        "--keep-last",
        "1",
    ]);
    // Seeds 1..=6 go to gen1, gen2, gen0, gen1, gen2, gen0: seeds 1 to 3 are only in the
    // snapshots the policy forgets.
    let _ = backups(&d, "docs", &src, 6, 1);
    let v = d.ctl_json(["prune", "--target", "t"]);
    let prune = v["runs"][0]["id"].as_i64().unwrap();
    let waiting = gates.path().join("gate.waiting");
    poll_until(LONG, "prune paused after its mark", || {
        waiting.exists().then_some(())
    });
    // A backup runs to the end beside the paused prune; it brings back the forgotten content,
    // whose chunks are in the packs prune is about to condemn.
    write_noise_tree(&src.join("gen1"), 2, 1, 1);
    let b = d.start_run("docs");
    let r = d.wait_run_final(b, LONG);
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    let snap = r["run"]["snapshot"].as_str().unwrap().to_string();
    let p = d.runs(None);
    assert!(
        p.iter()
            .any(|x| x["id"] == prune && x["state"] == "running"),
        "the prune was still running while the backup ran: {p:#?}"
    );
    std::fs::write(&gate, b"").unwrap();
    let r = d.wait_run_final(prune, LONG);
    assert_eq!(r["run"]["state"], "succeeded", "{r}");
    let stats = &r["run"]["prune"];
    assert!(stats["packs_removed"].as_u64().unwrap() > 0, "{r}");
    assert!(
        stats["packs_rescued"].as_u64().unwrap() > 0,
        "the packs the backup reused are rescued: {r}"
    );
    verify_clean(&repo);
    let out = d.dir.join("restored");
    assert_ok(&d.ctl(["restore", &snap, "--to", out.to_str().unwrap()]));
    bms_tests::runner_util::assert_trees_equal(&src, &out.join(src.strip_prefix("/").unwrap()));
}
