//! `bmsctl media list|show|add|label|move|retire|erase|expire|due` and `bmsctl pool
//! add|list|show`: the media manager in bmsd (docs/tape.md, "Media manager").

use crate::cli::Cli;
use crate::connect::call;
use crate::error::CliResult;
use crate::output::{self, bytes};
use bms_proto::api::*;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum MediaCmd {
    /// List media (tapes, RDX, removable disks) with their state and location.
    List {
        /// Only media of this pool.
        #[arg(long)]
        pool: Option<String>,
        /// Only media in this state: scratch, writable, full, expired, retired, damaged.
        #[arg(long)]
        state: Option<String>,
    },
    /// Show one medium and the archive volumes on it.
    Show { barcode: String },
    /// Add a new medium to the inventory, as scratch.
    Add {
        barcode: String,
        /// lto5, lto6, lto7, lto8, lto9, rdx or disk.
        #[arg(long)]
        media_type: String,
        /// Where it is: slot:NAME, shelf, shelf:NAME, vault:NAME or drive:NAME (default shelf).
        #[arg(long)]
        location: Option<String>,
    },
    /// Label a scratch medium for a pool: it becomes writable.
    Label {
        barcode: String,
        #[arg(long)]
        pool: String,
        /// Also write the label onto the cartridge in this tape target's library (erases it);
        /// without, a copy labels the medium when it first uses it.
        #[arg(long)]
        target: Option<String>,
    },
    /// Record that a medium moved, e.g. to an offsite vault.
    Move {
        barcode: String,
        /// vault:NAME, shelf, shelf:NAME, slot:NAME or drive:NAME.
        #[arg(long)]
        to: String,
        /// When it is expected back: RFC 3339, a date (2027-01-31) or a duration (14d).
        #[arg(long)]
        expected_return: Option<String>,
    },
    /// Retire a medium (worn out, lost): it is never written again.
    Retire { barcode: String },
    /// Return a medium to scratch whatever it holds; its archives stop counting.
    Erase { barcode: String },
    /// Apply the pools' retention now: due media expire, expired media not in a vault become
    /// scratch.
    Expire,
    /// The rotation plan: what should leave for the vault and what should come back.
    Due {
        /// The day to plan for: RFC 3339, a date, or a duration from now (default now).
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PoolCmd {
    /// Add a media pool.
    Add {
        name: String,
        /// lto5, lto6, lto7, lto8, lto9, rdx or disk.
        #[arg(long)]
        media_type: String,
        /// Days a medium is kept after its last write before it expires and may be overwritten
        /// (required: 0 lets every copy overwrite the archive before it).
        #[arg(long)]
        retention_days: u32,
        /// The offsite vault full media of this pool go to (rotation).
        #[arg(long)]
        vault: Option<String>,
        /// Days a medium stays in the vault before it is due back (0: until it expires).
        #[arg(long, default_value_t = 0)]
        vault_days: u32,
    },
    /// List the pools.
    List,
    /// Show a pool and its media.
    Show { name: String },
}

fn media_table(media: &[MediumInfo]) {
    let mut t = output::table(&[
        "BARCODE", "TYPE", "POOL", "STATE", "LOCATION", "WRITES", "WRITTEN", "EXPIRES",
    ]);
    for m in media {
        t.add_row(vec![
            m.barcode.clone(),
            m.media_type.clone(),
            m.pool.clone().unwrap_or_else(|| "-".into()),
            m.state.clone(),
            m.location.clone(),
            m.write_count.to_string(),
            bytes(m.bytes_written),
            m.expires_at.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    println!("{t}");
}

fn show_medium(cli: &Cli, r: &MediumReply) -> CliResult {
    if cli.json {
        return output::json(r);
    }
    let m = &r.medium;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![
        ("barcode", m.barcode.clone()),
        ("media type", m.media_type.clone()),
        ("pool", opt(&m.pool)),
        ("media set", opt(&m.media_set)),
        (
            "sequence",
            m.sequence.map_or_else(|| "-".into(), |s| s.to_string()),
        ),
        ("state", m.state.clone()),
        (
            "location",
            format!(
                "{} ({}, {})",
                m.location,
                if m.offsite { "offsite" } else { "onsite" },
                if m.in_drive { "online" } else { "offline" }
            ),
        ),
        ("expected return", opt(&m.expected_return)),
        ("writes", m.write_count.to_string()),
        ("bytes written", bytes(m.bytes_written)),
        ("last written", opt(&m.last_written)),
        ("expires", opt(&m.expires_at)),
        ("labelled", opt(&m.labelled_at)),
    ];
    for a in &r.archives {
        rows.push((
            "archive",
            format!(
                "job {} snapshot {} volume {}{} ({}), tape file {}, {} files, {}",
                a.job,
                a.snapshot,
                a.volume,
                if a.last { " (last)" } else { "" },
                a.state,
                a.tape_file,
                a.files,
                bytes(a.bytes)
            ),
        ));
    }
    output::fields(&rows);
    Ok(())
}

pub fn run(cli: &Cli, cmd: &MediaCmd) -> CliResult {
    match cmd {
        MediaCmd::List { pool, state } => {
            let r = call(
                cli,
                &ListMedia {
                    pool: pool.clone(),
                    state: state.clone(),
                },
            )?;
            if cli.json {
                return output::json(&r);
            }
            media_table(&r.media);
            Ok(())
        }
        MediaCmd::Show { barcode } => {
            let r = call(
                cli,
                &GetMedium {
                    barcode: barcode.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Add {
            barcode,
            media_type,
            location,
        } => {
            let r = call(
                cli,
                &AddMedium {
                    barcode: barcode.clone(),
                    media_type: media_type.clone(),
                    location: location.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Label {
            barcode,
            pool,
            target,
        } => {
            let r = call(
                cli,
                &LabelMedium {
                    barcode: barcode.clone(),
                    pool: pool.clone(),
                    target: target.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Move {
            barcode,
            to,
            expected_return,
        } => {
            let r = call(
                cli,
                &MoveMedium {
                    barcode: barcode.clone(),
                    to: to.clone(),
                    expected_return: expected_return.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Retire { barcode } => {
            let r = call(
                cli,
                &RetireMedium {
                    barcode: barcode.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Erase { barcode } => {
            let r = call(
                cli,
                &EraseMedium {
                    barcode: barcode.clone(),
                },
            )?;
            show_medium(cli, &r)
        }
        MediaCmd::Expire => {
            let r = call(cli, &ExpireMedia {})?;
            if cli.json {
                return output::json(&r);
            }
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_owned()
                } else {
                    v.join(", ")
                }
            };
            println!("expired: {}", list(&r.expired));
            println!("back to scratch: {}", list(&r.scratch));
            Ok(())
        }
        MediaCmd::Due { at } => {
            let r = call(cli, &MediaDue { at: at.clone() })?;
            if cli.json {
                return output::json(&r);
            }
            println!("rotation plan at {}", r.at);
            if r.to_vault.is_empty() && r.come_back.is_empty() {
                println!("nothing to move");
            }
            for d in &r.to_vault {
                println!(
                    "to vault {}: {} (bmsctl media move {} --to vault:{})",
                    d.vault, d.barcode, d.barcode, d.vault
                );
            }
            for b in &r.come_back {
                println!("back from the vault: {b} (bmsctl media move {b} --to shelf)");
            }
            Ok(())
        }
    }
}

fn show_pool(cli: &Cli, r: &PoolReply) -> CliResult {
    if cli.json {
        return output::json(r);
    }
    let p = &r.pool;
    output::fields(&[
        ("name", p.name.clone()),
        ("media type", p.media_type.clone()),
        (
            "retention",
            format!("{} days after the last write", p.retention_days),
        ),
        (
            "vault",
            match &p.vault {
                Some(v) if p.vault_days > 0 => format!("{v} for {} days", p.vault_days),
                Some(v) => format!("{v} until expiry"),
                None => "none".into(),
            },
        ),
        (
            "media",
            format!(
                "{} writable, {} full, {} expired, {} scratch",
                p.writable, p.full, p.expired, p.scratch
            ),
        ),
    ]);
    if !r.media.is_empty() {
        media_table(&r.media);
    }
    Ok(())
}

pub fn pool(cli: &Cli, cmd: &PoolCmd) -> CliResult {
    match cmd {
        PoolCmd::Add {
            name,
            media_type,
            retention_days,
            vault,
            vault_days,
        } => {
            let r = call(
                cli,
                &AddPool {
                    name: name.clone(),
                    media_type: media_type.clone(),
                    retention_days: *retention_days,
                    vault: vault.clone(),
                    vault_days: *vault_days,
                },
            )?;
            show_pool(cli, &r)
        }
        PoolCmd::List => {
            let r = call(cli, &ListPools {})?;
            if cli.json {
                return output::json(&r);
            }
            let mut t = output::table(&[
                "NAME",
                "TYPE",
                "RETENTION",
                "VAULT",
                "WRITABLE",
                "FULL",
                "EXPIRED",
            ]);
            for p in &r.pools {
                t.add_row(vec![
                    p.name.clone(),
                    p.media_type.clone(),
                    format!("{}d", p.retention_days),
                    p.vault.clone().unwrap_or_else(|| "-".into()),
                    p.writable.to_string(),
                    p.full.to_string(),
                    p.expired.to_string(),
                ]);
            }
            println!("{t}");
            Ok(())
        }
        PoolCmd::Show { name } => {
            let r = call(cli, &GetPool { name: name.clone() })?;
            show_pool(cli, &r)
        }
    }
}
