//! Varlink wire format: each message is one JSON object followed by a NUL byte.
//!
//! A call is `{"method": "iface.Method", "parameters": {...}, "more": bool, "oneway": bool}`;
//! a reply is `{"parameters": {...}, "continues": bool}` or `{"error": "iface.Error", "parameters": {...}}`.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Largest message either side accepts, NUL excluded.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// A method call as it travels on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Call {
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub oneway: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub upgrade: bool,
}

/// A reply as it travels on the wire. Its parameters are kept as JSON text: bmsd encodes a
/// reply's value straight to text, and a client decodes that text straight into the typed reply,
/// with no `serde_json::Value` tree in between (replies can be tens of megabytes).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub continues: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Reply {
    /// A reply whose parameters are already JSON text.
    pub fn ok_raw(parameters: Box<RawValue>) -> Self {
        Reply {
            parameters: Some(parameters),
            continues: false,
            error: None,
        }
    }
    pub fn ok(parameters: Value) -> Self {
        Reply {
            parameters: raw(&parameters),
            continues: false,
            error: None,
        }
    }
    pub fn error(name: impl Into<String>, parameters: Value) -> Self {
        Reply {
            parameters: raw(&parameters),
            continues: false,
            error: Some(name.into()),
        }
    }

    /// The parameters as a JSON value (error replies, which are small); `None` when there are
    /// none or they are not JSON.
    pub fn parameters_value(&self) -> Option<Value> {
        self.parameters
            .as_ref()
            .and_then(|p| serde_json::from_str(p.get()).ok())
    }

    /// Decodes the parameters into `T`; no parameters decode as an empty object.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.parameters.as_ref().map_or("{}", |p| p.get()))
    }
}

/// A value as JSON text. A `Value` always encodes (its map keys are strings).
fn raw(v: &Value) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(v).ok()
}

/// Serialises a message and appends the NUL terminator.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut buf = serde_json::to_vec(msg)?;
    buf.push(0);
    Ok(buf)
}

/// Splits complete NUL-terminated messages off the front of `buf`.
///
/// Returns the message bytes (without NUL) if one is complete; leaves a partial message in place.
pub fn take_message(buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let pos = buf.iter().position(|b| *b == 0)?;
    let mut msg: Vec<u8> = buf.drain(..=pos).collect();
    msg.pop();
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn call_round_trips_and_omits_defaults() {
        let call = Call {
            method: "org.bms.Manager.Status".into(),
            parameters: None,
            more: false,
            oneway: false,
            upgrade: false,
        };
        let bytes = encode(&call).unwrap();
        assert_eq!(bytes.last(), Some(&0));
        assert_eq!(
            &bytes[..bytes.len() - 1],
            br#"{"method":"org.bms.Manager.Status"}"#
        );
        let back: Call = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(back, call);
    }

    #[test]
    fn raw_parameters_are_written_as_they_are_and_decode_typed() {
        let raw = serde_json::value::to_raw_value(&json!({"jobs": [{"name": "etc"}]})).unwrap();
        let r = Reply::ok_raw(raw);
        let bytes = encode(&r).unwrap();
        assert_eq!(
            &bytes[..bytes.len() - 1],
            br#"{"parameters":{"jobs":[{"name":"etc"}]}}"#
        );
        let back: Reply = serde_json::from_slice(&bytes[..bytes.len() - 1]).unwrap();
        #[derive(serde::Deserialize)]
        struct Jobs {
            jobs: Vec<Map<String, Value>>,
        }
        let typed: Jobs = back.decode().unwrap();
        assert_eq!(typed.jobs[0]["name"], "etc");
        let none = Reply::default();
        let empty: Map<String, Value> = none.decode().unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn take_message_splits_on_nul_and_keeps_partial() {
        let mut buf = b"{\"a\":1}\0{\"b\"".to_vec();
        assert_eq!(take_message(&mut buf).unwrap(), b"{\"a\":1}");
        assert_eq!(buf, b"{\"b\"");
        assert!(take_message(&mut buf).is_none());
    }

    #[test]
    fn error_reply_shape() {
        let r = Reply::error("org.bms.Manager.NotFound", json!({"message": "x"}));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(r.parameters_value(), Some(json!({"message": "x"})));
        assert_eq!(
            v,
            json!({"error": "org.bms.Manager.NotFound", "parameters": {"message": "x"}})
        );
    }
}
