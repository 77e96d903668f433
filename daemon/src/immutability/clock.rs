//! The trusted clock (docs/operations.md "Immutability"): bmsd lifts a seal only when its time
//! has passed on a wall clock it has checked against the boot clock (CLOCK_BOOTTIME, which
//! nobody can set). It records the latest wall time it has seen together with the boot time in
//! `clock.json` in the state dir; a wall clock that runs ahead of the elapsed boot time by more
//! than [`JUMP_LIMIT`] is a tamper: nothing expires until an admin confirms the clock with
//! `bmsctl target unlock-check --confirm-clock`.
//!
//! Tests shift the clock with [`TEST_CLOCK_ENV`] (a file holding `WALL_OFFSET_SECS
//! [BOOT_OFFSET_SECS]`, read at every reading), honoured only when set and logged loudly.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Names a file whose content shifts bmsd's clocks (tests only).
pub const TEST_CLOCK_ENV: &str = "BMS_TEST_CLOCK";

/// How far the wall clock may run ahead of the elapsed boot time between two readings.
pub const JUMP_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The state file, in the state dir.
pub const FILE: &str = "clock.json";

/// Serialises reads and writes of the state file (the expiry task and `unlock-check`).
static FILE_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Record {
    /// Wall clock, seconds since the epoch.
    wall: i64,
    /// CLOCK_BOOTTIME, seconds.
    boot: i64,
    /// /proc/sys/kernel/random/boot_id: boot times compare only within one boot.
    boot_id: String,
    /// A detected tamper, until confirmed.
    #[serde(default)]
    tamper: Option<Tamper>,
}

/// A clock tamper bmsd detected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tamper {
    /// RFC 3339 (the wall clock at detection).
    pub at: String,
    pub detail: String,
}

/// What the clock says now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The wall clock is trusted; this is now.
    Trusted(SystemTime),
    /// The wall clock jumped; `new` is true when this reading found it (publish the event once).
    Tampered { tamper: Tamper, new: bool },
}

/// The clocks bmsd reads, with the test shift applied. Clones share the latest reading, which
/// stands in for the state file while that is missing or unreadable (removing `clock.json`
/// neither clears a tamper nor hides a jump from a running bmsd).
#[derive(Debug, Clone)]
pub struct Clock {
    file: PathBuf,
    test: Option<PathBuf>,
    last: std::sync::Arc<Mutex<Option<Record>>>,
}

