//! The metrics text of `GET /metrics` (OpenMetrics, namespace `bms_`; served by
//! [`crate::metrics_http`]). Gauges are read from the catalog
//! and the runner at scrape time; counters ([`crate::events::RunCounters`]) are fed from the event bus, so that
//! pruning the run history cannot make them fall (docs/metrics.md).

use crate::catalog::CatalogFacts;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(String, String)>;

type FGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Figures of the bmsd process and its catalog file, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time: f64,
    /// The catalog database with its write-ahead log.
    pub catalog_bytes: u64,
}

impl ProcessFacts {
    /// Reads /proc/self (Linux) and the catalog's size; what cannot be read stays 0.
    pub fn read(catalog: &std::path::Path, started_unix: f64) -> ProcessFacts {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100)
            .max(1) as f64;
        let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .unwrap_or(4096)
            .max(1) as u64;
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat(5), rss 24: index 11, 12, 21 here.
        let cpu_seconds = (field(11) + field(12)) as f64 / ticks;
        let resident_bytes = field(21) * page;
        let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        let max_fds = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(0, |(soft, _)| soft);
        let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let mut wal = catalog.as_os_str().to_owned();
        wal.push("-wal");
        ProcessFacts {
            cpu_seconds,
            resident_bytes,
            open_fds,
            max_fds,
            start_time: started_unix,
            catalog_bytes: size(catalog) + size(std::path::Path::new(&wal)),
        }
    }
}

/// Renders the metrics text for the given facts.
/// Renders the whole metrics text (OpenMetrics, with `# EOF`) for the given facts.
pub fn render(
    facts: &CatalogFacts,
    process: &ProcessFacts,
    running: usize,
    queued: usize,
    uptime: f64,
) -> Result<String, std::fmt::Error> {
    let mut out = render_live(facts, process, running, queued, uptime)?;
    out.push_str(&render_runs(&facts.run_counts)?);
    out.push_str(&render_catalog(facts)?);
    out.push_str(EOF);
    Ok(out)
}

/// The OpenMetrics end marker, which [`render_live`] and [`render_catalog`] leave out so that
/// their texts can be joined.
pub const EOF: &str = "# EOF\n";

fn gauge(reg: &mut Registry, name: &str, help: &str, v: f64) {
    let g = FGauge::default();
    g.set(v);
    reg.register(name, help, g);
}

/// The registry's families as OpenMetrics text without the end marker.
fn encode_families(reg: &Registry) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    encode(&mut out, reg)?;
    if out.ends_with(EOF) {
        out.truncate(out.len() - EOF.len());
    }
    Ok(out)
}

/// `bms_runs_total`, from the event-fed counts (`RunCounters`): one series per job, kind and
/// final state, the largest family of a big installation, rendered again only when a run
/// finished.
pub fn render_runs(
    run_counts: &[(String, String, String, u64)],
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("bms");
    let runs = Family::<Labels, Counter>::default();
    for (job, kind, state, n) in run_counts {
        runs.get_or_create(&labels(&[("job", job), ("kind", kind), ("state", state)]))
            .inc_by(*n);
    }
    reg.register(
        "runs",
        "Finished runs, by job, kind and final state (since bmsd started, seeded from the catalog)",
        runs,
    );
    encode_families(&reg)
}

