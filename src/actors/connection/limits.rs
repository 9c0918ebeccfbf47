//! Per-connection limits: a token bucket for messages, and a window that counts errors so that
//! a client which keeps misbehaving is closed with 4029.

use std::time::{Duration, Instant};

/// Allows `rate` events per second on average with bursts of up to `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled: Instant::now(),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts events in a sliding window of fixed buckets; `record` says when `limit` is passed.
#[derive(Debug)]
pub struct AbuseWindow {
    limit: u32,
    window: Duration,
    started: Instant,
    count: u32,
}

impl AbuseWindow {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            started: Instant::now(),
            count: 0,
        }
    }

    /// Records one event; true when more than `limit` happened within the window.
    pub fn record(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.started) > self.window {
            self.started = now;
            self.count = 0;
        }
        self.count += 1;
        self.count > self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(20, 40);
        bucket.refilled = start;
        let taken = (0..100).filter(|_| bucket.try_take(start)).count();
        assert_eq!(taken, 40);
        // One second later: 20 more.
        let later = start + Duration::from_secs(1);
        let taken = (0..100).filter(|_| bucket.try_take(later)).count();
        assert_eq!(taken, 20);
    }

    #[test]
    fn window_trips_past_its_limit_and_resets() {
        let start = Instant::now();
        let mut window = AbuseWindow::new(3, Duration::from_secs(10));
        window.started = start;
        assert!(!(0..3).any(|_| window.record(start)));
        assert!(window.record(start));
        assert!(!window.record(start + Duration::from_secs(11)));
    }
}
