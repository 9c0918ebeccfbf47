//! Delivery verification. Every client keeps one [`SeqTracker`] per room it belongs to, for the
//! whole run (across reconnects, since it rejoins with `since`). Its membership starts at the
//! `last_seq` of its first `joined`; when the run ends it must have received every seq after
//! that up to the room's final seq (the highest of: acked seqs, seqs anyone saw, and a final
//! `joined.last_seq`), each once and in increasing order.

use std::collections::BTreeSet;

use serde::Serialize;

/// What one delivery was, judged against what came before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// The next seq.
    InOrder,
    /// Later than expected: the seqs in between are missing so far.
    Skipped(u64),
    /// A seq that was missing arrived after later ones.
    Late,
    /// A seq received before.
    Duplicate,
    /// A seq at or before the start of the membership.
    BeforeJoin,
}

#[derive(Debug, Clone)]
pub struct SeqTracker {
    start: i64,
    last: i64,
    missing: BTreeSet<i64>,
    received: u64,
    duplicates: u64,
    out_of_order: u64,
    before_join: u64,
}

impl SeqTracker {
    /// A membership that began with `joined.last_seq == start`.
    pub fn new(start: i64) -> Self {
        Self {
            start,
            last: start,
            missing: BTreeSet::new(),
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            before_join: 0,
        }
    }

    /// The highest seq seen: what a rejoin passes as `since`.
    pub fn last(&self) -> i64 {
        self.last
    }

    /// True when every seq up to `target` has arrived.
    pub fn caught_up(&self, target: i64) -> bool {
        self.last >= target && self.missing.is_empty()
    }

    pub fn observe(&mut self, seq: i64) -> Observation {
        if seq <= self.start {
            self.before_join += 1;
            return Observation::BeforeJoin;
        }
        if seq == self.last + 1 {
            self.last = seq;
            self.received += 1;
            return Observation::InOrder;
        }
        if seq > self.last {
            let skipped = seq - self.last - 1;
            self.missing.extend(self.last + 1..seq);
            self.last = seq;
            self.received += 1;
            return Observation::Skipped(u64::try_from(skipped).unwrap_or(0));
        }
        if self.missing.remove(&seq) {
            self.received += 1;
            self.out_of_order += 1;
            Observation::Late
        } else {
            self.duplicates += 1;
            Observation::Duplicate
        }
    }

    /// The tally once the room's final seq is known.
    pub fn finish(&self, target: i64) -> Tally {
        let tail = u64::try_from(target - self.last).unwrap_or(0);
        let lost = self.missing.len() as u64 + tail;
        Tally {
            memberships: 1,
            expected: u64::try_from(target - self.start).unwrap_or(0),
            received: self.received,
            lost,
            duplicated: self.duplicates,
            out_of_order: self.out_of_order,
            unexpected: self.before_join,
        }
    }
}

/// Delivery counts, summed over memberships (client × room).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub memberships: u64,
    /// Deliveries that should have happened.
    pub expected: u64,
    /// Distinct seqs that arrived.
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Seqs from before the membership began (never sent by a correct server).
    pub unexpected: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.memberships += other.memberships;
        self.expected += other.expected;
        self.received += other.received;
        self.lost += other.lost;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.unexpected += other.unexpected;
    }

    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0 && self.unexpected == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_stream_tallies_clean() {
        let mut t = SeqTracker::new(10);
        for seq in 11..=20 {
            assert_eq!(t.observe(seq), Observation::InOrder);
        }
        assert!(t.caught_up(20));
        let tally = t.finish(20);
        assert_eq!(tally.expected, 10);
        assert_eq!(tally.received, 10);
        assert!(tally.is_clean());
    }

    #[test]
    fn gaps_late_arrivals_duplicates_and_a_short_tail_are_counted() {
        let mut t = SeqTracker::new(0);
        assert_eq!(t.observe(1), Observation::InOrder);
        assert_eq!(t.observe(4), Observation::Skipped(2));
        assert!(!t.caught_up(4));
        assert_eq!(t.observe(2), Observation::Late);
        assert_eq!(t.observe(2), Observation::Duplicate);
        assert_eq!(t.observe(4), Observation::Duplicate);
        assert_eq!(t.observe(0), Observation::BeforeJoin);
        let tally = t.finish(6);
        assert_eq!(tally.expected, 6);
        assert_eq!(tally.received, 3);
        // 3 never came, and 5..=6 are past the last one seen.
        assert_eq!(tally.lost, 3);
        assert_eq!(tally.duplicated, 2);
        assert_eq!(tally.out_of_order, 1);
        assert_eq!(tally.unexpected, 1);
        assert!(!tally.is_clean());
    }
}
