//! The types every operation and every transport shares: who calls, what an operation is, and
//! the items of a streamed reply (docs/architecture.md, "The service layer").

use crate::runner::RunnerRef;
use crate::state::SharedRef;
use bms_proto::api::Method;
use bms_proto::{ApiError, ErrorKind};
use std::future::Future;
use tokio::sync::mpsc;

/// What a caller may do. Every transport decides it by the same rule (`service::roles::role_of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Reader,
    None,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reader => "reader",
            Role::None => "none",
        }
    }
}

/// Who calls: the user, their groups, and the role these give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    pub gids: Vec<u32>,
    pub role: Role,
}

/// One item of a streamed reply.
#[derive(Debug)]
pub enum Item<T> {
    /// More items follow.
    More(T),
    /// The last item.
    Last(T),
    /// The stream ends with this error.
    Failed(ApiError),
}

/// The items of a streamed reply; the stream ends when the sender side is done.
pub type Items<T> = mpsc::Receiver<Item<T>>;

/// What an operation sees of its call.
pub struct Ctx<'a> {
    pub caller: &'a Caller,
    pub shared: &'a SharedRef,
    /// The runner, for operations that queue, cancel or watch runs.
    pub runner: &'a RunnerRef,
}

/// An operation of the service: one per method of the method table (bms-proto `manager_methods!`).
pub trait Operation: Method + Send + 'static {
    /// Runs the operation once and returns its reply.
    fn call(self, ctx: &Ctx<'_>) -> impl Future<Output = Result<Self::Reply, ApiError>> + Send;

    /// Starts the streamed form of the operation (methods the table marks `stream`).
    /// By default the stream is the one reply of [`Operation::call`].
    fn stream(self, caller: Caller, runner: RunnerRef) -> Items<Self::Reply>
    where
        Self::Reply: Send,
    {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            let ctx = Ctx {
                caller: &caller,
                shared: &runner.shared,
                runner: &runner,
            };
            let item = match self.call(&ctx).await {
                Ok(r) => Item::Last(r),
                Err(e) => Item::Failed(e),
            };
            let _ = tx.send(item).await;
        });
        rx
    }

    /// Logs a call refused for lack of the admin role (a warning naming the caller).
    fn log_refused(&self, caller: &Caller) {
        tracing::warn!(
            uid = caller.uid,
            method = Self::NAME,
            "refused {}: uid {} may only read",
            Self::NAME,
            caller.uid
        );
    }
}

/// The error for a caller with no role at all.
pub fn no_role(caller: &Caller) -> ApiError {
    ApiError::new(
        ErrorKind::PermissionDenied,
        format!(
            "uid {} may not use bmsd: be root, or a member of group 'bms' (read) or 'bms-admin' (change)",
            caller.uid
        ),
    )
}