/// The families that change between two scrapes of an unchanged catalog: build and uptime,
/// the runner's queue, the notification counters, repository usage and the process figures
/// (the run counters are [`render_runs`]).
pub fn render_live(
    facts: &CatalogFacts,
    process: &ProcessFacts,
    running: usize,
    queued: usize,
    uptime: f64,
) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("bms");
    reg.register(
        "build",
        "Version of bmsd",
        Info::new(vec![("version".to_owned(), bms_proto::VERSION.to_owned())]),
    );
    gauge(
        &mut reg,
        "uptime_seconds",
        "Seconds since bmsd started",
        uptime,
    );
    gauge(&mut reg, "runs_running", "Runs going now", running as f64);
    gauge(
        &mut reg,
        "runs_queued",
        "Runs waiting for a slot",
        queued as f64,
    );
    let repo_bytes = Family::<Labels, FGauge>::default();
    let logical = Family::<Labels, FGauge>::default();
    let dedup = Family::<Labels, FGauge>::default();
    let compression = Family::<Labels, FGauge>::default();
    for (t, u) in &facts.usage {
        let l = labels(&[("target", t)]);
        repo_bytes.get_or_create(&l).set(u.stored_bytes as f64);
        logical.get_or_create(&l).set(u.logical_bytes as f64);
        dedup.get_or_create(&l).set(u.dedup_ratio());
        compression.get_or_create(&l).set(u.compression_ratio());
    }
    reg.register(
        "target_repository_bytes",
        "Bytes of the pack, index and snapshot files of the target's repository",
        repo_bytes,
    );
    reg.register(
        "target_logical_bytes",
        "Sum of the source sizes of every snapshot in the target's repository",
        logical,
    );
    reg.register(
        "target_dedup_ratio",
        "Logical bytes per distinct stored byte (before compression) in the target's repository",
        dedup,
    );
    reg.register(
        "target_compression_ratio",
        "Distinct bytes per compressed byte in the target's repository",
        compression,
    );
    gauge(
        &mut reg,
        "catalog_bytes",
        "Size of the catalog database and its write-ahead log",
        process.catalog_bytes as f64,
    );
    let cpu: Counter<f64, AtomicU64> = Counter::default();
    cpu.inc_by(process.cpu_seconds);
    reg.register(
        "process_cpu_seconds",
        "User and system CPU time of bmsd",
        cpu,
    );
    gauge(
        &mut reg,
        "process_resident_memory_bytes",
        "Resident memory of bmsd",
        process.resident_bytes as f64,
    );
    gauge(
        &mut reg,
        "process_open_fds",
        "Open file descriptors of bmsd",
        process.open_fds as f64,
    );
    gauge(
        &mut reg,
        "process_max_fds",
        "The soft limit of open file descriptors",
        process.max_fds as f64,
    );
    gauge(
        &mut reg,
        "process_start_time_seconds",
        "Unix time bmsd started",
        process.start_time,
    );
    let sent = Family::<Labels, Counter>::default();
    for (l, n) in &facts.notifications {
        if let [channel, outcome] = l.as_slice() {
            sent.get_or_create(&labels(&[("channel", channel), ("outcome", outcome)]))
                .inc_by(*n);
        }
    }
    reg.register(
        "notifications",
        "Alert notification delivery attempts since bmsd started, by channel and outcome (sent, failed)",
        sent,
    );
    encode_families(&reg)
}

