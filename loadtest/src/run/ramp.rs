//! The policy of a capacity ramp, shared by the kinds that ramp (capacity, chat): which rate
//! comes next, when the ramp stops, which step is the sustained one, and how that reads in the
//! report. Each runner drives its own steps and judges them; this decides the rest.

use crate::report::{RampStep, StrategyResult, Sustained, text};
use crate::scenario::{BISECT_PRECISION, Ramp};

/// What a kind's ramp offers and what it counts, for messages: `("events", "notifications")`.
pub type Units = (&'static str, &'static str);

pub struct Ramping<'a> {
    ramp: &'a Ramp,
    label: String,
    units: Units,
    rate: f64,
    stopped: bool,
    /// After the first failure: the highest sustained rate and the lowest failed one, and the
    /// bisection steps left.
    bisect: Option<(f64, f64, u32)>,
    pub steps: Vec<RampStep>,
    pub sustained: Option<Sustained>,
}

impl<'a> Ramping<'a> {
    /// A ramp from `start` per second; `label` prefixes the progress lines (the strategy).
    pub fn new(ramp: &'a Ramp, start: f64, label: impl Into<String>, units: Units) -> Self {
        Self {
            ramp,
            label: label.into(),
            units,
            rate: start,
            stopped: false,
            bisect: None,
            steps: Vec::new(),
            sustained: None,
        }
    }

    /// The rate of the next step; `None` when the ramp is over.
    pub fn next_rate(&self) -> Option<f64> {
        if let Some((low, high, left)) = self.bisect {
            return (left > 0 && (high - low) / low > BISECT_PRECISION).then_some((low + high) / 2.0);
        }
        (!self.stopped && self.steps.len() < self.ramp.max_steps as usize).then_some(self.rate)
    }

    /// Records the step just run at [`next_rate`](Self::next_rate), and moves on: the next rate
    /// is `factor` times faster, up to `max_rate_per_s`; the ramp stops after the first step
    /// not sustained (unless `continue_after_failure`) or at the top rate.
    pub fn record(&mut self, step: RampStep) {
        let rate = step.offered_per_s;
        eprintln!(
            "[{}] step {rate:>7.1} {}/s: delivered {:>7.1}/s, lost {}, p99 {} ms: {}",
            self.label,
            self.units.0,
            step.delivered_per_s,
            step.lost,
            text::ms(step.latency_us.p99),
            if step.sustained { "sustained" } else { step.verdict.as_str() }
        );
        // The fastest step sustained, wherever it came in the ramp.
        if step.sustained && self.sustained.as_ref().is_none_or(|s| rate > s.events_per_s) {
            self.sustained = Some(Sustained {
                events_per_s: rate,
                delivered_per_s: step.delivered_per_s,
                p99_us: step.latency_us.p99,
            });
        }
        let sustained = step.sustained;
        self.steps.push(step);
        if let Some((low, high, left)) = self.bisect {
            self.bisect = Some(if sustained { (rate, high, left - 1) } else { (low, rate, left - 1) });
            return;
        }
        let failed_here = !sustained && !self.ramp.continue_after_failure;
        // The first failure after a sustained step: narrow the limit down between the two.
        if failed_here
            && self.ramp.bisect_steps > 0
            && let Some(s) = &self.sustained
        {
            self.bisect = Some((s.events_per_s, rate, self.ramp.bisect_steps));
            return;
        }
        self.stopped |= failed_here || rate >= self.ramp.max_rate_per_s;
        self.rate = (rate * self.ramp.factor).min(self.ramp.max_rate_per_s);
    }

    /// Whether the steps from now on bisect (for the report's step column).
    pub fn bisecting(&self) -> bool {
        self.bisect.is_some()
    }

