//! Varlink wire format: each message is one JSON object followed by a NUL byte.
//!
//! A call is `{"method": "iface.Method", "parameters": {...}, "more": bool, "oneway": bool}`;
//! a reply is `{"parameters": {...}, "continues": bool}` or `{"error": "iface.Error", "parameters": {...}}`.

use serde::{Deserialize, Serialize};
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

/// A reply as it travels on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub continues: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Reply {
    pub fn ok(parameters: Value) -> Self {
        Reply {
            parameters: Some(parameters),
            continues: false,
            error: None,
        }
    }
    pub fn error(name: impl Into<String>, parameters: Value) -> Self {
        Reply {
            parameters: Some(parameters),
            continues: false,
            error: Some(name.into()),
        }
    }
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
        assert_eq!(
            v,
            json!({"error": "org.bms.Manager.NotFound", "parameters": {"message": "x"}})
        );
    }
}