/// The families read from the catalog (and the compliance verdicts kept with it): the same
/// text for as long as the metrics endpoint's cached facts stay the same.
pub fn render_catalog(facts: &CatalogFacts) -> Result<String, std::fmt::Error> {
    let mut reg = Registry::with_prefix("bms");
    gauge(
        &mut reg,
        "targets",
        "Targets in the catalog",
        facts.targets as f64,
    );
    gauge(
        &mut reg,
        "jobs",
        "Jobs in the catalog",
        facts.jobs.len() as f64,
    );

    let enabled = Family::<Labels, FGauge>::default();
    let last_end = Family::<Labels, FGauge>::default();
    let last_ok = Family::<Labels, FGauge>::default();
    let last_state = Family::<Labels, FGauge>::default();
    let last_bytes = Family::<Labels, FGauge>::default();
    let last_duration = Family::<Labels, FGauge>::default();
    let verify_end = Family::<Labels, FGauge>::default();
    let verify_ok = Family::<Labels, FGauge>::default();
    let next_run = Family::<Labels, FGauge>::default();
    for j in &facts.jobs {
        let l = labels(&[("job", &j.name)]);
        enabled
            .get_or_create(&l)
            .set(if j.enabled { 1.0 } else { 0.0 });
        if let Some((t, state)) = &j.last_run {
            last_end.get_or_create(&l).set(*t);
            last_state
                .get_or_create(&labels(&[("job", &j.name), ("state", state)]))
                .set(1.0);
        }
        if let Some(t) = j.last_success {
            last_ok.get_or_create(&l).set(t);
        }
        if let Some(b) = j.last_snapshot_bytes {
            last_bytes.get_or_create(&l).set(b as f64);
        }
        if let Some(d) = j.last_duration_secs {
            last_duration.get_or_create(&l).set(d);
        }
        if let Some((t, ok)) = j.last_verify {
            verify_end.get_or_create(&l).set(t);
            verify_ok.get_or_create(&l).set(if ok { 1.0 } else { 0.0 });
        }
        if let (true, Some(t)) = (j.enabled, j.next_run) {
            next_run.get_or_create(&l).set(t);
        }
    }
    reg.register(
        "job_next_run_timestamp_seconds",
        "Next elapse of the schedule of an enabled job",
        next_run,
    );
    reg.register("job_enabled", "1 when the job is enabled", enabled);
    reg.register(
        "job_last_run_end_timestamp_seconds",
        "End of the latest finished backup run",
        last_end,
    );
    reg.register(
        "job_last_success_timestamp_seconds",
        "End of the latest successful backup run",
        last_ok,
    );
    reg.register(
        "job_last_run_state",
        "State of the latest finished backup run (1 for that state)",
        last_state,
    );
    reg.register(
        "job_last_snapshot_bytes",
        "Logical bytes of the latest successful snapshot",
        last_bytes,
    );
    reg.register(
        "job_last_run_duration_seconds",
        "Duration of the latest finished backup run",
        last_duration,
    );
    reg.register(
        "job_last_verify_timestamp_seconds",
        "End of the latest verification of the job's primary target that reached a verdict",
        verify_end,
    );
    reg.register(
        "job_last_verify_ok",
        "1 when the latest verification found no problem, 0 when it found some",
        verify_ok,
    );

    let check_ok = Family::<Labels, FGauge>::default();
    let free = Family::<Labels, FGauge>::default();
    for (t, ok, bytes) in &facts.target_checks {
        let l = labels(&[("target", t)]);
        check_ok.get_or_create(&l).set(if *ok { 1.0 } else { 0.0 });
        if let Some(b) = bytes {
            free.get_or_create(&l).set(*b as f64);
        }
    }
    reg.register(
        "target_check_ok",
        "1 when the latest pre-flight check of the target passed",
        check_ok,
    );
    reg.register(
        "target_free_bytes",
        "Free bytes seen by the latest pre-flight check",
        free,
    );
    let snapshots = Family::<Labels, FGauge>::default();
    for (t, n) in &facts.target_snapshots {
        snapshots
            .get_or_create(&labels(&[("target", t)]))
            .set(*n as f64);
    }
    reg.register(
        "target_snapshots",
        "Snapshots the catalog records on the target",
        snapshots,
    );
    let verify_at = Family::<Labels, FGauge>::default();
    let verify_errors = Family::<Labels, FGauge>::default();
    for (t, at, problems) in &facts.target_verify {
        let l = labels(&[("target", t)]);
        verify_at.get_or_create(&l).set(*at);
        verify_errors.get_or_create(&l).set(*problems as f64);
    }
    reg.register(
        "target_last_verify_timestamp_seconds",
        "Unix time of the end of the target's latest verification that reached a verdict",
        verify_at,
    );
    reg.register(
        "target_last_verify_errors",
        "Problems the target's latest verification found (1 when it failed without a count)",
        verify_errors,
    );
    // Every state and kind of location, 0 included, so that a rule can watch for none left.
    let media = Family::<Labels, FGauge>::default();
    for state in [
        "scratch", "writable", "full", "expired", "retired", "damaged",
    ] {
        for location in ["drive", "slot", "shelf", "vault"] {
            let n = facts
                .media
                .iter()
                .find(|(s, l, _)| s == state && l == location)
                .map_or(0, |(_, _, n)| *n);
            media
                .get_or_create(&labels(&[("state", state), ("location", location)]))
                .set(n as f64);
        }
    }
    reg.register(
        "media",
        "Media (tapes, removable disks) in the media manager, by state and kind of location",
        media,
    );
    let open = Family::<Labels, FGauge>::default();
    for sev in crate::alerts::config::SEVERITIES {
        let n = facts
            .alerts_open
            .iter()
            .find(|(s, _)| s == sev)
            .map_or(0, |(_, n)| *n);
        open.get_or_create(&labels(&[("severity", sev)]))
            .set(n as f64);
    }
    reg.register(
        "alerts_open",
        "Alerts not resolved (open or acknowledged), by severity",
        open,
    );
    let failed: Counter<u64> = Counter::default();
    failed.inc_by(facts.notification_failures);
    reg.register(
        "notification_failures",
        "Failed attempts to deliver alert notifications",
        failed,
    );
    gauge(
        &mut reg,
        "notifications_pending",
        "Alert notifications waiting in the outbox for delivery",
        facts.notifications_pending as f64,
    );
    let rules = Family::<Labels, Gauge>::default();
    for (job, verdicts, _) in &facts.compliance {
        for (rule, v) in verdicts {
            rules
                .get_or_create(&labels(&[("job", job), ("rule", rule)]))
                .set(*v);
        }
    }
    reg.register(
        "compliance_rule",
        "Verdict of a 3-2-1-1-0 rule per job: 1 pass, 0 fail, -1 unknown",
        rules,
    );
    gauge(
        &mut reg,
        "jobs_compliant",
        "Jobs where every 3-2-1-1-0 rule passes",
        facts.compliance.iter().filter(|(_, _, ok)| *ok).count() as f64,
    );
    encode_families(&reg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::JobFacts;

    #[test]
    fn renders_openmetrics_with_labels_and_eof() {
        let facts = CatalogFacts {
            targets: 2,
            jobs: vec![JobFacts {
                name: "etc".into(),
                enabled: true,
                last_run: Some((1_764_000_000.0, "failed".into())),
                last_success: Some(1_763_000_000.0),
                last_snapshot_bytes: Some(4096),
                last_duration_secs: Some(1.5),
                last_verify: Some((1_764_000_100.0, false)),
                next_run: Some(1_764_100_000.0),
            }],
            run_counts: vec![("etc".into(), "backup".into(), "failed".into(), 3)],
            target_checks: vec![("nas1".into(), false, Some(1024))],
            media: vec![("scratch".into(), "vault".into(), 4)],
            compliance: vec![(
                "etc".into(),
                vec![("copies".into(), 0), ("errors".into(), -1)],
                false,
            )],
            ..Default::default()
        };
        let process = ProcessFacts::read(std::path::Path::new("/nonexistent"), 1.0e9);
        assert!(
            process.open_fds > 0 && process.resident_bytes > 0,
            "{process:?}"
        );
        let text = render(&facts, &process, 1, 0, 12.0).unwrap();
        for line in [
            "bms_targets 2.0",
            "bms_job_enabled{job=\"etc\"} 1.0",
            "bms_job_last_run_state{job=\"etc\",state=\"failed\"} 1.0",
            "bms_runs_total{job=\"etc\",kind=\"backup\",state=\"failed\"} 3",
            "bms_target_check_ok{target=\"nas1\"} 0.0",
            "bms_job_last_verify_ok{job=\"etc\"} 0.0",
            "bms_job_last_verify_timestamp_seconds{job=\"etc\"} 1764000100.0",
            "bms_job_next_run_timestamp_seconds{job=\"etc\"} 1764100000.0",
            "bms_process_start_time_seconds 1000000000.0",
            "bms_media{state=\"scratch\",location=\"vault\"} 4.0",
            "bms_build_info{version=",
            "bms_compliance_rule{job=\"etc\",rule=\"errors\"} -1",
            "bms_jobs_compliant 0.0",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
