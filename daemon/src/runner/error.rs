//! What can stop a run before or while it works: the runner's typed error. Its text is what the
//! run record's `error` says.

use bms_proto::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("job definition not readable: {0}")]
    JobUnreadable(ApiError),
    /// A target of the job could not be read from the catalog.
    #[error("{}", .0.message)]
    TargetUnreadable(ApiError),
    #[error("the job has no target")]
    NoTarget,
    #[error("pre-flight check failed: {0}")]
    CheckTask(String),
    #[error("target '{target}' failed its pre-flight check: {message}")]
    Preflight { target: String, message: String },
    #[error("cannot start the run: {0}")]
    Start(ApiError),
    /// The engine failed (its own message).
    #[error("{0}")]
    Engine(#[from] bms_engine::Error),
    /// A step failed; the text says which and why.
    #[error("{0}")]
    Step(String),
}
