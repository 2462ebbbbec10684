//! What every process spent of the machine per event of a strategy's run: the CPU seconds of
//! the run's [`Timeline`] over the load and its drain (the servers summed, each container, the
//! harness), divided by the events the driver caused. A share of the machine at one moment
//! says who was busy; CPU milliseconds per event say what one notification costs each process,
//! so two strategies (or two builds) that ran at the same rate compare in one run, and a change
//! that moves work from the broker to the database shows as such.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::table::{Cell, Column, Table};
use super::{StrategyResult, Timeline};

/// The CPU of the processes over one strategy's measured span.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineWork {
    /// Events the driver caused over the span: what the CPU is divided by.
    pub events: u64,
    /// The span on the run's clock, in seconds: from the start of the load to the end of its
    /// drain.
    pub from_s: f64,
    pub to_s: f64,
    /// The machine's cores (what a share of the machine is of).
    pub cores: u32,
    /// CPU seconds used over the span, by process group: `servers` (every instance), and each
    /// other timeline series by its name (`mariadb`, `rabbitmq`, `redis`, `harness`; a broker
    /// cluster's nodes together as `rabbitmq`).
    pub cpu_s: BTreeMap<String, f64>,
    /// Seconds of the span a group could not be read (an instance that was down): its CPU
    /// seconds miss those.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unread_s: BTreeMap<String, f64>,
}

/// The group a timeline series counts in: `instance-2` -> `servers`, `rabbitmq:3` -> `rabbitmq`.
fn group(series: &str) -> String {
    if series.starts_with("instance-") {
        return "servers".to_string();
    }
    series.split(':').next().unwrap_or(series).to_string()
}

impl MachineWork {
    /// The CPU seconds each group used in the seconds of `timeline` that end after `from_s` and
    /// no later than `to_s`. Each timeline value is a rate over the interval that ends at its
    /// time (the first one's interval taken as 1 s).
    pub fn over(timeline: &Timeline, from_s: f64, to_s: f64, events: u64, cores: u32) -> Self {
        let mut cpu_s = BTreeMap::new();
        let mut unread_s = BTreeMap::new();
        for series in &timeline.cpu_pct {
            let name = group(&series.name);
            let used = cpu_s.entry(name.clone()).or_insert(0.0);
            let mut unread = 0.0;
            for (i, (t, value)) in timeline.t_s.iter().zip(&series.values).enumerate() {
                if *t <= from_s || *t > to_s {
                    continue;
                }
                let dt = if i == 0 { 1.0 } else { t - timeline.t_s[i - 1] };
                match value {
                    Some(pct) => *used += pct / 100.0 * dt,
                    None => unread += dt,
                }
            }
            if unread > 0.0 {
                *unread_s.entry(name).or_insert(0.0) += unread;
            }
        }
        Self { events, from_s, to_s, cores, cpu_s, unread_s }
    }

    /// A group's CPU milliseconds per event.
    pub fn ms_per_event(&self, group: &str) -> Option<f64> {
        (self.events > 0).then_some(())?;
        self.cpu_s.get(group).map(|s| s * 1000.0 / self.events as f64)
    }

    /// Every group's CPU milliseconds per event together.
    pub fn total_ms_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.cpu_s.values().sum::<f64>() * 1000.0 / self.events as f64)
    }

    /// The share of the machine's cores every group together kept busy over the span.
    pub fn busy_share(&self) -> Option<f64> {
        let seconds = self.to_s - self.from_s;
        (seconds > 0.0 && self.cores > 0).then(|| self.cpu_s.values().sum::<f64>() / (seconds * self.cores as f64))
    }
}

/// The table's groups, in order: (header, group).
const GROUPS: &[(&str, &str)] = &[
    ("servers ms", "servers"),
    ("MariaDB ms", "mariadb"),
    ("RabbitMQ ms", "rabbitmq"),
    ("Redis ms", "redis"),
    ("harness ms", "harness"),
];

