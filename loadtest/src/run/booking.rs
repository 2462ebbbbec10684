//! The booking race for one approval guard: owners list items, requesters ask for
//! overlapping dates, then every request is approved at once over all instances. Whatever
//! the API answers, the database must never hold two approved reservations of one item on
//! overlapping days; read-only SQL counts the overlaps, and every approval the API answered
//! 2xx must be approved in the database (and no other).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::stage::Stage;
use super::world::sign_up;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::ledger::{latency_histogram, percentiles};
use crate::probe::api::ApiClient;
use crate::report::{BookingCounts, StrategyResult};
use crate::scenario::{BookingLoad, BookingMode, Strategy};

const SETUP_CONCURRENCY: usize = 32;

/// One reservation request as the harness made it.
#[derive(Debug, Clone, Copy)]
struct Request {
    id: u64,
    item: usize,
    start: NaiveDate,
    end: NaiveDate,
}

pub async fn run(ctx: &RunContext<'_>, booking: &BookingLoad, mode: BookingMode) -> anyhow::Result<StrategyRun> {
    let scn = ctx.scenario;
    // The item's booking version, or no guard at all (the control group).
    // The control group waits 50 ms between its look and its write, as code with other reads
    // there would: overlapping approvals sent together then race in every run.
    let (strategy, guard, gap) = match mode {
        BookingMode::Optimistic => (Strategy::Optimistic, "version", "0"),
        BookingMode::Naive => (Strategy::Naive, "none", "50"),
    };
    let settings =
        [("SERVER_AI_ENABLED", "false"), ("SERVER_BOOKING_GUARD", guard), ("SERVER_BOOKING_CHECK_GAP_MS", gap)];
    let stage = Stage::start(ctx, strategy, &settings).await?;
    let bases = stage.bases.clone();
    let api = ApiClient::new(
        reqwest::Client::builder()
            .pool_max_idle_per_host(booking.in_flight as usize)
            .timeout(Duration::from_secs(30))
            .build()?,
    );
    let tag = unique_name(strategy.as_str());
    let mut rng = StdRng::seed_from_u64(scn.seed);

    eprintln!(
        "[{}] {} items, {} requesters, {} requests per item",
        strategy.as_str(),
        booking.items,
        booking.requesters,
        booking.requests_per_item
    );
    let owners = sign_up(&api, &bases, &format!("owner-{tag}"), booking.items.div_ceil(5) as usize).await?;
    let requesters = sign_up(&api, &bases, &format!("req-{tag}"), booking.requesters as usize).await?;
    let items: Vec<(u64, usize)> = futures::stream::iter(0..booking.items as usize)
        .map(|i| {
            let (api, base, owners) = (&api, bases[i % bases.len()].clone(), &owners);
            let owner = i % owners.len();
            async move {
                let id =
                    api.create_rental(&base, &owners[owner], &format!("Item {i}"), "Booked by many at once").await?;
                Ok::<_, anyhow::Error>((id, owner))
            }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;

    // Requests: random requesters, overlapping dates within the window.
    let tomorrow = Utc::now().date_naive() + Days::new(1);
    let plan: Vec<(usize, usize, NaiveDate, NaiveDate)> = (0..items.len())
        .flat_map(|item| (0..booking.requests_per_item).map(move |_| item))
        .map(|item| {
            let start = tomorrow + Days::new(rng.random_range(0..u64::from(booking.window_days)));
            let end = start + Days::new(rng.random_range(0..u64::from(booking.max_days)));
            (item, rng.random_range(0..requesters.len()), start, end)
        })
        .collect();
    let made = futures::stream::iter(plan.into_iter().enumerate())
        .map(|(n, (item, who, start, end))| {
            let (api, base, requesters, items) = (&api, bases[n % bases.len()].clone(), &requesters, &items);
            async move {
                let id = api
                    .request_reservation(&base, &requesters[who], items[item].0, &start.to_string(), &end.to_string())
                    .await?;
                Ok::<_, anyhow::Error>(Request { id, item, start, end })
            }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut requests: Vec<Request> = made.into_iter().collect::<Result<_, _>>()?;

    // The race: every request approved at once by its item's owner, on random instances.
    requests.shuffle(&mut rng);
    let picks: Vec<usize> = requests.iter().map(|_| rng.random_range(0..bases.len())).collect();
    eprintln!("[{}] approving {} requests, {} in flight", strategy.as_str(), requests.len(), booking.in_flight);
    let started = Instant::now();
    let answers: Vec<(Request, Result<(), u16>, Duration)> = futures::stream::iter(requests.iter().zip(picks))
        .map(|(r, pick)| {
            let (api, base, owner) = (&api, bases[pick].clone(), &owners[items[r.item].1]);
            async move {
                let sent = Instant::now();
                let answer = api.approve_reservation(&base, owner, r.id).await.map_err(|e| e.status().unwrap_or(0));
                (*r, answer, sent.elapsed())
            }
        })
        .buffer_unordered(booking.in_flight as usize)
        .collect()
        .await;
    let race_s = started.elapsed().as_secs_f64();
    let truth = stage.truth.clone();
    let timeline = stage.stop().await?;

    let mut latency = latency_histogram();
    let mut counts =
        BookingCounts { requests: requests.len() as u64, approvals: answers.len() as u64, ..Default::default() };
    let mut said_approved = HashSet::new();
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    for (r, answer, took) in &answers {
        latency.saturating_record(took.as_micros() as u64);
        match answer {
            Ok(()) => {
                counts.approved += 1;
                said_approved.insert(r.id);
            }
            Err(409) => counts.conflicts += 1,
            Err(status) => {
                counts.errors += 1;
                *errors.entry(*status).or_default() += 1;
            }
        }
    }
    let (overlaps, approved_in_db) = truth.approvals().await?;
    counts.overlaps = overlaps;
    counts.disagreements = said_approved.symmetric_difference(&approved_in_db).count() as u64;
    counts.max_possible = max_possible(&requests, items.len());

    let mut result = StrategyResult::without_notifications(
        strategy.as_str(),
        answers.len() as f64 / race_s.max(1e-9),
        percentiles(&latency),
    );
    result.notes.push(format!(
        "approved {} of {} requests ({} was the most possible without an overlap); {} answered 409",
        counts.approved, counts.requests, counts.max_possible, counts.conflicts
    ));
    if !errors.is_empty() {
        let by_status: Vec<String> = errors
            .iter()
            .map(|(s, n)| format!("{}: {n}", if *s == 0 { "no answer".into() } else { s.to_string() }))
            .collect();
        result.notes.push(format!("approvals answered neither 2xx nor 409: {}", by_status.join(", ")));
    }
    eprintln!(
        "[{}] approved {} conflicts {} errors {} overlaps {} disagreements {}",
        strategy.as_str(),
        counts.approved,
        counts.conflicts,
        counts.errors,
        counts.overlaps,
        counts.disagreements
    );
    result.booking = Some(counts);
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: Vec::new() })
}

/// Per item, the size of a largest set of pairwise non-overlapping requests (inclusive days):
/// earliest end first is optimal for interval scheduling.
fn max_possible(requests: &[Request], items: usize) -> u64 {
    let mut by_item: Vec<Vec<(NaiveDate, NaiveDate)>> = vec![Vec::new(); items];
    for r in requests {
        by_item[r.item].push((r.start, r.end));
    }
    by_item
        .iter_mut()
        .map(|spans| {
            spans.sort_by_key(|&(_, end)| end);
            let mut last_end: Option<NaiveDate> = None;
            spans
                .iter()
                .filter(|(start, end)| {
                    let fits = last_end.is_none_or(|last| *start > last);
                    if fits {
                        last_end = Some(*end);
                    }
                    fits
                })
                .count() as u64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(item: usize, start: u32, end: u32) -> Request {
        let d = |day: u32| NaiveDate::from_ymd_opt(2030, 1, day).unwrap();
        Request { id: 0, item, start: d(start), end: d(end) }
    }

    #[test]
    fn the_most_possible_approvals_is_a_maximum_set_of_disjoint_stays_per_item() {
        // Item 0: 1-3, 3-4 (shares day 3), 4-6, 7-7 -> 1-3, 4-6, 7-7. Item 1: one long stay.
        let requests = [req(0, 1, 3), req(0, 3, 4), req(0, 4, 6), req(0, 7, 7), req(1, 1, 20), req(1, 2, 3)];
        assert_eq!(max_possible(&requests, 2), 3 + 1);
        assert_eq!(max_possible(&[], 3), 0);
    }
}
