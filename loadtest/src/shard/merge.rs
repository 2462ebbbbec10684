//! `loadtest merge DIR...`: one ledger and one report from the shards of a prepared world.
//!
//! Every shard's journal is replayed into one [`Ledger`]: an expectation written by shard 1
//! and a receipt by shard 2 are one delivered pair, so lost, duplicated and unexpected are
//! exact across shards. Each entry keeps its shard as its clock: a latency is measured only
//! where the cause and its receipt were timed by one machine, and the report says how many
//! deliveries crossed shards. The truth after the fact (stored twice, causes that committed
//! although their request failed) is read-only SQL on the world's database, as in a whole run.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::journal::{self, Entry};
use super::prepare::shardable;
use super::run::{self as shard_run, ShardFile};
use super::world_file::{self, WorldFile};
use crate::ledger::{Cause, Ledger};
use crate::report::{self, ReportPaths, RunReport, StrategyResult};
use crate::run::truth::Truth;
use crate::scenario::Scenario;

#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The shards' `--out` folders, one per shard.
    pub dirs: Vec<PathBuf>,
    pub reports_dir: PathBuf,
    pub command: String,
}

/// The shards of one world, each exactly once, by index.
fn check_shards(dirs: &[PathBuf], shards: &[ShardFile], world: &WorldFile) -> anyhow::Result<()> {
    let count = shards[0].shards;
    let mut by_index: BTreeMap<u32, &PathBuf> = BTreeMap::new();
    for (dir, shard) in dirs.iter().zip(shards) {
        if shard.world_id != world.world_id {
            anyhow::bail!(
                "{} ran world {} but {} holds world {}: merge the shards of one `loadtest prepare`",
                dir.display(),
                shard.world_id,
                dirs[0].display(),
                world.world_id
            );
        }
        if shard.shards != count {
            anyhow::bail!(
                "{} is shard {}/{} but {} is shard {}/{}: every shard of a run splits it the same way",
                dir.display(),
                shard.shard,
                shard.shards,
                dirs[0].display(),
                shards[0].shard,
                count
            );
        }
        if let Some(other) = by_index.insert(shard.shard, dir) {
            anyhow::bail!("shard {}/{count} is given twice: {} and {}", shard.shard, other.display(), dir.display());
        }
    }
    let missing: Vec<String> =
        (0..count).filter(|i| !by_index.contains_key(i)).map(|i| format!("{i}/{count}")).collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "shard(s) {} missing: every shard's folder is needed, or what their users received and what they caused is \
             unknown",
            missing.join(", ")
        );
    }
    Ok(())
}

