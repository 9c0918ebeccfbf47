//! The actix messages exchanged by connections, rooms and the committer.

use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;

use super::connection::Connection;
use super::connection::outbound::Outbound;
use crate::protocol::Message as ChatMessage;

/// Identifies one connection within a node.
pub type ConnId = u64;

/// One pre-serialized room event, with the seq it carries (0 for events without one).
#[derive(Clone, Debug)]
pub struct OutFrame {
    pub seq: i64,
    pub text: ByteString,
}

impl OutFrame {
    /// Bytes this frame takes on the wire.
    pub fn wire_size(&self) -> usize {
        super::connection::outbound::frame_size(self.text.len())
    }
}

/// Room → connection: message frames, in seq order, serialized once for every member.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Deliver {
    pub room: Arc<str>,
    pub frames: Arc<[OutFrame]>,
}

/// Room → connection: an event without a seq (presence, typing), already serialized.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Push(pub ByteString);

/// Connection → room: add this connection as a member.
#[derive(Message)]
#[rtype(result = "JoinInfo")]
pub struct Join {
    pub conn: ConnId,
    pub user: Arc<str>,
    pub addr: Addr<Connection>,
    /// The connection's byte budget, charged by the room for what it posts.
    pub outbound: Arc<Outbound>,
}

/// The room's answer to [`Join`]: deliveries to the new member start after `last_seq`.
#[derive(Debug, Clone)]
pub struct JoinInfo {
    pub last_seq: i64,
    pub presence: Vec<Arc<str>>,
}

/// Connection → room: this connection leaves (or died).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave {
    pub conn: ConnId,
}

/// Connection → room: its user is typing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Typing {
    pub conn: ConnId,
}

/// Committer (or bus) → room: committed messages of this room, ascending seq.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Committed(pub Vec<ChatMessage>);

/// Bus → room: an envelope from another node (messages or presence facts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Remote(pub crate::bus::envelope::Envelope);

/// Bus → room: PostgreSQL's `last_seq` of the room; a room behind it reads what it missed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tail(pub i64);

/// Bus → room: other nodes' presence facts may have been missed (this node lost touch with
/// Redis); read the room's presence on the other nodes from Redis again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadPresence;

/// Bus → room: a node died; its users are no longer present.
#[derive(Message)]
#[rtype(result = "()")]
pub struct NodeGone(pub Arc<str>);
