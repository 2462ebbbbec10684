//! The kinds of scenario as one closed type. The list in [`workloads!`] below is the only
//! place that names every kind; everything a kind knows about itself (the sections it reads,
//! its timeline, whether faults apply, its strategies) is its [`Section`] impl, next to its
//! section type.

use std::fmt;

use super::{ApiLoad, BookingLoad, ClaimLoad, EmbedLoad, Load, Problem, Ramp, ScenarioFile};
use super::{BookingMode, ChatSection, ClaimMode, Delivery, EmbedPath, JobsLoad, JobsMode, Kind, Strategy};

/// What a kind reads from a scenario file and how it runs over time.
pub trait Section: Sized + Clone + fmt::Debug + PartialEq {
    /// The strategies this kind compares.
    type Strategy: Copy + fmt::Debug + PartialEq + fmt::Display + Into<Strategy> + TryFrom<Strategy, Error = Strategy>;
    /// The file's sections it reads, the main one first; any other section present is refused.
    const READS: &'static [&'static str];
    /// Sections it reads when present (a chat run's `[ramp]`).
    const MAY_READ: &'static [&'static str] = &[];
    /// Whether faults can be scheduled on this kind's runs.
    const FAULTS: Faults = Faults::Allowed { clients: false };
    /// Its sections from the file; `None` when one is missing (validation reports that).
    fn from_file(f: &ScenarioFile) -> Option<Self>;
    /// (warm-up, duration, drain), in seconds: faults must fall within warm-up + duration.
    fn timeline(&self) -> (f64, f64, f64);
    /// How long one strategy's run takes at most, start-up aside.
    fn total_s(&self) -> f64 {
        let (warmup, duration, drain) = self.timeline();
        warmup + duration + drain
    }
}

/// Whether a kind's runs take faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Faults {
    /// On instances and services; `clients: true` also on the run's SSE clients.
    Allowed { clients: bool },
    /// Refused, for this reason (a sentence for the error message).
    Refused(&'static str),
}

/// One kind's section and the strategies it compares, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S: Section> {
    pub section: S,
    pub strategies: Vec<S::Strategy>,
}

impl<S: Section> Plan<S> {
    fn from_file(f: &ScenarioFile) -> Result<Self, Problem> {
        let section = S::from_file(f).ok_or_else(|| Problem::new(S::READS[0], "is missing"))?;
        let strategies = f
            .strategies
            .iter()
            .map(|s| {
                S::Strategy::try_from(*s)
                    .map_err(|s| Problem::new("strategies", format!("`{s}` does not fit {}", f.kind)))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { section, strategies })
    }

    fn names(&self) -> Vec<Strategy> {
        self.strategies.iter().map(|s| (*s).into()).collect()
    }

    fn retain(&mut self, keep: &[Strategy]) {
        self.strategies.retain(|s| keep.contains(&(*s).into()));
    }
}

/// What validation asks of a kind before its section is known to be there.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    pub reads: &'static [&'static str],
    pub may_read: &'static [&'static str],
    pub faults: Faults,
    /// The timeline of a file of this kind; `None` when its sections are missing.
    pub timeline: fn(&ScenarioFile) -> Option<Timeline>,
}

/// (warm-up, duration, drain) and the total of one strategy's run, in seconds.
pub type Timeline = ((f64, f64, f64), f64);

impl Facts {
    fn of<S: Section>() -> Facts {
        Facts {
            reads: S::READS,
            may_read: S::MAY_READ,
            faults: S::FAULTS,
            timeline: |f| S::from_file(f).map(|s| (s.timeline(), s.total_s())),
        }
    }
}

