//! When a job fires: a fixed interval (`every 5s`, `every 5m`) or a cron expression with
//! seconds (`0 */5 * * * *`: sec min hour day-of-month month day-of-week [year]), in UTC.

use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveDateTime;

#[derive(Debug, Clone)]
pub enum Schedule {
    Every { text: String, period: Duration },
    Cron { text: String, schedule: Box<cron::Schedule> },
}

/// Intervals shorter than this would make every poll a firing.
const MIN_PERIOD: Duration = Duration::from_millis(100);

impl Schedule {
    /// Parses `every <n><ms|s|m|h>` or a cron expression; the error says what is accepted.
    pub fn parse(raw: &str) -> Result<Schedule, String> {
        let text = raw.trim().to_string();
        if let Some(rest) = text.strip_prefix("every ") {
            let period = parse_period(rest.trim()).ok_or_else(|| {
                format!("`{text}`: an interval is `every <n><unit>` with unit ms, s, m or h, e.g. `every 5s`")
            })?;
            if period < MIN_PERIOD {
                return Err(format!("`{text}`: the interval must be at least {} ms", MIN_PERIOD.as_millis()));
            }
            return Ok(Schedule::Every { text, period });
        }
        let schedule = cron::Schedule::from_str(&text).map_err(|e| {
            format!(
                "`{text}` is neither `every <n><ms|s|m|h>` nor a cron expression with seconds \
                 (sec min hour day-of-month month day-of-week [year], e.g. `0 */5 * * * *`): {e}"
            )
        })?;
        let parsed = Schedule::Cron { text: text.clone(), schedule: Box::new(schedule) };
        // A valid expression can still never fire again (`0 0 0 1 1 * 2001`): refuse it now
        // rather than keep a job that silently never runs.
        if parsed.next_after(chrono::Utc::now().naive_utc()).is_none() {
            return Err(format!("`{text}` has no future fire time"));
        }
        Ok(parsed)
    }

    pub fn text(&self) -> &str {
        match self {
            Schedule::Every { text, .. } | Schedule::Cron { text, .. } => text,
        }
    }

    /// The first fire time strictly after `t` (UTC), or `None` if there is none.
    pub fn next_after(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        match self {
            Schedule::Every { period, .. } => chrono::Duration::from_std(*period).ok().map(|d| t + d),
            Schedule::Cron { schedule, .. } => schedule.after(&t.and_utc()).next().map(|d| d.naive_utc()),
        }
    }

    /// Fire times in `(after, until]`, counted up to `cap`.
    pub fn count_between(&self, after: NaiveDateTime, until: NaiveDateTime, cap: u32) -> u32 {
        let mut n = 0;
        let mut t = after;
        while n < cap {
            match self.next_after(t) {
                Some(next) if next <= until => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

fn parse_period(raw: &str) -> Option<Duration> {
    let split = raw.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = raw.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn intervals_add_their_period() {
        let s = Schedule::parse("every 5m").unwrap();
        assert_eq!(s.next_after(at("2030-01-01 00:00:00.5")), Some(at("2030-01-01 00:05:00.5")));
        assert!(Schedule::parse("every 1s").is_ok());
        assert!(Schedule::parse("every 250ms").is_ok());
        for bad in ["every", "every 5", "every 5d", "every s", "every 10ms"] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cron_expressions_have_seconds() {
        let s = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(s.next_after(at("2030-01-01 00:00:01")), Some(at("2030-01-01 00:00:10")));
        assert_eq!(s.count_between(at("2030-01-01 00:00:00"), at("2030-01-01 00:01:00"), 100), 6);
        let err = Schedule::parse("61 * * * * *").unwrap_err();
        assert!(err.contains("cron expression with seconds"), "{err}");
        assert!(Schedule::parse("0 0 0 1 1 * 2001").unwrap_err().contains("no future fire time"));
    }
}
