use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::{Cli, Command, InfraAction};
use loadtest::infra::{self, Infra, ProvisionOptions};

#[tokio::main]
async fn main() -> ExitCode {
    loadtest::tls::install_crypto_provider();
    // lapin logs every refused connection at ERROR while a broker starts; our own probes
    // report what matters, so it stays quiet unless RUST_LOG asks for it.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "loadtest=info,lapin=off,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { scenario, shard: Some(slice), world: Some(world), out: Some(out), .. } => {
            let opts = loadtest::shard::run::ShardOptions {
                scenario,
                world,
                slice,
                out: out.clone(),
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            loadtest::shard::run::run(&opts).await?;
            eprintln!("shard {slice} written to {}; merge every shard's folder with `loadtest merge`", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            scenario,
            server_bin,
            reports_dir,
            strategies,
            targets,
            baseline,
            max_regression,
            repeat,
            metrics_listen,
            ..
        } => {
            // Read before the run: a wrong path fails now, not after minutes of load.
            let baseline = match baseline {
                Some(path) => Some((loadtest::compare::load(&path)?, path.display().to_string())),
                None => None,
            };
            let opts = loadtest::run::RunOptions {
                scenario,
                provision: ProvisionOptions { images: cli.images, ..ProvisionOptions::from_env()? },
                server_bin: server_bin.unwrap_or_else(loadtest::cluster::default_server_bin),
                reports_dir,
                strategies,
                command: std::env::args().collect::<Vec<_>>().join(" "),
                targets,
                repeat,
                metrics_listen,
            };
            let (report, paths) = loadtest::run::run(&opts).await?;
            println!("{}", loadtest::report::to_text(&report));
            let dir = paths.json.parent().map(std::path::Path::to_path_buf).unwrap_or_default();
            eprintln!("reports: {}", dir.display());
            let mut passed = report.passed;
            if let Some((base, name)) = baseline {
                let c = loadtest::compare::compare(&base, &name, &report, &dir.display().to_string(), max_regression)?;
                c.write(&dir)?;
                println!("against the baseline {name}:\n{}", c.to_text());
                if !c.regressions().is_empty() {
                    eprintln!("FAIL: worse than the baseline (compare.md in {})", dir.display());
                    passed = false;
                }
            }
            Ok(if passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Prepare { scenario, targets, strategy, out, start_in } => {
            if !(0.0..=86_400.0).contains(&start_in) {
                anyhow::bail!("--start-in {start_in}: give the seconds until the shards start, 0 to 86400");
            }
            let opts = loadtest::shard::prepare::PrepareOptions {
                scenario,
                targets,
                provision: ProvisionOptions { images: cli.images, ..ProvisionOptions::from_env()? },
                strategy,
                out: out.clone(),
                start_in: std::time::Duration::from_secs_f64(start_in),
            };
            let world = loadtest::shard::prepare::prepare(&opts).await?;
            eprintln!(
                "world {} written to {}: {} users on {} instance(s), strategy {}; the shards start the schedule at {}",
                world.world_id,
                out.display(),
                world.world.users.len(),
                world.instances.len(),
                world.strategy,
                chrono::DateTime::<chrono::Utc>::from(world.start_at()).to_rfc3339()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Merge { dirs, reports_dir } => {
            let opts = loadtest::shard::merge::MergeOptions {
                dirs,
                reports_dir,
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            let (report, paths) = loadtest::shard::merge::merge(&opts).await?;
            println!("{}", loadtest::report::to_text(&report));
            eprintln!("reports: {}", paths.json.parent().map(|d| d.display().to_string()).unwrap_or_default());
            Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Compare { a, b, max_regression, out } => {
            let (ra, rb) = (loadtest::compare::load(&a)?, loadtest::compare::load(&b)?);
            let c = loadtest::compare::compare(
                &ra,
                &a.display().to_string(),
                &rb,
                &b.display().to_string(),
                max_regression,
            )?;
            let out = out.unwrap_or_else(|| if b.is_dir() { b.clone() } else { std::path::PathBuf::from(".") });
            c.write(&out)?;
            print!("{}", c.to_text());
            eprintln!("written: {}", out.join("compare.html").display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Matrix { columns, must_hold, out } => {
            let m = loadtest::matrix::build(&columns, must_hold.as_deref())?;
            print!("{}", m.markdown);
            if let Some(out) = out {
                std::fs::write(&out, &m.markdown)
                    .map_err(|e| anyhow::anyhow!("cannot write the table to {}: {e}", out.display()))?;
            }
            for (column, strategy, lost, duplicated) in &m.broken {
                eprintln!("{strategy} under {column}: {lost} lost, {duplicated} duplicated (--must-hold wants 0 / 0)");
            }
            Ok(if m.broken.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Infra { action: InfraAction::Up { foreground } } => {
            let opts = ProvisionOptions { images: cli.images, detached: !foreground, ..ProvisionOptions::from_env()? };
            let infra = Infra::provision(&opts).await?;
            let urls = infra.urls();
            eprintln!("infrastructure is up (image set: {})", infra.image_set());
            println!("export LOADTEST_AMQP_URL='{}'", urls.amqp);
            println!("export LOADTEST_REDIS_URL='{}'", urls.redis);
            println!("export LOADTEST_MYSQL_URL='{}'", urls.mysql);
            // What one server started by hand needs (`target/release/server`, the web client
            // at http://127.0.0.1:8080/): its own database on these containers.
            let database = infra.fresh_database("dev").await?;
            println!("export SERVER_DATABASE_URL='{database}'");
            println!("export SERVER_REDIS_URL='{}'", urls.redis);
            println!("export SERVER_AMQP_URL='{}'", urls.amqp);
            if foreground {
                eprintln!("press Ctrl-C to remove the containers");
                tokio::signal::ctrl_c().await?;
                drop(infra);
            } else {
                infra.detach();
                eprintln!("left running; `loadtest infra down` removes them");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Infra { action: InfraAction::Down } => {
            let docker = infra::docker::connect().await?;
            let removed = infra::docker::remove_detached(&docker).await?;
            eprintln!("removed {removed} container(s)");
            Ok(ExitCode::SUCCESS)
        }
    }
}
