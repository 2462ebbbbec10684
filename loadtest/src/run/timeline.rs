//! What every process did during a strategy's run, second by second: the CPU and resident
//! memory of each server instance (read from `/proc`, for the instances the harness runs), of
//! each infrastructure container (the Docker engine's stats) and of the harness itself. Kept
//! as [`Timeline`] in `report.json` and drawn per strategy in `report.html` on the run's clock
//! with the faults marked, so a reader sees which process was busy when a step failed or a
//! fault hit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::infra::docker::Docker;
use crate::report::{Series, Timeline};

/// Samples [`Timeline`] every second until [`TimelineSampler::stop`].
pub struct TimelineSampler {
    stop: CancellationToken,
    /// A runner that fails before it stops its stage drops the sampler: the sampling ends then
    /// too, and lets go of the cluster, whose processes stop when it is dropped.
    _stop_on_drop: tokio_util::sync::DropGuard,
    task: tokio::task::JoinHandle<Vec<Sample>>,
    started: Instant,
    t0: std::sync::Mutex<Option<Instant>>,
    names: Vec<String>,
}

/// One process to sample.
#[derive(Debug, Clone)]
enum Source {
    Harness,
    /// A server instance, by 0-based index in the cluster.
    Instance(usize),
    /// A container, by id.
    Container(String),
}

/// One tick: when, and per source (in the sampler's order) CPU seconds used so far and the
/// resident memory in MB, when it could be read.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    readings: Vec<Option<(f64, f64)>>,
}

impl TimelineSampler {
    /// Starts sampling the harness, the cluster's instances and the named containers.
    pub fn start(cluster: Arc<Mutex<Cluster>>, instances: usize, containers: Vec<(String, String)>) -> Self {
        let mut names = vec!["harness".to_string()];
        let mut sources = vec![Source::Harness];
        for i in 0..instances {
            names.push(format!("instance-{}", i + 1));
            sources.push(Source::Instance(i));
        }
        for (name, id) in containers {
            names.push(name);
            sources.push(Source::Container(id));
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(sample(stop.clone(), cluster, sources));
        Self {
            _stop_on_drop: stop.clone().drop_guard(),
            stop,
            task,
            started: Instant::now(),
            t0: std::sync::Mutex::new(None),
            names,
        }
    }

    /// The run's clock starts now (the clock of its faults and deliveries): the timeline's
    /// seconds count from it, and what was sampled more than a second before it is dropped.
    pub fn mark_t0(&self, t0: Instant) {
        if let Ok(mut slot) = self.t0.lock() {
            slot.get_or_insert(t0);
        }
    }

    pub async fn stop(self) -> Timeline {
        self.stop.cancel();
        let samples = self.task.await.unwrap_or_default();
        let t0 = self.t0.lock().ok().and_then(|t| *t).unwrap_or(self.started);
        timeline(&self.names, t0, &samples)
    }
}

/// Rates between consecutive samples: CPU as % of one core, memory as read at the second one.
fn timeline(names: &[String], t0: Instant, samples: &[Sample]) -> Timeline {
    let mut out = Timeline {
        t_s: Vec::new(),
        cpu_pct: names.iter().map(|n| Series { name: n.clone(), values: Vec::new() }).collect(),
        rss_mb: names.iter().map(|n| Series { name: n.clone(), values: Vec::new() }).collect(),
    };
    for pair in samples.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let t = signed_seconds(t0, after.at);
        if t < -1.0 {
            continue;
        }
        out.t_s.push((t * 10.0).round() / 10.0);
        let wall = after.at.duration_since(before.at).as_secs_f64().max(f64::EPSILON);
        for (k, (b, a)) in before.readings.iter().zip(&after.readings).enumerate() {
            // A counter that went down is a restarted process: no rate for that second.
            let cpu = match (b, a) {
                (Some((cb, _)), Some((ca, _))) if ca >= cb => Some(round1((ca - cb) / wall * 100.0)),
                _ => None,
            };
            out.cpu_pct[k].values.push(cpu);
            out.rss_mb[k].values.push(a.map(|(_, mb)| round1(mb)));
        }
    }
    out
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `at - t0` in seconds, negative when `at` is earlier.
fn signed_seconds(t0: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(t0) {
        Some(d) => d.as_secs_f64(),
        None => -t0.duration_since(at).as_secs_f64(),
    }
}

async fn sample(stop: CancellationToken, cluster: Arc<Mutex<Cluster>>, sources: Vec<Source>) -> Vec<Sample> {
    let docker = crate::infra::docker::connect().await.ok();
    let mut pids: Vec<Option<u32>> = Vec::new();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return samples,
            _ = tick.tick() => {}
        }
        // A fault may hold the cluster while it restarts an instance: keep the last pids then.
        if let Ok(c) = cluster.try_lock() {
            pids = c.pids();
        }
        let at = Instant::now();
        let readings = futures::future::join_all(sources.iter().map(|s| read(s, &pids, docker.as_ref()))).await;
        samples.push(Sample { at, readings });
    }
}

