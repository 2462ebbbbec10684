//! `loadtest run SCENARIO --world world.json --shard I/N --out DIR`: one load machine's slice
//! of a prepared world. It holds the streams of its users, causes its events of the shared
//! schedule (started at the world's wall-clock time), keeps its streams open until every
//! shard's drain is over, and writes what it saw, unjudged: `journal.jsonl`, `shard.json` and a
//! copy of `world.json` (so the merge needs nothing but the shards' folders).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::Slice;
use super::journal::{self, Entry};
use super::prepare::shardable;
use super::world_file::{self, WorldFile};
use crate::probe::api::ApiClient;
use crate::run::clients::{ClientSpec, ClientStats, LedgerMsg, run_client};
use crate::run::cpu::{CpuProfile, CpuSampler};
use crate::run::driver::Driver;
use crate::run::rig::MAX_IN_FLIGHT;
use crate::scenario::{Scenario, Spread};

pub const FILE: &str = "shard.json";

/// A shard that starts this much after the world's start time is refused: the others' streams
/// would close before its last events were delivered.
const MAX_LATE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ShardOptions {
    pub scenario: PathBuf,
    pub world: PathBuf,
    pub slice: Slice,
    pub out: PathBuf,
    pub command: String,
}

/// What one shard did, beside its journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardFile {
    pub format: u32,
    pub world_id: String,
    pub scenario: String,
    pub strategy: String,
    pub shard: u32,
    pub shards: u32,
    /// The machine's host name, as the report names the shard.
    pub host: String,
    pub command: String,
    /// Wall-clock microseconds since the Unix epoch of the shard's `t0`, the zero of its
    /// journal's times.
    pub t0_unix_us: u64,
    /// Seconds this shard was ready before the world's start time, by this machine's clock
    /// (negative: it came late, by at most 2 s, and started at once).
    pub lead_s: f64,
    /// Seconds over which this shard's events were scheduled.
    pub schedule_s: f64,
    /// Seconds from `t0` until the shard wrote its output.
    pub duration_s: f64,
    pub streams: u64,
    pub connected: u64,
    pub reconnects: u64,
    pub resumes: u64,
    pub given_up: u64,
    pub sent: u64,
    pub skipped: u64,
    pub caused: u64,
    pub failures: BTreeMap<String, u64>,
    pub journal_lines: u64,
    pub cpu: CpuProfile,
}

