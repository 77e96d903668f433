//! `Doctor`: the daemon's side of `bmsctl doctor` (docs/operations.md, "bmsctl doctor"): its
//! capabilities against what its jobs and targets need, the catalog file's integrity, free space
//! of the state dir, where the logs go, the metrics endpoint, each target's pre-flight (not
//! stored: the check is a reader's), the jobs' sources and the jobs that never succeeded.

use super::core::{Ctx, Operation};
use bms_proto::api::*;
use bms_proto::ApiError;
use std::path::Path;

/// Below this much free space in the state dir (or 2 % of its filesystem), the check fails.
const MIN_FREE_STATE: u64 = 1 << 30;

impl Operation for Doctor {
    async fn call(self, ctx: &Ctx<'_>) -> Result<DoctorReply, ApiError> {
        // A catalog that cannot answer is itself a finding; the other checks still run.
        let listed = ctx
            .shared
            .catalog
            .call(|c| Ok((c.list_targets()?, c.list_jobs()?, c.facts()?)))
            .await;
        let (targets, jobs, facts, list_error) = match listed {
            Ok((t, j, f)) => (t, j, f, None),
            Err(e) => (Vec::new(), Vec::new(), Default::default(), Some(e)),
        };
        let state_dir = ctx.shared.config().config.state_dir.clone();
        let metrics = ctx.shared.metrics_address.get().copied();
        let listen = ctx.shared.config().config.metrics_listen;
        let health = match list_error {
            Some(e) => Err(e),
            None => ctx.shared.catalog.call(|c| c.health()).await,
        };
        let checks = tokio::task::spawn_blocking(move || {
            let mut checks = capabilities(&read_cap_eff(), &targets, &jobs);
            checks.push(catalog(&state_dir, health.err()));
            checks.push(free_space(&state_dir));
            checks.push(logging());
            checks.push(match metrics {
                Some(a) => DoctorCheck::pass("metrics", format!("serving http://{a}/metrics")),
                None => DoctorCheck::fail(
                    "metrics",
                    format!("not serving: bmsd could not listen on {listen}"),
                    "free that address or set metrics_listen in bmsd.toml (docs/configuration.md), then restart bmsd",
                ),
            });
            for t in &targets {
                let c = crate::preflight::check(&t.spec);
                let name = format!("target {}", t.spec.name);
                checks.push(if c.ok {
                    DoctorCheck::pass(name, c.message)
                } else {
                    DoctorCheck::fail(
                        name,
                        c.message,
                        format!(
                            "fix what the message says, then `bmsctl target check {}`",
                            t.spec.name
                        ),
                    )
                });
            }
            for j in &jobs {
                checks.push(sources(&j.spec));
            }
            for j in &jobs {
                let last = facts
                    .jobs
                    .iter()
                    .find(|f| f.name == j.spec.name)
                    .and_then(|f| f.last_success);
                let name = format!("job {} runs", j.spec.name);
                checks.push(match last {
                    Some(_) => DoctorCheck::pass(name, "has a successful backup"),
                    None => DoctorCheck::fail(
                        name,
                        "has no successful backup yet",
                        format!(
                            "run it now and read its result: `bmsctl job run {} --wait`",
                            j.spec.name
                        ),
                    ),
                });
            }
            checks
        })
        .await
        .map_err(|e| ApiError::internal(format!("the doctor's checks failed: {e}")))?;
        Ok(DoctorReply { checks })
    }
}

const CAP_CHOWN: u32 = 0;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_LINUX_IMMUTABLE: u32 = 9;

/// The effective capability set of this process (`CapEff` of /proc/self/status); none when it
/// cannot be read.
fn read_cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .as_deref()
        .and_then(cap_eff)
        .unwrap_or(0)
}

fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// One line per capability: present, or needed by what and missing, or not needed yet.
fn capabilities(eff: &u64, targets: &[TargetInfo], jobs: &[JobInfo]) -> Vec<DoctorCheck> {
    let immutable: Vec<&str> = targets
        .iter()
        .filter(|t| t.spec.immutable_days > 0)
        .map(|t| t.spec.name.as_str())
        .collect();
    let has_jobs = !jobs.is_empty();
    let uid = nix::unistd::geteuid().as_raw();
    let wants = [
        (
            CAP_DAC_READ_SEARCH,
            "CAP_DAC_READ_SEARCH",
            has_jobs,
            "to read every file of the jobs' sources".to_owned(),
        ),
        (
            CAP_CHOWN,
            "CAP_CHOWN",
            has_jobs,
            "to restore files with their owners".to_owned(),
        ),
        (
            CAP_LINUX_IMMUTABLE,
            "CAP_LINUX_IMMUTABLE",
            !immutable.is_empty(),
            format!(
                "to make backups immutable on {}",
                if immutable.is_empty() {
                    "targets with --immutable-days".to_owned()
                } else {
                    immutable.join(", ")
                }
            ),
        ),
    ];
    wants
        .into_iter()
        .map(|(bit, cap, needed, why)| {
            let name = format!("capability {cap}");
            let has = eff & (1u64 << bit) != 0;
            match (has, needed) {
                (true, _) => DoctorCheck::pass(name, format!("bmsd has it ({why})")),
                (false, false) => DoctorCheck::pass(
                    name,
                    format!("bmsd (uid {uid}) lacks it; nothing needs it yet ({why})"),
                ),
                (false, true) => DoctorCheck::fail(
                    name,
                    format!("bmsd (uid {uid}) lacks it, needed {why}"),
                    format!(
                        "run bmsd as root with its full capabilities (the systemd unit in \
                         packaging/systemd does); do not drop {cap} from its bounding set"
                    ),
                ),
            }
        })
        .collect()
}

