//! Messages sent against messages received, per receiving subscription.
//!
//! Every message the driver schedules gets an index `n` and the body `m<n>:...`, so whatever a
//! client receives names the message it is, whoever relayed it. For each message:
//!
//! * **due / sent / not sent / late**: its time on the schedule, when the sender wrote it to
//!   the socket (or that it could not: the sender was disconnected or behind), and whether
//!   that was more than `late_ms` after its due time.
//! * **confirmed**: its RECEIPT arrived, with the seq the server stored it under.
//!
//! For each (message, member of its room):
//!
//! * **expected**: the message was confirmed (its RECEIPT arrived, or the database holds it
//!   although no RECEIPT came: a send whose connection dropped after the store) and the
//!   member's subscription was established (its first RECEIPT of SUBSCRIBE) before the message
//!   was sent. A member that drops and
//!   resumes stays expected to get everything: that is what a chat user expects.
//! * **delivered**: the member received it (once or more); **lost**: expected, never received.
//!   `delivered + lost == expected`.
//! * **duplicated**: a subscription received the same seq again.
//! * **inversions**: a subscription received a seq below one it already had: out of order.
//! * **unexpected**: received but not ours (a body the driver never sent), of another room, or
//!   under another seq than its RECEIPT named.
//! * **recovered**: received although its SEND got no RECEIPT (the message was stored and
//!   relayed, but the sender never learnt it).
//! * **latency**: from the due time (not the send time: a late send is the system's delay too)
//!   to the first receipt, per expected delivery.

use std::collections::HashMap;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::ledger::{Percentiles, latency_histogram, percentiles};

/// The first lost deliveries kept as examples.
const LOST_EXAMPLES: usize = 20;

/// The body of message `n`, `chars` characters long (at least its id).
pub fn body(n: u64, chars: usize) -> String {
    let mut body = format!("m{n}:");
    while body.len() < chars {
        body.push('.');
    }
    body
}

/// The message index a body names.
pub fn parse_body(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    text.strip_prefix('m')?.split_once(':')?.0.parse().ok()
}

#[derive(Debug, Clone)]
struct Message {
    room: usize,
    due: Instant,
    sent: Option<Instant>,
    not_sent: bool,
    late: bool,
    receipt: Option<(u64, Instant)>,
    /// No RECEIPT, but the database holds it (found after the run).
    stored_anyway: bool,
}

#[derive(Debug, Clone, Default)]
struct Subscriber {
    room: usize,
    subscribed: Option<Instant>,
    /// seq -> (message, first receipt)
    got: HashMap<u64, (u64, Instant)>,
    /// message -> first receipt
    by_message: HashMap<u64, Instant>,
    max_seq: u64,
    duplicated: u64,
    inversions: u64,
    unexpected: u64,
}

/// The counts of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatSummary {
    pub due: u64,
    pub sent: u64,
    pub not_sent: u64,
    pub late: u64,
    pub confirmed: u64,
    pub unconfirmed: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub inversions: u64,
    pub unexpected: u64,
    pub recovered: u64,
    pub latency_us: Percentiles,
    pub receipt_latency_us: Percentiles,
    pub deliveries_per_second: Vec<u64>,
    pub lost_examples: Vec<String>,
}

#[derive(Debug)]
pub struct ChatLedger {
    t0: Instant,
    /// Room index -> its subscribers (client indexes).
    rooms: Vec<Vec<usize>>,
    /// Server room id -> room index.
    room_ids: HashMap<u64, usize>,
    subscribers: Vec<Subscriber>,
    messages: Vec<Message>,
    late_after: std::time::Duration,
}

