//! Backup sources, offline (`bmsctl repo backup`) and through bmsd jobs: a source given as a
//! symbolic link (or below one) is followed and its data stored under the path as given; a
//! missing source fails the backup; a repository inside a source is left out with a warning; a
//! source inside the repository is refused (docs/operations.md, "Backup sources").

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bms_tests::*;

const NEVER: &str = "2099-01-01 00:00:00";

fn ctl(args: &[&Path]) -> Output {
    clean_command(bin("bmsctl"))
        .arg("--json")
        .args(args)
        .output()
        .expect("run bmsctl")
}

fn ctl_ok(args: &[&Path]) -> serde_json::Value {
    let out = ctl(args);
    assert_ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// A web root at `<dir>/srv/www` with a file, a subdirectory and a symlink inside.
fn web_root(dir: &Path) -> PathBuf {
    let www = dir.join("srv/www");
    fs::create_dir_all(www.join("sub")).unwrap();
    fs::write(www.join("index.html"), "hello").unwrap();
    fs::write(www.join("sub/a.txt"), "deep").unwrap();
    symlink("index.html", www.join("link")).unwrap();
    www
}

fn init_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    ctl_ok(&[p("repo"), p("init"), &repo]);
    repo
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// The restored web root holds the data, and the symlink inside it stays a symlink.
fn assert_web_root(back: &Path) {
    let md = fs::symlink_metadata(back).unwrap();
    assert!(md.is_dir(), "{} is not a directory", back.display());
    assert_eq!(
        fs::read_to_string(back.join("index.html")).unwrap(),
        "hello"
    );
    assert_eq!(fs::read_to_string(back.join("sub/a.txt")).unwrap(), "deep");
    assert_eq!(
        fs::read_link(back.join("link")).unwrap(),
        PathBuf::from("index.html")
    );
}

#[test]
fn offline_symlinked_source_and_one_below_it_restore_under_the_given_path() {
    let tmp = tempfile::tempdir().unwrap();
    let www = web_root(tmp.path());
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    symlink(&www, a.join("www")).unwrap();
    let repo = init_repo(tmp.path());
    let given = a.join("www");
    let below = given.join("sub");

    let s = ctl_ok(&[p("repo"), p("backup"), &repo, &given, &below]);
    assert_eq!(s["partial"], false, "{s}");
    assert_eq!(s["files_new"], 2, "{s}");
    let notes = strings(&s["notes"]);
    assert!(
        notes.iter().any(|n| n.contains(&*given.to_string_lossy())
            && n.contains("symbolic link")
            && n.contains(&*www.to_string_lossy())),
        "{notes:?}"
    );
    let to = tmp.path().join("restore");
    ctl_ok(&[p("repo"), p("restore"), &repo, p("latest"), p("--to"), &to]);
    assert_web_root(&restored(&to, &given));
    // Nothing of the link's target path was stored.
    assert!(!restored(&to, &www).exists());
}

#[test]
fn offline_source_below_a_symlinked_parent_is_stored_under_the_given_path() {
    let tmp = tempfile::tempdir().unwrap();
    web_root(tmp.path());
    let b = tmp.path().join("b");
    symlink(tmp.path().join("srv"), &b).unwrap();
    let repo = init_repo(tmp.path());
    let given = b.join("www");

    let s = ctl_ok(&[p("repo"), p("backup"), &repo, &given]);
    assert_eq!(s["files_new"], 2, "{s}");
    assert!(
        strings(&s["notes"])
            .iter()
            .any(|n| n.contains("parent") && n.contains(&*b.to_string_lossy())),
        "{s}"
    );
    let to = tmp.path().join("restore");
    ctl_ok(&[p("repo"), p("restore"), &repo, p("latest"), p("--to"), &to]);
    assert!(fs::symlink_metadata(restored(&to, &b)).unwrap().is_dir());
    assert_web_root(&restored(&to, &given));
}

#[test]
fn offline_missing_source_fails_and_writes_no_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let www = web_root(tmp.path());
    let repo = init_repo(tmp.path());
    let gone = tmp.path().join("not-there");
    let dangling = tmp.path().join("dangling");
    symlink(tmp.path().join("nowhere"), &dangling).unwrap();
    for missing in [&gone, &dangling] {
        let out = ctl(&[p("repo"), p("backup"), &repo, &www, missing]);
        assert!(!out.status.success(), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains(&*missing.to_string_lossy()), "{err}");
        assert!(err.contains("does not exist"), "{err}");
    }
    let list = ctl_ok(&[p("repo"), p("snapshots"), &repo]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 0, "{list}");
}

#[test]
fn offline_repository_inside_the_source_is_left_out_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("data");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f.txt"), "file").unwrap();
    let repo = init_repo(&src);

    let s = ctl_ok(&[p("repo"), p("backup"), &repo, &src]);
    let w = strings(&s["warnings"]);
    assert!(
        w.iter()
            .any(|m| m.contains(&*repo.to_string_lossy()) && m.contains("repository")),
        "{w:?}"
    );
    let to = tmp.path().join("restore");
    ctl_ok(&[p("repo"), p("restore"), &repo, p("latest"), p("--to"), &to]);
    let back = restored(&to, &src);
    assert_eq!(fs::read_to_string(back.join("f.txt")).unwrap(), "file");
    assert!(!back.join("repo").exists());
}

