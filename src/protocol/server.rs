//! Server → client frames. Each is serialized once; room events share those bytes with every
//! member.

use bytestring::ByteString;
use serde::Serialize;

use super::message::{Message, rfc3339_millis};

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Welcome {
        user: &'a str,
        node: &'a str,
        heartbeat_ms: u64,
    },
    Joined {
        room: &'a str,
        last_seq: i64,
        presence: Vec<&'a str>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Left {
        room: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Ack {
        room: &'a str,
        id: uuid::Uuid,
        seq: i64,
        #[serde(serialize_with = "rfc3339_millis")]
        ts: chrono::DateTime<chrono::Utc>,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<&'a str>,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    History {
        room: &'a str,
        messages: &'a [Message],
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    SearchResults {
        room: &'a str,
        hits: &'a [SearchHit],
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
    Message(&'a Message),
    Presence {
        room: &'a str,
        joined: &'a [&'a str],
        left: &'a [&'a str],
    },
    Typing {
        room: &'a str,
        user: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<&'a str>,
    },
}

/// One semantic-search result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub message: Message,
    pub score: f64,
}

impl ServerFrame<'_> {
    /// The frame as the text of one WebSocket frame.
    pub fn to_text(&self) -> ByteString {
        // Serializing these types cannot fail: no maps with non-string keys, no foreign types.
        ByteString::from(serde_json::to_string(self).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn message_frames_are_flat_and_timestamps_have_milliseconds() {
        let message = Message {
            id: uuid::Uuid::nil(),
            room: Arc::from("general"),
            seq: 42,
            user: Arc::from("alice"),
            body: "hi".into(),
            ts: chrono::DateTime::from_timestamp_millis(1_795_000_000_123).unwrap(),
            client_msg_id: None,
        };
        let text = ServerFrame::Message(&message).to_text();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["seq"], 42);
        assert_eq!(value["room"], "general");
        assert!(value.get("client_msg_id").is_none());
        assert!(value["ts"].as_str().unwrap().ends_with(".123Z"), "{value}");
    }

    #[test]
    fn replies_echo_ref_only_when_given() {
        let text = ServerFrame::Pong {
            reference: Some("r1"),
        }
        .to_text();
        assert_eq!(&*text, r#"{"type":"pong","ref":"r1"}"#);
        let text = ServerFrame::Pong { reference: None }.to_text();
        assert_eq!(&*text, r#"{"type":"pong"}"#);
    }
}