impl ChatLedger {
    /// `rooms[r]`: the server id of room r and its members' client indexes.
    pub fn new(t0: Instant, rooms: &[(u64, Vec<usize>)], clients: usize, late_after: std::time::Duration) -> Self {
        let mut subscribers = vec![Subscriber::default(); clients];
        for (r, (_, members)) in rooms.iter().enumerate() {
            for &c in members {
                if let Some(s) = subscribers.get_mut(c) {
                    s.room = r;
                }
            }
        }
        ChatLedger {
            t0,
            rooms: rooms.iter().map(|(_, members)| members.clone()).collect(),
            room_ids: rooms.iter().enumerate().map(|(r, (id, _))| (*id, r)).collect(),
            subscribers,
            messages: Vec::new(),
            late_after,
        }
    }

    /// Schedules a message in room `room` (an index); returns its number.
    pub fn due(&mut self, room: usize, at: Instant) -> u64 {
        self.messages.push(Message {
            room,
            due: at,
            sent: None,
            not_sent: false,
            late: false,
            receipt: None,
            stored_anyway: false,
        });
        self.messages.len() as u64 - 1
    }

    pub fn sent(&mut self, n: u64, at: Instant) {
        let late_after = self.late_after;
        if let Some(m) = self.messages.get_mut(n as usize) {
            m.sent = Some(at);
            m.late = at.saturating_duration_since(m.due) > late_after;
        }
    }

    pub fn not_sent(&mut self, n: u64) {
        if let Some(m) = self.messages.get_mut(n as usize) {
            m.not_sent = true;
        }
    }

    pub fn receipt(&mut self, n: u64, seq: u64, at: Instant) {
        if let Some(m) = self.messages.get_mut(n as usize)
            && m.receipt.is_none()
        {
            m.receipt = Some((seq, at));
        }
    }

    /// Message `n` got no RECEIPT but the database holds it (a send whose connection dropped
    /// after the store): from now on it is expected like a confirmed one.
    pub fn stored_anyway(&mut self, n: u64) {
        if let Some(m) = self.messages.get_mut(n as usize)
            && m.receipt.is_none()
        {
            m.stored_anyway = true;
        }
    }

