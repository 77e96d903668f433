//! `bmsctl target add|list|show|edit|rm|check|unlock-check`.

use crate::cli::Cli;
use crate::connect::call;
use crate::error::{CliError, CliResult};
use crate::output::{self, bytes, parse_size};
use bms_proto::api::*;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum TargetCmd {
    /// Add a target.
    Add {
        name: String,
        #[command(flatten)]
        fields: TargetFields,
    },
    /// List targets.
    List,
    /// Show one target.
    Show { name: String },
    /// Change a target; only the options given change.
    Edit {
        name: String,
        #[command(flatten)]
        fields: TargetFields,
    },
    /// Remove a target that no job uses.
    Rm { name: String },
    /// Run the pre-flight check now: mounted, expected filesystem, writable, free space.
    Check { name: String },
    /// Show whether the clock-tamper guard of immutable targets holds every seal (after the
    /// wall clock jumped forward, no seal expires); exits 1 while it does.
    UnlockCheck {
        /// You checked the clock and it is right: clear the tamper so that seals past their
        /// time are lifted again (docs/operations.md "Immutability").
        #[arg(long)]
        confirm_clock: bool,
    },
}

#[derive(Debug, Args)]
pub struct TargetFields {
    /// disk, nas, tape or s3. A tape target takes copies (a job's further target) onto the
    /// media of its --pool; s3: docs/s3.md.
    #[arg(long, value_parser = parse_kind)]
    pub kind: Option<TargetKind>,
    /// Directory (disk, nas), virtual tape library directory or st device such as /dev/nst0
    /// (tape), or for s3 the endpoint URL (as --url).
    #[arg(long)]
    pub path: Option<String>,
    /// S3: the endpoint URL, http(s)://host[:port] (with --bucket), or s3://bucket/prefix for
    /// AWS (the same as --path).
    #[arg(long, value_name = "URL", conflicts_with = "path")]
    pub url: Option<String>,
    /// S3: the bucket (it must exist; bmsd does not create buckets).
    #[arg(long)]
    pub bucket: Option<String>,
    /// S3: the key prefix the repository lives under, e.g. bms/host1 ("" clears it).
    #[arg(long)]
    pub prefix: Option<String>,
    /// S3: the region requests are signed for (default us-east-1; "" back to the default).
    #[arg(long)]
    pub region: Option<String>,
    /// S3: a file in the AWS shared-credentials format, mode 0600, profile [default] (default:
    /// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY of bmsd's environment; "" clears it).
    #[arg(long, value_name = "FILE")]
    pub credentials_file: Option<String>,
    /// S3: virtual-host style requests (bucket.host) instead of path style (host/bucket).
    #[arg(long)]
    pub virtual_host: bool,
    /// S3: a PEM file of CA certificates to trust for the endpoint besides the system's (an
    /// endpoint with a private CA); checked at pre-flight ("" clears it).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<String>,
    /// S3: requests in flight at once, 1 to 64 (default 8; 0 back to the default).
    #[arg(long, value_name = "N")]
    pub s3_parallel: Option<u32>,
    /// S3: part size of multipart uploads, 5MiB to 512MiB (default 16MiB; objects larger than
    /// four parts go in parts; 0 back to the default).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub s3_part_size: Option<u64>,
    /// Tape: the media pool whose media take this target's copies ("" clears it).
    #[arg(long)]
    pub pool: Option<String>,
    /// Tape, a virtual tape library: the number of the library's drive to write with (default 0).
    #[arg(long)]
    pub drive: Option<u32>,
    /// disk, tape, object or optical (default: from the kind; a NAS is disk).
    #[arg(long, value_parser = parse_media)]
    pub media_type: Option<MediaType>,
    /// onsite or offsite.
    #[arg(long, value_parser = parse_location)]
    pub location: Option<Location>,
    /// Site label, e.g. "dc-2" ("" clears it).
    #[arg(long)]
    pub site: Option<String>,
    /// Days written snapshots stay immutable (0: not immutable): every snapshot and the packs
    /// and index files it needs get the immutable attribute (chattr +i) until the snapshot's
    /// time plus this many days. The directory must exist on a filesystem that can hold the
    /// attribute (ext4, xfs, btrfs; not tmpfs or NFS). S3: an Object Lock retention instead, on
    /// a bucket with Object Lock and versioning enabled.
    #[arg(long)]
    pub immutable_days: Option<u32>,
    /// S3: the Object Lock mode of the retentions, compliance (default: nobody can shorten or
    /// delete before the date) or governance (users allowed to bypass governance retention can).
    #[arg(long, value_parser = parse_lock_mode, value_name = "MODE")]
    pub object_lock_mode: Option<ObjectLockMode>,
    /// Fail runs before writing when less than this is free (e.g. 5GiB).
    #[arg(long, value_parser = parse_size)]
    pub min_free: Option<u64>,
    /// NAS: the filesystem type the mount must have, e.g. nfs4 ("" clears it).
    #[arg(long)]
    pub fs_type: Option<String>,
    /// NAS: the mount source the mount must have, e.g. server:/export ("" clears it).
    #[arg(long)]
    pub fs_source: Option<String>,
    /// Calendar of this target's prune runs (default weekly; "never" turns them off; "" back to
    /// the default). docs/retention.md.
    #[arg(long, value_name = "CALENDAR")]
    pub prune_schedule: Option<String>,
    /// How long a pack no snapshot uses stays condemned before a prune of this target deletes
    /// it (90m, 36h, 7d; default 24h, at least 5m; "" back to the default). docs/retention.md.
    #[arg(long, value_name = "DURATION")]
    pub prune_grace: Option<String>,
    /// Encrypt the target's repository (docs/operations.md "Encrypted targets"): bmsd creates
    /// it with a random master key wrapped by the target's key file, and every run opens it
    /// with that file. Losing every key loses the data.
    #[arg(long)]
    pub encrypt: bool,
    /// The key file of an encrypted target (default: keys/NAME.key in the directory of bmsd's
    /// config file; bmsd creates a missing one: 32 random bytes, mode 0600). Give the key file
    /// of a repository made with `bmsctl repo init --encrypt` to use that repository.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
    /// The target's own retention rules: each raises the rule of every job writing here (a
    /// target may keep more than its jobs, never less).
    #[command(flatten)]
    pub retention: crate::retention::RetentionFlags,
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str, allowed: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_lowercase()))
        .map_err(|_| format!("'{s}' is not one of {allowed}"))
}
fn parse_kind(s: &str) -> Result<TargetKind, String> {
    parse_enum(s, "disk, nas, tape, s3")
}
fn parse_media(s: &str) -> Result<MediaType, String> {
    parse_enum(s, "disk, tape, object, optical")
}
fn parse_lock_mode(s: &str) -> Result<ObjectLockMode, String> {
    parse_enum(s, "compliance, governance")
}
fn parse_location(s: &str) -> Result<Location, String> {
    parse_enum(s, "onsite, offsite")
}

