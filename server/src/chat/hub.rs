//! This instance's chat subscribers, by room. The relay hands every message it brings here to
//! [`Hub::deliver`]; each connection holding a subscription of the room gets it on its own
//! bounded queue. A connection that lets its queue fill is too slow: it is told to close,
//! never buffered without bound.
//!
//! A room's first local subscriber makes the relay subscribe to the room (for relays that
//! subscribe per room); [`Joined::ready`] resolves once it has, so a subscriber that reads
//! what it missed from the database after that misses nothing in between.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ChatMessage;
use super::metrics::ChatMetrics;

/// What a connection's queue carries.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A message relayed to this instance.
    Message(Arc<ChatMessage>),
    /// The room's last seq is at least this (the recovering relay's check): read what is
    /// missing from the database.
    Tail { room_id: u64, last_seq: u64 },
}

/// A change of the rooms this instance has subscribers in, for the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomChange {
    /// The room's first local subscriber: subscribe to it, then [`Hub::set_ready`].
    Joined(u64),
    /// Its last one left.
    Left(u64),
}

struct Member {
    queue: mpsc::Sender<Outbound>,
    slow: CancellationToken,
}

struct Room {
    members: HashMap<u64, Member>,
    /// Whether the relay carries this room's messages here yet.
    ready: watch::Sender<bool>,
    /// The highest seq delivered here.
    max_seen: u64,
}

struct Inner {
    rooms: Mutex<HashMap<u64, Room>>,
    next_connection: AtomicU64,
    /// `None` when the relay needs no per-room subscription (rooms are ready at once).
    changes: Option<mpsc::UnboundedSender<RoomChange>>,
    queue_capacity: usize,
    metrics: Arc<ChatMetrics>,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatHub").field("rooms", &self.rooms().len()).finish()
    }
}

/// A connection's place in the hub; it leaves every room when dropped.
pub struct Connection {
    pub id: u64,
    pub queue: mpsc::Receiver<Outbound>,
    /// Cancelled when the connection fell too far behind.
    pub slow: CancellationToken,
    sender: mpsc::Sender<Outbound>,
    rooms: Vec<u64>,
    hub: Hub,
}

/// A room joined by a connection.
pub struct Joined {
    ready: watch::Receiver<bool>,
}

impl Joined {
    /// Resolves once the relay carries the room's messages here (at once for most relays);
    /// false when that did not happen within `limit`.
    pub async fn ready(mut self, limit: std::time::Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.ready.wait_for(|r| *r)).await, Ok(Ok(_)))
    }
}

