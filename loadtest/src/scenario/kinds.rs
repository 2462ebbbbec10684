//! The closed vocabularies of a scenario file (kinds, strategies, fault actions and targets),
//! parsed once at the edge into enums.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::infra::ServiceKind;

/// A value outside a closed vocabulary; the message lists every accepted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`: expected one of {known}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub known: String,
}

/// Defines an enum spelled in scenario files as kebab-case strings, with `ALL`, `as_str`,
/// `FromStr`, `Display` and string (de)serialization whose error lists the known values.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        known: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum!(
    /// What a scenario exercises; each kind has its own runner and its own section.
    Kind, "kind", {
        /// Notifications fanned out to friends and diary owners, delivered by SSE (`[load]`).
        Fanout => "fanout",
        /// The fan-out load in rising steps, to find the highest rate delivered without loss
        /// (`[load]` + `[ramp]`).
        Capacity => "capacity",
        /// Workers on every instance racing to embed rental posts (`[claim]`).
        Claim => "claim",
        /// Many users reserving the same items for overlapping dates (`[booking]`).
        Booking => "booking",
        /// A clustered job firing on a short schedule while instances die (`[jobs]`).
        Jobs => "jobs",
        /// Goose users driving the REST API of every instance, per delivery strategy (`[api]`).
        Api => "api",
        /// STOMP connections in chat rooms spread over the instances, messages relayed between
        /// them (`[chat]`).
        Chat => "chat",
        /// Rental posts written at a steady rate while a slow embedder embeds them, inside the
        /// request or in batches after it (`[embed]`).
        Embed => "embed",
    }
);

string_enum!(
    /// What is compared: for fanout, capacity and api, how the server delivers a notification from
    /// the instance that caused it to the one holding the recipient's stream; for claim, how
    /// workers claim posts; for booking, how approvals are guarded; for jobs, the scheduler;
    /// for chat, how messages are relayed between instances; for embed, when a post is embedded.
    Strategy, "strategy", {
        /// In-process only: the naive baseline, expected to lose ~(N-1)/N with N instances.
        Local => "local",
        RedisPubsub => "redis-pubsub",
        RedisStreams => "redis-streams",
        Rabbitmq => "rabbitmq",
        Outbox => "outbox",
        /// `rabbitmq` with its durable queues declared as quorum queues, replicated on the
        /// nodes of a RabbitMQ cluster (`SERVER_AMQP_QUEUE_TYPE=quorum`).
        RabbitmqQuorum => "rabbitmq-quorum",
        /// `outbox` with quorum queues (`SERVER_AMQP_QUEUE_TYPE=quorum`).
        OutboxQuorum => "outbox-quorum",
        /// The control group of claim and booking: no guard at all. Claim: select WAIT rows,
        /// embed, mark DONE, no claim (expected to double-process). Booking: look for an
        /// approved overlap, then approve, no version and no transaction
        /// (`SERVER_BOOKING_GUARD=none`; expected to double-book). Jobs: every instance fires
        /// every due time on its own clock, as `@Scheduled` does on each of several instances
        /// (`SERVER_JOB_SCHEDULER=local`; expected to run each firing once per instance).
        Naive => "naive",
        /// The seed's claim: a conditional UPDATE WAIT -> PENDING bumping a version.
        Version => "version",
        /// `SELECT … FOR UPDATE SKIP LOCKED`.
        SkipLocked => "skip-locked",
        /// `version` without the fencing token on the final write.
        VersionUnfenced => "version-unfenced",
        /// `skip-locked` without the fencing token on the final write.
        SkipLockedUnfenced => "skip-locked-unfenced",
        /// Approvals guarded by the item's booking version (the seed's optimistic locking).
        Optimistic => "optimistic",
        /// Firings acquired through the database, once across the cluster.
        Clustered => "clustered",
        /// Chat: Redis channels per room, and the room's seq to resume and repair gaps from
        /// the database.
        RedisRecovering => "redis-recovering",
        /// Embed: `POST /rentals` embeds the post before answering (`SERVER_EMBED_MODE=inline`).
        Inline => "inline",
        /// Embed: the claim workers embed posts after they are written (the default).
        Batch => "batch",
    }
);

impl Strategy {
    /// The strategies a kind compares, for messages: those its section's strategy enum holds.
    pub fn for_kind(kind: Kind) -> Vec<Strategy> {
        Self::ALL.iter().copied().filter(|s| kind.compares(*s)).collect()
    }
}

