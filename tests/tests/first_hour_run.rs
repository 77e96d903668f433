//! The README's run command works as written: its bmsd lines, taken from README.md ("Set up on a
//! fresh machine"), start the daemon on its embedded defaults as root (no sudo) and as an
//! unprivileged user with its own XDG directories; each reaches READY=1 and answers
//! `bmsctl status`.
//!
//! The suite's debug binaries stand for the release build: the commands run in a directory whose
//! `target/release/` holds links to them (CI does not build release twice). As root, the daemon
//! runs in a private mount namespace with empty /var/lib, /run (and /etc/bms when the host has
//! one), so that the embedded root paths are used for real without touching the host's.

use bms_tests::readme::{commands, section, sh_blocks, Notify, ShellLine, Started};
use bms_tests::users::{as_user, require_root, NOBODY};
use bms_tests::{assert_ok, bin, clean_command, docs::repo_file};
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The build line and the two bmsd lines (as root, as another user) of the README.
fn run_block() -> (ShellLine, ShellLine, ShellLine) {
    let readme = repo_file("README.md");
    let blocks = sh_blocks(section(&readme, "Set up on a fresh machine"));
    let first = blocks
        .first()
        .expect("a ```sh block in 'Set up on a fresh machine'");
    let lines = commands(first);
    assert_eq!(
        lines.len(),
        3,
        "expected a build line and two bmsd lines: {lines:?}"
    );
    let build = lines[0].clone();
    assert_eq!(build.command, "cargo build --release", "{build:?}");
    let root = lines
        .iter()
        .find(|l| l.comment.starts_with("as root"))
        .expect("a bmsd line marked '# as root'")
        .clone();
    let user = lines
        .iter()
        .find(|l| l.comment.starts_with("as another user"))
        .expect("a bmsd line marked '# as another user'")
        .clone();
    for l in [&root, &user] {
        assert!(
            l.command.starts_with("./target/release/bmsd"),
            "the run command does not start bmsd from the build: {l:?}"
        );
        assert!(
            !l.command.contains("sudo"),
            "sudo is not on a minimal Debian: {l:?}"
        );
    }
    (build, root, user)
}

/// A directory laid out like a checkout after `cargo build --release`, open to every user.
fn checkout() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::Builder::new()
        .prefix("bms-readme-")
        .tempdir()
        .unwrap();
    let release = t.path().join("target/release");
    std::fs::create_dir_all(&release).unwrap();
    for name in ["bmsd", "bmsctl"] {
        std::os::unix::fs::symlink(bin(name), release.join(name)).unwrap();
    }
    for d in [t.path(), &t.path().join("target"), &release] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (t, release)
}

fn path_with(release: &Path) -> String {
    format!(
        "{}:{}",
        release.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn parse_status(out: &std::process::Output) -> serde_json::Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

#[test]
fn the_readme_run_command_serves_as_root_on_the_system_paths() {
    require_root();
    let (_build, root, _) = run_block();
    let (t, release) = checkout();
    let notify = t.path().join("notify");
    let n = Notify::bind(&notify);
    // Private, empty /var/lib and /run (and /etc/bms), then exactly the README's line.
    let script = "mount -t tmpfs bms-readme /var/lib && mount -t tmpfs bms-readme /run && \
                  { [ ! -d /etc/bms ] || mount -t tmpfs bms-readme /etc/bms; } && exec sh -c \"$1\"";
    let mut cmd = clean_command("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
    ])
    .arg(&root.command);
    let mut d = Started::spawn(cmd, t.path(), &notify);
    d.wait_ready(&n);

    // `bmsctl status` in the daemon's mount namespace, on the default socket.
    let ctl = |args: &[&str]| {
        clean_command("nsenter")
            .arg("-t")
            .arg(d.child.id().to_string())
            .args(["-m", "--", "bmsctl"])
            .args(args)
            .env("PATH", path_with(&release))
            .current_dir(t.path())
            .output()
            .unwrap()
    };
    assert_ok(&ctl(&["status"]));
    let st = parse_status(&ctl(&["--json", "status"]));
    assert_eq!(st["state_dir"], "/var/lib/bms", "{st}");
    assert_eq!(st["socket"], "/run/bms/bmsd.sock", "{st}");
    assert_eq!(st["config"]["path"], serde_json::Value::Null, "{st}");
    assert_eq!(st["role"], "admin", "{st}");
    assert_eq!(st["targets"], 1, "the default local target: {st}");
    d.stop(&st["pid"]);
}

#[test]
fn the_readme_run_command_serves_an_ordinary_user_on_its_xdg_directories() {
    require_root();
    let (_, _, user) = run_block();
    let (t, release) = checkout();
    let notify = t.path().join("notify");
    let n = Notify::bind(&notify);
    // A user's session: a home and a runtime directory of its own, no other XDG variables.
    let home = t.path().join("home");
    let runtime = t.path().join("xdg-runtime");
    for d in [&home, &runtime] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(d, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let session = |cmd: &mut Command| {
        cmd.env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("PATH", path_with(&release))
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .current_dir(t.path());
    };
    let mut cmd = as_user(NOBODY, &[], "sh");
    cmd.arg("-c").arg(&user.command);
    session(&mut cmd);
    let mut d = Started::spawn(cmd, t.path(), &notify);
    d.wait_ready(&n);

    let ctl = |args: &[&str]| {
        let mut c = as_user(NOBODY, &[], "bmsctl");
        c.args(args);
        session(&mut c);
        c.output().unwrap()
    };
    assert_ok(&ctl(&["status"]));
    let st = parse_status(&ctl(&["--json", "status"]));
    let state = home.join(".local/state/bms");
    assert_eq!(st["state_dir"], state.to_str().unwrap(), "{st}");
    assert_eq!(
        st["socket"],
        runtime.join("bms/bmsd.sock").to_str().unwrap(),
        "{st}"
    );
    assert_eq!(
        st["role"], "admin",
        "the daemon's own user administers it: {st}"
    );
    assert!(
        state.join("catalog.db").exists(),
        "no catalog under {}",
        state.display()
    );
    d.stop(&st["pid"]);
}
