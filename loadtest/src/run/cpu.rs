//! The harness's own CPU use over a run, sampled every second from `/proc/self/stat`, so a
//! report can say when the load generator, not the system under test, was the bottleneck:
//! a generator busy on most of its cores delays its own sends and receipts, and its latencies
//! then describe itself.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A sample above this share of all cores is a saturated second.
pub const SATURATED_SHARE: f64 = 0.85;
/// A generator saturated for more than this share of its samples is flagged.
pub const SATURATED_TIME: f64 = 0.10;

/// Linux reports `utime`/`stime` in clock ticks of `USER_HZ`, fixed at 100 by the kernel's
/// ABI on every architecture it runs on.
const TICKS_PER_S: f64 = 100.0;

/// What one process's CPU did over a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuProfile {
    /// Cores the process could use.
    pub cores: u32,
    /// Per second: CPU time used as a share of all cores (1.0 = every core busy).
    pub samples: Vec<f64>,
    pub mean: f64,
    pub peak: f64,
    /// Share of the samples above [`SATURATED_SHARE`].
    pub saturated_time: f64,
    /// More than [`SATURATED_TIME`] of the run saturated.
    pub saturated: bool,
}

impl CpuProfile {
    pub fn of(cores: u32, samples: Vec<f64>) -> Self {
        let n = samples.len().max(1) as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let peak = samples.iter().copied().fold(0.0, f64::max);
        let saturated_time = samples.iter().filter(|s| **s > SATURATED_SHARE).count() as f64 / n;
        Self { cores, samples, mean, peak, saturated_time, saturated: saturated_time > SATURATED_TIME }
    }

    /// One line for a report's notes.
    pub fn describe(&self, who: &str) -> String {
        let verdict = if self.saturated {
            format!(
                "SATURATED: over {:.0}% of its cores for {:.0}% of the run, so its latencies describe the generator, not \
                 the system under test",
                SATURATED_SHARE * 100.0,
                self.saturated_time * 100.0
            )
        } else {
            "not saturated".to_string()
        };
        format!(
            "{who}'s CPU: mean {:.0}%, peak {:.0}% of {} core(s) over {} s; {verdict}",
            self.mean * 100.0,
            self.peak * 100.0,
            self.cores,
            self.samples.len()
        )
    }
}

/// Samples the process's CPU every second until [`CpuSampler::stop`].
pub struct CpuSampler {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Vec<f64>>,
    cores: u32,
}

impl CpuSampler {
    pub fn start() -> Self {
        let stop = CancellationToken::new();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let task = tokio::spawn(sample(stop.clone(), cores));
        Self { stop, task, cores }
    }

    pub async fn stop(self) -> CpuProfile {
        self.stop.cancel();
        let samples = self.task.await.unwrap_or_default();
        CpuProfile::of(self.cores, samples)
    }
}

async fn sample(stop: CancellationToken, cores: u32) -> Vec<f64> {
    let mut samples = Vec::new();
    let (mut last_at, mut last) = (Instant::now(), process_cpu_seconds());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return samples,
            _ = tick.tick() => {}
        }
        let (now, cpu) = (Instant::now(), process_cpu_seconds());
        if let (Some(before), Some(after)) = (last, cpu) {
            let wall = now.duration_since(last_at).as_secs_f64().max(f64::EPSILON);
            samples.push(((after - before) / wall / f64::from(cores)).max(0.0));
        }
        (last_at, last) = (now, cpu);
    }
}

/// User plus system CPU seconds of this process, all threads; `None` off Linux.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from its closing parenthesis.
pub(crate) fn parse_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14 and stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_strange_name_gives_user_plus_system_time() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(line), Some(3.0));
        assert_eq!(parse_stat("garbage"), None);
        assert!(process_cpu_seconds().is_some(), "this runs on Linux");
    }

    #[test]
    fn a_generator_busy_for_more_than_a_tenth_of_the_run_is_flagged() {
        let calm = CpuProfile::of(2, vec![0.3, 0.5, 0.9, 0.4, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]);
        assert!(!calm.saturated, "{calm:?}");
        let busy = CpuProfile::of(2, vec![0.3, 0.95, 0.99, 0.4]);
        assert!(busy.saturated && (busy.saturated_time - 0.5).abs() < 1e-9, "{busy:?}");
        assert!(busy.describe("shard 1").contains("SATURATED"));
        assert!((busy.peak - 0.99).abs() < 1e-9);
    }
}
