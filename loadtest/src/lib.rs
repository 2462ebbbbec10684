//! The harness: provisions real RabbitMQ, Redis and MariaDB, runs N instances of the real
//! server, drives load and faults, and counts every notification and claim.
//!
//! Data flows one way: scenario file -> runner -> (infra, cluster, probes) -> ledger -> report.
//! Split over several load machines (`shard`): prepare -> shards (journals) -> merge -> ledger
//! -> report.

pub mod cli;
pub mod cluster;
pub mod compare;
pub mod infra;
pub mod ledger;
pub mod live;
pub mod matrix;
pub mod probe;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shard;
pub mod tls;