fn catalog(state_dir: &Path, damage: Option<ApiError>) -> DoctorCheck {
    let path = state_dir.join("catalog.db");
    let hint = "stop bmsd and follow docs/operations.md, \"A damaged catalog\" (the backups \
                themselves are safe in the repositories)";
    match (crate::catalog::quick_check_file(&path), damage) {
        (Err(e), _) => DoctorCheck::fail(
            "catalog",
            format!("{} fails its integrity check: {e}", path.display()),
            hint,
        ),
        (Ok(()), Some(e)) => DoctorCheck::fail(
            "catalog",
            format!(
                "{} passes its integrity check, but: {}",
                path.display(),
                e.message
            ),
            hint,
        ),
        (Ok(()), None) => DoctorCheck::pass(
            "catalog",
            format!("{} passes its integrity check", path.display()),
        ),
    }
}

fn free_space(state_dir: &Path) -> DoctorCheck {
    let name = "state dir space";
    match nix::sys::statvfs::statvfs(state_dir) {
        Ok(s) => {
            let frsize = s.fragment_size();
            let avail = s.blocks_available() * frsize;
            let total = s.blocks() * frsize;
            let text = format!(
                "{} free of {} in {}",
                bms_proto::units::human_bytes(avail),
                bms_proto::units::human_bytes(total),
                state_dir.display()
            );
            if avail < MIN_FREE_STATE || avail.saturating_mul(50) < total {
                DoctorCheck::fail(
                    name,
                    text,
                    "free space there: the catalog and the default local target live in it",
                )
            } else {
                DoctorCheck::pass(name, text)
            }
        }
        Err(e) => DoctorCheck::fail(
            name,
            format!("cannot read the free space of {}: {e}", state_dir.display()),
            "check that the state dir exists and is a mounted filesystem",
        ),
    }
}

fn logging() -> DoctorCheck {
    if crate::logging::journald_in_use() {
        DoctorCheck::pass("journald", "bmsd logs to the journal (journalctl -u bmsd)")
    } else {
        DoctorCheck::fail(
            "journald",
            "bmsd logs to stderr, not to the journal",
            "run bmsd as the systemd service (packaging/systemd), or with --log-target journald where the journal runs",
        )
    }
}

fn sources(job: &JobSpec) -> DoctorCheck {
    let name = format!("job {} sources", job.name);
    let mut problems = Vec::new();
    for s in &job.sources {
        let link = std::fs::symlink_metadata(s)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        match std::fs::metadata(s) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => problems.push(if link {
                format!("{s} is a symbolic link to nothing")
            } else {
                format!("{s} does not exist")
            }),
            Err(e) => problems.push(format!("{s} cannot be read: {e}")),
            Ok(_) if link => {
                let to = std::fs::read_link(s)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                problems.push(format!(
                    "{s} is a symbolic link to {to}: backups follow it (docs/operations.md, \
                     \"Backup sources\"), so what they hold changes when the link does"
                ))
            }
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        DoctorCheck::pass(name, format!("{} present", job.sources.join(", ")))
    } else {
        DoctorCheck::fail(
            name,
            problems.join("; "),
            format!(
                "name existing, real directories: `bmsctl job edit {} --source PATH ...`",
                job.name
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_from_proc_status() {
        let text = "Name:\tbmsd\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(cap_eff(text), Some(0x1ff_ffff_ffff));
        assert_eq!(cap_eff("Name: x\n"), None);
    }

    #[test]
    fn a_missing_capability_fails_only_when_needed() {
        let job: JobInfo = serde_json::from_value(serde_json::json!({
            "name": "j", "sources": ["/srv"], "schedule": "daily", "targets": ["local"],
            "schedule_normalized": "*-*-* 00:00:00", "next_runs": [],
            "created_at": "", "updated_at": ""
        }))
        .unwrap();
        let all = u64::MAX;
        let no_read = all & !(1 << CAP_DAC_READ_SEARCH);
        assert!(capabilities(&all, &[], std::slice::from_ref(&job))
            .iter()
            .all(|c| c.ok));
        assert!(capabilities(&no_read, &[], &[]).iter().all(|c| c.ok));
        let c = capabilities(&no_read, &[], &[job]);
        let bad: Vec<_> = c.iter().filter(|c| !c.ok).collect();
        assert_eq!(bad.len(), 1, "{c:?}");
        assert_eq!(bad[0].name, "capability CAP_DAC_READ_SEARCH");
        assert!(bad[0].hint.is_some());
    }
}