/// Declares the strategies one kind compares: a subset of [`Strategy`], so that a runner can
/// only be handed one of its own, with the conversions both ways.
macro_rules! strategies_of {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                Strategy::from(self).as_str()
            }
        }

        impl From<$name> for Strategy {
            fn from(s: $name) -> Strategy {
                match s {
                    $($name::$variant => Strategy::$variant),+
                }
            }
        }

        impl TryFrom<Strategy> for $name {
            type Error = Strategy;

            fn try_from(s: Strategy) -> Result<Self, Strategy> {
                match s {
                    $(Strategy::$variant => Ok($name::$variant),)+
                    other => Err(other),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

strategies_of!(
    /// How a notification travels from the instance that caused it to the one holding the
    /// recipient's stream (`SERVER_NOTIFY_DELIVERY`): what fanout, capacity and api compare.
    Delivery { Local, RedisPubsub, RedisStreams, Rabbitmq, Outbox, RabbitmqQuorum, OutboxQuorum }
);

impl Delivery {
    /// The server's settings for this strategy: `SERVER_NOTIFY_DELIVERY` and, for the quorum
    /// variants, `SERVER_AMQP_QUEUE_TYPE`.
    pub fn server_settings(self) -> Vec<(&'static str, &'static str)> {
        let (delivery, queues) = match self {
            Self::RabbitmqQuorum => ("rabbitmq", Some("quorum")),
            Self::OutboxQuorum => ("outbox", Some("quorum")),
            other => (other.as_str(), None),
        };
        let mut settings = vec![("SERVER_NOTIFY_DELIVERY", delivery)];
        settings.extend(queues.map(|q| ("SERVER_AMQP_QUEUE_TYPE", q)));
        settings
    }

    /// True for the strategies that carry notifications through RabbitMQ.
    pub fn uses_rabbitmq(self) -> bool {
        matches!(self, Self::Rabbitmq | Self::Outbox | Self::RabbitmqQuorum | Self::OutboxQuorum)
    }
}

strategies_of!(
    /// How embed workers claim posts: what claim compares.
    ClaimMode { Naive, Version, SkipLocked, VersionUnfenced, SkipLockedUnfenced }
);

strategies_of!(
    /// How approvals are guarded: what booking compares.
    BookingMode { Optimistic, Naive }
);

strategies_of!(
    /// How a job's firings are acquired: what jobs compares.
    JobsMode { Clustered, Naive }
);

strategies_of!(
    /// When a post is embedded (`SERVER_EMBED_MODE`): what embed compares.
    EmbedPath { Inline, Batch }
);

strategies_of!(
    /// How a chat message reaches the members of its room on other instances
    /// (`SERVER_CHAT_RELAY`): what chat compares.
    Relay { Local, RedisPubsub, RedisRecovering }
);

string_enum!(
    /// How SSE clients are spread over the instances.
    Spread, "spread", {
        RoundRobin => "round-robin",
        /// Seeded, so a run is reproducible.
        Random => "random",
    }
);

string_enum!(
    /// How a client whose SSE stream dropped reconnects.
    Reconnect, "reconnect", {
        /// Sends `Last-Event-ID` so the server can replay what was missed.
        LastEventId => "last-event-id",
        /// A new stream without `Last-Event-ID`: whatever was missed stays missed.
        Fresh => "fresh",
        /// As a browser's `EventSource` does (the HTML standard): resumes with
        /// `Last-Event-ID`, waits the server's `retry:` time (3 s until one is set) before it
        /// reconnects, and gives up for good on an answer other than 200: what it misses after
        /// that is lost.
        Browser => "browser",
    }
);

string_enum!(
    /// What a fault does. `*-instance` actions act on a server process, `*-service` actions
    /// on a container of the infrastructure.
    FaultAction, "fault action", {
        /// SIGKILL.
        KillInstance => "kill-instance",
        RestartInstance => "restart-instance",
        /// SIGSTOP: the process holds its sockets but answers nothing.
        PauseInstance => "pause-instance",
        /// SIGCONT.
        ResumeInstance => "resume-instance",
        StopService => "stop-service",
        StartService => "start-service",
        PauseService => "pause-service",
        UnpauseService => "unpause-service",
        RestartService => "restart-service",
        /// Every SSE client drops its stream at random moments and resumes at once, as a
        /// browser does after a network blip: the resume path under load.
        ClientChurn => "client-churn",
        /// The end of a churn window: clients keep their streams again.
        EndClientChurn => "end-client-churn",
        /// A rolling deploy: every instance in turn gets SIGTERM, is waited for until it exits
        /// (SIGKILL if it does not within its grace), is started again and waited for until
        /// `/readyz` answers; `pause_s` between two instances. Target `instances`.
        RollingRestart => "rolling-restart",
        /// SIGKILL one node of the RabbitMQ cluster (`[cluster] rabbitmq_nodes`); target
        /// `rabbitmq:N`. Its data stays: `broker-node-start` (after `duration_s`) boots it
        /// again and it rejoins the cluster.
        BrokerNodeKill => "broker-node-kill",
        /// Starts a killed node again and waits until it answers a client.
        BrokerNodeStart => "broker-node-start",
    }
);

string_enum!(
    /// A test-only point in the server where a `pause-instance` lands instead of at a random
    /// moment (`SERVER_PAUSE_POINT`, armed by SIGUSR1; the instance stops itself there).
    PausePoint, "pause point", {
        /// An embed worker holds a claim it has embedded and not yet written (claim scenarios).
        EmbedBeforeCommit => "embed-before-commit",
    }
);

impl FaultAction {
    /// True for actions on a server instance.
    pub fn on_instance(self) -> bool {
        matches!(self, Self::KillInstance | Self::RestartInstance | Self::PauseInstance | Self::ResumeInstance)
    }

    /// True for actions on one node of the RabbitMQ cluster (target `rabbitmq:N`).
    pub fn on_broker_node(self) -> bool {
        matches!(self, Self::BrokerNodeKill | Self::BrokerNodeStart)
    }

    /// True for actions on every instance in turn (target `instances`).
    pub fn on_all_instances(self) -> bool {
        matches!(self, Self::RollingRestart)
    }

    /// True for actions on the run's SSE clients (target `clients`).
    pub fn on_clients(self) -> bool {
        matches!(self, Self::ClientChurn | Self::EndClientChurn)
    }

    /// True when `duration_s` means something: the fault is undone after that long.
    pub fn takes_duration(self) -> bool {
        matches!(
            self,
            Self::KillInstance
                | Self::PauseInstance
                | Self::StopService
                | Self::PauseService
                | Self::ClientChurn
                | Self::BrokerNodeKill
        )
    }

    /// What happens when `duration_s` elapses, for messages and reports.
    pub fn undo(self) -> Option<FaultAction> {
        match self {
            Self::KillInstance => Some(Self::RestartInstance),
            Self::PauseInstance => Some(Self::ResumeInstance),
            Self::StopService => Some(Self::StartService),
            Self::PauseService => Some(Self::UnpauseService),
            Self::ClientChurn => Some(Self::EndClientChurn),
            Self::BrokerNodeKill => Some(Self::BrokerNodeStart),
            _ => None,
        }
    }
}

/// What a fault acts on: `instance:N` (1-based), a service by name, or `clients` (every SSE
/// client of the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultTarget {
    Instance(u32),
    /// Every instance, one after the other (`rolling-restart`).
    Instances,
    Service(ServiceKind),
    /// Node N (1-based) of the RabbitMQ cluster: `rabbitmq:N`.
    BrokerNode(u32),
    Clients,
}

impl FaultTarget {
    /// The 1-based instance number, if this targets an instance.
    pub fn instance(self) -> Option<u32> {
        match self {
            Self::Instance(n) => Some(n),
            Self::Instances | Self::Service(_) | Self::BrokerNode(_) | Self::Clients => None,
        }
    }

    pub fn service(self) -> Option<ServiceKind> {
        match self {
            Self::Service(kind) => Some(kind),
            Self::Instance(_) | Self::Instances | Self::BrokerNode(_) | Self::Clients => None,
        }
    }
}

impl FromStr for FaultTarget {
    type Err = UnknownValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownValue {
            what: "fault target",
            value: s.to_string(),
            known: "instance:N (1-based), instances, rabbitmq, rabbitmq:N (a node of the cluster, 1-based), redis, \
                    mariadb, clients"
                .to_string(),
        };
        if s == "clients" {
            return Ok(Self::Clients);
        }
        if s == "instances" {
            return Ok(Self::Instances);
        }
        if let Some(n) = s.strip_prefix("instance:") {
            return n.parse().map(Self::Instance).map_err(|_| unknown());
        }
        if let Some(n) = s.strip_prefix("rabbitmq:") {
            return n.parse().map(Self::BrokerNode).map_err(|_| unknown());
        }
        ServiceKind::ALL.into_iter().find(|kind| kind.name() == s).map(Self::Service).ok_or_else(unknown)
    }
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Instance(n) => write!(f, "instance:{n}"),
            Self::Instances => f.write_str("instances"),
            Self::Service(kind) => f.write_str(kind.name()),
            Self::BrokerNode(n) => write!(f, "rabbitmq:{n}"),
            Self::Clients => f.write_str("clients"),
        }
    }
}

