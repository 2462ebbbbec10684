//! Repeated runs (`loadtest run --repeat N`): each strategy's figures over the rounds, as the
//! median, the lowest and the highest, so that a reader (and `loadtest compare`) can tell a
//! difference between strategies or between runs from the machine's own noise.

use serde::{Deserialize, Serialize};

use super::StrategyResult;
use super::columns;
use super::table::{Cell, Column, Sense, Table};
use crate::scenario::Kind;

/// One figure of one strategy over every round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub strategy: String,
    /// The column of the kind's main table (`p99 ms`).
    pub figure: String,
    pub sense: Sense,
    /// Round by round.
    pub values: Vec<f64>,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Every numeric figure of the main table, per strategy, over `rounds`.
pub fn of(kind: Kind, rounds: &[Vec<StrategyResult>]) -> Vec<Spread> {
    let tables: Vec<Table> =
        rounds.iter().filter_map(|round| (columns::view(kind).tables)(round).into_iter().next()).collect();
    let Some(first) = tables.first() else { return Vec::new() };
    let mut out = Vec::new();
    for row in &first.rows {
        let strategy = row.cells[0].plain();
        for (i, column) in first.columns.iter().enumerate() {
            let values: Vec<f64> = tables
                .iter()
                .filter_map(|t| t.rows.iter().find(|r| r.cells[0].plain() == strategy))
                .filter_map(|r| r.cells.get(i).and_then(Cell::value))
                .collect();
            if values.len() != tables.len() {
                continue;
            }
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            out.push(Spread {
                strategy: strategy.clone(),
                figure: column.header.clone(),
                sense: column.sense,
                median: median(&values),
                min,
                max,
                values,
            });
        }
    }
    out
}

/// The figures that mean something (invariants, latencies, throughputs) over the rounds.
pub fn table(spread: &[Spread]) -> Option<Table> {
    let judged: Vec<&Spread> = spread.iter().filter(|s| s.sense != Sense::Neutral).collect();
    let rounds = judged.first()?.values.len();
    let mut t = Table::new(
        format!("{rounds} runs of each strategy"),
        vec![
            Column::text("strategy"),
            Column::text("figure"),
            Column::figure("median"),
            Column::figure("min"),
            Column::figure("max"),
            Column::figure("spread % of median"),
            Column::text("round by round"),
        ],
    )
    .in_section("Repeated runs", "Each figure over every round; the verdict counts a limit failed in any round.");
    for s in judged {
        let spread =
            if s.median != 0.0 { Cell::Number((s.max - s.min) / s.median * 100.0, 1) } else { Cell::Text("-".into()) };
        let rounds: Vec<String> = s.values.iter().map(|v| format!("{v:.2}")).collect();
        t.push(
            None,
            vec![
                Cell::Text(s.strategy.clone()),
                Cell::Text(s.figure.clone()),
                Cell::Number(s.median, 2),
                Cell::Number(s.min, 2),
                Cell::Number(s.max, 2),
                spread,
                Cell::Text(rounds.join(" ")),
            ],
        );
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::result;

    #[test]
    fn each_figure_has_its_median_and_range_over_the_rounds() {
        let round = |p99: u64, lost: u64| {
            let mut r = result("rabbitmq");
            (r.latency_us.p99, r.lost, r.expected) = (p99, lost, 100);
            vec![r]
        };
        let s = of(Kind::Fanout, &[round(10_000, 0), round(30_000, 0), round(20_000, 1)]);
        let p99 = s.iter().find(|s| s.figure == "p99 ms").unwrap();
        assert_eq!((p99.median, p99.min, p99.max), (20.0, 10.0, 30.0));
        assert_eq!(p99.values, [10.0, 30.0, 20.0]);
        let lost = s.iter().find(|s| s.figure == "lost").unwrap();
        assert_eq!((lost.median, lost.max, lost.sense), (0.0, 1.0, Sense::Violation));
        let t = table(&s).unwrap();
        assert_eq!(t.title, "3 runs of each strategy");
        assert!(t.to_text().contains("10.00 30.00 20.00"), "{}", t.to_text());
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_capacity_run_gives_the_median_share_of_its_rounds_yardsticks() {
        let round = |pct: Option<f64>| {
            let mut r = result("outbox");
            r.sustained = Some(crate::report::Sustained { events_per_s: 700.0, delivered_per_s: 4_200.0, p99_us: 1 });
            r.single_instance_share_pct = pct;
            vec![r]
        };
        let s = of(Kind::Capacity, &[round(Some(83.0)), round(Some(64.0)), round(Some(91.0))]);
        let share = s.iter().find(|s| s.figure == "% of one instance").expect("the share is a figure");
        assert_eq!((share.median, share.min, share.max, share.sense), (83.0, 64.0, 91.0, Sense::HigherIsBetter));
        assert!(s.iter().any(|s| s.figure == "sustained/s" && s.median == 4_200.0), "{s:?}");
        // A round without a share (its yardstick found no limit) leaves no median to mislead.
        let s = of(Kind::Capacity, &[round(Some(83.0)), round(None)]);
        assert!(!s.iter().any(|s| s.figure == "% of one instance"), "{s:?}");
    }
}
