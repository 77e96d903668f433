//! The on-tape format (docs/tape-format.md).
