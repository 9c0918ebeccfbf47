//! The outbound byte budget of one connection. Bytes are charged when they are queued for the
//! socket — by rooms when they post events into the connection's mailbox (a connection whose
//! reader stalls is not polled, so it cannot count for itself), by the connection for its own
//! replies — and credited as the HTTP layer takes them from the wrapped outgoing stream. When a
//! slow reader lets the backlog pass the budget, rooms stop posting to it, and its stream ends
//! with a 4008 close in place of the backlog.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

/// Shared between the connection actor (which queues) and its outgoing stream (which drains).
#[derive(Debug)]
pub struct Outbound {
    queued: AtomicUsize,
    limit: usize,
    overflowed: AtomicBool,
}

impl Outbound {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            queued: AtomicUsize::new(0),
            limit,
            overflowed: AtomicBool::new(false),
        })
    }

    /// Charges one text frame of `payload` bytes; false (and overflowed from then on) when it
    /// does not fit the budget.
    pub fn queue(&self, payload: usize) -> bool {
        self.charge(frame_size(payload))
    }

    /// Charges `size` wire bytes; false (and overflowed from then on) when over the budget.
    pub fn charge(&self, size: usize) -> bool {
        let queued = self.queued.fetch_add(size, Ordering::AcqRel) + size;
        if queued > self.limit {
            self.overflowed.store(true, Ordering::Release);
            return false;
        }
        true
    }

    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Credits bytes that left (or will never be written).
    pub fn drained(&self, bytes: usize) {
        // Control frames (pings, closes) are not queued through `queue`; never go below zero.
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(bytes))
            });
    }

    pub fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// Bytes on the wire for an unmasked server frame with `payload` bytes.
pub fn frame_size(payload: usize) -> usize {
    let header = match payload {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    };
    header + payload
}

/// A close frame with code 4008 and its reason, as the server writes it (unmasked).
fn slow_consumer_close() -> Bytes {
    const CODE: u16 = 4008;
    const REASON: &[u8] = b"slow consumer";
    let mut frame = Vec::with_capacity(4 + REASON.len());
    frame.push(0x88); // FIN + close
    frame.push(u8::try_from(2 + REASON.len()).unwrap_or(125));
    frame.extend_from_slice(&CODE.to_be_bytes());
    frame.extend_from_slice(REASON);
    Bytes::from(frame)
}

/// The connection's outgoing byte stream, counted against its [`Outbound`] budget.
pub struct CountedStream<S> {
    inner: Pin<Box<S>>,
    outbound: Arc<Outbound>,
    closed: bool,
}

impl<S> CountedStream<S> {
    pub fn new(inner: S, outbound: Arc<Outbound>) -> Self {
        Self {
            inner: Box::pin(inner),
            outbound,
            closed: false,
        }
    }
}

impl<S, E> Stream for CountedStream<S>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.closed {
            return Poll::Ready(None);
        }
        if self.outbound.is_overflowed() {
            self.closed = true;
            return Poll::Ready(Some(Ok(slow_consumer_close())));
        }
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &polled {
            self.outbound.drained(bytes.len());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_whole_frames_and_trips_once_over() {
        let outbound = Outbound::new(1000);
        assert!(outbound.queue(100));
        assert_eq!(outbound.queued(), 102);
        assert!(outbound.queue(200));
        assert_eq!(outbound.queued(), 102 + 204);
        outbound.drained(306);
        assert_eq!(outbound.queued(), 0);
        assert!(!outbound.queue(2000));
        assert!(outbound.is_overflowed());
    }

    #[test]
    fn close_frame_carries_4008() {
        let frame = slow_consumer_close();
        assert_eq!(frame[0], 0x88);
        assert_eq!(usize::from(frame[1]), frame.len() - 2);
        assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 4008);
    }
}
