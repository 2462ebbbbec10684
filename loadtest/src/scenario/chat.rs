//! `kind = "chat"`: rooms of two members and group rooms, every member a STOMP connection of
//! its own, members of one room spread over the instances; messages sent on an open-loop
//! schedule and counted per receiving subscription.

use serde::{Deserialize, Serialize};

use super::validate::{Rules, non_negative, positive};
use super::workload::{Faults, Section};
use super::{Problem, Ramp, Relay, ScenarioFile, Spread};

/// `[chat]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatLoad {
    /// Rooms between a renter and an item's owner: two connections each.
    pub rooms: u32,
    /// Rooms with `group_size` members (the owner adds them).
    #[serde(default)]
    pub group_rooms: u32,
    #[serde(default = "default_group_size")]
    pub group_size: u32,
    /// How a room's members are placed: `round-robin` puts member k of room r on instance
    /// (r + k) mod N, so a room's members are on different instances; `random` draws (seeded).
    #[serde(default = "super::default_spread")]
    pub spread: Spread,
    /// Messages sent per second over all rooms, on a fixed schedule (open loop): a message is
    /// due at its time whether or not earlier ones were answered.
    pub rate_per_s: f64,
    pub duration_s: f64,
    /// Connections open and subscribe; nothing is sent yet.
    #[serde(default = "super::default_warmup_s")]
    pub warmup_s: f64,
    /// Wait after the last send before a message not received counts as lost.
    #[serde(default = "super::default_drain_s")]
    pub drain_s: f64,
    /// Characters of each message (at least what its id needs).
    #[serde(default = "default_body_chars")]
    pub body_chars: u32,
    /// A send that leaves later than this after its due time counts as late.
    #[serde(default = "default_late_ms")]
    pub late_ms: u64,
    /// A hard cap on messages sent, so the load loop is bounded whatever the rate.
    #[serde(default = "default_max_messages")]
    pub max_messages: u64,
}

impl ChatLoad {
    /// Connections (one per member of every room).
    pub fn clients(&self) -> u64 {
        u64::from(self.rooms) * 2 + u64::from(self.group_rooms) * u64::from(self.group_size)
    }
}

/// What a chat run reads: `[chat]`, and `[ramp]` when it measures capacity (steps of
/// `chat.duration_s` each, the first at `chat.rate_per_s`, each next one `ramp.factor` times
/// faster, until a step is not sustained).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChatSection {
    pub chat: ChatLoad,
    pub ramp: Option<Ramp>,
}

impl Section for ChatSection {
    type Strategy = Relay;
    const READS: &'static [&'static str] = &["chat"];
    const MAY_READ: &'static [&'static str] = &["ramp"];
    const FAULTS: Faults = Faults::Allowed { clients: true };

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        Some(ChatSection { chat: f.chat?, ramp: f.ramp })
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.chat.warmup_s, self.chat.duration_s, self.chat.drain_s)
    }

    /// With a ramp: warm-up, every step with its drain, then the drain.
    fn total_s(&self) -> f64 {
        let c = &self.chat;
        match &self.ramp {
            Some(r) => c.warmup_s + f64::from(r.max_steps) * (c.duration_s + r.step_drain_s) + c.drain_s,
            None => c.warmup_s + c.duration_s + c.drain_s,
        }
    }
}

/// The most connections one run holds.
const MAX_CLIENTS: u64 = 20_000;

impl Rules for ChatLoad {
    fn check(&self, file: &ScenarioFile, p: &mut Vec<Problem>) {
        if file.ramp.is_some() && !file.faults.is_empty() {
            p.push(Problem::new(
                "faults",
                "a capacity ramp measures rates without faults: move the faults to a chat scenario without [ramp]",
            ));
        }
        if self.rooms + self.group_rooms == 0 {
            p.push(Problem::new("chat.rooms", "0 rooms and 0 group_rooms: a chat run needs at least one room"));
        }
        if !(3..=50).contains(&self.group_size) {
            p.push(Problem::new(
                "chat.group_size",
                format!("{} is out of range: a group room has 3 to 50 members", self.group_size),
            ));
        }
        if self.clients() > MAX_CLIENTS {
            p.push(Problem::new(
                "chat.rooms",
                format!(
                    "{} connections (2 x rooms + group_rooms x group_size) are above {MAX_CLIENTS}: use fewer rooms",
                    self.clients()
                ),
            ));
        }
        positive(p, "chat.rate_per_s", self.rate_per_s, "messages are sent at this rate");
        if self.rate_per_s.is_finite() && self.rate_per_s > 10_000.0 {
            p.push(Problem::new(
                "chat.rate_per_s",
                format!("{} is above 10000 messages per second: the driver cannot send more", self.rate_per_s),
            ));
        }
        positive(p, "chat.duration_s", self.duration_s, "messages are sent for this long");
        non_negative(p, "chat.warmup_s", self.warmup_s, "a wait must be >= 0");
        non_negative(p, "chat.drain_s", self.drain_s, "a wait must be >= 0");
        if !(16..=4_000).contains(&self.body_chars) {
            p.push(Problem::new(
                "chat.body_chars",
                format!("{} is out of range: 16 to 4000 characters (the server's limit)", self.body_chars),
            ));
        }
        if self.max_messages == 0 {
            p.push(Problem::new("chat.max_messages", "0 is not > 0: a run must send at least one message"));
        }
    }
}

fn default_group_size() -> u32 {
    6
}

fn default_body_chars() -> u32 {
    64
}

fn default_late_ms() -> u64 {
    100
}

fn default_max_messages() -> u64 {
    1_000_000
}
