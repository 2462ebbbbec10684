//! The world a fan-out run builds through the public API: users, a seeded friend graph,
//! and who holds an SSE stream. Expected notifications are derived from this graph, never
//! from what the server answers.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};

use crate::probe::api::{ApiCallError, ApiClient, User};

/// Requests in flight while building the world.
const SETUP_CONCURRENCY: usize = 16;

/// Signs up and logs in `n` users `<prefix>-<i>@load.test`, spread over `bases` round robin;
/// in order.
pub async fn sign_up(api: &ApiClient, bases: &[String], prefix: &str, n: usize) -> Result<Vec<User>, ApiCallError> {
    futures::stream::iter(0..n)
        .map(|i| {
            let base = &bases[i % bases.len()];
            let email = format!("{prefix}-{i}@load.test");
            async move { api.signup_and_login(base, &email, &format!("user {i}")).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct World {
    pub users: Vec<User>,
    /// friends[i]: indexes of user i's friends.
    pub friends: Vec<Vec<usize>>,
    /// Users 0..sse_clients hold a stream.
    pub sse_clients: usize,
}

impl World {
    /// Signs up `users` users (spread over `bases`) and makes each befriend
    /// `friends_per_user` random others (an undirected graph, seeded).
    pub async fn build(
        api: &ApiClient,
        bases: &[String],
        run_tag: &str,
        users: usize,
        friends_per_user: usize,
        sse_clients: usize,
        seed: u64,
    ) -> Result<World, ApiCallError> {
        let users = sign_up(api, bases, &format!("u.{run_tag}"), users).await?;

        let mut rng = StdRng::seed_from_u64(seed);
        let mut edges = BTreeSet::new();
        for a in 0..users.len() {
            for b in sample(&mut rng, users.len() - 1, friends_per_user.min(users.len() - 1)) {
                let b = if b >= a { b + 1 } else { b };
                edges.insert((a.min(b), a.max(b)));
            }
        }
        let users = Arc::new(users);
        let results = futures::stream::iter(edges.iter().copied().enumerate())
            .map(|(n, (a, b))| {
                let users = users.clone();
                let base = bases[n % bases.len()].clone();
                async move { api.befriend(&base, &users[a], &users[b]).await }
            })
            .buffer_unordered(SETUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        results.into_iter().collect::<Result<Vec<_>, _>>()?;
        let mut friends = vec![Vec::new(); users.len()];
        for (a, b) in edges {
            friends[a].push(b);
            friends[b].push(a);
        }
        let users = Arc::try_unwrap(users).unwrap_or_else(|shared| (*shared).clone());
        let sse_clients = sse_clients.min(friends.len());
        Ok(World { users, friends, sse_clients })
    }

    pub fn has_stream(&self, user: usize) -> bool {
        user < self.sse_clients
    }

    /// A random user with at least one friend.
    pub fn random_author(&self, rng: &mut impl Rng) -> usize {
        loop {
            let u = rng.random_range(0..self.users.len());
            if !self.friends[u].is_empty() {
                return u;
            }
        }
    }
}
