//! Typed errors on the wire: `org.bms.Manager.<Kind>` with a human message.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// What kind of failure a reply reports. The wire name is `org.bms.Manager.<variant>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// A named object does not exist.
    NotFound,
    /// An object with that name exists already.
    AlreadyExists,
    /// A parameter is missing, of the wrong type, or has a value that is not allowed.
    InvalidArgument,
    /// The caller may not do this.
    PermissionDenied,
    /// The daemon or the object is busy; try again later.
    Busy,
    /// The object is still used by others (e.g. a target named by jobs).
    InUse,
    /// The message could not be read (not JSON, too large, not a call).
    ProtocolError,
    /// The method does not exist.
    MethodNotFound,
    /// The operation is known but not supported yet or in this configuration.
    NotSupported,
    /// Something failed inside the daemon; the message says what.
    Internal,
    /// The object is immutable (sealed) until a later time; the message gives the time.
    Immutable,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidArgument,
        ErrorKind::PermissionDenied,
        ErrorKind::Busy,
        ErrorKind::InUse,
        ErrorKind::ProtocolError,
        ErrorKind::MethodNotFound,
        ErrorKind::NotSupported,
        ErrorKind::Internal,
        ErrorKind::Immutable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "NotFound",
            ErrorKind::AlreadyExists => "AlreadyExists",
            ErrorKind::InvalidArgument => "InvalidArgument",
            ErrorKind::PermissionDenied => "PermissionDenied",
            ErrorKind::Busy => "Busy",
            ErrorKind::InUse => "InUse",
            ErrorKind::ProtocolError => "ProtocolError",
            ErrorKind::MethodNotFound => "MethodNotFound",
            ErrorKind::NotSupported => "NotSupported",
            ErrorKind::Internal => "Internal",
            ErrorKind::Immutable => "Immutable",
        }
    }

    /// The fully qualified Varlink error name.
    pub fn wire_name(self) -> String {
        format!("{}.{}", crate::INTERFACE, self.as_str())
    }

    /// Maps a wire error name back; the standard `org.varlink.service.*` errors map to their nearest kind.
    pub fn from_wire(name: &str) -> ErrorKind {
        if let Some(short) = name.strip_prefix("org.bms.Manager.") {
            if let Some(k) = ErrorKind::ALL.iter().find(|k| k.as_str() == short) {
                return *k;
            }
        }
        match name {
            "org.varlink.service.MethodNotFound" | "org.varlink.service.InterfaceNotFound" => {
                ErrorKind::MethodNotFound
            }
            "org.varlink.service.InvalidParameter" => ErrorKind::InvalidArgument,
            "org.varlink.service.PermissionDenied" => ErrorKind::PermissionDenied,
            "org.varlink.service.MethodNotImplemented" => ErrorKind::NotSupported,
            _ => ErrorKind::Internal,
        }
    }
}

/// How many characters of a user's value an error message repeats.
pub const ECHO_MAX_CHARS: usize = 64;

/// A user's value as error messages repeat it: control characters escaped, and cut after
/// [`ECHO_MAX_CHARS`] characters with the full length named, so that a 5,000-character name
/// does not fill the screen.
pub fn echo(value: &str) -> String {
    let total = value.chars().count();
    if total <= ECHO_MAX_CHARS {
        return value.escape_debug().to_string();
    }
    let head: String = value.chars().take(ECHO_MAX_CHARS).collect();
    format!("{}… ({total} characters)", head.escape_debug())
}

/// An error reply: kind, message for humans, and the field it concerns when there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            field: None,
        }
    }
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            kind: ErrorKind::InvalidArgument,
            message: message.into(),
            field: Some(field.into()),
        }
    }
    pub fn not_found(what: &str, name: &str) -> Self {
        ApiError::new(
            ErrorKind::NotFound,
            format!("{what} '{}' does not exist", echo(name)),
        )
    }
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Internal, message)
    }

    /// The reply parameters for this error.
    pub fn wire_parameters(&self) -> Value {
        match &self.field {
            Some(f) => json!({"message": self.message, "field": f}),
            None => json!({"message": self.message}),
        }
    }

    /// Rebuilds an error from a reply's error name and parameters.
    pub fn from_wire(name: &str, parameters: Option<&Value>) -> Self {
        let kind = ErrorKind::from_wire(name);
        let p = parameters.and_then(Value::as_object);
        let message = p
            .and_then(|p| p.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(
                || match p.and_then(|p| p.get("parameter")).and_then(Value::as_str) {
                    Some(param) => format!("{name}: parameter '{param}'"),
                    None => name.to_owned(),
                },
            );
        let field = p
            .and_then(|p| p.get("field").or_else(|| p.get("parameter")))
            .and_then(Value::as_str)
            .map(str::to_owned);
        ApiError {
            kind,
            message,
            field,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_wire(&k.wire_name()), k);
        }
        assert_eq!(
            ErrorKind::from_wire("org.varlink.service.InvalidParameter"),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        assert_eq!(echo("home"), "home");
        assert_eq!(echo("a\nb"), "a\\nb");
        let long = "x".repeat(5000);
        let e = echo(&long);
        assert!(e.starts_with(&"x".repeat(ECHO_MAX_CHARS)), "{e}");
        assert!(e.ends_with("… (5000 characters)"), "{e}");
        assert!(e.len() < 100, "{e}");
    }

    #[test]
    fn error_parameters_round_trip() {
        let e = ApiError::invalid("schedule", "bad schedule 'x'");
        let back = ApiError::from_wire(&e.kind.wire_name(), Some(&e.wire_parameters()));
        assert_eq!(back, e);
    }
}