pub async fn run(opts: &ShardOptions) -> anyhow::Result<ShardFile> {
    let world = WorldFile::load(&opts.world)?;
    let origin = opts.scenario.display().to_string();
    let text = std::fs::read_to_string(&opts.scenario).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    world.check_scenario(&origin, &text)?;
    let scenario = Scenario::parse(&text, &origin)?;
    let (load, _) = shardable(&scenario, &origin)?;
    let slice = opts.slice;
    if opts.out.join(FILE).exists() {
        anyhow::bail!(
            "{} already holds a shard's output ({FILE}): give each shard and each run a folder of its own",
            opts.out.display()
        );
    }
    std::fs::create_dir_all(&opts.out)?;
    let until_start = world.start_at().duration_since(SystemTime::now());
    let (start, lead_s) = match until_start {
        Ok(wait) => (Instant::now() + wait, wait.as_secs_f64()),
        Err(late) if late.duration() <= MAX_LATE => (Instant::now(), -late.duration().as_secs_f64()),
        Err(late) => anyhow::bail!(
            "shard {slice} started {:.1} s after the world's start time ({}): the other shards' streams would close \
             before its events were delivered; prepare again with a longer --start-in",
            late.duration().as_secs_f64(),
            chrono::DateTime::<chrono::Utc>::from(world.start_at()).to_rfc3339()
        ),
    };
    std::fs::copy(&opts.world, opts.out.join(world_file::FILE))?;
    let tag = format!("shard {slice}");
    let cpu = CpuSampler::start();
    let t0 = Instant::now();
    let t0_unix_us = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);

    let (ledger_tx, ledger_rx) = mpsc::unbounded_channel::<LedgerMsg>();
    let writer = journal::Writer::create(&opts.out)?;
    let received = Arc::new(AtomicU64::new(0));
    let collector = tokio::spawn(write_journal(writer, ledger_rx, t0, received.clone()));

    let bases = Arc::new(world.instances.clone());
    let n_instances = bases.len();
    let alive = Arc::new((0..n_instances).map(|_| AtomicBool::new(true)).collect::<Vec<_>>());
    let stream_http = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?;
    let stats = Arc::new(ClientStats::default());
    let (_churn, churn_rx) = watch::channel(None);
    let stop_clients = CancellationToken::new();
    let mut client_tasks = Vec::new();
    for u in (0..world.world.sse_clients).filter(|u| slice.owns(*u as u64)) {
        // The instance a user's stream goes to depends on the user alone, not on the shards.
        let own = match load.spread {
            Spread::RoundRobin => u % n_instances,
            Spread::Random => StdRng::seed_from_u64(scenario.seed ^ 0x5eed ^ u as u64).random_range(0..n_instances),
        };
        let spec = ClientSpec {
            // The world was prepared with no notification for anyone: from the start.
            start_after: Some("0".to_string()),
            ..ClientSpec::of_user(&world.world, u, own, bases.clone(), load, scenario.seed)
        };
        client_tasks.push(tokio::spawn(run_client(
            spec,
            stream_http.clone(),
            alive.clone(),
            ledger_tx.clone(),
            stats.clone(),
            churn_rx.clone(),
            stop_clients.clone(),
        )));
    }
    let streams = client_tasks.len() as u64;
    let http =
        reqwest::Client::builder().pool_max_idle_per_host(MAX_IN_FLIGHT).timeout(Duration::from_secs(30)).build()?;
    let driver = Driver::new(
        ApiClient::new(http),
        Arc::new(world.world.clone()),
        bases.clone(),
        alive.clone(),
        ledger_tx.clone(),
        load.mix.diary_share(),
        scenario.seed,
    )
    .with_slice(u64::from(slice.index), u64::from(slice.count));
    eprintln!(
        "[{tag}] {streams} streams of {} on {n_instances} instance(s); the schedule starts in {:.1} s",
        world.world.sse_clients,
        start.saturating_duration_since(Instant::now()).as_secs_f64()
    );
    let progress = spawn_progress(tag.clone(), t0, driver.caused.clone(), received.clone(), stats.clone());
    let duration = Duration::from_secs_f64(load.duration_s);
    let drive = driver.drive_from(start, load.rate_per_s, duration, load.max_events).await;
    // Every shard's streams stay open until every shard's schedule and drain are over, on the
    // shared wall-clock: until the start + duration + drain, and at least a drain after this
    // shard's own last answer.
    let shared_end = start + duration + Duration::from_secs_f64(load.drain_s);
    let own_end = Instant::now() + Duration::from_secs_f64(load.drain_s);
    tokio::time::sleep_until(shared_end.max(own_end).into()).await;
    stop_clients.cancel();
    for task in client_tasks {
        let _ = task.await;
    }
    progress.abort();
    let known = driver.known_causes();
    let failures = driver.failures();
    let caused = driver.caused.load(Ordering::Relaxed);
    drop(driver);
    drop(ledger_tx);
    let mut writer = collector.await??;
    let mut known: Vec<_> = known.into_iter().collect();
    known.sort_unstable();
    for cause in known {
        writer.write(&Entry::Created { cause })?;
    }
    let journal_lines = writer.finish()?;
    let file = ShardFile {
        format: world_file::FORMAT,
        world_id: world.world_id.clone(),
        scenario: world.scenario.clone(),
        strategy: world.strategy.clone(),
        shard: slice.index,
        shards: slice.count,
        host: host_name(),
        command: opts.command.clone(),
        t0_unix_us,
        lead_s: (lead_s * 1000.0).round() / 1000.0,
        schedule_s: drive.seconds,
        duration_s: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        streams,
        connected: stats.connected.load(Ordering::Relaxed) as u64,
        reconnects: stats.reconnects.load(Ordering::Relaxed),
        resumes: stats.resumes.load(Ordering::Relaxed),
        given_up: stats.given_up.load(Ordering::Relaxed),
        sent: drive.sent,
        skipped: drive.skipped,
        caused,
        failures,
        journal_lines,
        cpu: cpu.stop().await,
    };
    std::fs::write(opts.out.join(FILE), serde_json::to_vec_pretty(&file)?)?;
    eprintln!(
        "[{tag}] caused {} ({} failed), {} journal lines, {}",
        file.caused,
        file.failures.values().sum::<u64>(),
        file.journal_lines,
        file.cpu.describe("this shard")
    );
    Ok(file)
}

/// Writes what clients and driver report, in the order received (a client's own events stay
/// in order), timed on this shard's clock.
async fn write_journal(
    mut writer: journal::Writer,
    mut msgs: mpsc::UnboundedReceiver<LedgerMsg>,
    t0: Instant,
    received: Arc<AtomicU64>,
) -> std::io::Result<journal::Writer> {
    while let Some(msg) = msgs.recv().await {
        if matches!(msg, LedgerMsg::Observe { .. }) {
            received.fetch_add(1, Ordering::Relaxed);
        }
        writer.write(&Entry::of(msg, t0))?;
    }
    Ok(writer)
}

fn spawn_progress(
    tag: String,
    t0: Instant,
    caused: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    stats: Arc<ClientStats>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!(
                "[{tag}] {:>5.1}s  caused {:>6}  received {:>7}  streams {:>5}  reconnects {:>4}",
                t0.elapsed().as_secs_f64(),
                caused.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
                stats.connected.load(Ordering::Relaxed),
                stats.reconnects.load(Ordering::Relaxed),
            );
        }
    })
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Reads a shard's `shard.json`, naming the folder when it is not a shard's output.
pub fn load(dir: &Path) -> anyhow::Result<ShardFile> {
    let path = dir.join(FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        anyhow::anyhow!("{}: {e}: pass the --out folders of `loadtest run --shard I/N`", path.display())
    })?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not a shard's summary ({e})", path.display()))
}