impl Hub {
    /// `per_room`: the relay subscribes per room and reads the returned changes.
    pub fn new(
        metrics: Arc<ChatMetrics>,
        queue_capacity: usize,
        per_room: bool,
    ) -> (Hub, Option<mpsc::UnboundedReceiver<RoomChange>>) {
        let (changes, receiver) = if per_room {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let inner = Inner {
            rooms: Mutex::default(),
            next_connection: AtomicU64::new(1),
            changes,
            queue_capacity: queue_capacity.max(1),
            metrics,
        };
        (Hub { inner: Arc::new(inner) }, receiver)
    }

    fn rooms_lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Room>> {
        // A panic while holding the lock leaves plain data behind: keep serving.
        self.inner.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn connect(&self) -> Connection {
        let (sender, queue) = mpsc::channel(self.inner.queue_capacity);
        Connection {
            id: self.inner.next_connection.fetch_add(1, Ordering::Relaxed),
            queue,
            slow: CancellationToken::new(),
            sender,
            rooms: Vec::new(),
            hub: self.clone(),
        }
    }

    /// The rooms with subscribers here.
    pub fn rooms(&self) -> Vec<u64> {
        self.rooms_lock().keys().copied().collect()
    }

    /// Whether the room has subscribers here.
    pub fn has_room(&self, room_id: u64) -> bool {
        self.rooms_lock().contains_key(&room_id)
    }

    /// Marks rooms as carried (or not) by the relay.
    pub fn set_ready(&self, room_ids: &[u64], ready: bool) {
        let rooms = self.rooms_lock();
        for id in room_ids {
            if let Some(room) = rooms.get(id) {
                room.ready.send_replace(ready);
            }
        }
    }

    /// Hands a relayed message to every local subscriber of its room.
    pub fn deliver(&self, message: Arc<ChatMessage>) {
        let mut rooms = self.rooms_lock();
        let Some(room) = rooms.get_mut(&message.room_id) else { return };
        room.max_seen = room.max_seen.max(message.seq);
        for member in room.members.values() {
            self.offer(member, Outbound::Message(message.clone()));
        }
    }

    /// The room's last seq, from the database: subscribers behind it read what is missing.
    pub fn tail(&self, room_id: u64, last_seq: u64) {
        let mut rooms = self.rooms_lock();
        let Some(room) = rooms.get_mut(&room_id) else { return };
        if last_seq <= room.max_seen {
            return;
        }
        room.max_seen = last_seq;
        for member in room.members.values() {
            self.offer(member, Outbound::Tail { room_id, last_seq });
        }
    }

    /// The highest seq delivered here for the room (0 when none or no subscribers).
    pub fn max_seen(&self, room_id: u64) -> u64 {
        self.rooms_lock().get(&room_id).map_or(0, |r| r.max_seen)
    }

    fn offer(&self, member: &Member, item: Outbound) {
        match member.queue.try_send(item) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !member.slow.is_cancelled() {
                    self.inner.metrics.slow_consumers.inc();
                    member.slow.cancel();
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

impl Connection {
    /// Joins the room's local subscribers (once per connection, however many subscriptions).
    pub fn join(&mut self, room_id: u64) -> Joined {
        let mut rooms = self.hub.rooms_lock();
        let per_room = self.hub.inner.changes.is_some();
        let room = rooms.entry(room_id).or_insert_with(|| {
            if let Some(changes) = &self.hub.inner.changes {
                let _ = changes.send(RoomChange::Joined(room_id));
            }
            Room { members: HashMap::new(), ready: watch::Sender::new(!per_room), max_seen: 0 }
        });
        room.members.entry(self.id).or_insert_with(|| Member { queue: self.sender.clone(), slow: self.slow.clone() });
        if !self.rooms.contains(&room_id) {
            self.rooms.push(room_id);
        }
        Joined { ready: room.ready.subscribe() }
    }

    /// Leaves the room.
    pub fn leave(&mut self, room_id: u64) {
        self.rooms.retain(|r| *r != room_id);
        self.hub.remove(self.id, room_id);
    }
}

impl Hub {
    fn remove(&self, connection: u64, room_id: u64) {
        let mut rooms = self.rooms_lock();
        let Some(room) = rooms.get_mut(&room_id) else { return };
        room.members.remove(&connection);
        if room.members.is_empty() {
            rooms.remove(&room_id);
            if let Some(changes) = &self.inner.changes {
                let _ = changes.send(RoomChange::Left(room_id));
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        for room in std::mem::take(&mut self.rooms) {
            self.hub.remove(self.id, room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(room_id: u64, seq: u64) -> Arc<ChatMessage> {
        Arc::new(ChatMessage { room_id, seq, sender_id: 1, body: "hi".into(), sent_at_ms: 0 })
    }

    fn metrics() -> Arc<ChatMetrics> {
        Arc::new(ChatMetrics::register(&mut prometheus_client::registry::Registry::default(), "test"))
    }

    #[tokio::test]
    async fn a_room_reaches_its_members_only_and_changes_are_announced_once() {
        let (hub, changes) = Hub::new(metrics(), 8, true);
        let mut changes = changes.unwrap();
        let mut a = hub.connect();
        let mut b = hub.connect();
        let joined = a.join(7);
        b.join(7);
        a.join(7);
        assert_eq!(changes.try_recv(), Ok(RoomChange::Joined(7)));
        assert!(changes.try_recv().is_err(), "one Joined per room, not per member");
        assert!(!joined.ready(std::time::Duration::from_millis(10)).await, "not ready until the relay says so");
        hub.set_ready(&[7], true);
        assert!(a.join(7).ready(std::time::Duration::from_millis(10)).await);
        hub.deliver(message(7, 1));
        hub.deliver(message(8, 1));
        assert!(matches!(a.queue.try_recv(), Ok(Outbound::Message(m)) if m.seq == 1 && m.room_id == 7));
        assert!(a.queue.try_recv().is_err(), "one copy per connection, nothing of room 8");
        assert!(matches!(b.queue.try_recv(), Ok(Outbound::Message(_))));
        a.leave(7);
        assert!(changes.try_recv().is_err());
        drop(b);
        assert_eq!(changes.try_recv(), Ok(RoomChange::Left(7)));
        assert!(hub.rooms().is_empty());
    }

    #[tokio::test]
    async fn a_connection_that_does_not_read_is_told_to_close() {
        let (hub, _) = Hub::new(metrics(), 2, false);
        let mut slow = hub.connect();
        slow.join(1);
        for seq in 1..=3 {
            hub.deliver(message(1, seq));
        }
        assert!(slow.slow.is_cancelled());
        assert_eq!(hub.inner.metrics.slow_consumers.get(), 1);
    }

    #[tokio::test]
    async fn a_tail_reaches_members_only_when_the_room_moved_on() {
        let (hub, _) = Hub::new(metrics(), 8, false);
        let mut c = hub.connect();
        c.join(3);
        hub.deliver(message(3, 5));
        let _ = c.queue.try_recv();
        hub.tail(3, 5);
        assert!(c.queue.try_recv().is_err(), "nothing new");
        hub.tail(3, 6);
        assert!(matches!(c.queue.try_recv(), Ok(Outbound::Tail { room_id: 3, last_seq: 6 })));
    }
}
