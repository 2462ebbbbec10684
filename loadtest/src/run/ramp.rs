//! The policy of a capacity ramp, shared by the kinds that ramp (capacity, chat): which rate
//! comes next, when the ramp stops, which step is the sustained one, and how that reads in the
//! report. Each runner drives its own steps and judges them; this decides the rest.

use crate::report::{RampStep, Sustained, text};
use crate::scenario::Ramp;

/// What a kind's ramp offers and what it counts, for messages: `("events", "notifications")`.
pub type Units = (&'static str, &'static str);

pub struct Ramping<'a> {
    ramp: &'a Ramp,
    label: String,
    units: Units,
    rate: f64,
    stopped: bool,
    pub steps: Vec<RampStep>,
    pub sustained: Option<Sustained>,
}

impl<'a> Ramping<'a> {
    /// A ramp from `start` per second; `label` prefixes the progress lines (the strategy).
    pub fn new(ramp: &'a Ramp, start: f64, label: impl Into<String>, units: Units) -> Self {
        Self { ramp, label: label.into(), units, rate: start, stopped: false, steps: Vec::new(), sustained: None }
    }

    /// The rate of the next step; `None` when the ramp is over.
    pub fn next_rate(&self) -> Option<f64> {
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
        if step.sustained {
            self.sustained = Some(Sustained {
                events_per_s: rate,
                delivered_per_s: step.delivered_per_s,
                p99_us: step.latency_us.p99,
            });
        }
        let stop = (!step.sustained && !self.ramp.continue_after_failure) || rate >= self.ramp.max_rate_per_s;
        self.steps.push(step);
        self.stopped |= stop;
        self.rate = (rate * self.ramp.factor).min(self.ramp.max_rate_per_s);
    }

    /// What the ramp found, for the result's notes.
    pub fn note(&self) -> String {
        let (offered, delivered) = self.units;
        match (&self.sustained, self.steps.iter().find(|s| !s.sustained)) {
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
