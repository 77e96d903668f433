//! Errors of bmsctl and the exit codes they map to (README.md, docs/protocol.md "Errors"):
//! 0 ok, 1 failure, 2 usage error, 3 daemon unreachable, 4 permission denied.

use bms_proto::{ApiError, ErrorKind};
use std::fmt;
use std::process::ExitCode;

/// What went wrong, and which exit code tells it.
#[derive(Debug)]
pub enum CliError {
    /// The operation ran and failed (exit 1).
    Failure(String),
    /// The command line or its input was wrong (exit 2).
    Usage(String),
    /// The daemon could not be reached (exit 3).
    Unreachable(String),
    /// The caller may not do this (exit 4).
    Denied(String),
    /// An error reply of bmsd, kept whole so that `--json` can name it (docs/protocol.md,
    /// "Errors"); `code` is the exit code.
    Daemon { error: ApiError, code: u8 },
}

impl CliError {
    pub fn failure(msg: impl Into<String>) -> Self {
        CliError::Failure(msg.into())
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }

    /// An error reply of bmsd, with the exit code of its kind.
    pub fn daemon(error: ApiError) -> Self {
        let code = match error.kind {
            ErrorKind::PermissionDenied => 4,
            ErrorKind::InvalidArgument => 2,
            _ => 1,
        };
        CliError::Daemon { error, code }
    }

    /// The same error as a failure (exit 1): for replies whose `InvalidArgument` says an object
    /// is in the wrong state rather than that the command line was wrong.
    pub fn into_failure(self) -> Self {
        match self {
            CliError::Usage(m) => CliError::Failure(m),
            CliError::Daemon { error, .. } => CliError::Daemon { error, code: 1 },
            other => other,
        }
    }

    /// The one mapping from the engine's errors (`bmsctl repo …`) to exit codes: a request
    /// the engine could not use is a usage error (exit 2); a permission problem exits 4;
    /// everything else, internal faults and repository problems included, is a failure
    /// (exit 1), never a usage error.
    pub fn from_engine(e: bms_engine::Error) -> Self {
        use bms_engine::ErrorKind as K;
        match e.kind() {
            // A bug in bms is a failure, never the user's "usage error".
            K::Internal => CliError::Failure(e.to_string()),
            // A few refusals of the request are about the target or the snapshot named, not
            // about the command line; their messages tell them apart.
            // A key that opens no slot is a failure (exit 1), like a damaged repository is.
            K::InvalidArgument if matches!(e, bms_engine::Error::WrongKey(_)) => {
                CliError::Failure(e.to_string())
            }
            K::InvalidArgument if engine_refusal(&e.to_string()) => {
                CliError::Failure(e.to_string())
            }
            K::InvalidArgument => CliError::Usage(e.to_string()),
            K::Io if e.raw_os_error() == Some(EACCES) => CliError::Denied(e.to_string()),
            _ => CliError::Failure(e.to_string()),
        }
    }

    fn code(&self) -> u8 {
        match self {
            CliError::Failure(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::Denied(_) => 4,
            CliError::Daemon { code, .. } => *code,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The error as the JSON object `--json` prints on standard error: `error` is the class
    /// (failure, usage, unreachable, permission_denied); replies of bmsd add their wire error
    /// name (`error_name`, e.g. `org.bms.Manager.NotFound`) and the `field` it concerns.
    pub fn to_json(&self) -> serde_json::Value {
        let class = match self.code() {
            2 => "usage",
            3 => "unreachable",
            4 => "permission_denied",
            _ => "failure",
        };
        let mut v = serde_json::json!({"error": class, "message": self.to_string()});
        if let CliError::Daemon { error, .. } = self {
            v["error_name"] = error.kind.wire_name().into();
            if let Some(f) = &error.field {
                v["field"] = f.clone().into();
            }
        }
        v
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Failure(m)
            | CliError::Usage(m)
            | CliError::Unreachable(m)
            | CliError::Denied(m) => f.write_str(m),
            CliError::Daemon { error, .. } => f.write_str(&error.message),
        }
    }
}

const EACCES: i32 = 13;

/// Whether an engine `InvalidArgument` message is not about the caller's input: an internal
/// fault ("internal error: …"), a failure to encode a record, a restore target in the way, or
/// a snapshot id that matches no snapshot.
fn engine_refusal(message: &str) -> bool {
    message.contains("is not a snapshot id") || message.starts_with("cannot restore into")
}

pub type CliResult<T = ()> = Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_faults_are_failures_not_usage_errors() {
        let internal = CliError::from_engine(bms_engine::Error::Internal(
            "the walker stopped early".into(),
        ));
        assert_eq!(internal.code(), 1);
        assert!(internal.to_string().contains("internal error"));
        let corrupt = CliError::from_engine(bms_engine::Error::corrupt("pack", "bad"));
        assert_eq!(corrupt.code(), 1);
        let missing = CliError::from_engine(bms_engine::Error::SnapshotNotFound("NOSUCH".into()));
        assert_eq!(missing.code(), 1);
        assert!(missing.to_string().contains("NOSUCH"));
        let bad_id = CliError::from_engine(bms_engine::Error::InvalidArgument(
            "\"zz\" is not a hex id".into(),
        ));
        assert_eq!(bad_id.code(), 2);
    }
}
