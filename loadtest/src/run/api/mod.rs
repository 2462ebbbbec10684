//! The API capacity run for one delivery strategy: accounts and a friend graph are built
//! through the API, rental items are listed, then the scenario's weighted transactions run for
//! `duration_s`, in one of two ways:
//!
//! * closed loop ([`goose`]): `users` goose users, each logged in as one account on one
//!   instance, each sending its next request when the last one answered (after a think time).
//!   A slow server slows the load itself, so goose's coordinated-omission mitigation back-fills
//!   the requests a stalled user did not send; the report says which percentiles are corrected.
//! * open loop ([`open`], `arrival_rate_per_s`): requests start on a fixed schedule whatever
//!   the answers, latency counts from each request's intended start, and requests that could
//!   not start on time are counted: what a crowd of independent clients does to a server.
//!
//! The strategy matters to the write path: `POST /diaries` stores the friends' notifications
//! and hands them to the delivery strategy (in the transaction for `outbox`, after the commit
//! for the others), so the same load shows what each costs the API.

mod goose;
mod open;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;

use super::stage::Stage;
use super::world::World;
use super::{RunContext, StrategyRun};
use crate::infra::unique_name;
use crate::probe::api::ApiClient;
use crate::scenario::{ApiLoad, Delivery, Strategy};

const SETUP_CONCURRENCY: usize = 16;

/// Words of the items listed and of the search queries, so searches find something.
const WORDS: [&str; 12] = [
    "tent",
    "drill",
    "camera",
    "bicycle",
    "projector",
    "ladder",
    "stroller",
    "kayak",
    "guitar",
    "speaker",
    "캠핑",
    "드릴",
];

/// An account and the instance its requests go to.
#[derive(Debug, Clone)]
struct Login {
    token: String,
    base: String,
}

/// One request of a transaction: `POST /diaries` and the status that counts as success.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    post: bool,
    path: String,
    /// The endpoint it is counted under, without the query.
    name: &'static str,
    body: Option<serde_json::Value>,
    expect: u16,
}

/// The request of transaction `name`, the `n`-th of the run.
fn call_of(name: &str, n: u64) -> Call {
    match name {
        "write_diary" => Call {
            post: true,
            path: "/diaries".into(),
            name: "/diaries",
            body: Some(json!({
                "title": format!("load {n}"),
                "content": "a day under load",
                "emotion": "calm",
                "visibility": "friends",
            })),
            expect: 201,
        },
        "read_diaries" => Call {
            post: false,
            path: "/diaries?scope=friends&limit=20".into(),
            name: "/diaries",
            body: None,
            expect: 200,
        },
        "notifications" => Call {
            post: false,
            path: "/notifications?limit=20".into(),
            name: "/notifications",
            body: None,
            expect: 200,
        },
        _ => {
            let word = WORDS[n as usize % WORDS.len()];
            Call {
                post: false,
                path: format!("/rentals/search?q={}&limit=10", urlencode(word)),
                name: "/rentals/search",
                body: None,
                expect: 200,
            }
        }
    }
}

pub async fn run(ctx: &RunContext<'_>, load: &ApiLoad, delivery: Delivery) -> anyhow::Result<StrategyRun> {
    let scn = ctx.scenario;
    let strategy = Strategy::from(delivery);
    let mut settings = delivery.server_settings();
    settings.extend([("SERVER_AI_ENABLED", "false"), ("SERVER_EMBEDDER", "hashing")]);
    let stage = Stage::start(ctx, strategy, &settings).await?;
    let bases = stage.bases.clone();
    let api = ApiClient::new(reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?);
    let how = match load.arrival_rate_per_s {
        Some(rate) => format!("{rate} requests/s on a fixed schedule, at most {} in flight", load.users),
        None => format!("{} goose users", load.users),
    };
    eprintln!(
        "[{}] {} accounts, {} friends each, {} items; then {how} for {} s",
        strategy.as_str(),
        load.accounts,
        load.friends_per_user,
        load.items,
        load.duration_s
    );
    let tag = unique_name(strategy.as_str());
    let world =
        World::build(&api, &bases, &tag, load.accounts as usize, load.friends_per_user as usize, 0, scn.seed).await?;
    list_items(&api, &bases, &world, load.items).await?;
    let logins: Arc<Vec<Login>> = Arc::new(
        world
            .users
            .iter()
            .enumerate()
            .map(|(i, u)| Login { token: u.token.clone(), base: bases[i % bases.len()].clone() })
            .collect(),
    );

    let result = match load.arrival_rate_per_s {
        Some(rate) => open::run(strategy, load, rate, logins, scn.seed).await,
        None => {
            let report = format!("goose-{}.html", strategy.as_str());
            goose::run(strategy, load, &bases[0], logins, &ctx.report_dir, report).await
        }
    };
    let timeline = stage.stop().await?;
    let mut result = result?;
    let counts = result.api.as_ref().expect("the runners set the api counts");
    eprintln!(
        "[{}] {} requests, {} failed, {:.1}/s, p99 {:.1} ms",
        strategy.as_str(),
        counts.requests,
        counts.failures,
        result.throughput_per_s,
        result.latency_us.p99 as f64 / 1000.0
    );
    result.timeline = Some(timeline);
    Ok(StrategyRun { result, faults: Vec::new() })
}

/// Items owned by the first accounts, titled with [`WORDS`] so that searches find them.
async fn list_items(api: &ApiClient, bases: &[String], world: &World, items: u32) -> anyhow::Result<()> {
    let made = futures::stream::iter(0..items as usize)
        .map(|i| {
            let owner = &world.users[i % world.users.len()];
            let base = &bases[i % bases.len()];
            let word = WORDS[i % WORDS.len()];
            async move { api.create_rental(base, owner, &format!("{word} {i}"), &format!("A {word} to lend")).await }
        })
        .buffer_unordered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    made.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_weighted_transactions_run_and_search_words_are_encoded() {
        let mix = crate::scenario::ApiMix { write_diary: 2, read_diaries: 0, notifications: 1, search: 0 };
        assert_eq!(mix.weighted(), vec![("write_diary", 2), ("notifications", 1)]);
        assert_eq!(urlencode("캠핑"), "%EC%BA%A0%ED%95%91");
        assert_eq!(urlencode("tent"), "tent");
        assert_eq!(call_of("search", 10).path, "/rentals/search?q=%EC%BA%A0%ED%95%91&limit=10");
        let write = call_of("write_diary", 3);
        assert!(write.post && write.expect == 201 && write.body.is_some());
    }
}
