//! The Varlink adapter of the service layer: decodes a call, hands it to the service and
//! encodes what comes back (docs/architecture.md, "The service layer"). The methods are
//! those of the method table (bms-proto `manager_methods!`).

use crate::service::{decode, encode, no_role, Caller, Item, Items, Operation, Role, Service};
use bms_proto::api::*;
use bms_proto::interface::{self, ServiceInfo, SERVICE_INTERFACE};
use bms_proto::varlink::{Call, Reply};
use bms_proto::{ApiError, ErrorKind, INTERFACE};
use serde_json::value::RawValue;
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
pub async fn handle(msg: &[u8], caller: &Caller, service: &Service) -> Outcome {
    let call: Call = match serde_json::from_slice(msg) {
        Ok(c) => c,
        Err(e) => {
            debug!(uid = caller.uid, "malformed message: {e}");
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
    if caller.role == Role::None {
        return Outcome::One(api_error(no_role(caller)));
    }
    let params = call.parameters.unwrap_or_default();
    let (iface, name) = match call.method.rsplit_once('.') {
        Some(split) => split,
        None => return Outcome::One(method_not_found(&call.method)),
    };
    let reply = match iface {
        SERVICE_INTERFACE => varlink_service(name, params),
        INTERFACE => {
            if call.more {
                if let Some(stream) = manager_stream(name, &params, caller, service) {
                    return match stream {
                        Ok(rx) => Outcome::Stream(rx),
                        Err(e) => Outcome::One(api_error(e)),
                    };
                }
            }
            match manager(name, params, caller, service).await {
                Some(Ok(v)) => Reply::ok_raw(v),
                Some(Err(e)) => api_error(e),
                None => method_not_found(&call.method),
            }
        }
        _ => Reply::error(
            "org.varlink.service.InterfaceNotFound",
            json!({"interface": iface}),
        ),
    };
    if oneway {
        Outcome::None
    } else {
        Outcome::One(reply)
    }
}

/// The reply to a message that is not a well-formed call.
pub fn protocol_error(msg: impl Into<String>) -> Reply {
    let e = ApiError::new(ErrorKind::ProtocolError, msg);
    Reply::error(e.kind.wire_name(), e.wire_parameters())
}

pub fn api_error(e: ApiError) -> Reply {
    Reply::error(e.kind.wire_name(), e.wire_parameters())
}

fn method_not_found(method: &str) -> Reply {
    Reply::error(
        "org.varlink.service.MethodNotFound",
        json!({"method": method}),
    )
}

fn varlink_service(name: &str, params: Map<String, Value>) -> Reply {
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

async fn one<M: Operation>(
    params: Map<String, Value>,
    caller: &Caller,
    service: &Service,
) -> Result<Box<RawValue>, ApiError> {
    service.call_json::<M>(caller, Value::Object(params)).await
}

fn stream<M: Operation>(
    params: &Map<String, Value>,
    caller: &Caller,
    service: &Service,
) -> Result<mpsc::Receiver<Reply>, ApiError>
where
    M::Reply: Send,
{
    let items = service.stream_with(caller, || decode::<M>(Value::Object(params.clone())))?;
    Ok(forward(items))
}

/// Encodes a stream's items as replies. When the connection drops the replies' receiver, the
/// items' receiver is dropped too, which stops the work behind the stream.
fn forward<T: serde::Serialize + Send + 'static>(mut items: Items<T>) -> mpsc::Receiver<Reply> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                item = items.recv() => item,
                _ = tx.closed() => return,
            };
            let (reply, end) = match item {
                Some(Item::More(v)) => (encoded(&v, true), false),
                Some(Item::Last(v)) => (encoded(&v, false), true),
                Some(Item::Failed(e)) => (api_error(e), true),
                None => return,
            };
            if tx.send(reply).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

fn encoded<T: serde::Serialize>(value: &T, continues: bool) -> Reply {
    match encode(value) {
        Ok(v) => {
            let mut r = Reply::ok_raw(v);
            r.continues = continues;
            r
        }
        Err(e) => api_error(e),
    }
}

macro_rules! dispatchers {
    ($($name:ident => $reply:ty, $access:ident, $mode:ident;)*) => {
        /// Runs a method of `org.bms.Manager` by name; `None` when there is no such method.
        async fn manager(
            name: &str,
            params: Map<String, Value>,
            caller: &Caller,
            service: &Service,
        ) -> Option<Result<Box<RawValue>, ApiError>> {
            Some(match name {
                $(stringify!($name) => one::<$name>(params, caller, service).await,)*
                _ => return None,
            })
        }

        /// Starts the streamed form of a method the table marks `stream`; `None` lets the call
        /// be answered once.
        fn manager_stream(
            name: &str,
            params: &Map<String, Value>,
            caller: &Caller,
            service: &Service,
        ) -> Option<Result<mpsc::Receiver<Reply>, ApiError>> {
            match name {
                $(stringify!($name) if <$name as Method>::STREAMS => {
                    Some(stream::<$name>(params, caller, service))
                })*
                _ => None,
            }
        }
    };
}

bms_proto::manager_methods!(dispatchers);
