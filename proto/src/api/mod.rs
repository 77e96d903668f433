//! Requests and replies of `org.bms.Manager`. Each request type names its reply type through
//! [`Method`], so a caller cannot pair a call with the wrong reply.
//!
//! Field names are the stable JSON names that `bmsctl --json` prints and `bmsctl apply` reads.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A Varlink method of `org.bms.Manager`.
pub trait Method: Serialize + DeserializeOwned {
    /// The short method name, e.g. `Status`.
    const NAME: &'static str;
    /// Whether the method changes state (needs the admin role).
    const WRITES: bool;
    /// Whether the method streams replies when called with `"more": true`.
    const STREAMS: bool;
    /// What a successful call returns (each item of the stream, for a streaming method).
    type Reply: Serialize + DeserializeOwned;
}

/// An empty parameter or reply object.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

mod alerts;
mod catalog;
mod compliance;
mod doctor;
mod events;
mod immutability;
mod jobs;
mod media;
mod misc;
mod reports;
mod runs;
mod table;
mod targets;

pub use alerts::*;
pub use catalog::*;
pub use compliance::*;
pub use doctor::*;
pub use events::*;
pub use immutability::*;
pub use jobs::*;
pub use media::*;
pub use misc::*;
pub use reports::*;
pub use runs::*;
pub use table::{MethodInfo, METHODS};
pub use targets::*;
