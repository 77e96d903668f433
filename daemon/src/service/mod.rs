//! The service layer: every operation of `org.bms.Manager`, free of any transport
//! (docs/architecture.md, "The service layer").
//!
//! A transport (the Varlink server in `ipc/`; D-Bus later) finds out who calls, as a [`Caller`],
//! decodes the request into its bms-proto type and hands both to [`Service::call_with`] or
//! [`Service::stream_with`]. The service checks the caller's role against the method table
//! (`WRITES`) in one place, runs the operation and returns its typed reply, an [`ApiError`], or a
//! stream of typed [`Item`]s. Dropping a stream's receiver stops the work behind it.

mod catalog_ops;
mod compliance_ops;
mod config_ops;
mod core;
mod doctor;
mod engine_error;
mod immutability_ops;
mod media_ops;
mod report_ops;
pub use report_ops::build as build_report;
mod restore;
mod restore_audit;
mod retention_ops;
pub mod roles;
mod run_ops;
mod tape_restore;

pub use self::core::{no_role, Caller, Ctx, Item, Items, Operation, Role};
pub use engine_error::from_engine;
pub use restore::restore;
pub use run_ops::{find_snapshot, run_detail};

use crate::runner::RunnerRef;
use crate::state::SharedRef;
use bms_proto::{ApiError, ErrorKind};
use serde_json::value::RawValue;

/// The daemon's operations, for any transport.
#[derive(Clone)]
pub struct Service {
    runner: RunnerRef,
}

impl Service {
    pub fn new(runner: RunnerRef) -> Service {
        Service { runner }
    }

    pub fn shared(&self) -> &SharedRef {
        &self.runner.shared
    }

    /// The one authorisation check, then decoding: a caller needs a role, and the admin role
    /// for a method that writes (the method table's `WRITES`). `decode` is the transport's own
    /// decoding (its error is the reply); for a refused caller it only serves the log.
    fn admit<M: Operation>(
        &self,
        caller: &Caller,
        decode: impl FnOnce() -> Result<M, ApiError>,
    ) -> Result<M, ApiError> {
        if caller.role == Role::None {
            return Err(no_role(caller));
        }
        if M::WRITES && caller.role != Role::Admin {
            match decode() {
                Ok(req) => req.log_refused(caller),
                Err(_) => tracing::warn!(
                    uid = caller.uid,
                    method = M::NAME,
                    "refused {}: uid {} may only read",
                    M::NAME,
                    caller.uid
                ),
            }
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{} changes state: uid {} may only read; be root or a member of group 'bms-admin'",
                    M::NAME,
                    caller.uid
                ),
            ));
        }
        let req = decode()?;
        #[cfg(debug_assertions)]
        test_hook::check(M::NAME)?;
        Ok(req)
    }

    /// Authorises the caller, decodes the request and runs the operation.
    pub async fn call_with<M: Operation>(
        &self,
        caller: &Caller,
        decode: impl FnOnce() -> Result<M, ApiError>,
    ) -> Result<M::Reply, ApiError> {
        let req = self.admit(caller, decode)?;
        let ctx = Ctx {
            caller,
            shared: &self.runner.shared,
            runner: &self.runner,
        };
        req.call(&ctx).await
    }

    /// The call in its JSON form, as both transports carry it: `params` decoded into `M`'s
    /// request (a bad one is `InvalidArgument` naming the method), the reply encoded (a reply
    /// that cannot be encoded is `Internal`).
    pub async fn call_json<M: Operation>(
        &self,
        caller: &Caller,
        params: serde_json::Value,
    ) -> Result<Box<RawValue>, ApiError> {
        let reply = self.call_with(caller, || decode::<M>(params)).await?;
        encode(&reply)
    }

    /// Runs an already decoded request.
    pub async fn call<M: Operation>(&self, caller: &Caller, req: M) -> Result<M::Reply, ApiError> {
        self.call_with(caller, move || Ok(req)).await
    }

    /// Like [`Service::call_with`], for the streamed form of a method.
    pub fn stream_with<M: Operation>(
        &self,
        caller: &Caller,
        decode: impl FnOnce() -> Result<M, ApiError>,
    ) -> Result<Items<M::Reply>, ApiError>
    where
        M::Reply: Send,
    {
        let req = self.admit(caller, decode)?;
        Ok(req.stream(caller.clone(), self.runner.clone()))
    }

    /// Runs an already decoded request in its streamed form.
    pub fn stream<M: Operation>(&self, caller: &Caller, req: M) -> Result<Items<M::Reply>, ApiError>
    where
        M::Reply: Send,
    {
        self.stream_with(caller, move || Ok(req))
    }
}

/// Decodes the parameters of a call of `M`.
pub fn decode<M: bms_proto::api::Method>(params: serde_json::Value) -> Result<M, ApiError> {
    serde_json::from_value(params).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidArgument,
            format!("invalid parameters for {}: {e}", M::NAME),
        )
    })
}

/// Encodes a reply straight to JSON text (no `serde_json::Value` in between: a reply can hold
/// tens of thousands of jobs).
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Box<RawValue>, ApiError> {
    serde_json::value::to_raw_value(value)
        .map_err(|e| ApiError::internal(format!("internal error: cannot encode the reply: {e}")))
}

/// A test hook of debug builds (docs/protocol.md, "Test hooks"): when `BMSD_TEST_INTERNAL_FAULT`
/// names a method, calls of it fail with `Internal` after authorisation, the way a
/// serialisation bug would.
#[cfg(debug_assertions)]
mod test_hook {
    use bms_proto::ApiError;

    pub fn check(method: &str) -> Result<(), ApiError> {
        match std::env::var("BMSD_TEST_INTERNAL_FAULT") {
            Ok(m) if m == method => Err(ApiError::internal(format!(
                "internal error: fault injected into {method} by BMSD_TEST_INTERNAL_FAULT"
            ))),
            _ => Ok(()),
        }
    }
}
