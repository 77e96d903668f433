//! A private `dbus-daemon` for the D-Bus tests (docs/dbus.md): a system-type bus with the
//! default deny policy of a system bus plus either the project's policy file
//! (packaging/systemd/org.bms.Manager1.conf) or a permissive policy that lets anyone call bmsd
//! (so that bmsd's own check is what refuses). The bus is ready when it prints its address.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Which policy the bus enforces for `org.bms.Manager1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The project's policy file.
    Project,
    /// Everyone may own and call anything.
    Permissive,
}

pub struct Bus {
    child: Child,
    pub address: String,
    _dir: tempfile::TempDir,
}

/// The project's D-Bus policy file.
pub fn policy_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd/org.bms.Manager1.conf")
}

const SYSTEM_DEFAULTS: &str = r#"
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
"#;

impl Bus {
    /// Starts the bus and waits until it listens.
    pub fn start(policy: Policy) -> Bus {
        let dir = tempfile::Builder::new()
            .prefix("bms-dbus-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .expect("chmod");
        if policy == Policy::Project {
            // dbus-daemon resolves the group names of a policy when it reads its config and
            // drops the rules of a group that does not exist then: the groups of the project's
            // policy must exist before the bus starts, not only when a test first needs them.
            for group in ["bms", "bms-admin"] {
                crate::users::ensure_group(group);
            }
        }
        let rules = match policy {
            Policy::Project => format!(
                "<policy context=\"default\">{SYSTEM_DEFAULTS}</policy>\n  <include>{}</include>",
                policy_file().canonicalize().expect("policy file").display()
            ),
            Policy::Permissive => format!(
                "<policy context=\"default\">{SYSTEM_DEFAULTS}\n    <allow own=\"*\"/>\n    <allow send_destination=\"*\"/>\n  </policy>"
            ),
        };
        let config = format!(
            "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n \
             \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n<busconfig>\n  \
             <type>system</type>\n  <listen>unix:path={}/bus.sock</listen>\n  \
             <auth>EXTERNAL</auth>\n  {rules}\n</busconfig>\n",
            dir.path().display()
        );
        let conf = dir.path().join("bus.conf");
        std::fs::write(&conf, config).expect("write bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .arg("--print-address=1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dbus-daemon (Debian package dbus)");
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout");
        BufReader::new(out)
            .read_line(&mut line)
            .expect("read the bus address");
        let address = line.trim().to_owned();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon printed no address: {line:?}"
        );
        Bus {
            child,
            address,
            _dir: dir,
        }
    }

    /// The environment that points bmsd (running as root) at this bus.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DBUS_SYSTEM_BUS_ADDRESS".into(), self.address.clone())]
    }

    /// `busctl --address=… --json=short ARGS` (run as `runner`, e.g. `users::as_user`).
    pub fn busctl_in(&self, mut cmd: Command, args: &[&str]) -> std::process::Output {
        cmd.arg(format!("--address={}", self.address))
            .arg("--json=short")
            .args(args)
            .output()
            .expect("run busctl (Debian package systemd)")
    }

    /// `busctl` as root.
    pub fn busctl(&self, args: &[&str]) -> std::process::Output {
        self.busctl_in(crate::clean_command("busctl"), args)
    }

    /// Calls `METHOD` of `org.bms.Manager1` with JSON parameters through busctl as `cmd`'s user.
    pub fn call_in(&self, cmd: Command, method: &str, params: &str) -> std::process::Output {
        self.busctl_in(
            cmd,
            &[
                "call",
                "org.bms.Manager1",
                "/org/bms/Manager1",
                "org.bms.Manager1",
                method,
                "s",
                params,
            ],
        )
    }

    /// The JSON reply of a successful busctl call as root.
    pub fn call_json(&self, method: &str, params: &str) -> serde_json::Value {
        let out = self.call_in(crate::clean_command("busctl"), method, params);
        crate::assert_ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("busctl JSON");
        let text = v["data"][0].as_str().expect("a string reply");
        serde_json::from_str(text).expect("the reply is JSON")
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