    /// What the ramp found, for the result's notes.
    pub fn note(&self) -> String {
        let (offered, delivered) = self.units;
        // The slowest failed step above the sustained rate: the limit lies between the two.
        let above = |s: &&RampStep| self.sustained.as_ref().is_none_or(|x| s.offered_per_s > x.events_per_s);
        let next = self
            .steps
            .iter()
            .filter(|s| !s.sustained)
            .filter(above)
            .min_by(|a, b| a.offered_per_s.total_cmp(&b.offered_per_s));
        match (&self.sustained, next) {
            (Some(s), Some(next)) => format!(
                "sustained without loss: {:.0} {offered}/s = {:.0} {delivered}/s (p99 {} ms); {:.0} {offered}/s was not: {}",
                s.events_per_s,
                s.delivered_per_s,
                text::ms(s.p99_us),
                next.offered_per_s,
                next.verdict
            ),
            (Some(s), None) => format!(
                "sustained every step up to the ramp's end: {:.0} {offered}/s = {:.0} {delivered}/s (p99 {} ms); raise \
                 ramp.max_rate_per_s to find the limit",
                s.events_per_s,
                s.delivered_per_s,
                text::ms(s.p99_us)
            ),
            (None, Some(first)) => {
                format!("not sustained even at {:.0} {offered}/s: {}", first.offered_per_s, first.verdict)
            }
            (None, None) => "no step ran".to_string(),
        }
    }
}

/// Whether `steps` found a limit above `sustained`: a step faster than it failed. When none
/// did, the ramp ended (its top rate or its step count) with everything sustained, and the
/// sustained rate is only a lower bound of the limit.
pub fn limit_found(steps: &[RampStep], sustained: &Sustained) -> bool {
    steps.iter().any(|s| !s.sustained && s.offered_per_s > sustained.events_per_s)
}