pub async fn merge(opts: &MergeOptions) -> anyhow::Result<(RunReport, ReportPaths)> {
    if opts.dirs.is_empty() {
        anyhow::bail!("no shard folder given: `loadtest merge DIR...` with the --out folder of every shard");
    }
    let shards: Vec<ShardFile> = opts.dirs.iter().map(|d| shard_run::load(d)).collect::<anyhow::Result<_>>()?;
    let world = WorldFile::load(&opts.dirs[0].join(world_file::FILE))?;
    check_shards(&opts.dirs, &shards, &world)?;
    let origin = format!("the scenario in {}", opts.dirs[0].join(world_file::FILE).display());
    let scenario = Scenario::parse(&world.scenario_text, &origin)?;
    shardable(&scenario, &origin)?;

    // One timeline for deliveries per second: each shard's times shifted by its t0's
    // wall-clock offset from the earliest shard's. Latencies never use it (see the ledger).
    let t0 = Instant::now();
    let base_us = shards.iter().map(|s| s.t0_unix_us).min().unwrap_or(0);
    let mut ledger = Ledger::new(t0);
    let mut known: HashSet<Cause> = HashSet::new();
    for (dir, shard) in opts.dirs.iter().zip(&shards) {
        let offset = shard.t0_unix_us - base_us;
        let at = |t_us: u64| t0 + Duration::from_micros(offset + t_us);
        let clock = shard.shard;
        let lines = journal::read(dir, |entry| match entry {
            Entry::Created { cause } => {
                known.insert(cause);
            }
            Entry::Expect { recipient, cause, t_us } => ledger.expect_on(clock, recipient, cause, at(t_us)),
            Entry::Observe { client, client_user, id, recipient, cause, t_us, event_id } => {
                ledger.observe_on(clock, client, client_user, id, recipient, cause, at(t_us), event_id)
            }
            Entry::Position { client, event_id } => ledger.position(client, event_id),
        })?;
        if lines != shard.journal_lines {
            anyhow::bail!(
                "{}: the journal has {lines} entries but shard.json says {}: was it cut short or copied while the shard \
                 ran?",
                dir.display(),
                shard.journal_lines
            );
        }
    }

    let truth = Truth::new(&world.database_url);
    let read = |e: anyhow::Error| {
        anyhow::anyhow!(
            "reading the truth from the world's database ({}): {e:#}; the merge needs the database the world was \
             prepared on",
            redact(&world.database_url)
        )
    };
    let users: Vec<u64> = world.world.users.iter().map(|u| u.id).collect();
    let facts = truth.of_users(&users, world.world.sse_clients).await.map_err(read)?;
    let uncertain: Vec<Cause> = facts.causes.into_iter().filter(|c| !known.contains(c)).collect();
    for cause in &uncertain {
        ledger.indeterminate(*cause);
    }
    let (stored, stored_twice) = (facts.notifications, facts.stored_twice);

    let summary = ledger.summary();
    let caused: u64 = shards.iter().map(|s| s.caused).sum();
    let seconds = shards.iter().map(|s| s.schedule_s).fold(0.0, f64::max);
    let mut result = StrategyResult::from_summary(&world.strategy, &summary, caused, stored_twice, seconds);
    result.resumes = shards.iter().map(|s| s.resumes).sum();
    result.given_up = shards.iter().map(|s| s.given_up).sum();
    result.notes.extend(notes(&shards, &summary, stored, &uncertain));
    let mut results = vec![result];
    let thresholds = report::thresholds::evaluate(&scenario, &mut results);
    let passed = thresholds.iter().all(|t| t.passed);
    results[0].passed = passed;
    // The run's span: from the first shard's start to the last shard's end, on their clocks.
    let end_us = shards.iter().map(|s| s.t0_unix_us + (s.duration_s * 1e6) as u64).max().unwrap_or(base_us);
    let started_at = chrono::DateTime::<chrono::Utc>::from_timestamp_micros(base_us as i64).unwrap_or_default();
    let merged_at = chrono::Utc::now();
    let report = RunReport {
        scenario: scenario.name.clone(),
        kind: scenario.kind(),
        instances: world.instances.len() as u32,
        duration_s: ((end_us - base_us) as f64 / 1e5).round() / 10.0,
        passed,
        started_at: started_at.to_rfc3339(),
        command: opts.command.clone(),
        image_set: "external".into(),
        faults: Vec::new(),
        thresholds,
        results,
        baseline: None,
        targets: None,
        repeats: Vec::new(),
        spread: Vec::new(),
        generators: shards
            .iter()
            .map(|s| report::Generator {
                name: format!("shard {}/{} on {}", s.shard, s.shards, s.host),
                cpu: s.cpu.clone(),
            })
            .collect(),
    };
    let dir = opts.reports_dir.join(format!("{}-merged-{}", scenario.name, merged_at.format("%Y%m%d-%H%M%S")));
    let paths = report::write(&dir, &report)?;
    Ok((report, paths))
}

fn notes(
    shards: &[ShardFile],
    summary: &crate::ledger::LedgerSummary,
    stored: u64,
    uncertain: &[Cause],
) -> Vec<String> {
    let mut notes = vec![format!(
        "merged from {} shards: {} of {} deliveries crossed shards (caused on one machine, received on another) and are \
         counted but not timed; the latency is of the other {}, each measured on one machine's clock",
        shards.len(),
        summary.cross_clock,
        summary.delivered,
        summary.delivered - summary.cross_clock
    )];
    notes.push(format!(
        "notifications stored for the streaming users (read-only SQL): {stored}; expected by the ledger: {}{}",
        summary.expected,
        if uncertain.is_empty() {
            String::new()
        } else {
            format!(" (+ the causes of {} uncertain requests)", uncertain.len())
        }
    ));
    for s in shards {
        let failed: u64 = s.failures.values().sum();
        notes.push(format!(
            "shard {}/{} on {}: {} streams ({} reconnects, {} resumes), caused {} of {} sent{}, ready {:.1} s before the \
             start; {}",
            s.shard,
            s.shards,
            s.host,
            s.streams,
            s.reconnects,
            s.resumes,
            s.caused,
            s.sent,
            if failed > 0 { format!(" ({failed} failed: {:?})", s.failures) } else { String::new() },
            s.lead_s,
            s.cpu.describe("its generator")
        ));
    }
    if !uncertain.is_empty() {
        notes.push(format!(
            "causes committed although their request failed or timed out: {}; their {} receipts are indeterminate, not \
             unexpected",
            uncertain.len(),
            summary.indeterminate
        ));
    }
    notes
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_named_without_its_credentials() {
        assert_eq!(redact("mysql://root:secret@127.0.0.1:3306/db"), "mysql://…@127.0.0.1:3306/db");
        assert_eq!(redact("mysql://127.0.0.1/db"), "mysql://127.0.0.1/db");
    }
}