    /// Sent messages that got no RECEIPT, as (room id, message number).
    pub fn unconfirmed(&self) -> Vec<(u64, u64)> {
        let ids: HashMap<usize, u64> = self.room_ids.iter().map(|(id, r)| (*r, *id)).collect();
        self.messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.sent.is_some() && m.receipt.is_none())
            .filter_map(|(n, m)| Some((*ids.get(&m.room)?, n as u64)))
            .collect()
    }

    /// The client's subscription is established (the first time counts).
    pub fn subscribed(&mut self, client: usize, at: Instant) {
        if let Some(s) = self.subscribers.get_mut(client)
            && s.subscribed.is_none()
        {
            s.subscribed = Some(at);
        }
    }

    /// A MESSAGE received by `client`: the room id and seq from its headers, and its body.
    pub fn received(&mut self, client: usize, room_id: Option<u64>, seq: Option<u64>, body: &[u8], at: Instant) {
        let room = room_id.and_then(|id| self.room_ids.get(&id).copied());
        let message = parse_body(body).filter(|n| (*n as usize) < self.messages.len());
        let Some(s) = self.subscribers.get_mut(client) else { return };
        let (Some(seq), Some(n), Some(room)) = (seq, message, room) else {
            s.unexpected += 1;
            return;
        };
        let m = &self.messages[n as usize];
        let seq_differs = m.receipt.is_some_and(|(confirmed, _)| confirmed != seq);
        if room != s.room || m.room != room || seq_differs {
            s.unexpected += 1;
            return;
        }
        if s.got.contains_key(&seq) {
            s.duplicated += 1;
            return;
        }
        if seq < s.max_seq {
            s.inversions += 1;
        }
        s.max_seq = s.max_seq.max(seq);
        s.got.insert(seq, (n, at));
        s.by_message.entry(n).or_insert(at);
    }

    /// The seqs each client received of each message, for the check against the database:
    /// (room id, seq, message number).
    pub fn receipts(&self) -> Vec<(u64, u64, u64)> {
        let ids: HashMap<usize, u64> = self.room_ids.iter().map(|(id, r)| (*r, *id)).collect();
        let mut out = Vec::new();
        for s in &self.subscribers {
            let Some(id) = ids.get(&s.room) else { continue };
            out.extend(s.got.iter().map(|(seq, (n, _))| (*id, *seq, *n)));
        }
        out
    }

    /// Confirmed messages as (room id, seq, message number).
    pub fn confirmed(&self) -> Vec<(u64, u64, u64)> {
        let ids: HashMap<usize, u64> = self.room_ids.iter().map(|(id, r)| (*r, *id)).collect();
        self.messages
            .iter()
            .enumerate()
            .filter_map(|(n, m)| Some((*ids.get(&m.room)?, m.receipt?.0, n as u64)))
            .collect()
    }

    pub fn summary(&self) -> ChatSummary {
        let mut out = self.summarize(|_| true);
        for s in &self.subscribers {
            out.duplicated += s.duplicated;
            out.inversions += s.inversions;
            out.unexpected += s.unexpected;
        }
        out
    }

    /// The counts of the messages due in `[from, to)` (one step of a ramp); duplicates,
    /// inversions and unexpected receipts are not per message and are left at 0.
    pub fn summary_between(&self, from: Instant, to: Instant) -> ChatSummary {
        self.summarize(|m| m.due >= from && m.due < to)
    }

    /// Duplicates received so far, over every subscription.
    pub fn duplicated(&self) -> u64 {
        self.subscribers.iter().map(|s| s.duplicated).sum()
    }

    fn summarize(&self, counted: impl Fn(&Message) -> bool) -> ChatSummary {
        let mut out = ChatSummary::default();
        let mut latency: Histogram<u64> = latency_histogram();
        let mut receipt_latency: Histogram<u64> = latency_histogram();
        let mut per_second: Vec<u64> = Vec::new();
        for (n, m) in self.messages.iter().enumerate() {
            if !counted(m) {
                continue;
            }
            out.due += 1;
            let n = n as u64;
            if m.not_sent {
                out.not_sent += 1;
            }
            let Some(sent) = m.sent else { continue };
            out.sent += 1;
            if m.late {
                out.late += 1;
            }
            match m.receipt {
                Some((_, at)) => {
                    out.confirmed += 1;
                    let _ = receipt_latency.record(at.saturating_duration_since(sent).as_micros() as u64);
                }
                None => out.unconfirmed += 1,
            }
            let Some(members) = self.rooms.get(m.room) else { continue };
            for &c in members {
                let s = &self.subscribers[c];
                let got = s.by_message.get(&n).copied();
                if m.receipt.is_none() {
                    if got.is_some() {
                        out.recovered += 1;
                    }
                    // Stored although unconfirmed: it is in the room's history, so every
                    // member is expected to get it too.
                    if !m.stored_anyway {
                        continue;
                    }
                }
                if s.subscribed.is_none_or(|at| at > sent) {
                    continue;
                }
                out.expected += 1;
                match got {
                    Some(at) => {
                        out.delivered += 1;
                        let _ = latency.record(at.saturating_duration_since(m.due).as_micros() as u64);
                        let second = at.saturating_duration_since(self.t0).as_secs() as usize;
                        if per_second.len() <= second {
                            per_second.resize(second + 1, 0);
                        }
                        per_second[second] += 1;
                    }
                    None => {
                        out.lost += 1;
                        if out.lost_examples.len() < LOST_EXAMPLES {
                            let seq = m.receipt.map_or(0, |(seq, _)| seq);
                            out.lost_examples.push(format!("client {c}: m{n} (room #{}, seq {seq})", m.room));
                        }
                    }
                }
            }
        }
        out.latency_us = percentiles(&latency);
        out.receipt_latency_us = percentiles(&receipt_latency);
        out.deliveries_per_second = per_second;
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bodies_name_their_message() {
        assert_eq!(parse_body(body(42, 64).as_bytes()), Some(42));
        assert_eq!(body(42, 64).len(), 64);
        assert_eq!(body(123_456, 4), "m123456:");
        for bad in ["", "m", "m:", "mx:", "42:", "m42"] {
            assert_eq!(parse_body(bad.as_bytes()), None, "{bad}");
        }
    }

    /// Room 0 (id 100): clients 0 and 1. Room 1 (id 200): clients 2, 3, 4.
    fn ledger(t0: Instant) -> ChatLedger {
        ChatLedger::new(t0, &[(100, vec![0, 1]), (200, vec![2, 3, 4])], 5, Duration::from_millis(100))
    }

    #[test]
    fn every_member_of_the_room_is_expected_and_counted_once() {
        let t0 = Instant::now();
        let mut l = ledger(t0);
        for c in 0..5 {
            l.subscribed(c, t0);
        }
        let at = |ms| t0 + Duration::from_millis(ms);
        let n = l.due(1, at(10));
        l.sent(n, at(10));
        l.receipt(n, 1, at(15));
        let b = body(n, 16);
        l.received(2, Some(200), Some(1), b.as_bytes(), at(20));
        l.received(3, Some(200), Some(1), b.as_bytes(), at(30));
        l.received(3, Some(200), Some(1), b.as_bytes(), at(31));
        let s = l.summary();
        assert_eq!((s.expected, s.delivered, s.lost, s.duplicated), (3, 2, 1, 1));
        assert_eq!(s.lost_examples, ["client 4: m0 (room #1, seq 1)"]);
        assert_eq!(s.latency_us.max / 1000, 20, "from the due time");
        assert_eq!((s.confirmed, s.unconfirmed, s.late), (1, 0, 0));
    }

    #[test]
    fn strangers_other_rooms_and_wrong_seqs_are_unexpected() {
        let t0 = Instant::now();
        let mut l = ledger(t0);
        l.subscribed(0, t0);
        let n = l.due(0, t0);
        l.sent(n, t0);
        l.receipt(n, 7, t0);
        l.received(0, Some(100), Some(8), body(n, 16).as_bytes(), t0);
        l.received(0, Some(200), Some(7), body(n, 16).as_bytes(), t0);
        l.received(2, Some(100), Some(7), body(n, 16).as_bytes(), t0);
        l.received(0, Some(100), Some(9), b"hello", t0);
        l.received(0, Some(100), None, body(n, 16).as_bytes(), t0);
        l.received(0, Some(100), Some(1), body(99, 16).as_bytes(), t0);
        assert_eq!(l.summary().unexpected, 6);
    }

    #[test]
    fn out_of_order_late_unconfirmed_and_recovered_are_told_apart() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut l = ledger(t0);
        l.subscribed(0, t0);
        // Subscribed after the second message went out: not expected to get it.
        let a = l.due(0, at(0));
        let b = l.due(0, at(0));
        l.sent(a, at(0));
        l.sent(b, at(500));
        l.subscribed(1, at(1));
        l.receipt(a, 1, at(2));
        // b never got its RECEIPT but was relayed anyway.
        l.received(0, Some(100), Some(2), body(b, 16).as_bytes(), at(600));
        l.received(0, Some(100), Some(1), body(a, 16).as_bytes(), at(601));
        let c = l.due(0, at(700));
        l.not_sent(c);
        let s = l.summary();
        assert_eq!((s.due, s.sent, s.not_sent, s.late), (3, 2, 1, 1));
        assert_eq!(l.unconfirmed(), [(100, b)]);
        assert_eq!((s.confirmed, s.unconfirmed, s.recovered), (1, 1, 1));
        assert_eq!((s.expected, s.delivered, s.lost), (1, 1, 0), "client 1 subscribed after a was sent");
        assert_eq!(s.inversions, 1, "seq 1 after seq 2");
        // The database holds b after all: client 0 got it, client 1 (subscribed at 1 ms, b
        // sent at 500 ms) did not: a loss, though b never got its RECEIPT.
        l.stored_anyway(b);
        let s = l.summary();
        assert_eq!((s.expected, s.delivered, s.lost, s.recovered), (3, 2, 1, 1));
    }
}
