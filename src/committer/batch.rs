//! One group-commit batch: the senders it answers, the distinct messages its statement stores,
//! and what becomes of them once the database has answered (acks, and hand-off to the rooms).

use std::collections::HashMap;

use actix::Addr;
use uuid::Uuid;

use super::{Ack, Pending, SendError};
use crate::actors::messages::Committed;
use crate::actors::room::Room;
use crate::bus::actor::{Bus, Publish};
use crate::bus::envelope::Envelope;
use crate::protocol::Message;
use crate::protocol::message::now_millis;
use crate::store::commit::{NewMessage, Outcome};

/// Senders whose messages one statement stores.
pub(super) struct Batch {
    senders: Vec<Pending>,
    /// The messages to store: one per distinct `(room, user, client_msg_id)`.
    pub(super) unique: Vec<NewMessage>,
    /// For each sender, the index of its message in `unique`.
    slot_of: Vec<usize>,
}

impl Batch {
    /// The batch of `senders`. A client may resend before its first try was answered: such a
    /// message is stored once and both tries are answered.
    pub(super) fn new(mut senders: Vec<Pending>) -> Self {
        let ts = now_millis();
        let mut first_of: HashMap<(i64, Uuid, &str), usize> = HashMap::new();
        let mut unique = Vec::with_capacity(senders.len());
        let mut slot_of = Vec::with_capacity(senders.len());
        for p in &mut senders {
            if let Some(cmid) = p.client_msg_id.as_deref() {
                if let Some(&slot) = first_of.get(&(p.room_id, p.user_id, cmid)) {
                    slot_of.push(slot);
                    continue;
                }
                first_of.insert((p.room_id, p.user_id, cmid), unique.len());
            }
            slot_of.push(unique.len());
            unique.push(NewMessage {
                id: Uuid::now_v7(),
                room_id: p.room_id,
                user_id: p.user_id,
                // The body moves here, and on to the delivered message: no copy per send.
                body: std::mem::take(&mut p.body),
                client_msg_id: p.client_msg_id.clone(),
                ts,
            });
        }
        drop(first_of);
        Self {
            senders,
            unique,
            slot_of,
        }
    }

    /// Senders in the batch.
    pub(super) fn len(&self) -> usize {
        self.senders.len()
    }

    /// Tells every sender that nothing was stored.
    pub(super) fn refuse(self) {
        for p in self.senders {
            let _ = p.reply.send(Err(SendError::Unavailable));
        }
    }

    /// Answers every sender from the statement's `outcomes` (one per message of `unique`), then
    /// hands the newly stored messages to their rooms and, through `bus` (as node `node`), to the
    /// other nodes. Returns how many messages were stored.
    pub(super) fn finish(
        mut self,
        outcomes: &[Outcome],
        node: &str,
        bus: Option<&Addr<Bus>>,
    ) -> u64 {
        let mut answered = vec![false; self.unique.len()];
        let mut by_room: HashMap<i64, (Addr<Room>, Vec<Message>)> = HashMap::new();
        let mut stored = 0u64;
        for (p, slot) in self.senders.into_iter().zip(self.slot_of) {
            let (id, ts) = (self.unique[slot].id, self.unique[slot].ts);
            let answer = match outcomes[slot] {
                Outcome::NoRoom => Err(SendError::NoRoom),
                Outcome::NoUser => Err(SendError::NoUser),
                Outcome::Duplicate { id, seq, ts } => Ok(Ack {
                    id,
                    seq,
                    ts,
                    duplicate: true,
                }),
                Outcome::Stored { seq } if answered[slot] => Ok(Ack {
                    id,
                    seq,
                    ts,
                    duplicate: true,
                }),
                Outcome::Stored { seq } => {
                    stored += 1;
                    let message = Message {
                        id,
                        room: p.room.clone(),
                        seq,
                        user: p.user.clone(),
                        body: std::mem::take(&mut self.unique[slot].body),
                        ts,
                        client_msg_id: p.client_msg_id,
                    };
                    by_room
                        .entry(p.room_id)
                        .or_insert_with(|| (p.room_addr.clone(), Vec::new()))
                        .1
                        .push(message);
                    Ok(Ack {
                        id,
                        seq,
                        ts,
                        duplicate: false,
                    })
                }
            };
            answered[slot] = true;
            let _ = p.reply.send(answer);
        }
        for (_, (room, messages)) in by_room {
            if let (Some(bus), Some(first)) = (bus, messages.first()) {
                let envelope = Envelope::messages_bytes(node, &first.room, &messages);
                bus.do_send(Publish {
                    room: first.room.clone(),
                    envelope,
                });
            }
            room.do_send(Committed(messages));
        }
        stored
    }
}
