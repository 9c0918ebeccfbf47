//! What travels on a room's channel between nodes: committed messages (in seq order), a
//! node's presence facts (a user's first connection on that node joined, or its last one left),
//! the whole of a node's presence in the room (after it lost touch with Redis), or a typing
//! notice (not stored; lost if Redis drops it, which is harmless).
//! The sending node's id comes first in the JSON, so a node recognises its own envelopes without
//! parsing them.

use serde::{Deserialize, Serialize};

use crate::protocol::Message;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub node: String,
    pub room: String,
    #[serde(flatten)]
    pub payload: Payload,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Payload {
    Messages {
        messages: Vec<Message>,
    },
    Presence {
        joined: Vec<String>,
        left: Vec<String>,
    },
    /// Everyone the sending node has in the room, replacing what was known of that node there.
    NodePresence {
        users: Vec<String>,
    },
    Typing {
        user: String,
    },
}

impl Envelope {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The envelope of committed `messages`, serialized straight from borrowed data.
    pub fn messages_bytes(node: &str, room: &str, messages: &[Message]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Borrowed<'a> {
            node: &'a str,
            room: &'a str,
            kind: &'static str,
            messages: &'a [Message],
        }
        serde_json::to_vec(&Borrowed {
            node,
            room,
            kind: "messages",
            messages,
        })
        .unwrap_or_default()
    }

    /// The prefix every envelope from `node` starts with.
    pub fn prefix_of(node: &str) -> Vec<u8> {
        let mut prefix = br#"{"node":"#.to_vec();
        prefix.extend_from_slice(serde_json::to_string(node).unwrap_or_default().as_bytes());
        prefix
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn envelopes_round_trip_and_start_with_their_node() {
        let envelope = Envelope {
            node: "node-a".into(),
            room: "general".into(),
            payload: Payload::Messages {
                messages: vec![Message {
                    id: uuid::Uuid::nil(),
                    room: Arc::from("general"),
                    seq: 7,
                    user: Arc::from("alice"),
                    body: "hi".into(),
                    ts: chrono::DateTime::from_timestamp_millis(1_000).unwrap(),
                    client_msg_id: Some("c".into()),
                }],
            },
        };
        let bytes = envelope.to_bytes();
        assert!(bytes.starts_with(&Envelope::prefix_of("node-a")));
        assert!(
            !bytes.starts_with(&Envelope::prefix_of("node-ab"))
                || bytes.starts_with(br#"{"node":"node-ab""#)
        );
        let back: Envelope = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, envelope);
        let Payload::Messages { messages } = &envelope.payload else {
            unreachable!()
        };
        assert_eq!(
            Envelope::messages_bytes("node-a", "general", messages),
            bytes
        );
    }
}
