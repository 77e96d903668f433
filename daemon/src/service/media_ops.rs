//! The media manager's methods (docs/tape.md, "Media manager"): pools and media, their
//! lifecycle, moves and the rotation plan. Reads need a role, changes the admin role (the
//! method table's `WRITES`).

use super::core::{Ctx, Operation};
use crate::catalog::{now_rfc3339, Actor, Catalog, Location, MediaState, Medium, Pool};
use crate::targets::tape::{drive_lock, open_sink, TapeSink};
use crate::targets::Target;
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};

fn medium_info(m: Medium) -> MediumInfo {
    MediumInfo {
        offsite: m.location.offsite(),
        in_drive: m.location.in_drive(),
        location: m.location.wire(),
        barcode: m.barcode,
        media_type: m.media_type,
        pool: m.pool,
        media_set: m.media_set,
        sequence: m.sequence,
        state: m.state.as_str().to_owned(),
        expected_return: m.expected_return,
        write_count: m.write_count,
        bytes_written: m.bytes_written,
        last_written: m.last_written,
        expires_at: m.expires_at,
        labelled_at: m.labelled_at,
    }
}

fn pool_info(c: &Catalog, p: Pool) -> Result<PoolInfo, ApiError> {
    let [scratch, writable, full, expired] = c.pool_counts(&p.name)?;
    Ok(PoolInfo {
        name: p.name,
        media_type: p.media_type,
        retention_days: p.retention_days,
        vault: p.vault,
        vault_days: p.vault_days,
        scratch,
        writable,
        full,
        expired,
    })
}

fn pool_reply(c: &Catalog, name: &str) -> Result<PoolReply, ApiError> {
    let p = c
        .pool(name)?
        .ok_or_else(|| ApiError::not_found("pool", name))?;
    let media = c.media(Some(name))?.into_iter().map(medium_info).collect();
    Ok(PoolReply {
        pool: pool_info(c, p)?,
        media,
    })
}

fn medium_reply(c: &Catalog, barcode: &str) -> Result<MediumReply, ApiError> {
    let m = c
        .medium(barcode)?
        .ok_or_else(|| ApiError::not_found("medium", barcode))?;
    Ok(MediumReply {
        medium: medium_info(m),
        archives: c.medium_archives(barcode)?,
    })
}

fn actor(ctx: &Ctx<'_>) -> Actor {
    Actor {
        uid: ctx.caller.uid,
    }
}

/// A time for `media due` or an expected return: RFC 3339, a date (midnight UTC), or a
/// duration from now such as 14d.
fn parse_time(field: &str, s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        if let Ok(t) = d.to_zoned(jiff::tz::TimeZone::UTC) {
            return Ok(t.timestamp().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        }
    }
    if let Ok(secs) = bms_proto::units::parse_duration(s) {
        let later = jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(secs).unwrap_or(i64::MAX),
            ))
            .map_err(|e| ApiError::invalid(field, format!("{field} {s:?}: {e}")))?;
        return Ok(later.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
    }
    Err(ApiError::invalid(
        field,
        format!("{field} {s:?} is not a time: use RFC 3339, a date such as 2027-01-31, or a duration such as 14d"),
    ))
}

impl Operation for ListPools {
    async fn call(self, ctx: &Ctx<'_>) -> Result<PoolList, ApiError> {
        ctx.shared
            .catalog
            .call(|c| {
                let pools = c
                    .pools()?
                    .into_iter()
                    .map(|p| pool_info(c, p))
                    .collect::<Result<_, _>>()?;
                Ok(PoolList { pools })
            })
            .await
    }
}

impl Operation for GetPool {
    async fn call(self, ctx: &Ctx<'_>) -> Result<PoolReply, ApiError> {
        ctx.shared
            .catalog
            .call(move |c| pool_reply(c, &self.name))
            .await
    }
}

impl Operation for AddPool {
    async fn call(self, ctx: &Ctx<'_>) -> Result<PoolReply, ApiError> {
        crate::validate::name("name", &self.name)?;
        if let Some(v) = &self.vault {
            crate::validate::name("vault", v)?;
        }
        if self.retention_days > 36500 || self.vault_days > 36500 {
            return Err(ApiError::invalid(
                "retention_days",
                "retention_days and vault_days must be at most 36500",
            ));
        }
        let uid = ctx.caller.uid;
        ctx.shared
            .catalog
            .call(move |c| {
                c.add_pool(&Pool {
                    name: self.name.clone(),
                    media_type: self.media_type.clone(),
                    retention_days: self.retention_days,
                    vault: self.vault.clone(),
                    vault_days: self.vault_days,
                })?;
                tracing::info!(uid, pool = %self.name, "pool {} added", self.name);
                pool_reply(c, &self.name)
            })
            .await
    }
}

impl Operation for ListMedia {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediaList, ApiError> {
        if let Some(s) = &self.state {
            if MediaState::parse(s).is_none() {
                return Err(ApiError::invalid(
                    "state",
                    format!("state {s:?} is not one of scratch, writable, full, expired, retired, damaged"),
                ));
            }
        }
        ctx.shared
            .catalog
            .call(move |c| {
                if let Some(p) = &self.pool {
                    c.pool(p)?.ok_or_else(|| ApiError::not_found("pool", p))?;
                }
                let media = c
                    .media(self.pool.as_deref())?
                    .into_iter()
                    .filter(|m| self.state.as_deref().is_none_or(|s| m.state.as_str() == s))
                    .map(medium_info)
                    .collect();
                Ok(MediaList { media })
            })
            .await
    }
}