/// Puts `result`'s sustained rate against its round's single-instance yardstick (the same ramp
/// on one instance with `local` delivery): a note with the yardstick's ceiling and the share,
/// and [`StrategyResult::single_instance_share_pct`] when the yardstick found its limit. A
/// yardstick that sustained every step of the ramp has not found its ceiling: its rate is a
/// floor, a share of it only a bound from above, and there is no share to judge. Nothing when
/// the yardstick sustained no step.
pub fn against_yardstick(result: &mut StrategyResult, yardstick: &StrategyResult) {
    let Some(one) = &yardstick.sustained else { return };
    let found = limit_found(&yardstick.ramp, one);
    let pct = result.sustained.as_ref().map(|s| 100.0 * s.delivered_per_s / one.delivered_per_s.max(f64::EPSILON));
    result.single_instance_share_pct = found.then(|| pct.unwrap_or(0.0));
    let share = match pct {
        Some(pct) => format!("{}{pct:.0}% of it", if found { "" } else { "at most " }),
        None => "no step sustained".to_string(),
    };
    let (floor, top) = if found {
        ("", "")
    } else {
        ("at least ", " at the top of the ramp, which found no limit: raise ramp.max_rate_per_s to find it")
    };
    result.notes.push(format!(
        "single-instance ceiling (one instance, local delivery, the same ramp): {floor}{:.0} events/s = \
         {:.0} notifications/s (p99 {} ms){top}; {share}",
        one.events_per_s,
        one.delivered_per_s,
        text::ms(one.p99_us)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(bisect_steps: u32) -> Ramp {
        Ramp {
            factor: 1.5,
            max_rate_per_s: 10_000.0,
            max_steps: 10,
            step_drain_s: 1.0,
            max_p99_ms: 100.0,
            continue_after_failure: false,
            bisect_steps,
            yardstick: None,
        }
    }

    fn step(rate: f64, limit: f64) -> RampStep {
        RampStep {
            offered_per_s: rate,
            sustained: rate <= limit,
            verdict: if rate <= limit { String::new() } else { "p99 too high".into() },
            ..RampStep::default()
        }
    }

    /// Runs a ramp against a system that sustains exactly `limit`.
    fn run(r: &Ramp, limit: f64) -> Ramping<'_> {
        let mut ramping = Ramping::new(r, 100.0, "t", ("events", "notifications"));
        while let Some(rate) = ramping.next_rate() {
            ramping.record(step(rate, limit));
        }
        ramping
    }

    #[test]
    fn after_the_first_failure_the_limit_is_bisected_to_within_five_percent() {
        let r = ramp(4);
        let done = run(&r, 1_300.0);
        let rates: Vec<f64> = done.steps.iter().map(|s| s.offered_per_s).collect();
        // x1.5: 100 .. 1139.1 sustained (7 steps), 1708.6 failed; then 4 halve the gap.
        assert_eq!(rates.len(), 8 + 4, "{rates:?}");
        assert!(done.steps[8..].iter().all(|s| s.offered_per_s > 1_139.0 && s.offered_per_s < 1_709.0));
        let found = done.sustained.as_ref().unwrap().events_per_s;
        let failed = done.steps.iter().filter(|s| !s.sustained).map(|s| s.offered_per_s).fold(f64::MAX, f64::min);
        assert!(found <= 1_300.0 && (failed - found) / found <= 0.05, "{found} .. {failed}: {rates:?}");
        assert!(done.note().contains(&format!("{found:.0} events/s")), "{}", done.note());
    }

    #[test]
    fn a_ramp_that_never_failed_found_no_limit() {
        let r = Ramp { max_rate_per_s: 400.0, ..ramp(4) };
        let done = run(&r, 1_000.0);
        let sustained = done.sustained.as_ref().unwrap();
        assert_eq!(sustained.events_per_s, 400.0);
        assert!(!limit_found(&done.steps, sustained));
        assert!(done.note().contains("raise ramp.max_rate_per_s"), "{}", done.note());
        let r = ramp(4);
        let done = run(&r, 300.0);
        assert!(limit_found(&done.steps, done.sustained.as_ref().unwrap()));
    }

    #[test]
    fn without_bisection_the_ramp_stops_at_the_first_failure() {
        let r = ramp(0);
        let done = run(&r, 1_300.0);
        assert_eq!(done.steps.len(), 8);
        assert_eq!(done.sustained.unwrap().events_per_s, 100.0 * 1.5f64.powi(6));
    }

    #[test]
    fn a_share_of_the_yardstick_is_judged_only_when_the_yardstick_found_its_limit() {
        let r = ramp(4);
        let yardstick = |limit: f64| {
            let done = run(&r, limit);
            let mut y = crate::report::tests::result("local");
            y.sustained = done.sustained.map(|s| Sustained { delivered_per_s: s.events_per_s * 6.0, ..s });
            y.ramp = done.steps;
            y
        };
        let strategy = |events: Option<f64>| {
            let mut s = crate::report::tests::result("rabbitmq");
            s.sustained = events.map(|e| Sustained { events_per_s: e, delivered_per_s: e * 6.0, p99_us: 40_000 });
            s
        };
        // The yardstick failed above its ceiling: a share to judge, 0 for a strategy that
        // sustained nothing.
        let found = yardstick(1_300.0);
        let one = found.sustained.as_ref().unwrap().events_per_s;
        let mut half = strategy(Some(one / 2.0));
        against_yardstick(&mut half, &found);
        assert_eq!(half.single_instance_share_pct, Some(50.0));
        assert!(half.notes[0].ends_with("; 50% of it"), "{:?}", half.notes);
        let mut none = strategy(None);
        against_yardstick(&mut none, &found);
        assert_eq!(none.single_instance_share_pct, Some(0.0));
        assert!(none.notes[0].ends_with("; no step sustained"), "{:?}", none.notes);
        // A yardstick that sustained the whole ramp gives a bound, not a share.
        let floor = yardstick(f64::MAX);
        let mut bound = strategy(Some(100.0));
        against_yardstick(&mut bound, &floor);
        assert_eq!(bound.single_instance_share_pct, None);
        assert!(bound.notes[0].contains("at least ") && bound.notes[0].contains("at most "), "{:?}", bound.notes);
        // A yardstick that sustained nothing says nothing.
        let mut alone = strategy(Some(100.0));
        against_yardstick(&mut alone, &strategy(None));
        assert!(alone.notes.is_empty() && alone.single_instance_share_pct.is_none());
    }
}