impl Serialize for FaultTarget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_through_its_spelling() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(*s));
        }
        for a in FaultAction::ALL {
            assert_eq!(a.as_str().parse::<FaultAction>(), Ok(*a));
        }
        for t in ["instance:1", "instance:16", "rabbitmq", "rabbitmq:2", "redis", "mariadb", "clients"] {
            assert_eq!(t.parse::<FaultTarget>().map(|t| t.to_string()).as_deref(), Ok(t));
        }
    }

    #[test]
    fn unknown_values_list_the_known_ones() {
        let err = "kafka".parse::<Strategy>().unwrap_err().to_string();
        assert!(
            err.starts_with(
                "unknown strategy `kafka`: expected one of local, redis-pubsub, redis-streams, rabbitmq, outbox, \
                 rabbitmq-quorum, outbox-quorum, naive"
            ),
            "{err}"
        );
        assert!("kafka".parse::<Kind>().unwrap_err().to_string().contains("expected one of fanout, capacity, claim"));
        assert!("instance:x".parse::<FaultTarget>().is_err());
        assert!("instance:".parse::<FaultTarget>().is_err());
        assert!("postgres".parse::<FaultTarget>().is_err());
        assert!("rabbitmq:x".parse::<FaultTarget>().is_err());
    }

    #[test]
    fn only_undoable_actions_take_a_duration() {
        for a in FaultAction::ALL {
            assert_eq!(a.takes_duration(), a.undo().is_some(), "{a}");
        }
    }
}
