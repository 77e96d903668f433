//! `bmsctl job add|list|show|edit|rm|enable|disable|export`.

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output;
use bms_proto::api::*;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Add a job.
    Add {
        name: String,
        #[command(flatten)]
        fields: JobFields,
        /// Create the job disabled (enable it later with 'bmsctl job enable NAME').
        #[arg(long)]
        disabled: bool,
    },
    /// List jobs.
    List,
    /// Show one job, with its next three scheduled runs.
    Show { name: String },
    /// Change a job; only the options given change (list options replace the whole list).
    /// Enable or disable a job with 'bmsctl job enable|disable NAME'.
    Edit {
        name: String,
        #[command(flatten)]
        fields: JobFields,
        /// Remove all exclude patterns (with --exclude: replace them by the ones given).
        #[arg(long)]
        clear_excludes: bool,
    },
    /// Remove a job (its snapshots stay in the repositories).
    Rm { name: String },
    /// Let the scheduler run the job.
    Enable { name: String },
    /// Keep the scheduler from running the job.
    Disable { name: String },
    /// Start a backup run now.
    Run {
        name: String,
        /// Follow the run until it ends; exit 0 when it succeeds or ends with warnings, else 1.
        #[arg(long)]
        wait: bool,
    },
    /// Print the job and its targets in the format `bmsctl apply` reads (TOML; JSON with --json).
    Export { name: String },
}

#[derive(Debug, Args)]
pub struct JobFields {
    /// Absolute path to back up (repeat for several).
    #[arg(long = "source", value_name = "PATH")]
    pub sources: Vec<String>,
    /// Glob of paths to leave out (repeat for several).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    /// systemd calendar expression, e.g. daily, "Mon..Fri 02:00", "*:0/15".
    #[arg(long)]
    pub schedule: Option<String>,
    /// Target name; the first is the primary, others receive copies (repeat for several).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub retention: crate::retention::RetentionFlags,
    /// Verify the structure after each backup (true/false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub verify_after_backup: Option<bool>,
    /// Percentage of the packs re-read and re-hashed by verification (0-100).
    #[arg(long)]
    pub read_data_percent: Option<u8>,
    /// Calendar expression for verification of every target of the job ("" clears it).
    #[arg(long)]
    pub verify_schedule: Option<String>,
    /// Verification window: a copy last verified longer ago fails the "0" rule, e.g. 30d or 2w
    /// (default 30d; "default" restores it).
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub verify_window: Option<u32>,
    /// Calendar expression of restore drills: a sample of files restored from the latest
    /// snapshot on each target and compared with the recorded hashes (docs/compliance.md).
    #[arg(long, value_name = "CALENDAR")]
    pub drill_schedule: Option<String>,
    /// Files a drill restores per target at most (default 20).
    #[arg(long, value_name = "N")]
    pub drill_files: Option<u32>,
    /// Bytes a drill restores per target at most, e.g. 256M (default 256M).
    #[arg(long, value_name = "SIZE", value_parser = crate::output::parse_size)]
    pub drill_bytes: Option<u64>,
    /// Remove the job's restore drills.
    #[arg(long, conflicts_with_all = ["drill_schedule", "drill_files", "drill_bytes"])]
    pub no_drill: bool,
    /// Command run before the backup ("" clears it).
    #[arg(long)]
    pub pre_hook: Option<String>,
    /// Command run after the backup, always, with the result ("" clears it).
    #[arg(long)]
    pub post_hook: Option<String>,
    /// Seconds each hook may run.
    #[arg(long)]
    pub hook_timeout: Option<u32>,
    /// Runs missed while bmsd was down: skip, or run-once at start-up.
    #[arg(long, value_parser = parse_missed)]
    pub missed: Option<MissedPolicy>,
    /// Stop a run after this many seconds (0: no limit).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Stay on the sources' filesystems (true/false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub one_file_system: Option<bool>,
    /// Up to this many seconds of random delay for scheduled runs.
    #[arg(long)]
    pub randomized_delay: Option<u32>,
    /// Recovery point objective: alert when no backup succeeded for this long, e.g. 1m, 26h,
    /// 2d ("0" or "none" removes it).
    #[arg(long, value_name = "DURATION", value_parser = parse_rpo)]
    pub rpo: Option<u64>,
}

/// A duration such as `90s`, `1m`, `26h`, `2d` (a bare number is seconds); `0`/`none` is 0.
fn parse_rpo(s: &str) -> Result<u64, String> {
    if s == "none" || s == "0" {
        return Ok(0);
    }
    crate::alert::parse_duration(s)
}

