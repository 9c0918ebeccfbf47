//! The contract's WebSocket frames as the harness sees them: a flat view of every server frame
//! (only the fields the harness reads), the client frames it sends, and the message body that
//! carries the sender's timestamp.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Any server frame. Fields that a frame type does not have stay `None`; unknown fields are
/// skipped, as the contract asks of clients.
#[derive(Debug, Deserialize)]
pub struct ServerFrame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub room: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub last_seq: Option<i64>,
    #[serde(default, borrow)]
    pub body: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub client_msg_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub node: Option<Cow<'a, str>>,
    #[serde(rename = "ref", default, borrow)]
    pub reference: Option<Cow<'a, str>>,
}

impl<'a> ServerFrame<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// Frames the harness sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame<'a> {
    Join {
        room: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        since: Option<i64>,
    },
    Send {
        room: &'a str,
        body: &'a str,
        client_msg_id: &'a str,
        #[serde(rename = "ref")]
        reference: &'a str,
    },
}

impl ClientFrame<'_> {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Nanoseconds since the Unix epoch: the clock that send→deliver latency is measured with.
/// Senders and receivers share this machine's clock.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A message body: `t=<unix nanos>;c=<client>;n=<number>;h=<node index>;` padded with `x` to
/// `size` bytes. `h` is the node the sender was connected to, so that a receiver can tell a
/// cross-node delivery from a local one.
pub fn body(sent_at_nanos: u64, client: usize, n: u64, node: usize, size: usize) -> String {
    let mut body = format!("t={sent_at_nanos};c={client};n={n};h={node};");
    if body.len() < size {
        body.extend(std::iter::repeat_n('x', size - body.len()));
    }
    body
}

/// The send timestamp of a body that [`body`] made; `None` for anyone else's messages.
pub fn sent_at(body: &str) -> Option<u64> {
    body.strip_prefix("t=")?.split(';').next()?.parse().ok()
}

/// The index of the node the sender of a [`body`] was connected to.
pub fn sent_via(body: &str) -> Option<usize> {
    body.split(';')
        .take(4)
        .find_map(|field| field.strip_prefix("h="))?
        .parse()
        .ok()
}

/// The `client_msg_id` of message `n` of client `client`; also used as the send frame's `ref`,
/// so that an error frame names the send it answers.
pub fn client_msg_id(client: usize, n: u64) -> String {
    format!("c{client}-{n}")
}

/// The message number `n` back from a [`client_msg_id`].
pub fn message_number(id: &str) -> Option<u64> {
    id.rsplit_once('-')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_their_timestamp_and_are_padded() {
        let b = body(1_700_000_000_123_456_789, 7, 42, 1, 64);
        assert_eq!(b.len(), 64);
        assert_eq!(sent_at(&b), Some(1_700_000_000_123_456_789));
        assert_eq!(sent_via(&b), Some(1));
        assert_eq!(sent_via("t=1;c=2;n=3;xxxx"), None);
        assert_eq!(sent_at("hello"), None);
        assert_eq!(message_number(&client_msg_id(12, 99)), Some(99));
    }

    #[test]
    fn server_frames_parse_flat_and_ignore_the_rest() {
        let f = ServerFrame::parse(
            r#"{"type":"message","id":"x","room":"r","seq":3,"user":"u","body":"t=5;","ts":"z"}"#,
        )
        .unwrap();
        assert_eq!(f.kind, "message");
        assert_eq!(f.seq, Some(3));
        assert_eq!(f.room.as_deref(), Some("r"));
        let f = ServerFrame::parse(r#"{"type":"joined","room":"r","last_seq":9,"presence":["a"]}"#)
            .unwrap();
        assert_eq!(f.last_seq, Some(9));
        let f = ServerFrame::parse(
            r#"{"type":"error","code":"rate_limited","message":"slow down","ref":"c1-2"}"#,
        )
        .unwrap();
        assert_eq!(f.code.as_deref(), Some("rate_limited"));
        assert_eq!(f.reference.as_deref(), Some("c1-2"));
    }

    #[test]
    fn client_frames_follow_the_contract() {
        let join = ClientFrame::Join {
            room: "r",
            since: Some(4),
        }
        .to_text();
        assert_eq!(join, r#"{"type":"join","room":"r","since":4}"#);
        let join = ClientFrame::Join {
            room: "r",
            since: None,
        }
        .to_text();
        assert_eq!(join, r#"{"type":"join","room":"r"}"#);
    }
}