/// A key file named relative to the current directory, made absolute for bmsd ("" clears it).
fn absolute(p: &std::path::Path) -> Option<String> {
    if p.as_os_str().is_empty() {
        return None;
    }
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    };
    Some(p.display().to_string())
}

fn non_empty(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

impl TargetFields {
    fn apply_to(&self, t: &mut TargetSpec) {
        if let Some(v) = self.kind {
            t.kind = v;
        }
        if let Some(v) = self.path.as_ref().or(self.url.as_ref()) {
            t.path = v.clone();
        }
        if let Some(v) = &self.bucket {
            t.bucket = non_empty(v.clone());
        }
        if let Some(v) = &self.prefix {
            t.prefix = non_empty(v.trim_matches('/').to_owned());
        }
        if let Some(v) = &self.region {
            t.region = non_empty(v.clone());
        }
        if let Some(v) = &self.credentials_file {
            t.credentials_file = absolute(std::path::Path::new(v));
        }
        if self.virtual_host {
            t.virtual_host = true;
        }
        if let Some(m) = self.object_lock_mode {
            t.object_lock_mode = Some(m);
        }
        if let Some(v) = &self.ca_file {
            t.ca_file = absolute(std::path::Path::new(v));
        }
        if let Some(v) = self.s3_parallel {
            t.s3_parallel = (v != 0).then_some(v);
        }
        if let Some(v) = self.s3_part_size {
            t.s3_part_size = (v != 0).then_some(v);
        }
        if let Some(v) = &self.pool {
            t.pool = non_empty(v.clone());
        }
        if let Some(v) = self.drive {
            t.drive = Some(v);
        }
        if let Some(v) = self.media_type {
            t.media_type = Some(v);
        }
        if let Some(v) = self.location {
            t.location = v;
        }
        if let Some(v) = &self.site {
            t.site = non_empty(v.clone());
        }
        if let Some(v) = self.immutable_days {
            t.immutable_days = v;
        }
        if let Some(v) = self.min_free {
            t.min_free_bytes = v;
        }
        if let Some(v) = &self.fs_type {
            t.fs_type = non_empty(v.clone());
        }
        if let Some(v) = &self.fs_source {
            t.fs_source = non_empty(v.clone());
        }
        if let Some(v) = &self.prune_schedule {
            t.prune_schedule = non_empty(v.trim().to_owned());
        }
        if let Some(v) = &self.prune_grace {
            t.prune_grace = non_empty(v.trim().to_owned());
        }
        if self.encrypt {
            t.encrypt = true;
        }
        if let Some(v) = &self.key_file {
            t.key_file = absolute(v);
        }
        if self.retention.any() {
            let mut r = t.retention.clone().unwrap_or_default();
            self.retention.apply_to(&mut r);
            t.retention = (!r.is_empty()).then_some(r);
        }
    }
}

pub fn run(cli: &Cli, cmd: &TargetCmd) -> CliResult {
    match cmd {
        TargetCmd::Add { name, fields } => {
            let Some(path) = fields.path.clone().or_else(|| fields.url.clone()) else {
                return Err(CliError::usage(
                    "target add needs --path (a directory, device or URL; --url for s3)",
                ));
            };
            let mut spec = TargetSpec::disk(name.clone(), path);
            fields.apply_to(&mut spec);
            // An object store is somewhere else unless told otherwise (docs/s3.md).
            if spec.kind == TargetKind::S3 && fields.location.is_none() {
                spec.location = Location::Offsite;
            }
            let reply = call(cli, &AddTarget { target: spec })?;
            if let Some(k) = &reply.target.key_path {
                eprintln!(
                    "note: target '{name}' is encrypted with the key file {k}; losing every key \
                     of its repository means losing its data: keep a copy of the key file \
                     elsewhere, or print the master key for a paper backup with `bmsctl repo \
                     key export {} --key-file {k}` once the first run has created the repository",
                    reply.target.spec.path
                );
            }
            show(cli, &reply.target)
        }
        TargetCmd::List => {
            let reply = call(cli, &ListTargets {})?;
            if cli.json {
                return output::json(&reply);
            }
            let mut t = output::table(&[
                "NAME", "KIND", "MEDIA", "LOCATION", "PATH", "STATE", "USED BY",
            ]);
            for i in &reply.targets {
                let loc = match &i.spec.site {
                    Some(s) => format!("{} ({s})", i.spec.location.as_str()),
                    None => i.spec.location.as_str().to_owned(),
                };
                let kind = if i.supported {
                    i.spec.kind.as_str().to_owned()
                } else {
                    format!("{} (not yet supported)", i.spec.kind.as_str())
                };
                t.add_row(vec![
                    i.spec.name.clone(),
                    kind,
                    i.media.as_str().to_owned(),
                    loc,
                    i.spec.path.clone(),
                    i.last_check
                        .as_ref()
                        .map_or_else(|| "unchecked".into(), |c| c.state.clone()),
                    i.used_by.join(", "),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        TargetCmd::Show { name } => {
            let reply = call(cli, &GetTarget { name: name.clone() })?;
            show(cli, &reply.target)
        }
        TargetCmd::Edit { name, fields } => {
            let mut spec = call(cli, &GetTarget { name: name.clone() })?.target.spec;
            fields.apply_to(&mut spec);
            let reply = call(cli, &UpdateTarget { target: spec })?;
            show(cli, &reply.target)
        }
        TargetCmd::Check { name } => {
            let c = call(cli, &CheckTarget { name: name.clone() })?;
            if cli.json {
                output::json(&c)?;
            } else {
                println!("target '{name}': {}", c.message);
            }
            if c.ok {
                Ok(())
            } else {
                Err(CliError::failure(format!(
                    "target '{name}' failed its check: {}",
                    c.state
                )))
            }
        }
        TargetCmd::UnlockCheck { confirm_clock } => {
            let r = call(
                cli,
                &UnlockCheck {
                    confirm_clock: *confirm_clock,
                },
            )?;
            if cli.json {
                output::json(&r)?;
            } else {
                if let Some(c) = &r.cleared {
                    println!("cleared the clock tamper of {c}");
                }
                match &r.tampered {
                    Some(t) => println!("clock tamper in force since {t}"),
                    None => println!("the clock is trusted: seals expire at their time"),
                }
            }
            match r.tampered {
                Some(_) => Err(CliError::failure(
                    "no seal expires while the clock tamper holds: check the clock, then run \
                     `bmsctl target unlock-check --confirm-clock`"
                        .to_string(),
                )),
                None => Ok(()),
            }
        }
        TargetCmd::Rm { name } => {
            call(cli, &RemoveTarget { name: name.clone() })?;
            if cli.json {
                output::json(&serde_json::json!({"removed": name}))
            } else {
                println!("target '{name}' removed");
                Ok(())
            }
        }
    }
}

fn show(cli: &Cli, t: &TargetInfo) -> CliResult {
    if cli.json {
        return output::json(&crate::notes::with_notes(t, crate::notes::target(t)));
    }
    let s = &t.spec;
    let mut rows = vec![
        ("name", s.name.clone()),
        ("kind", s.kind.as_str().to_owned()),
    ];
    if !t.supports.is_empty() {
        rows.push(("supports", t.supports.join(", ")));
    } else if !t.supported {
        rows.push((
            "supports",
            "nothing yet: the definition is stored only".into(),
        ));
    }
    rows.extend([
        ("path", s.path.clone()),
        ("media", t.media.as_str().to_owned()),
        ("location", s.location.as_str().to_owned()),
        ("site", s.site.clone().unwrap_or_else(|| "-".into())),
        (
            "immutable days",
            if s.immutable_days == 0 {
                "0 (not immutable)".into()
            } else if crate::notes::enforces_immutability(t) {
                s.immutable_days.to_string()
            } else {
                format!("{} ({})", s.immutable_days, crate::notes::NOT_ENFORCED)
            },
        ),
        ("min free", bytes(s.min_free_bytes)),
    ]);
    rows.push((
        "encryption",
        match &t.key_path {
            Some(k) if s.key_file.is_some() => format!("key file {k}"),
            Some(k) => format!("key file {k} (default)"),
            None => "none".into(),
        },
    ));
    if s.kind == TargetKind::S3 {
        rows.push(("bucket", s.bucket.clone().unwrap_or_else(|| "-".into())));
        rows.push(("prefix", s.prefix.clone().unwrap_or_else(|| "-".into())));
        rows.push((
            "region",
            s.region
                .clone()
                .unwrap_or_else(|| "us-east-1 (default)".into()),
        ));
        rows.push((
            "addressing",
            if s.virtual_host {
                "virtual host"
            } else {
                "path style"
            }
            .into(),
        ));
        if s.immutable_days > 0 || s.object_lock_mode.is_some() {
            rows.push((
                "object lock mode",
                s.object_lock_mode.unwrap_or_default().as_str().into(),
            ));
        }
        rows.push((
            "credentials",
            s.credentials_file.as_ref().map_or_else(
                || "bmsd's environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".into(),
                |f| format!("file {f}"),
            ),
        ));
        rows.push((
            "CA file",
            s.ca_file
                .clone()
                .unwrap_or_else(|| "none (system roots)".into()),
        ));
        rows.push((
            "parallel",
            s.s3_parallel.map_or_else(
                || "8 requests (default)".into(),
                |n| format!("{n} requests"),
            ),
        ));
        rows.push((
            "part size",
            s.s3_part_size
                .map_or_else(|| "16 MiB (default)".into(), bytes),
        ));
    }
    if s.kind == TargetKind::Tape {
        rows.push((
            "pool",
            s.pool
                .clone()
                .unwrap_or_else(|| "none (copies fail until one is set: --pool)".into()),
        ));
        rows.push(("drive", s.drive.unwrap_or(0).to_string()));
    }
    if let Some(v) = &s.fs_type {
        rows.push(("fs type", v.clone()));
    }
    if let Some(v) = &s.fs_source {
        rows.push(("fs source", v.clone()));
    }
    rows.push((
        "prune schedule",
        s.prune_schedule
            .clone()
            .unwrap_or_else(|| "weekly (default)".into()),
    ));
    rows.push((
        "prune grace",
        s.prune_grace
            .clone()
            .unwrap_or_else(|| "24h (default)".into()),
    ));
    rows.push((
        "retention",
        s.retention
            .as_ref()
            .map(|r| format!("{} (raises its jobs' rules)", crate::retention::describe(r)))
            .unwrap_or_else(|| "the jobs' own".into()),
    ));
    rows.push(("used by", t.used_by.join(", ")));
    for n in crate::notes::target(t) {
        rows.push(("note", n));
    }
    if let Some(c) = &t.last_check {
        rows.push(("last check", format!("{} at {}", c.message, c.checked_at)));
    }
    rows.push(("created", t.created_at.clone()));
    rows.push(("updated", t.updated_at.clone()));
    output::fields(&rows);
    Ok(())
}
