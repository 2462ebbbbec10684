//! Several load machines, one ledger. A fan-out scenario against a deployment the harness did
//! not start (the external runner) is split into three steps, each a command:
//!
//! 1. `loadtest prepare SCENARIO --targets FILE --out world.json`: deploys (the targets'
//!    `deploy` adapter, a fresh database), builds the world once through the public API
//!    (users, their sessions, the seeded friend graph) and writes it, with the instances' URLs,
//!    the database URL for the truth after the fact, the scenario's own text and the
//!    wall-clock time at which every shard starts the schedule ([`world_file`]).
//! 2. `loadtest run SCENARIO --world world.json --shard I/N --out DIR` on each machine: shard
//!    `I` (0-based, as Kubernetes' `JOB_COMPLETION_INDEX`) holds the streams of the users
//!    `u mod N == I` and causes the events `n mod N == I` of the shared schedule; it writes
//!    what it saw, unjudged, into DIR: every cause it created, every expectation, every
//!    receipt with its own clock's time ([`journal`]), and its CPU use ([`run`]).
//! 3. `loadtest merge DIR...`: one ledger from every shard's journal, the truth from the
//!    database, one report judged by the scenario's thresholds ([`merge`]). Lost, duplicated
//!    and unexpected are exact across shards; a latency is only measured where the cause and
//!    its receipt were timed by one machine's clock.
//!
//! The journal is the lossless form: raw times, not histograms, so the merge computes every
//! figure exactly as one process would have.

pub mod journal;
pub mod merge;
pub mod prepare;
pub mod run;
pub mod world_file;

use std::fmt;
use std::str::FromStr;

/// `I/N`: shard `I` of `N`, `0 <= I < N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub index: u32,
    pub count: u32,
}

impl Slice {
    /// Whether user or event number `n` is this shard's.
    pub fn owns(&self, n: u64) -> bool {
        n % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Slice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--shard `{s}`: expected I/N with 0 <= I < N, e.g. 0/4 for the first of four (Kubernetes: \
                 $(JOB_COMPLETION_INDEX)/4)"
            )
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Slice { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shard_is_i_of_n_counted_from_zero_and_anything_else_is_refused_clearly() {
        assert_eq!("1/4".parse::<Slice>(), Ok(Slice { index: 1, count: 4 }));
        assert_eq!("0/1".parse::<Slice>(), Ok(Slice { index: 0, count: 1 }));
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2", ""] {
            let err = bad.parse::<Slice>().unwrap_err();
            assert!(err.contains("0 <= I < N"), "{bad}: {err}");
        }
        let s = Slice { index: 1, count: 3 };
        assert_eq!((0..9).filter(|n| s.owns(*n)).collect::<Vec<_>>(), vec![1, 4, 7]);
    }
}
