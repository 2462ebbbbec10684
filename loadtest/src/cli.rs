//! The `loadtest` command line: what a user types, parsed into typed commands.

use clap::{Parser, Subcommand};

use crate::infra::ImageSetChoice;

#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    version,
    about = "Real infrastructure, N server instances, load and faults, exact accounting"
)]
pub struct Cli {
    /// Image set for RabbitMQ, Redis and MariaDB: auto (debian images when built, else
    /// official), official (upstream tags, pulled), debian (built by scripts/build-images.sh),
    /// external (URLs from LOADTEST_AMQP_URL, LOADTEST_REDIS_URL, LOADTEST_MYSQL_URL).
    #[arg(long, global = true, env = "LOADTEST_IMAGES", default_value = "auto", value_parser = parse_image_set)]
    pub images: ImageSetChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file: provision, start the instances, drive load and faults, count
    /// every notification, write reports/<scenario>-<time>/, exit 1 if a threshold failed.
    Run {
        /// The scenario file, e.g. scenarios/notify-fanout.toml.
        scenario: std::path::PathBuf,
        /// The server binary to run (default: `server` next to this executable).
        #[arg(long, env = "LOADTEST_SERVER_BIN")]
        server_bin: Option<std::path::PathBuf>,
        /// Where report folders are written.
        #[arg(long, default_value = "reports")]
        reports_dir: std::path::PathBuf,
        /// Run only these strategies (comma-separated), e.g. --strategies local,rabbitmq.
        #[arg(long, value_delimiter = ',', value_parser = parse_strategy)]
        strategies: Option<Vec<crate::scenario::Strategy>>,
        /// Run against the deployment this targets file names (the external runner: no server
        /// process and no container is started; faults go through its adapters).
        #[arg(long)]
        targets: Option<std::path::PathBuf>,
        /// A report folder (or report.json) of an earlier run of this scenario: the run fails
        /// (exit 1) when a figure is worse beyond --max-regression, or a broken invariant
        /// appears; compare.md/.html/.json are written beside the report.
        #[arg(long)]
        baseline: Option<std::path::PathBuf>,
        /// How much worse a latency or a throughput may be than the baseline's: 10% or 0.1.
        #[arg(long, default_value = "10%", value_parser = crate::compare::parse_share)]
        max_regression: f64,
        /// Run every strategy this many times (fresh instances and database each time, in
        /// rounds); the report gives each figure's median, min and max, and a limit that fails
        /// in any round fails.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
        repeat: u32,
        /// Serve the harness's own figures (delivered, not yet received, in flight, the p99 of
        /// the last 10 s, a latency histogram) in the Prometheus text format at
        /// http://ADDR/metrics while the run goes, e.g. --metrics-listen 127.0.0.1:9464.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Run one slice of a prepared world (several load machines): shard I of N, counted
        /// from 0 (Kubernetes: $(JOB_COMPLETION_INDEX)/N). Needs --world and --out; writes
        /// what it saw, unjudged, for `loadtest merge`.
        #[arg(long, requires_all = ["world", "out"], conflicts_with_all = ["baseline", "strategies", "targets"])]
        shard: Option<crate::shard::Slice>,
        /// The world file `loadtest prepare` wrote (with --shard).
        #[arg(long, requires = "shard")]
        world: Option<std::path::PathBuf>,
        /// The shard's output folder (with --shard): one per shard and run.
        #[arg(long, requires = "shard")]
        out: Option<std::path::PathBuf>,
    },
    /// Prepare a sharded run against a deployment (see --targets): deploy with a fresh
    /// database, build the world (users, sessions, friends) once and write it to --out for
    /// every `loadtest run --shard I/N --world FILE`. The deployment is left running.
    Prepare {
        /// A fan-out scenario without faults, e.g. scenarios/notify-fanout.toml.
        scenario: std::path::PathBuf,
        /// The deployment's targets file (else the scenario's [cluster] targets).
        #[arg(long)]
        targets: Option<std::path::PathBuf>,
        /// The strategy the deployment runs, when the scenario compares several.
        #[arg(long, value_parser = parse_strategy)]
        strategy: Option<crate::scenario::Strategy>,
        /// Where the world file is written.
        #[arg(long, default_value = "world.json")]
        out: std::path::PathBuf,
        /// Seconds from now until every shard starts the schedule: time to start them all and
        /// open their streams.
        #[arg(long, default_value_t = 30.0)]
        start_in: f64,
    },
    /// One ledger and one report from the shards of a prepared world: lost, duplicated and
    /// unexpected exact across shards, latency measured only within one machine's clock.
    /// Exit 1 if a threshold failed.
    Merge {
        /// Every shard's --out folder.
        #[arg(required = true)]
        dirs: Vec<std::path::PathBuf>,
        /// Where the merged report's folder is written.
        #[arg(long, default_value = "reports")]
        reports_dir: std::path::PathBuf,
    },
    /// Two runs of one scenario side by side: each strategy's figures, their difference and
    /// ratio, and which are worse beyond --max-regression. Writes compare.md, compare.html and
    /// compare.json into --out (default: B's folder when B is a folder, else the current one).
    Compare {
        /// The earlier run: a report folder or its report.json.
        a: std::path::PathBuf,
        /// The later run.
        b: std::path::PathBuf,
        #[arg(long, default_value = "10%", value_parser = crate::compare::parse_share)]
        max_regression: f64,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// One strategy x fault table from several fan-out runs, one run per column: each cell the
    /// run's lost (share of expected) / duplicated for the strategy, and under the table the
    /// run each column came from. Prints Markdown (and writes it to --out). Exit 1 when
    /// --must-hold names a strategy that lost or duplicated anything in some column.
    Matrix {
        /// HEADING=REPORT, one per column in order, e.g.
        /// "instance kill=reports/notify-instance-kill-20261203-061755".
        #[arg(required = true, value_parser = parse_column)]
        columns: Vec<crate::matrix::Column>,
        /// A strategy that must show 0 / 0 in every column that ran it, e.g. outbox.
        #[arg(long)]
        must_hold: Option<String>,
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Provision or remove the infrastructure by hand.
    Infra {
        #[command(subcommand)]
        action: InfraAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum InfraAction {
    /// Start RabbitMQ, Redis and MariaDB, wait until each answers a client, print their URLs
    /// as `export` lines (so `eval "$(loadtest infra up)"` works) and leave them running.
    Up {
        /// Stay in the foreground and remove the containers on Ctrl-C instead of leaving them.
        #[arg(long)]
        foreground: bool,
    },
    /// Remove the containers `infra up` left running.
    Down,
}

fn parse_column(s: &str) -> Result<crate::matrix::Column, String> {
    s.parse()
}

fn parse_strategy(s: &str) -> Result<crate::scenario::Strategy, String> {
    s.parse().map_err(|e: crate::scenario::UnknownValue| e.to_string())
}

fn parse_image_set(s: &str) -> Result<ImageSetChoice, String> {
    s.parse().map_err(|e: crate::infra::InfraError| e.to_string())
}
