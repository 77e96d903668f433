//! The README's test command, `scripts/test`: its install step against the one package list
//! (scripts/test-packages), with a fake `dpkg-query` and `apt-get` on PATH that keep a package
//! database in a file: it installs exactly what is missing, nothing the second time, and stops
//! with the list and a non-zero exit when it cannot (not root, apt-get failing). The real
//! machine is checked too: every package is installed and every tool the tests run comes from
//! one of them, and `.ci/run` calls the command rather than keeping its own list.

use bms_tests::docs::repo_file;
use bms_tests::readme::{commands, section, sh_blocks};
use bms_tests::users::{as_user, require_root, NOBODY};
use bms_tests::{clean_command, stderr, stdout};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/test")
}

/// The package names of scripts/test-packages.
fn packages() -> Vec<String> {
    repo_file("scripts/test-packages")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A fake Debian: `dpkg-query -W -f='${Status}' P` answers from `db` (one installed package a
/// line), `apt-get` logs its arguments to `log` and `install` adds its packages to `db`.
struct FakeDebian {
    _t: tempfile::TempDir,
    bin: PathBuf,
    db: PathBuf,
    log: PathBuf,
}

impl FakeDebian {
    fn new(installed: &[String]) -> FakeDebian {
        let t = tempfile::tempdir().unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = t.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let db = t.path().join("installed");
        let log = t.path().join("apt.log");
        std::fs::write(&db, installed.join("\n") + "\n").unwrap();
        std::fs::write(&log, "").unwrap();
        let dpkg = format!(
            "#!/bin/sh\n# dpkg-query -W -f=FORMAT PACKAGE\neval pkg=\\${{$#}}\n\
             if grep -qx \"$pkg\" {db}; then printf 'install ok installed'; exit 0; fi\n\
             echo \"dpkg-query: no packages found matching $pkg\" >&2; exit 1\n",
            db = db.display()
        );
        let apt = format!(
            "#!/bin/sh\necho \"$*\" >> {log}\n[ -z \"$FAKE_APT_FAIL\" ] || exit 100\n\
             [ \"$1\" = install ] || exit 0\n\
             for a in \"$@\"; do case \"$a\" in install|-*) ;; *) echo \"$a\" >> {db};; esac; done\n",
            log = log.display(),
            db = db.display()
        );
        for (name, text) in [("dpkg-query", dpkg), ("apt-get", apt)] {
            let p = bin.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        for f in [&db, &log] {
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
        FakeDebian {
            _t: t,
            bin,
            db,
            log,
        }
    }

    fn with_path(&self, mut cmd: Command) -> Command {
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                self.bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.with_path(clean_command(script()));
        cmd.args(args).output().unwrap()
    }

    fn apt_calls(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn installed(&self) -> BTreeSet<String> {
        std::fs::read_to_string(&self.db)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// All packages but `gone`.
fn all_but(gone: &[&str]) -> Vec<String> {
    let all = packages();
    for g in gone {
        assert!(
            all.iter().any(|p| p == g),
            "{g} is not in scripts/test-packages"
        );
    }
    all.into_iter()
        .filter(|p| !gone.contains(&p.as_str()))
        .collect()
}

#[test]
fn check_lists_what_is_missing_and_installs_nothing() {
    let fake = FakeDebian::new(&all_but(&["xfsprogs", "curl"]));
    let out = fake.run(&["--check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("missing packages: xfsprogs curl"), "{text}");
    assert!(fake.apt_calls().is_empty(), "--check ran apt-get");

    let fake = FakeDebian::new(&packages());
    let out = fake.run(&["--check"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("all"), "{out:?}");
}

#[test]
fn install_adds_exactly_the_missing_packages_then_nothing() {
    require_root();
    let fake = FakeDebian::new(&all_but(&["attr", "e2fsprogs"]));
    let out = fake.run(&["--install"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let calls = fake.apt_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls[0].starts_with("update"), "{calls:?}");
    assert!(calls[1].starts_with("install "), "{calls:?}");
    assert!(calls[1].ends_with(" e2fsprogs attr"), "{calls:?}");
    assert_eq!(
        fake.installed(),
        packages().into_iter().collect::<BTreeSet<_>>()
    );

    // Idempotent: all present, apt-get is not called again.
    let out = fake.run(&["--install"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("are installed"), "{out:?}");
    assert_eq!(
        fake.apt_calls().len(),
        2,
        "apt-get ran with nothing missing"
    );
}

#[test]
fn install_refuses_with_the_list_when_it_cannot() {
    require_root();
    // Not root: nothing installed, the list and the fix named, non-zero exit.
    let fake = FakeDebian::new(&all_but(&["dbus"]));
    let mut cmd = fake.with_path(as_user(NOBODY, &[], "bash"));
    let out = cmd.arg(script()).arg("--install").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains("not root"), "{err}");
    assert!(err.contains("apt-get install dbus"), "{err}");
    assert!(fake.apt_calls().is_empty());
    // The full command stops there too, before building anything.
    let mut cmd = fake.with_path(as_user(NOBODY, &[], "bash"));
    let out = cmd.arg(script()).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!stdout(&out).contains("cargo build"), "{out:?}");

    // Not root but nothing missing: fine.
    let fake_all = FakeDebian::new(&packages());
    let mut cmd = fake_all.with_path(as_user(NOBODY, &[], "bash"));
    let out = cmd.arg(script()).arg("--install").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // apt-get failing (no network, no such package): said so, non-zero exit.
    let mut cmd = fake.with_path(clean_command(script()));
    let out = cmd
        .arg("--install")
        .env("FAKE_APT_FAIL", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stderr(&out).contains("apt-get could not install: dbus"),
        "{out:?}"
    );

    // Bad usage.
    let out = fake.run(&["--check", "extra"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

/// The package (per dpkg) of a program on PATH.
fn package_of(tool: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .unwrap();
    let path = stdout(&out).trim().to_owned();
    assert!(
        !path.is_empty(),
        "{tool} is not installed: run scripts/test --install as root"
    );
    // Merged /usr: dpkg may know the file under /bin or /sbin.
    for p in [path.as_str(), path.trim_start_matches("/usr")] {
        let out = Command::new("dpkg").arg("-S").arg(p).output().unwrap();
        if out.status.success() {
            return stdout(&out).split(':').next().unwrap_or("").to_owned();
        }
    }
    panic!("dpkg does not know which package holds {path}");
}

fn dpkg_field(package: &str, field: &str) -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", &format!("-f=${{{field}}}"), package])
        .output()
        .unwrap();
    stdout(&out)
}

#[test]
fn this_machine_has_every_listed_package_and_the_tools_the_tests_run() {
    let out = clean_command(script()).arg("--check").output().unwrap();
    assert!(
        out.status.success(),
        "test packages are missing here; install them with `scripts/test --install` as root: {}",
        stdout(&out)
    );
    let listed: BTreeSet<String> = packages().into_iter().collect();
    let depends: String = listed
        .iter()
        .map(|p| dpkg_field(p, "Depends") + ",")
        .collect();
    for tool in [
        "setpriv",
        "unshare",
        "nsenter",
        "mount",
        "umount",
        "losetup",
        "mkfs.ext4",
        "xfs_io",
        "groupadd",
        "systemd-analyze",
        "dbus-daemon",
        "setfattr",
        "curl",
        "cc",
    ] {
        let pkg = if tool == "cc" {
            "gcc".to_owned()
        } else {
            package_of(tool)
        };
        let ok = listed.contains(&pkg)
            || dpkg_field(&pkg, "Essential") == "yes"
            || depends
                .split(',')
                .any(|d| d.split_whitespace().next() == Some(pkg.as_str()));
        assert!(
            ok,
            "{tool} comes from {pkg}, which scripts/test-packages does not list"
        );
    }
}

#[test]
fn ci_and_the_readme_use_the_one_test_command() {
    let ci = repo_file(".ci/run");
    assert!(
        !ci.contains("apt-get"),
        ".ci/run keeps its own package list"
    );
    // The test command, then only the boot test of the packages (docs/packaging.md).
    let lines: Vec<&str> = ci.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| *l == "scripts/test")
        .expect(".ci/run runs the test command `scripts/test`");
    for l in lines[at + 1..]
        .iter()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            l.contains("tests/boot/run.sh"),
            ".ci/run runs {l:?} after the test command; only the boot test may follow it"
        );
    }
    let readme = repo_file("README.md");
    let blocks = sh_blocks(section(&readme, "Set up on a fresh machine"));
    let test_cmd: Vec<String> = blocks
        .iter()
        .flat_map(|b| commands(b))
        .map(|c| c.command)
        .filter(|c| c.contains("scripts/test"))
        .collect();
    assert_eq!(test_cmd, vec!["./scripts/test".to_owned()], "{blocks:?}");
    assert!(Path::new(&script()).exists());
}
