//! The .deb and .rpm that packaging/build-packages.sh makes from the binaries just built: the
//! files and metadata they hold (`dpkg-deb`, `rpm -qpl`/`-qpi`), their maintainer scripts, and
//! `lintian` without errors (its warnings are justified in docs/packaging.md).

use bms_tests::docs::repo_file;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

fn run(cmd: &mut Command, what: &str) -> String {
    let out: Output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e} (apt-get install dpkg-dev rpm lintian)"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files every package holds, besides the per-format unit directory.
const COMMON: [&str; 16] = [
    "/usr/bin/bmsd",
    "/usr/bin/bmsctl",
    "/usr/lib/sysusers.d/bms.conf",
    "/usr/lib/tmpfiles.d/bms.conf",
    "/usr/share/dbus-1/system.d/org.bms.Manager1.conf",
    "/etc/bms/bmsd.toml",
    "/usr/share/man/man8/bmsd.8.gz",
    "/usr/share/man/man5/bmsd.toml.5.gz",
    "/usr/share/man/man1/bmsctl.1.gz",
    "/usr/share/man/man1/bmsctl-job-add.1.gz",
    "/usr/share/bash-completion/completions/bmsctl",
    "/usr/share/zsh/vendor-completions/_bmsctl",
    "/usr/share/fish/vendor_completions.d/bmsctl.fish",
    "/usr/share/doc/bms/operations.md.gz",
    "/usr/share/bms/monitoring/bms-alerts.yml",
    "/usr/share/bms/monitoring/grafana-dashboard.json",
];

fn assert_lists(list: &str, unitdir: &str, what: &str) {
    let files: Vec<&str> = list.lines().map(str::trim).collect();
    for f in COMMON
        .iter()
        .map(|f| f.to_string())
        .chain(["bmsd.service", "bmsd.socket"].map(|u| format!("{unitdir}/{u}")))
    {
        assert!(files.contains(&f.as_str()), "{what} lacks {f}:\n{list}");
    }
}

#[test]
fn deb_and_rpm_hold_the_files_scripts_and_metadata() {
    let out = tempfile::tempdir().unwrap();
    let built = run(
        Command::new(repo_path("packaging/build-packages.sh"))
            .args(["--profile", "debug", "--no-build", "--out"])
            .arg(out.path()),
        "packaging/build-packages.sh",
    );
    let paths: Vec<&Path> = built.lines().map(Path::new).collect();
    let deb = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let rpm = paths
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "rpm"))
        .expect("an .rpm");

    // .deb: files (paths as dpkg-deb prints them, without the leading dot).
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(deb), "dpkg-deb -c");
    let list: String = contents
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| format!("{}\n", p.trim_start_matches('.')))
        .collect();
    assert_lists(&list, "/lib/systemd/system", "the .deb");
    assert!(
        contents.contains("root/root"),
        "files must belong to root:\n{contents}"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(deb), "dpkg-deb -I");
    for field in [
        "Package: bms",
        "Depends: libc6 (>= 2.",
        "systemd",
        "Section: admin",
    ] {
        assert!(info.contains(field), "control lacks {field:?}:\n{info}");
    }
    let control = tempfile::tempdir().unwrap();
    run(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb)
            .arg(control.path()),
        "dpkg-deb -e",
    );
    let conffiles = std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert_eq!(conffiles.trim(), "/etc/bms/bmsd.toml");
    let postinst = std::fs::read_to_string(control.path().join("postinst")).unwrap();
    for s in [
        "systemd-sysusers",
        "enable bmsd.socket bmsd.service",
        "try-restart bmsd.service",
    ] {
        assert!(postinst.contains(s), "postinst lacks {s:?}");
    }
    let postrm = std::fs::read_to_string(control.path().join("postrm")).unwrap();
    assert!(
        postrm.contains("purge)") && postrm.contains("rm -rf /var/lib/bms"),
        "{postrm}"
    );
    let lintian = Command::new("lintian")
        .arg("--tag-display-limit")
        .arg("0")
        .arg(deb)
        .output()
        .expect("lintian (apt-get install lintian)");
    let report = String::from_utf8_lossy(&lintian.stdout);
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    // Every warning is justified in docs/packaging.md (by its tag).
    let doc = repo_file("docs/packaging.md");
    for w in report.lines().filter(|l| l.starts_with("W:")) {
        let tag = w.split_whitespace().nth(2).unwrap_or(w);
        assert!(
            doc.contains(&format!("`{tag}`")),
            "docs/packaging.md does not justify {w}"
        );
    }

    // .rpm: files, metadata, config and scriptlets, read with Debian's rpm.
    let list = run(Command::new("rpm").arg("-qpl").arg(rpm), "rpm -qpl");
    assert_lists(&list, "/usr/lib/systemd/system", "the .rpm");
    let info = run(Command::new("rpm").arg("-qpi").arg(rpm), "rpm -qpi");
    for field in [
        "Name        : bms",
        "License     : GPL-3.0-or-later",
        "Version     : 0.",
    ] {
        assert!(info.contains(field), "rpm -qpi lacks {field:?}:\n{info}");
    }
    let config = run(Command::new("rpm").arg("-qpc").arg(rpm), "rpm -qpc");
    assert_eq!(config.trim(), "/etc/bms/bmsd.toml");
    let scripts = run(
        Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm),
        "rpm --scripts",
    );
    for s in [
        "systemd-sysusers",
        "preset bmsd.service",
        "disable --now",
        "try-restart bmsd.service",
    ] {
        assert!(scripts.contains(s), "rpm scriptlets lack {s:?}:\n{scripts}");
    }
    let requires = run(
        Command::new("rpm").args(["-qp", "--requires"]).arg(rpm),
        "rpm --requires",
    );
    assert!(
        requires.contains("glibc >= 2.") && requires.contains("systemd"),
        "{requires}"
    );
}
