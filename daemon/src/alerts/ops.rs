//! The alert methods of the service layer (docs/protocol.md, docs/alerts.md).

use super::notices_for;
use crate::catalog::Actor;
use crate::service::{Ctx, Operation};
use bms_proto::api::*;
use bms_proto::{ApiError, ErrorKind};

fn actor(ctx: &Ctx<'_>) -> Actor {
    Actor {
        uid: ctx.caller.uid,
    }
}

fn invalid(field: &str, msg: String) -> ApiError {
    ApiError::invalid(field, msg)
}

impl Operation for ListAlerts {
    async fn call(self, ctx: &Ctx<'_>) -> Result<AlertList, ApiError> {
        if let Some(s) = &self.state {
            if !["open", "acked", "resolved"].contains(&s.as_str()) {
                return Err(invalid(
                    "state",
                    format!("state '{s}' is not one of open, acked, resolved"),
                ));
            }
        }
        let limit = self.limit.unwrap_or(100);
        if !(1..=10_000).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("limit {limit} is out of range 1..=10000"),
            ));
        }
        let state = self.state;
        let alerts = ctx
            .shared
            .catalog
            .call(move |c| c.list_alerts(state.as_deref(), limit))
            .await?;
        Ok(AlertList { alerts })
    }
}

impl Operation for GetAlert {
    async fn call(self, ctx: &Ctx<'_>) -> Result<AlertDetail, ApiError> {
        let id = self.id;
        ctx.shared
            .catalog
            .call(move |c| {
                Ok(AlertDetail {
                    alert: c.get_alert(id)?,
                    notifications: c.alert_notifications(id)?,
                })
            })
            .await
    }
}

impl Operation for AckAlert {
    async fn call(self, ctx: &Ctx<'_>) -> Result<AlertReply, ApiError> {
        let actor = actor(ctx);
        let alert = ctx
            .shared
            .catalog
            .call(move |c| c.ack_alert(actor, self.id, self.comment.as_deref()))
            .await?;
        tracing::info!(alert = alert.id, uid = actor.uid, "alert acknowledged");
        Ok(AlertReply { alert })
    }
}

impl Operation for ResolveAlert {
    async fn call(self, ctx: &Ctx<'_>) -> Result<AlertReply, ApiError> {
        let actor = actor(ctx);
        let notify = notices_for(&ctx.shared.config().config.alerts);
        let alert = ctx
            .shared
            .catalog
            .call(move |c| c.resolve_alert(actor, self.id, notify))
            .await?;
        tracing::info!(alert = alert.id, uid = actor.uid, "alert resolved by hand");
        Ok(AlertReply { alert })
    }
}

impl Operation for TestChannel {
    async fn call(self, ctx: &Ctx<'_>) -> Result<TestChannelReply, ApiError> {
        let cfg = ctx.shared.config().config.alerts;
        let Some(ch) = cfg.channel(&self.channel) else {
            let names: Vec<&str> = cfg
                .channels
                .iter()
                .chain(cfg.pings.iter())
                .map(|c| c.name.as_str())
                .collect();
            let mut e =
                ApiError::new(
                    ErrorKind::NotFound,
                    format!(
                    "channel '{}' is not configured; configured: {} (see [alerts] in bmsd.toml)",
                    self.channel,
                    if names.is_empty() { "none".into() } else { names.join(", ") }
                ),
                );
            e.field = Some("channel".into());
            return Err(e);
        };
        let payload = match &ch.kind {
            super::config::ChannelKind::Ping(_) => {
                super::notice::ping_notice(&self.channel[5..], "success", 0, "test ping from bmsd")
            }
            _ => super::notice::test_notice(),
        };
        let result = super::send::deliver(ch, &payload, cfg.attempt_timeout).await;
        tracing::info!(channel = %ch.name, ok = result.is_ok(), "test notification");
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        Ok(TestChannelReply {
            channel: ch.name.clone(),
            kind: ch.kind.as_str().into(),
            ok,
            detail,
        })
    }
}

/// `until` as RFC 3339, or a duration from now (`90s`, `30m`, `2h`, `1d`).
pub fn parse_until(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t);
    }
    let secs = parse_duration(s).map_err(|_| {
        format!(
            "'{s}' is neither an RFC 3339 time (2026-12-24T08:00:00Z) nor a duration such as 2h"
        )
    })?;
    Ok(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs as i64))
}

pub use bms_proto::units::parse_duration;

impl Operation for SilenceAlerts {
    async fn call(self, ctx: &Ctx<'_>) -> Result<SilenceReply, ApiError> {
        let until = parse_until(&self.until).map_err(|m| invalid("until", m))?;
        if until <= jiff::Timestamp::now() {
            return Err(invalid(
                "until",
                format!("{until} is in the past: give a later time or a duration such as 2h"),
            ));
        }
        let until = until.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
        let actor = actor(ctx);
        let (job, u) = (self.job.clone(), until.clone());
        ctx.shared
            .catalog
            .call(move |c| {
                c.get_job(&job)?;
                c.silence_job(actor, &job, &u, self.comment.as_deref())
            })
            .await?;
        tracing::info!(job = %self.job, until = %until, uid = actor.uid, "alerts silenced");
        Ok(SilenceReply {
            job: self.job,
            until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1m"), Ok(60));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("soon").is_err());
        assert!(parse_until("2030-01-01T00:00:00Z").is_ok());
        assert!(parse_until("yesterday").is_err());
    }
}
