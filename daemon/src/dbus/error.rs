//! Typed D-Bus errors: `org.bms.Manager1.Error.<Kind>`, one per kind of the control protocol's
//! errors (docs/dbus.md, "Errors"), with the same message.

use bms_proto::{ApiError, ErrorKind};

/// An error of a method of `org.bms.Manager1`.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bms.Manager1.Error")]
pub enum Error {
    /// A failure of the bus connection itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    NotFound(String),
    AlreadyExists(String),
    InvalidArgument(String),
    PermissionDenied(String),
    Busy(String),
    InUse(String),
    ProtocolError(String),
    MethodNotFound(String),
    NotSupported(String),
    Internal(String),
    Immutable(String),
}

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Error {
        let m = e.message;
        match e.kind {
            ErrorKind::NotFound => Error::NotFound(m),
            ErrorKind::AlreadyExists => Error::AlreadyExists(m),
            ErrorKind::InvalidArgument => Error::InvalidArgument(m),
            ErrorKind::PermissionDenied => Error::PermissionDenied(m),
            ErrorKind::Busy => Error::Busy(m),
            ErrorKind::InUse => Error::InUse(m),
            ErrorKind::ProtocolError => Error::ProtocolError(m),
            ErrorKind::MethodNotFound => Error::MethodNotFound(m),
            ErrorKind::NotSupported => Error::NotSupported(m),
            ErrorKind::Internal => Error::Internal(m),
            ErrorKind::Immutable => Error::Immutable(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::DBusError;

    #[test]
    fn every_protocol_error_has_its_dbus_name() {
        for kind in ErrorKind::ALL {
            let e = Error::from(ApiError::new(kind, "what went wrong"));
            assert_eq!(
                e.name().as_str(),
                format!("org.bms.Manager1.Error.{}", kind.as_str())
            );
            assert_eq!(e.description(), Some("what went wrong"));
        }
    }
}