#[test]
fn offline_source_inside_the_repository_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = init_repo(tmp.path());
    for src in [repo.clone(), repo.join("snapshots")] {
        let out = ctl(&[p("repo"), p("backup"), &repo, &src]);
        assert!(!out.status.success(), "{out:?}");
        let err = stderr(&out);
        assert!(err.contains("inside the target repository"), "{err}");
    }
    let list = ctl_ok(&[p("repo"), p("snapshots"), &repo]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 0, "{list}");
}

/// A daemon with a disk target `disk` at `<dir>/target` and a job `web` backing up `sources`.
fn daemon_job(sources: &[&Path]) -> (Daemon, PathBuf) {
    let d = Daemon::start();
    let target = d.dir.join("target");
    fs::create_dir_all(&target).unwrap();
    d.ctl_json(["target", "add", "disk", "--path", target.to_str().unwrap()]);
    let mut args = vec!["job".to_string(), "add".into(), "web".into()];
    for s in sources {
        args.extend(["--source".into(), s.to_string_lossy().into_owned()]);
    }
    args.extend([
        "--schedule".into(),
        NEVER.into(),
        "--target".into(),
        "disk".into(),
    ]);
    d.ctl_json(args);
    (d, target)
}

#[test]
fn daemon_job_with_a_symlinked_source_stores_its_files_under_the_given_path() {
    let tmp = tempfile::tempdir().unwrap();
    let www = web_root(tmp.path());
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    let given = a.join("www");
    symlink(&www, &given).unwrap();
    let below = given.join("sub");
    let (d, target) = daemon_job(&[&given, &below]);

    let id = d.start_run("web");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    let text = detail.to_string();
    assert!(
        text.contains("symbolic link") && text.contains(&*www.to_string_lossy()),
        "the run log says the source was followed: {detail}"
    );
    let to = tmp.path().join("restore");
    ctl_ok(&[
        p("repo"),
        p("restore"),
        &target,
        p("latest"),
        p("--to"),
        &to,
    ]);
    assert_web_root(&restored(&to, &given));
}

#[test]
fn daemon_job_whose_source_is_gone_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let www = web_root(tmp.path());
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let (d, _target) = daemon_job(&[&www, &other]);
    fs::remove_dir(&other).unwrap();

    let id = d.start_run("web");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    let run = &detail["run"];
    assert_eq!(run["state"], "failed", "{detail}");
    let err = run["error"].as_str().unwrap_or_default();
    assert!(err.contains(&*other.to_string_lossy()), "{detail}");
    assert!(run["snapshot"].is_null(), "{detail}");
    assert!(d.snapshots("web", None).is_empty());
}

#[test]
fn daemon_job_whose_source_contains_the_target_leaves_the_repository_out() {
    let tmp = tempfile::tempdir().unwrap();
    let d = Daemon::start();
    let src = d.dir.join("data");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), "file").unwrap();
    let target = src.join("target");
    fs::create_dir(&target).unwrap();
    add_disk_job(&d, &target, &src);
    let id = d.start_run("web");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "warning", "{detail}");
    assert!(
        detail.to_string().contains("the target repository itself"),
        "{detail}"
    );
    let to = tmp.path().join("restore");
    ctl_ok(&[
        p("repo"),
        p("restore"),
        &target,
        p("latest"),
        p("--to"),
        &to,
    ]);
    let back = restored(&to, &src);
    assert_eq!(fs::read_to_string(back.join("f.txt")).unwrap(), "file");
    assert!(!back.join("target").exists());
}

#[test]
fn target_check_refuses_a_non_empty_directory_as_every_run_does() {
    let d = Daemon::start();
    let src = d.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f.txt"), "file").unwrap();
    let target = d.dir.join("target");
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("somebody-elses.txt"), "not a repository").unwrap();
    add_disk_job(&d, &target, &src);
    let out = d.ctl(["target", "check", "disk"]);
    assert_fails(&out, 1, "failed its check");
    assert!(
        stdout(&out).contains("not empty and holds no bms repository"),
        "{out:?}"
    );
    let id = d.start_run("web");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "failed", "{detail}");
    assert!(
        detail["run"]["error"]
            .as_str()
            .unwrap()
            .contains("not empty"),
        "{detail}"
    );
    // Nothing was written into the foreign directory.
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1);

    // Emptied, the check passes and a run creates the repository.
    fs::remove_file(target.join("somebody-elses.txt")).unwrap();
    assert_eq!(d.ctl_json(["target", "check", "disk"])["ok"], true);
    let id = d.start_run("web");
    let detail = d.wait_run_final(id, Duration::from_secs(60));
    assert_eq!(detail["run"]["state"], "succeeded", "{detail}");
    assert_eq!(d.ctl_json(["target", "check", "disk"])["ok"], true);
}

/// Target `disk` at `target` and job `web` backing up `src` to it, never scheduled.
fn add_disk_job(d: &Daemon, target: &std::path::Path, src: &std::path::Path) {
    d.ctl_json(["target", "add", "disk", "--path", target.to_str().unwrap()]);
    d.ctl_json([
        "job",
        "add",
        "web",
        "--source",
        src.to_str().unwrap(),
        "--schedule",
        NEVER,
        "--target",
        "disk",
    ]);
}
