//! Errors of bmsctl and the exit codes they map to (DESIGN.md §2):
//! 0 ok, 1 failure, 2 usage error, 3 daemon unreachable, 4 permission denied.

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
}

impl CliError {
    pub fn failure(msg: impl Into<String>) -> Self {
        CliError::Failure(msg.into())
    }
    pub fn usage(msg: impl Into<String>) -> Self {
        CliError::Usage(msg.into())
    }
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CliError::Failure(_) => 1,
            CliError::Usage(_) => 2,
            CliError::Unreachable(_) => 3,
            CliError::Denied(_) => 4,
        })
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Failure(m)
            | CliError::Usage(m)
            | CliError::Unreachable(m)
            | CliError::Denied(m) => f.write_str(m),
        }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;
