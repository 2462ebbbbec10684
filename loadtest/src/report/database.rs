//! What the database did per event of a strategy's run: MariaDB's own counters
//! (`SHOW GLOBAL STATUS`) read before the load and after its drain, divided by the events the
//! driver caused. Unlike a CPU share, these do not move with the machine's noise: the same
//! code under the same load gives the same statements per event, so a change to the server's
//! SQL shows in one run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StrategyResult;
use super::table::{Cell, Column, Table};

/// Counters kept in `report.json` beyond the table's columns.
const KEPT_TOO: &[&str] = &["Com_begin", "Com_stmt_prepare"];

/// The counters read, by their `SHOW GLOBAL STATUS` names: every column's, and [`KEPT_TOO`].
pub fn counters() -> Vec<&'static str> {
    COLUMNS.iter().flat_map(|(_, names)| names.iter().copied()).chain(KEPT_TOO.iter().copied()).collect()
}

/// The handler calls that read a row (an index lookup, a step along an index or a table scan).
const ROW_READS: &[&str] = &[
    "Handler_read_first",
    "Handler_read_key",
    "Handler_read_last",
    "Handler_read_next",
    "Handler_read_prev",
    "Handler_read_rnd",
    "Handler_read_rnd_next",
];

/// The database's work over one strategy's load and drain (every client of the database:
/// the instances, and the harness's own few reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatabaseWork {
    /// Events the driver caused over the measured span: what the counts are divided by.
    pub events: u64,
    /// Each counter's increase over the span, by its `SHOW GLOBAL STATUS` name.
    pub counters: BTreeMap<String, u64>,
}

impl DatabaseWork {
    /// The increase of each counter from `before` to `after` (a counter missing from either,
    /// or that went down because the server restarted, is left out).
    pub fn between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, events: u64) -> Self {
        let counters = after
            .iter()
            .filter_map(|(name, a)| before.get(name).and_then(|b| a.checked_sub(*b)).map(|d| (name.clone(), d)))
            .collect();
        Self { events, counters }
    }

    fn count(&self, names: &[&str]) -> Option<u64> {
        let found: Vec<u64> = names.iter().filter_map(|n| self.counters.get(*n).copied()).collect();
        (!found.is_empty()).then(|| found.iter().sum())
    }

    /// `names`' total increase per event.
    pub fn per_event(&self, names: &[&str]) -> Option<f64> {
        (self.events > 0).then_some(())?;
        self.count(names).map(|n| n as f64 / self.events as f64)
    }
}

/// The columns: (header, counters summed).
const COLUMNS: &[(&str, &[&str])] = &[
    ("statements", &["Questions"]),
    ("SELECT", &["Com_select"]),
    ("INSERT", &["Com_insert", "Com_insert_select"]),
    ("UPDATE", &["Com_update", "Com_update_multi"]),
    ("DELETE", &["Com_delete", "Com_delete_multi"]),
    ("COMMIT", &["Com_commit"]),
    ("ROLLBACK", &["Com_rollback"]),
    ("fsyncs", &["Innodb_data_fsyncs"]),
    ("row lock waits", &["Innodb_row_lock_waits"]),
    ("row lock ms", &["Innodb_row_lock_time"]),
    ("rows read", ROW_READS),
    ("rows written", &["Handler_write", "Handler_update", "Handler_delete"]),
];

/// One row per strategy whose run measured its database work; `None` when none did.
pub fn table(results: &[StrategyResult]) -> Option<Table> {
    let measured: Vec<(usize, &StrategyResult, &DatabaseWork)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.database.as_ref().filter(|d| d.events > 0).map(|d| (i, r, d)))
        .collect();
    if measured.is_empty() {
        return None;
    }
    let mut columns = vec![Column::text("strategy"), Column::figure("events")];
    columns.extend(COLUMNS.iter().map(|(header, _)| Column::figure(header)));
    let mut t = Table::new("per event caused", columns).in_section(
        "Database work",
        "MariaDB's counters (SHOW GLOBAL STATUS) from the start of the load to the end of its drain, divided by the \
         events caused: statements of every client, InnoDB fsyncs, waits for a row lock and the milliseconds they \
         took, rows read and written (handler calls). The counts do not move with the machine's noise: a change to \
         the server's SQL shows in one run.",
    );
    for (i, r, d) in measured {
        let mut cells = vec![Cell::Text(r.strategy.clone()), Cell::Count(d.events)];
        cells.extend(COLUMNS.iter().map(|(_, names)| match d.per_event(names) {
            Some(v) => Cell::Number(v, 2),
            None => Cell::Text("-".into()),
        }));
        t.push(Some(i), cells);
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::result;

    fn counters(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
    }

    #[test]
    fn every_counter_is_read_once() {
        let all = super::counters();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "{all:?}");
        assert!(all.contains(&"Questions") && all.contains(&"Handler_read_rnd_next") && all.contains(&"Com_begin"));
    }

    #[test]
    fn work_is_each_counters_increase_per_event() {
        let before = counters(&[("Questions", 1_000), ("Com_insert", 10), ("Com_insert_select", 5), ("Uptime", 9)]);
        let after = counters(&[("Questions", 3_000), ("Com_insert", 210), ("Com_insert_select", 105), ("Uptime", 3)]);
        let work = DatabaseWork::between(&before, &after, 100);
        assert_eq!(work.per_event(&["Questions"]), Some(20.0));
        assert_eq!(work.per_event(&["Com_insert", "Com_insert_select"]), Some(3.0));
        // A counter that went down (a restarted server) is not a negative amount of work.
        assert_eq!(work.per_event(&["Uptime"]), None);
        assert_eq!(work.per_event(&["Com_update"]), None);
        assert_eq!(DatabaseWork::between(&before, &after, 0).per_event(&["Questions"]), None);
    }

    #[test]
    fn the_table_has_a_row_per_measured_strategy() {
        let mut outbox = result("outbox");
        outbox.database = Some(DatabaseWork {
            events: 200,
            counters: counters(&[("Questions", 2_400), ("Com_commit", 400), ("Innodb_row_lock_waits", 500)]),
        });
        let unmeasured = result("rabbitmq");
        assert!(table(std::slice::from_ref(&unmeasured)).is_none());
        let t = table(&[unmeasured, outbox]).unwrap();
        assert_eq!(t.rows.len(), 1);
        let text = t.to_text();
        assert!(text.contains("outbox"), "{text}");
        assert!(text.contains("12.00") && text.contains("2.00") && text.contains("2.50"), "{text}");
    }
}