/// A verification window in whole days: `30d`, `2w`, `720h`, or a number of days; `default`: 0
/// (the default window).
fn parse_window(s: &str) -> Result<u32, String> {
    if s == "default" {
        return Ok(0);
    }
    let secs = if s.chars().all(|c| c.is_ascii_digit()) {
        s.parse::<u64>()
            .map_err(|_| format!("'{s}' is not a number of days"))?
            .saturating_mul(86_400)
    } else if let Some(w) = s.strip_suffix('w') {
        w.parse::<u64>()
            .map_err(|_| format!("'{s}' is not a duration such as 30d or 2w"))?
            .saturating_mul(7 * 86_400)
    } else {
        crate::alert::parse_duration(s)?
    };
    if secs % 86_400 != 0 || secs == 0 || secs > 3650 * 86_400 {
        return Err(format!(
            "'{s}': the verification window is whole days from 1d to 3650d, e.g. 30d"
        ));
    }
    Ok((secs / 86_400) as u32)
}

fn parse_missed(s: &str) -> Result<MissedPolicy, String> {
    serde_json::from_value(serde_json::Value::String(s.into()))
        .map_err(|_| format!("'{s}' is not one of skip, run-once"))
}

fn opt_text(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

impl JobFields {
    fn apply_to(&self, j: &mut JobSpec) {
        if !self.sources.is_empty() {
            j.sources = self.sources.clone();
        }
        if !self.excludes.is_empty() {
            j.excludes = self.excludes.clone();
        }
        if let Some(v) = &self.schedule {
            j.schedule = v.clone();
        }
        if !self.targets.is_empty() {
            j.targets = self.targets.clone();
        }
        self.retention.apply_to(&mut j.retention);
        if let Some(v) = self.verify_after_backup {
            j.verify.after_backup = v;
        }
        if let Some(v) = self.read_data_percent {
            j.verify.read_data_percent = v;
        }
        if let Some(v) = &self.verify_schedule {
            j.verify.schedule = opt_text(v);
        }
        if let Some(v) = &self.pre_hook {
            j.hooks.pre = opt_text(v);
        }
        if let Some(v) = &self.post_hook {
            j.hooks.post = opt_text(v);
        }
        if let Some(v) = self.hook_timeout {
            j.hooks.timeout_secs = v;
        }
        if let Some(v) = self.missed {
            j.missed = v;
        }
        if let Some(v) = self.timeout {
            j.timeout_secs = v;
        }
        if let Some(v) = self.one_file_system {
            j.one_file_system = v;
        }
        if let Some(v) = self.randomized_delay {
            j.randomized_delay_secs = v;
        }
        if let Some(v) = self.rpo {
            j.rpo_secs = (v > 0).then_some(v);
        }
        if let Some(v) = self.verify_window {
            j.verify.window_days = (v > 0).then_some(v);
        }
    }

    /// The drill flags: `--drill-schedule` sets (or changes) the drill, `--drill-files` and
    /// `--drill-bytes` change one that exists or is being set, `--no-drill` removes it.
    fn apply_drill(&self, j: &mut JobSpec) -> CliResult {
        if self.no_drill {
            j.verify.drill = None;
            return Ok(());
        }
        let mut drill = match (&self.drill_schedule, j.verify.drill.take()) {
            (Some(s), Some(mut d)) => {
                d.schedule = s.clone();
                Some(d)
            }
            (Some(s), None) => Some(DrillPolicy {
                schedule: s.clone(),
                sample_files: DRILL_SAMPLE_FILES,
                sample_bytes: DRILL_SAMPLE_BYTES,
            }),
            (None, d) => d,
        };
        match &mut drill {
            Some(d) => {
                if let Some(n) = self.drill_files {
                    d.sample_files = n;
                }
                if let Some(b) = self.drill_bytes {
                    d.sample_bytes = b;
                }
            }
            None if self.drill_files.is_some() || self.drill_bytes.is_some() => {
                return Err(CliError::usage(
                    "--drill-files and --drill-bytes need a drill: add --drill-schedule CALENDAR, e.g. --drill-schedule weekly",
                ));
            }
            None => {}
        }
        j.verify.drill = drill;
        Ok(())
    }
}

pub fn run(cli: &Cli, cmd: &JobCmd) -> CliResult {
    match cmd {
        JobCmd::Add {
            name,
            fields,
            disabled,
        } => {
            if fields.sources.is_empty() {
                return Err(CliError::usage("job add needs at least one --source PATH"));
            }
            if fields.targets.is_empty() {
                return Err(CliError::usage("job add needs at least one --target NAME"));
            }
            let Some(schedule) = fields.schedule.clone() else {
                return Err(CliError::usage(
                    "job add needs --schedule, e.g. --schedule daily",
                ));
            };
            let mut spec = JobSpec {
                name: name.clone(),
                sources: Vec::new(),
                excludes: Vec::new(),
                schedule,
                randomized_delay_secs: 0,
                targets: Vec::new(),
                retention: Retention::default(),
                verify: VerifyPolicy::default(),
                hooks: Hooks::default(),
                missed: MissedPolicy::default(),
                timeout_secs: 0,
                one_file_system: false,
                rpo_secs: None,
                enabled: !disabled,
            };
            fields.apply_to(&mut spec);
            fields.apply_drill(&mut spec)?;
            let reply = call(cli, &AddJob { job: spec })?;
            show(cli, &reply.job)
        }
        JobCmd::List => {
            let reply = call(cli, &ListJobs {})?;
            if cli.json {
                return output::json(&reply);
            }
            let mut t = output::table(&[
                "NAME", "ENABLED", "SCHEDULE", "NEXT RUN", "TARGETS", "SOURCES",
            ]);
            for j in &reply.jobs {
                t.add_row(vec![
                    j.spec.name.clone(),
                    if j.spec.enabled { "yes" } else { "no" }.to_owned(),
                    j.spec.schedule.clone(),
                    if j.spec.enabled {
                        j.next_runs.first().cloned().unwrap_or_else(|| "-".into())
                    } else {
                        "-".into()
                    },
                    j.spec.targets.join(", "),
                    j.spec.sources.join(" "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        JobCmd::Show { name } => show(cli, &call(cli, &GetJob { name: name.clone() })?.job),
        JobCmd::Edit {
            name,
            fields,
            clear_excludes,
        } => {
            let mut spec = call(cli, &GetJob { name: name.clone() })?.job.spec;
            if *clear_excludes {
                spec.excludes.clear();
            }
            fields.apply_to(&mut spec);
            fields.apply_drill(&mut spec)?;
            show(cli, &call(cli, &UpdateJob { job: spec })?.job)
        }
        JobCmd::Rm { name } => {
            call(cli, &RemoveJob { name: name.clone() })?;
            if cli.json {
                output::json(&serde_json::json!({"removed": name}))
            } else {
                println!("job '{name}' removed");
                Ok(())
            }
        }
        JobCmd::Enable { name } | JobCmd::Disable { name } => {
            let enabled = matches!(cmd, JobCmd::Enable { .. });
            let reply = call(
                cli,
                &SetJobEnabled {
                    name: name.clone(),
                    enabled,
                },
            )?;
            if cli.json {
                output::json(&reply.job)
            } else {
                println!(
                    "job '{name}' {}",
                    if enabled { "enabled" } else { "disabled" }
                );
                Ok(())
            }
        }
        JobCmd::Export { name } => crate::apply::export(cli, name),
        JobCmd::Run { name, wait } => crate::run::start(cli, name, *wait),
    }
}

fn show(cli: &Cli, j: &JobInfo) -> CliResult {
    let notes = crate::notes::job(&j.spec);
    if cli.json {
        return output::json(&crate::notes::with_notes(j, notes));
    }
    let s = &j.spec;
    let mut rows = vec![
        ("name", s.name.clone()),
        ("enabled", if s.enabled { "yes" } else { "no" }.to_owned()),
        ("sources", s.sources.join(" ")),
        ("excludes", s.excludes.join(" ")),
        (
            "schedule",
            format!("{} ({})", s.schedule, j.schedule_normalized),
        ),
        ("targets", s.targets.join(", ")),
        ("retention", crate::retention::describe(&s.retention)),
        (
            "verify",
            format!(
                "after backup: {}, read data: {}%{}",
                if s.verify.after_backup { "yes" } else { "no" },
                s.verify.read_data_percent,
                s.verify
                    .schedule
                    .as_ref()
                    .map(|v| format!(", schedule: {v}"))
                    .unwrap_or_default()
            ),
        ),
        (
            "verify window",
            format!("{} days", s.verify.window_days.unwrap_or(30)),
        ),
        (
            "restore drill",
            match &s.verify.drill {
                Some(d) => format!(
                    "{}: {} files, at most {}",
                    d.schedule,
                    d.sample_files,
                    output::bytes(d.sample_bytes)
                ),
                None => "-".into(),
            },
        ),
        (
            "pre hook",
            s.hooks.pre.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "post hook",
            s.hooks.post.clone().unwrap_or_else(|| "-".into()),
        ),
        ("missed runs", s.missed.as_str().to_owned()),
        (
            "timeout",
            if s.timeout_secs == 0 {
                "none".into()
            } else {
                format!("{} s", s.timeout_secs)
            },
        ),
        (
            "one filesystem",
            if s.one_file_system { "yes" } else { "no" }.to_owned(),
        ),
        (
            "rpo",
            s.rpo_secs.map_or("none".into(), |r| format!("{r} s")),
        ),
    ];
    for (i, t) in j.next_runs.iter().enumerate() {
        rows.push((["next run", "then", "then"][i.min(2)], t.clone()));
    }
    for n in notes {
        rows.push(("note", n));
    }
    output::fields(&rows);
    Ok(())
}
