//! The one mapping from the engine's errors to errors on the wire (docs/protocol.md, "Errors").

use bms_engine::Error as EngineError;
use bms_proto::{ApiError, ErrorKind};

/// The wire error for an engine error; the message is the engine's. What the engine cannot
/// find is `NotFound`, a repository locked by another process `Busy`; a serialisation or
/// other internal fault, and whatever else the engine reports about the repository or the
/// files, is `Internal` (never `InvalidArgument`: the caller's request was not the problem).
pub fn from_engine(e: &EngineError) -> ApiError {
    use bms_engine::ErrorKind as K;
    let kind = match e.kind() {
        K::NotFound => ErrorKind::NotFound,
        K::Locked => ErrorKind::Busy,
        K::Immutable => ErrorKind::Immutable,
        _ => ErrorKind::Internal,
    };
    ApiError::new(kind, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_map_by_kind() {
        let nf = from_engine(&EngineError::SnapshotNotFound("abc".into()));
        assert_eq!(nf.kind, ErrorKind::NotFound);
        assert!(nf.message.contains("abc"), "{nf}");
        let internal = from_engine(&EngineError::Internal("walker stopped early".into()));
        assert_eq!(internal.kind, ErrorKind::Internal);
        assert_eq!(
            from_engine(&EngineError::corrupt("pack", "bad")).kind,
            ErrorKind::Internal
        );
    }
}
