//! Chat between a renter and an item's owner: rooms (`rooms`), messages stored once with a
//! per-room sequence (`store`), STOMP 1.2 over WebSocket (`frame`, `session`), and the relay
//! that carries each stored message to every instance holding a subscriber of its room
//! (`relay`, one strategy per file, and `hub`, this instance's subscribers).
//!
//! A message's `seq` is assigned in commit order within its room (see the migration
//! `20261202000004_chat.sql`), so "everything after seq n" is an exact resume point: a
//! subscriber that says which seq it saw last gets what it missed from the database, and an
//! instance that sees a seq arrive ahead of an earlier one reads the gap.

pub mod hub;
pub mod metrics;
pub mod relay;
pub mod rooms;
pub mod session;
pub mod store;

use serde::{Deserialize, Serialize};

/// The STOMP frame codec (the workspace's `stomp` crate).
pub use stomp as frame;

/// A stored message, as it travels between instances and reaches subscribers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChatMessage {
    pub room_id: u64,
    /// The room's sequence: 1, 2, 3, ... in commit order, no gaps.
    pub seq: u64,
    pub sender_id: u64,
    pub body: String,
    /// When it was stored, in milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
}

/// The STOMP destination of a room.
pub fn room_destination(room_id: u64) -> String {
    format!("/rooms/{room_id}")
}

/// The room id of a destination `/rooms/{id}`; `None` for anything else.
pub fn parse_room_destination(destination: &str) -> Option<u64> {
    let id = destination.strip_prefix("/rooms/")?;
    if id.is_empty() || id.starts_with('0') && id.len() > 1 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|id| *id > 0)
}

/// Where business errors (not a member, no such room) reach a client, as MESSAGE frames,
/// without closing its connection.
pub const ERROR_DESTINATION: &str = "/user/queue/errors";

/// The longest message body, in characters.
pub const MAX_BODY_CHARS: usize = 4_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_room_destinations_name_a_room() {
        assert_eq!(parse_room_destination("/rooms/17"), Some(17));
        assert_eq!(room_destination(17), "/rooms/17");
        for bad in ["/rooms/", "/rooms/0", "/rooms/017", "/rooms/-1", "/rooms/1/x", "/rooms/+1", "/topic/1", "rooms/1"]
        {
            assert_eq!(parse_room_destination(bad), None, "{bad}");
        }
        assert_eq!(parse_room_destination("/rooms/99999999999999999999999"), None);
    }
}