impl Clock {
    /// The clock whose record lives in `state_dir`; the test shift from the environment.
    pub fn new(state_dir: &Path) -> Clock {
        Clock {
            file: state_dir.join(FILE),
            test: std::env::var_os(TEST_CLOCK_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            last: Default::default(),
        }
    }

    /// The test clock file, when one is set.
    pub fn test_file(&self) -> Option<&Path> {
        self.test.as_deref()
    }

    fn offsets(&self) -> (i64, i64) {
        let Some(path) = &self.test else {
            return (0, 0);
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut it = text
            .split_whitespace()
            .map(|w| w.parse::<i64>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    }

    /// The wall clock (seconds since the epoch) and the boot clock (seconds), shifted.
    fn read(&self) -> (i64, i64) {
        let (dw, db) = self.offsets();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
            .map(|t| t.tv_sec())
            .unwrap_or(0);
        (wall.saturating_add(dw), boot.saturating_add(db))
    }

    /// The wall clock as bmsd sees it (shifted in tests), untrusted.
    pub fn wall(&self) -> SystemTime {
        to_time(self.read().0)
    }

    fn load(&self) -> Option<Record> {
        let text = std::fs::read_to_string(&self.file).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn store(&self, r: &Record) -> Result<(), String> {
        let data = serde_json::to_vec_pretty(r).map_err(|e| e.to_string())?;
        let dir = self.file.parent().unwrap_or(Path::new("."));
        bms_engine::fsutil::write_atomic(dir, &self.file, &data, "writing the clock record")
            .map_err(|e| e.to_string())
    }

    /// Reads the clocks, compares them with the record and records this reading.
    pub fn check(&self) -> Verdict {
        let _g = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let (wall, boot) = self.read();
        let boot_id = boot_id();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.load().or_else(|| last.clone());
        let mut tamper = old.as_ref().and_then(|r| r.tamper.clone());
        let mut new = false;
        if let Some(r) = old
            .as_ref()
            .filter(|r| r.boot_id == boot_id && tamper.is_none())
        {
            let expected = r.wall.saturating_add(boot.saturating_sub(r.boot));
            let ahead = wall.saturating_sub(expected);
            if ahead > JUMP_LIMIT.as_secs() as i64 {
                let t = Tamper {
                    at: rfc3339(wall),
                    detail: format!(
                        "the wall clock jumped forward by {} relative to the time elapsed \
                         since {} (boot clock): no seal expires until an admin checks the \
                         clock and runs `bmsctl target unlock-check --confirm-clock`",
                        span(ahead),
                        rfc3339(r.wall)
                    ),
                };
                tamper = Some(t);
                new = true;
            }
        }
        let rec = Record {
            wall,
            boot,
            boot_id,
            tamper: tamper.clone(),
        };
        if let Err(e) = self.store(&rec) {
            tracing::warn!("cannot record the clock in {}: {e}", self.file.display());
        }
        *last = Some(rec);
        match tamper {
            Some(tamper) => Verdict::Tampered { tamper, new },
            None => Verdict::Trusted(to_time(wall)),
        }
    }

    /// Clears a recorded tamper and takes the wall clock as it is now; returns the cleared one.
    pub fn confirm(&self) -> Result<Option<Tamper>, String> {
        let _g = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let (wall, boot) = self.read();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.load().or_else(|| last.clone()).and_then(|r| r.tamper);
        let rec = Record {
            wall,
            boot,
            boot_id: boot_id(),
            tamper: None,
        };
        self.store(&rec)?;
        *last = Some(rec);
        Ok(old)
    }

    /// The recorded tamper, if any (without reading the clocks).
    pub fn tamper(&self) -> Option<Tamper> {
        let _g = FILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        self.load().and_then(|r| r.tamper)
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn to_time(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn rfc3339(secs: i64) -> String {
    bms_engine::store::seal::rfc3339(to_time(secs))
}

/// "30 days 0 h" style.
fn span(secs: i64) -> String {
    let (d, h) = (secs / 86_400, (secs % 86_400) / 3600);
    format!("{d} days {h} h")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(dir: &Path) -> (Clock, PathBuf) {
        let shift = dir.join("shift");
        std::fs::write(&shift, "0 0").unwrap();
        (
            Clock {
                file: dir.join(FILE),
                test: Some(shift.clone()),
                last: Default::default(),
            },
            shift,
        )
    }

    #[test]
    fn time_passing_on_both_clocks_is_trusted() {
        let d = tempfile::tempdir().unwrap();
        let (c, shift) = clock(d.path());
        assert!(matches!(c.check(), Verdict::Trusted(_)));
        std::fs::write(&shift, "172800 172800").unwrap();
        let Verdict::Trusted(now) = c.check() else {
            panic!("two days on both clocks is not a jump")
        };
        assert!(now > SystemTime::now() + Duration::from_secs(172_000));
    }

    #[test]
    fn a_wall_clock_jump_is_a_tamper_until_confirmed() {
        let d = tempfile::tempdir().unwrap();
        let (c, shift) = clock(d.path());
        assert!(matches!(c.check(), Verdict::Trusted(_)));
        std::fs::write(&shift, format!("{}", 30 * 86_400)).unwrap();
        match c.check() {
            Verdict::Tampered { tamper, new } => {
                assert!(new);
                assert!(tamper.detail.contains("30 days"), "{}", tamper.detail);
            }
            v => panic!("{v:?}"),
        }
        // It stays tampered, reported once.
        assert!(matches!(c.check(), Verdict::Tampered { new: false, .. }));
        assert!(c.tamper().is_some());
        assert!(c.confirm().unwrap().is_some());
        assert!(matches!(c.check(), Verdict::Trusted(_)));
        // A clock set back is no tamper of seals (they only last longer).
        std::fs::write(&shift, "0").unwrap();
        assert!(matches!(c.check(), Verdict::Trusted(_)));
    }

    #[test]
    fn removing_the_state_file_hides_no_jump_from_a_running_bmsd() {
        let d = tempfile::tempdir().unwrap();
        let (c, shift) = clock(d.path());
        assert!(matches!(c.check(), Verdict::Trusted(_)));
        std::fs::remove_file(d.path().join(FILE)).unwrap();
        std::fs::write(&shift, format!("{}", 30 * 86_400)).unwrap();
        assert!(matches!(c.check(), Verdict::Tampered { new: true, .. }));
        std::fs::remove_file(d.path().join(FILE)).unwrap();
        assert!(matches!(c.check(), Verdict::Tampered { new: false, .. }));
    }
}