async fn read(source: &Source, pids: &[Option<u32>], docker: Option<&Docker>) -> Option<(f64, f64)> {
    match source {
        Source::Harness => of_pid("self"),
        Source::Instance(i) => of_pid(&pids.get(*i).copied().flatten()?.to_string()),
        Source::Container(id) => of_container(docker?, id).await,
    }
}

/// CPU seconds and resident MB of a process from `/proc/<pid>`.
fn of_pid(pid: &str) -> Option<(f64, f64)> {
    let cpu = super::cpu::parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((cpu, rss_mb(&status)?))
}

/// `VmRSS` of a `/proc/<pid>/status`, in MB.
fn rss_mb(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds and memory in MB of a container, from one reading of the engine's stats.
async fn of_container(docker: &Docker, id: &str) -> Option<(f64, f64)> {
    let options =
        testcontainers::bollard::query_parameters::StatsOptionsBuilder::new().stream(false).one_shot(true).build();
    let stats =
        tokio::time::timeout(Duration::from_millis(900), docker.stats(id, Some(options)).next()).await.ok()??.ok()?;
    let cpu_ns = stats.cpu_stats?.cpu_usage?.total_usage?;
    let memory = stats.memory_stats?.usage?;
    Some((cpu_ns as f64 / 1e9, memory as f64 / (1024.0 * 1024.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_consecutive_samples_and_a_restart_gives_no_rate() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let samples = vec![
            Sample { at: at(0.0), readings: vec![Some((1.0, 10.0)), None] },
            Sample { at: at(1.0), readings: vec![Some((1.5, 12.0)), Some((3.0, 50.0))] },
            Sample { at: at(2.0), readings: vec![Some((0.2, 11.0)), Some((4.0, 55.0))] },
        ];
        let t = timeline(&["a".into(), "b".into()], t0, &samples);
        assert_eq!(t.t_s, [1.0, 2.0]);
        assert_eq!(t.cpu_pct[0].values, [Some(50.0), None], "the counter went down: a new process");
        assert_eq!(t.cpu_pct[1].values, [None, Some(100.0)]);
        assert_eq!(t.rss_mb[0].values, [Some(12.0), Some(11.0)]);
        assert_eq!(t.rss_mb[1].name, "b");
    }

    #[test]
    fn samples_long_before_the_clock_starts_are_dropped() {
        let start = Instant::now();
        let t0 = start + Duration::from_secs(5);
        let samples: Vec<Sample> = (0..8)
            .map(|s| Sample { at: start + Duration::from_secs(s), readings: vec![Some((s as f64, 1.0))] })
            .collect();
        let t = timeline(&["harness".into()], t0, &samples);
        assert_eq!(t.t_s, [-1.0, 0.0, 1.0, 2.0]);
        assert!(t.cpu_pct[0].values.iter().all(|v| *v == Some(100.0)));
    }

    #[test]
    fn this_process_can_be_read_and_a_status_gives_its_resident_memory() {
        let (cpu, mb) = of_pid("self").expect("this runs on Linux");
        assert!(cpu >= 0.0 && mb > 1.0, "{cpu} {mb}");
        assert_eq!(rss_mb("Name:\tx\nVmRSS:\t  2048 kB\n"), Some(2.0));
        assert_eq!(rss_mb("Name:\tx\n"), None);
    }
}
