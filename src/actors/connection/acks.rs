//! Answers to a connection's `send`s (ack or error), written in the order the sends came in.
//! Each send waits for its own answer from a commit lane; answers that arrive together (one
//! batch) would otherwise reach the socket in whatever order the actor polls them.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::committer::{Ack, SendError};

/// What came back for one send, with what its answer frame needs.
pub struct Answered {
    pub room: Arc<str>,
    pub client_msg_id: Option<String>,
    pub reference: Option<String>,
    pub answer: Result<Result<Ack, SendError>, oneshot::error::RecvError>,
}

/// Tickets in send order; answers are released only in ticket order.
#[derive(Default)]
pub struct AckQueue {
    issued: u64,
    next: u64,
    ready: BTreeMap<u64, Answered>,
}

impl AckQueue {
    /// The ticket of a send about to be submitted.
    pub fn issue(&mut self) -> u64 {
        self.issued += 1;
        self.issued - 1
    }

    /// Files the answer of `ticket`.
    pub fn answered(&mut self, ticket: u64, answered: Answered) {
        self.ready.insert(ticket, answered);
    }

    /// The next answer in send order, once it is in.
    pub fn next_ready(&mut self) -> Option<Answered> {
        let answered = self.ready.remove(&self.next)?;
        self.next += 1;
        Some(answered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(reference: &str) -> Answered {
        Answered {
            room: Arc::from("r"),
            client_msg_id: None,
            reference: Some(reference.to_owned()),
            answer: Ok(Err(SendError::Unavailable)),
        }
    }

    #[test]
    fn answers_come_out_in_send_order_whatever_order_they_arrive_in() {
        let mut queue = AckQueue::default();
        let (a, b, c) = (queue.issue(), queue.issue(), queue.issue());
        queue.answered(c, answered("c"));
        queue.answered(b, answered("b"));
        assert!(queue.next_ready().is_none(), "a is not in yet");
        queue.answered(a, answered("a"));
        let order: Vec<_> = std::iter::from_fn(|| queue.next_ready())
            .map(|x| x.reference.unwrap())
            .collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert!(queue.next_ready().is_none());
    }
}
