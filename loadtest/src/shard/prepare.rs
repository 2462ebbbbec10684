//! `loadtest prepare`: deploy once, build the world once, write `world.json` for the shards.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::world_file::{FORMAT, WorldFile, sha256_hex, unix_ms};
use crate::infra::{ProvisionOptions, unique_name};
use crate::probe::api::ApiClient;
use crate::run::RunContext;
use crate::run::stage::Stage;
use crate::run::world::World;
use crate::scenario::{Delivery, Load, Scenario, Strategy, Workload};

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub scenario: PathBuf,
    pub targets: Option<PathBuf>,
    pub provision: ProvisionOptions,
    /// The strategy the deployment runs; needed when the scenario compares several.
    pub strategy: Option<Strategy>,
    pub out: PathBuf,
    /// How long after the world is written the shards start the schedule: time for every
    /// shard to start and open its streams.
    pub start_in: Duration,
}

/// What a sharded run of `scenario` runs: its load, and the delivery strategies it names.
/// Only a fan-out scenario without faults can be split today: a fault is one action on the
/// shared deployment, and a capacity ramp's steps would need the shards to agree on each
/// step's verdict while it runs.
pub fn shardable<'s>(scenario: &'s Scenario, origin: &str) -> anyhow::Result<(&'s Load, &'s [Delivery])> {
    let Workload::Fanout(plan) = &scenario.workload else {
        anyhow::bail!(
            "{origin}: a sharded run needs a fan-out scenario (kind = \"fanout\"); this one is kind = \"{}\": run it whole \
             with `loadtest run` (add --targets for a deployment)",
            scenario.kind().as_str()
        );
    };
    if !scenario.faults.is_empty() {
        anyhow::bail!(
            "{origin}: a sharded run takes no [[faults]] ({} here): a fault acts on the shared deployment from one \
             place, so run fault scenarios whole with `loadtest run --targets FILE`",
            scenario.faults.len()
        );
    }
    Ok((&plan.section.load, &plan.strategies))
}

/// Deploys with the targets' `deploy` adapter and a fresh database, builds the world and
/// writes it. The deployment is left running for the shards.
pub async fn prepare(opts: &PrepareOptions) -> anyhow::Result<WorldFile> {
    let origin = opts.scenario.display().to_string();
    let text = std::fs::read_to_string(&opts.scenario).map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
    let scenario = Scenario::parse(&text, &origin)?;
    let (load, strategies) = shardable(&scenario, &origin)?;
    let strategy = match (opts.strategy, strategies) {
        (Some(s), _) if strategies.iter().any(|d| Strategy::from(*d) == s) => s,
        (Some(s), _) => {
            anyhow::bail!("--strategy {}: {origin} does not compare it (it names {})", s.as_str(), names(strategies))
        }
        (None, [one]) => Strategy::from(*one),
        (None, _) => anyhow::bail!(
            "{origin} compares {}: a sharded run measures the one strategy deployed; pass --strategy NAME",
            names(strategies)
        ),
    };
    let targets =
        crate::run::external_targets(&opts.scenario, opts.targets.as_ref(), &scenario, &opts.provision.external_urls)?
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{origin}: a sharded run drives a deployment the harness did not start: pass --targets FILE (see \
                     deploy/docker/targets.toml) or set [cluster] targets"
                )
            })?;
    let infra = crate::run::provision(&opts.provision, Some(&targets)).await?;
    let report_dir = opts.out.parent().map(PathBuf::from).unwrap_or_default().join("prepare-logs");
    let ctx = RunContext {
        scenario: &scenario,
        infra: infra.clone(),
        server_bin: PathBuf::new(),
        report_dir,
        targets: Some(targets.clone()),
        live: crate::live::Live::new(&scenario.name),
    };
    let delivery = crate::scenario::Delivery::try_from(strategy)
        .map_err(|s| anyhow::anyhow!("{s} is not a delivery strategy: a sharded run drives notifications"))?;
    let stage = Stage::start(&ctx, strategy, &crate::run::rig::settings(delivery)).await?;
    let world_id = unique_name(&format!("{}_{}", scenario.name, strategy.as_str()));
    eprintln!(
        "[prepare] building the world on {} instance(s): {} users, {} friends each",
        stage.bases.len(),
        load.users,
        load.friends_per_user
    );
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let world = World::build(
        &ApiClient::new(http),
        &stage.bases,
        &world_id,
        load.users as usize,
        load.friends_per_user as usize,
        load.sse_clients as usize,
        scenario.seed,
    )
    .await?;
    let file = WorldFile {
        format: FORMAT,
        world_id,
        scenario: scenario.name.clone(),
        scenario_sha256: sha256_hex(&text),
        scenario_text: text,
        strategy: strategy.as_str().to_string(),
        instances: stage.bases.clone(),
        database_url: stage.database_url.clone(),
        prepared_at: chrono::Utc::now().to_rfc3339(),
        start_at_unix_ms: unix_ms(SystemTime::now() + opts.start_in),
        world,
    };
    file.save(&opts.out)?;
    // The deployment stays up for the shards: no teardown here.
    drop(stage);
    Ok(file)
}

fn names(strategies: &[Delivery]) -> String {
    strategies.iter().map(|d| Strategy::from(*d).as_str()).collect::<Vec<_>>().join(", ")
}
