//! The clock-tamper confirmation (`bmsctl target unlock-check`): docs/operations.md
//! "Immutability".

use super::{Ctx, Operation};
use crate::immutability::clock::{Clock, Tamper};
use bms_proto::api::{UnlockCheck, UnlockCheckReply};
use bms_proto::ApiError;
use tracing::warn;

impl Operation for UnlockCheck {
    async fn call(self, ctx: &Ctx<'_>) -> Result<UnlockCheckReply, ApiError> {
        let clock = Clock::new(&ctx.shared.config().config.state_dir);
        let confirm = self.confirm_clock;
        let r = tokio::task::spawn_blocking(move || {
            let cleared = if confirm { clock.confirm()? } else { None };
            Ok::<_, String>((clock.tamper(), cleared))
        })
        .await
        .map_err(|e| ApiError::internal(format!("the clock check failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("cannot record the clock: {e}")))?;
        let (tampered, cleared) = r;
        let text = |t: Tamper| format!("{}: {}", t.at, t.detail);
        if let Some(t) = &cleared {
            warn!(
                uid = ctx.caller.uid,
                "clock confirmed by an admin; cleared the tamper of {}", t.at
            );
            let actor = crate::catalog::Actor {
                uid: ctx.caller.uid,
            };
            let detail = serde_json::json!({ "at": t.at, "detail": t.detail }).to_string();
            ctx.shared
                .catalog
                .call(move |c| c.record_audit(actor, "clock.confirm", "clock", Some(&detail)))
                .await?;
        }
        Ok(UnlockCheckReply {
            tampered: tampered.map(text),
            cleared: cleared.map(text),
        })
    }
}
