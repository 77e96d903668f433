//! Routes one Varlink call to its handler and turns the result into a reply.

use super::auth::Role;
use super::handlers::Handle;
use super::{protocol_error, Peer};
use crate::state::SharedRef;
use bms_proto::api::*;
use bms_proto::interface::{self, ServiceInfo, SERVICE_INTERFACE};
use bms_proto::varlink::{Call, Reply};
use bms_proto::{ApiError, ErrorKind, INTERFACE};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tracing::debug;

/// What a call produces.
pub enum Outcome {
    /// Nothing (oneway calls).
    None,
    One(Reply),
    /// Replies with `continues: true` until the last one.
    Stream(mpsc::Receiver<Reply>),
}

/// Handles one message.
pub async fn handle(msg: &[u8], peer: &Peer, shared: &SharedRef) -> Outcome {
    let call: Call = match serde_json::from_slice(msg) {
        Ok(c) => c,
        Err(e) => {
            debug!(uid = peer.uid, "malformed message: {e}");
            return Outcome::One(protocol_error(format!(
                "message is not a Varlink call (a JSON object with a \"method\" string): {e}"
            )));
        }
    };
    let oneway = call.oneway;
    if call.more && oneway {
        return Outcome::One(protocol_error(
            "a call cannot be both \"oneway\" and \"more\"",
        ));
    }
    if call.more && peer.role != Role::None {
        if let Some(stream) = super::streams::start(&call, peer, shared).await {
            return stream;
        }
    }
    let reply = route(call, peer, shared).await;
    if oneway {
        Outcome::None
    } else {
        Outcome::One(reply)
    }
}

pub fn api_error(e: ApiError) -> Reply {
    Reply::error(e.kind.wire_name(), e.wire_parameters())
}

async fn route(call: Call, peer: &Peer, shared: &SharedRef) -> Reply {
    if peer.role == Role::None {
        return api_error(ApiError::new(
            ErrorKind::PermissionDenied,
            format!(
                "uid {} may not use bmsd: be root, or a member of group 'bms' (read) or 'bms-admin' (change)",
                peer.uid
            ),
        ));
    }
    let params = call.parameters.unwrap_or_default();
    let (iface, name) = match call.method.rsplit_once('.') {
        Some(split) => split,
        None => return method_not_found(&call.method),
    };
    match iface {
        SERVICE_INTERFACE => service(name, params),
        INTERFACE => {
            let ctx = Ctx { peer, shared };
            match manager(name, params, &ctx).await {
                Some(Ok(v)) => Reply::ok(v),
                Some(Err(e)) => api_error(e),
                None => method_not_found(&call.method),
            }
        }
        _ => Reply::error(
            "org.varlink.service.InterfaceNotFound",
            json!({"interface": iface}),
        ),
    }
}

fn method_not_found(method: &str) -> Reply {
    Reply::error(
        "org.varlink.service.MethodNotFound",
        json!({"method": method}),
    )
}

fn service(name: &str, params: Map<String, Value>) -> Reply {
    match name {
        "GetInfo" => {
            let info = ServiceInfo {
                vendor: "bms".into(),
                product: "bmsd".into(),
                version: bms_proto::VERSION.into(),
                url: bms_proto::interface::SERVICE_URL.into(),
                interfaces: vec![SERVICE_INTERFACE.into(), INTERFACE.into()],
            };
            Reply::ok(serde_json::to_value(info).unwrap_or_default())
        }
        "GetInterfaceDescription" => match params.get("interface").and_then(Value::as_str) {
            Some(i) => match interface::description(i) {
                Some(d) => Reply::ok(json!({"description": d})),
                None => Reply::error(
                    "org.varlink.service.InterfaceNotFound",
                    json!({"interface": i}),
                ),
            },
            None => Reply::error(
                "org.varlink.service.InvalidParameter",
                json!({"parameter": "interface"}),
            ),
        },
        _ => method_not_found(&format!("{SERVICE_INTERFACE}.{name}")),
    }
}

/// What a handler knows about its call.
pub struct Ctx<'a> {
    pub peer: &'a Peer,
    pub shared: &'a SharedRef,
}

pub async fn run<M: Handle>(params: Map<String, Value>, ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    if M::WRITES && ctx.peer.role != Role::Admin {
        tracing::warn!(
            uid = ctx.peer.uid,
            method = M::NAME,
            "refused {}: uid {} may only read",
            M::NAME,
            ctx.peer.uid
        );
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            format!(
                "{} changes state: uid {} may only read; be root or a member of group 'bms-admin'",
                M::NAME,
                ctx.peer.uid
            ),
        ));
    }
    let req: M = serde_json::from_value(Value::Object(params)).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("invalid parameters for {}: {e}", M::NAME),
        )
    })?;
    let reply = req.handle(ctx).await?;
    serde_json::to_value(reply).map_err(|e| ApiError::internal(e.to_string()))
}

async fn manager(
    name: &str,
    params: Map<String, Value>,
    ctx: &Ctx<'_>,
) -> Option<Result<Value, ApiError>> {
    Some(match name {
        "Status" => run::<Status>(params, ctx).await,
        "ListTargets" => run::<ListTargets>(params, ctx).await,
        "GetTarget" => run::<GetTarget>(params, ctx).await,
        "AddTarget" => run::<AddTarget>(params, ctx).await,
        "UpdateTarget" => run::<UpdateTarget>(params, ctx).await,
        "RemoveTarget" => run::<RemoveTarget>(params, ctx).await,
        "ListJobs" => run::<ListJobs>(params, ctx).await,
        "GetJob" => run::<GetJob>(params, ctx).await,
        "AddJob" => run::<AddJob>(params, ctx).await,
        "UpdateJob" => run::<UpdateJob>(params, ctx).await,
        "RemoveJob" => run::<RemoveJob>(params, ctx).await,
        "SetJobEnabled" => run::<SetJobEnabled>(params, ctx).await,
        "Apply" => run::<Apply>(params, ctx).await,
        "ListAudit" => run::<ListAudit>(params, ctx).await,
        "RunJob" => run::<RunJob>(params, ctx).await,
        "ListRuns" => run::<ListRuns>(params, ctx).await,
        "GetRun" => run::<GetRun>(params, ctx).await,
        "CancelRun" => run::<CancelRun>(params, ctx).await,
        "WatchRun" => run::<WatchRun>(params, ctx).await,
        "ListSnapshots" => run::<ListSnapshots>(params, ctx).await,
        "GetSnapshot" => run::<GetSnapshot>(params, ctx).await,
        "Restore" => run::<Restore>(params, ctx).await,
        "CheckTarget" => run::<CheckTarget>(params, ctx).await,
        "WatchEvents" => Err(ApiError::new(
            ErrorKind::InvalidArgument,
            "WatchEvents streams events: call it with \"more\": true (bmsctl events)",
        )),
        _ => return None,
    })
}