/// One row per strategy whose run measured its processes' CPU; `None` when none did.
pub fn table(results: &[StrategyResult]) -> Option<Table> {
    let measured: Vec<(usize, &StrategyResult, &MachineWork)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.machine.as_ref().filter(|m| m.events > 0).map(|m| (i, r, m)))
        .collect();
    if measured.is_empty() {
        return None;
    }
    let mut columns = vec![Column::text("strategy"), Column::figure("events")];
    columns.extend(GROUPS.iter().map(|(header, _)| Column::figure(header)));
    columns.push(Column::figure("all ms"));
    columns.push(Column::figure("machine busy"));
    let mut t = Table::new("CPU milliseconds per event caused", columns).in_section(
        "Machine work",
        "Each process's CPU time from the start of the load to the end of its drain (the run's timeline: /proc for \
         the servers and the harness, the Docker engine's stats for the containers), divided by the events caused; \
         the last column is the share of all the machine's cores they kept busy together. Strategies run at the \
         same rate compare here within one run; the machine's noise moves these less than latency, not nothing.",
    );
    for (i, r, m) in measured {
        let mut cells = vec![Cell::Text(r.strategy.clone()), Cell::Count(m.events)];
        cells.extend(GROUPS.iter().map(|(_, group)| match m.ms_per_event(group) {
            Some(v) => Cell::Number(v, 2),
            None => Cell::Text("-".into()),
        }));
        cells.push(m.total_ms_per_event().map_or(Cell::Text("-".into()), |v| Cell::Number(v, 2)));
        cells.push(m.busy_share().map_or(Cell::Text("-".into()), |v| Cell::Text(format!("{:.0}%", v * 100.0))));
        t.push(Some(i), cells);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Series;
    use crate::report::tests::result;

    fn timeline() -> Timeline {
        let series = |name: &str, values: &[Option<f64>]| Series { name: name.into(), values: values.to_vec() };
        Timeline {
            t_s: vec![-0.5, 0.5, 1.5, 2.5, 3.5],
            cpu_pct: vec![
                series("harness", &[Some(10.0), Some(10.0), Some(10.0), Some(10.0), Some(10.0)]),
                series("instance-1", &[Some(90.0), Some(50.0), Some(50.0), Some(50.0), Some(90.0)]),
                series("instance-2", &[Some(0.0), Some(30.0), None, Some(30.0), Some(0.0)]),
                series("rabbitmq:1", &[Some(5.0), Some(20.0), Some(20.0), Some(20.0), Some(5.0)]),
                series("rabbitmq:2", &[Some(5.0), Some(10.0), Some(10.0), Some(10.0), Some(5.0)]),
            ],
            rss_mb: Vec::new(),
        }
    }

    #[test]
    fn cpu_seconds_are_summed_over_the_span_by_group() {
        // The span (0, 3]: the seconds ending at 0.5, 1.5 and 2.5.
        let work = MachineWork::over(&timeline(), 0.0, 3.0, 300, 2);
        let s = |g: &str| work.cpu_s[g];
        assert!((s("harness") - 0.3).abs() < 1e-9, "{work:?}");
        // Both instances, the unread second of instance-2 missing.
        assert!((s("servers") - (1.5 + 0.6)).abs() < 1e-9, "{work:?}");
        assert_eq!(work.unread_s.get("servers"), Some(&1.0));
        // A cluster's nodes count as one broker.
        assert!((s("rabbitmq") - 0.9).abs() < 1e-9, "{work:?}");
        assert_eq!(work.cpu_s.len(), 3);
        assert!((work.ms_per_event("servers").unwrap() - 7.0).abs() < 1e-9);
        assert!((work.total_ms_per_event().unwrap() - 11.0).abs() < 1e-9);
        // 3.3 CPU seconds over 3 s of 2 cores.
        assert!((work.busy_share().unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(work.ms_per_event("redis"), None);
        assert_eq!(MachineWork::over(&timeline(), 0.0, 3.0, 0, 2).ms_per_event("servers"), None);
    }

    #[test]
    fn the_table_has_a_row_per_measured_strategy() {
        let mut rabbitmq = result("rabbitmq");
        rabbitmq.machine = Some(MachineWork::over(&timeline(), 0.0, 3.0, 300, 2));
        let unmeasured = result("outbox");
        assert!(table(std::slice::from_ref(&unmeasured)).is_none());
        let t = table(&[unmeasured, rabbitmq]).unwrap();
        assert_eq!(t.rows.len(), 1);
        let text = t.to_text();
        assert!(text.contains("rabbitmq") && text.contains("7.00") && text.contains("11.00"), "{text}");
        assert!(text.contains("55%"), "{text}");
    }
}