/// Declares [`Workload`], one variant per kind named as its [`Kind`], holding a [`Plan`] of the
/// kind's section type, and every dispatch from a kind to its section type.
macro_rules! workloads {
    ($($(#[$doc:meta])* $kind:ident($section:ty)),+ $(,)?) => {
        /// What one scenario runs: its kind, with that kind's own section and strategies and
        /// nothing else, so that a runner is handed exactly what it reads.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Workload {
            $($(#[$doc])* $kind(Plan<$section>)),+
        }

        impl Workload {
            pub fn kind(&self) -> Kind {
                match self {
                    $(Self::$kind(_) => Kind::$kind),+
                }
            }

            /// The strategies compared, in order, by name.
            pub fn strategies(&self) -> Vec<Strategy> {
                match self {
                    $(Self::$kind(plan) => plan.names()),+
                }
            }

            /// Keeps only the strategies in `keep` (the command line's `--strategies`).
            pub fn retain(&mut self, keep: &[Strategy]) {
                match self {
                    $(Self::$kind(plan) => plan.retain(keep)),+
                }
            }

            /// The file's kind, sections and strategies. Validation has checked that the
            /// sections are there and every strategy fits; a failure here is a validation gap,
            /// reported as a problem of the file rather than a panic.
            pub(super) fn from_file(f: &ScenarioFile) -> Result<Self, Problem> {
                match f.kind {
                    $(Kind::$kind => Plan::<$section>::from_file(f).map(Self::$kind)),+
                }
            }
        }

        impl Kind {
            /// Whether this kind's runs can compare `strategy`: whether its section's strategy
            /// enum holds it.
            pub fn compares(self, strategy: Strategy) -> bool {
                match self {
                    $(Kind::$kind => <$section as Section>::Strategy::try_from(strategy).is_ok()),+
                }
            }
        }

        /// What a kind's section type says about it.
        pub fn facts(kind: Kind) -> Facts {
            match kind {
                $(Kind::$kind => Facts::of::<$section>()),+
            }
        }
    };
}

workloads! {
    /// Notifications fanned out at a steady rate.
    Fanout(FanoutSection),
    /// The same in rising steps.
    Capacity(CapacitySection),
    /// Workers racing to embed posts.
    Claim(ClaimLoad),
    /// Overlapping reservations approved at once.
    Booking(BookingLoad),
    /// A clustered job firing while instances die.
    Jobs(JobsLoad),
    /// Goose users on the REST API.
    Api(ApiLoad),
    /// Chat rooms over STOMP, relayed between instances.
    Chat(ChatSection),
    /// Posts written while a slow embedder embeds them.
    Embed(EmbedLoad),
}

/// `kind = "fanout"`: `[load]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FanoutSection {
    pub load: Load,
}

impl Section for FanoutSection {
    type Strategy = Delivery;
    const READS: &'static [&'static str] = &["load"];
    const FAULTS: Faults = Faults::Allowed { clients: true };

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        Some(Self { load: f.load.clone()? })
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.load.warmup_s, self.load.duration_s, self.load.drain_s)
    }
}

/// `kind = "capacity"`: `[load]` gives the first step, `[ramp]` the rise.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacitySection {
    pub load: Load,
    pub ramp: Ramp,
}

impl Section for CapacitySection {
    type Strategy = Delivery;
    const READS: &'static [&'static str] = &["load", "ramp"];
    const FAULTS: Faults =
        Faults::Refused("a capacity ramp measures rates without faults: move the faults to a fanout scenario");

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        Some(Self { load: f.load.clone()?, ramp: f.ramp? })
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.load.warmup_s, self.load.duration_s, self.load.drain_s)
    }

    /// Warm-up, then every step with its drain.
    fn total_s(&self) -> f64 {
        self.load.warmup_s + f64::from(self.ramp.max_steps) * (self.load.duration_s + self.ramp.step_drain_s)
    }
}

impl Section for ClaimLoad {
    type Strategy = ClaimMode;
    const READS: &'static [&'static str] = &["claim"];

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        f.claim
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.warmup_s, self.duration_s, self.drain_s)
    }
}

impl Section for BookingLoad {
    type Strategy = BookingMode;
    const READS: &'static [&'static str] = &["booking"];
    const FAULTS: Faults = Faults::Refused("a booking race has no clock to schedule faults on: remove them");

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        f.booking
    }

    /// Bounded by its counts, not by a clock.
    fn timeline(&self) -> (f64, f64, f64) {
        (0.0, 0.0, 0.0)
    }
}

impl Section for JobsLoad {
    type Strategy = JobsMode;
    const READS: &'static [&'static str] = &["jobs"];

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        f.jobs
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.warmup_s, self.duration_s, self.drain_s)
    }
}

impl Section for ApiLoad {
    type Strategy = Delivery;
    const READS: &'static [&'static str] = &["api"];
    const FAULTS: Faults =
        Faults::Refused("an api run measures the API's capacity without faults: move the faults to a fanout scenario");

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        f.api
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (0.0, f64::from(self.duration_s), 0.0)
    }
}

impl Section for EmbedLoad {
    type Strategy = EmbedPath;
    const READS: &'static [&'static str] = &["embed"];

    fn from_file(f: &ScenarioFile) -> Option<Self> {
        f.embed
    }

    fn timeline(&self) -> (f64, f64, f64) {
        (self.warmup_s, self.duration_s, self.drain_s)
    }
}
