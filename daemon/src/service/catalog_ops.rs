//! `bmsctl catalog rebuild` (docs/operations.md "Recovering the catalog").

use super::{Ctx, Operation};
use bms_proto::api::{RebuildCatalog, RebuildReply};
use bms_proto::ApiError;

impl Operation for RebuildCatalog {
    async fn call(self, ctx: &Ctx<'_>) -> Result<RebuildReply, ApiError> {
        let object = self.target.clone().unwrap_or_else(|| "*".into());
        let reply = crate::catalog_rebuild::rebuild(ctx.shared, self.target).await?;
        let actor = crate::catalog::Actor {
            uid: ctx.caller.uid,
        };
        let detail = serde_json::json!({
            "added": reply.added, "kept": reply.kept, "seals": reply.seals,
            "unknown_jobs": reply.unknown_jobs,
        })
        .to_string();
        ctx.shared
            .catalog
            .call(move |c| c.record_audit(actor, "catalog.rebuild", &object, Some(&detail)))
            .await?;
        Ok(reply)
    }
}
