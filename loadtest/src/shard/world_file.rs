//! `world.json`: what `loadtest prepare` built and every shard and the merge read. It names
//! the deployment (instances, database), carries the scenario's own text (a shard given
//! another version of the scenario is refused), the users with their sessions and the friend
//! graph, and the wall-clock time at which every shard starts the shared schedule.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::run::world::World;

/// Bumped when a field changes meaning: a shard refuses a world of another format.
pub const FORMAT: u32 = 1;
pub const FILE: &str = "world.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldFile {
    pub format: u32,
    /// Unique per `prepare`: the merge refuses shards of different worlds.
    pub world_id: String,
    pub scenario: String,
    /// SHA-256 of the scenario file's text, hex.
    pub scenario_sha256: String,
    pub scenario_text: String,
    /// The delivery strategy the deployment runs.
    pub strategy: String,
    /// The instances' base URLs, by 0-based index.
    pub instances: Vec<String>,
    /// The run's database, for the read-only truth after the fact.
    pub database_url: String,
    /// RFC 3339.
    pub prepared_at: String,
    /// Milliseconds since the Unix epoch at which every shard starts the schedule.
    pub start_at_unix_ms: u64,
    pub world: World,
}

pub fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl WorldFile {
    pub fn load(path: &Path) -> anyhow::Result<WorldFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}: pass the file `loadtest prepare --out` wrote", path.display()))?;
        let world: WorldFile = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a world file written by `loadtest prepare` ({e})", path.display()))?;
        if world.format != FORMAT {
            anyhow::bail!(
                "{}: world format {} but this harness reads format {FORMAT}: prepare it again with this version",
                path.display(),
                world.format
            );
        }
        Ok(world)
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }

    /// Refuses a scenario whose text is not the one the world was prepared with.
    pub fn check_scenario(&self, origin: &str, text: &str) -> anyhow::Result<()> {
        if sha256_hex(text) != self.scenario_sha256 {
            anyhow::bail!(
                "{origin} is not the scenario this world was prepared with ({}, sha256 {}…): every shard must run the \
                 same scenario file; prepare again or use the same file",
                self.scenario,
                &self.scenario_sha256[..12]
            );
        }
        Ok(())
    }

    pub fn start_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.start_at_unix_ms)
    }
}