impl Operation for GetMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        ctx.shared
            .catalog
            .call(move |c| medium_reply(c, &self.barcode))
            .await
    }
}

impl Operation for AddMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        let at = match &self.location {
            Some(l) => Location::parse(l)?,
            None => Location::Shelf(String::new()),
        };
        ctx.shared
            .catalog
            .call(move |c| {
                c.add_medium(&self.barcode, &self.media_type, &at)?;
                medium_reply(c, &self.barcode)
            })
            .await
    }
}

impl Operation for LabelMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        let (b, p) = (self.barcode.clone(), self.pool.clone());
        let sequence = ctx
            .shared
            .catalog
            .call(move |c| {
                let m = c
                    .medium(&b)?
                    .ok_or_else(|| ApiError::not_found("medium", &b))?;
                let pool = c.pool(&p)?.ok_or_else(|| ApiError::not_found("pool", &p))?;
                if m.state != MediaState::Scratch {
                    return Err(ApiError::invalid(
                        "barcode",
                        format!(
                            "medium {b} is {}, not scratch: only scratch media can be labelled \
                             for a pool (`bmsctl media erase {b}` first if its data may go)",
                            m.state.as_str()
                        ),
                    ));
                }
                if m.media_type != pool.media_type {
                    return Err(ApiError::invalid(
                        "pool",
                        format!(
                            "medium {b} is {}, pool {p} takes {}",
                            m.media_type, pool.media_type
                        ),
                    ));
                }
                c.next_sequence(&p)
            })
            .await?;
        if let Some(t) = &self.target {
            let name = t.clone();
            let spec = ctx
                .shared
                .catalog
                .call(move |c| c.get_target(&name))
                .await?;
            let target = Target::from_spec(&spec.spec)?;
            let (barcode, pool) = (self.barcode.clone(), self.pool.clone());
            tokio::task::spawn_blocking(move || write_label(&target, &barcode, &pool, sequence))
                .await
                .map_err(|e| ApiError::internal(format!("the labelling task failed: {e}")))??;
        }
        let uid = actor(ctx).uid;
        ctx.shared
            .catalog
            .call(move |c| {
                c.allocate_medium(&self.barcode, &self.pool, &self.pool, sequence)?;
                tracing::info!(
                    uid,
                    "medium {} labelled for pool {}",
                    self.barcode,
                    self.pool
                );
                medium_reply(c, &self.barcode)
            })
            .await
    }
}

/// Writes the pool's label onto cartridge `barcode` of a tape target's virtual library.
fn write_label(target: &Target, barcode: &str, pool: &str, sequence: u32) -> Result<(), ApiError> {
    let failed = |e: bms_tape::TapeError| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("labelling cartridge {barcode}: {e}"),
        )
    };
    let sink = open_sink(target).map_err(|m| ApiError::invalid("target", m))?;
    let lock = drive_lock(&sink);
    let _drive = lock.lock().unwrap_or_else(|e| e.into_inner());
    let TapeSink::Library { library, drive } = sink else {
        return Err(ApiError::invalid(
            "target",
            format!(
                "target '{}' is a tape device: bms labels its cartridge when a copy first uses it",
                target.name
            ),
        ));
    };
    let mut ch =
        bms_tape::changer::LibraryChanger::new(&library, drive, Vec::new()).map_err(failed)?;
    let d = ch.mount(barcode).map_err(failed)?;
    let label = bms_tape::format::label::Label {
        barcode: barcode.to_owned(),
        pool: pool.to_owned(),
        media_set: pool.to_owned(),
        sequence,
        labelled: jiff::Timestamp::now().as_second(),
        block_size: bms_tape::format::DEFAULT_BLOCK_SIZE,
    };
    bms_tape::format::reader::label_medium(d, &label).map_err(failed)
}

impl Operation for MoveMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        let to = Location::parse(&self.to)?;
        let back = self
            .expected_return
            .as_deref()
            .map(|s| parse_time("expected_return", s))
            .transpose()?;
        let a = actor(ctx);
        let reply = ctx
            .shared
            .catalog
            .call(move |c| {
                c.move_medium(&self.barcode, &to, back.as_deref(), a)?;
                medium_reply(c, &self.barcode)
            })
            .await?;
        Ok(reply)
    }
}

impl Operation for RetireMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        ctx.shared
            .catalog
            .call(move |c| {
                c.retire_medium(&self.barcode)?;
                medium_reply(c, &self.barcode)
            })
            .await
    }
}

impl Operation for EraseMedium {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediumReply, ApiError> {
        ctx.shared
            .catalog
            .call(move |c| {
                c.erase_medium(&self.barcode)?;
                medium_reply(c, &self.barcode)
            })
            .await
    }
}

impl Operation for ExpireMedia {
    async fn call(self, ctx: &Ctx<'_>) -> Result<ExpireReply, ApiError> {
        let (expired, scratch) = ctx
            .shared
            .catalog
            .call(|c| c.apply_media_retention(&now_rfc3339()))
            .await?;
        Ok(ExpireReply { expired, scratch })
    }
}

impl Operation for MediaDue {
    async fn call(self, ctx: &Ctx<'_>) -> Result<MediaDueReply, ApiError> {
        let at = match &self.at {
            Some(s) => parse_time("at", s)?,
            None => now_rfc3339(),
        };
        ctx.shared
            .catalog
            .call(move |c| {
                let due = c.media_due(&at)?;
                Ok(MediaDueReply {
                    to_vault: due
                        .to_vault
                        .into_iter()
                        .map(|(barcode, vault)| DueToVault { barcode, vault })
                        .collect(),
                    come_back: due.come_back,
                    at,
                })
            })
            .await
    }
}
