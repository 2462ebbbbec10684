//! The embed worker pool: `embed_workers` workers on this instance, each looping claim ->
//! embed -> fenced commit (see [`super::claim`]), and the fault-injecting embedder wrapper.
//!
//! Idle workers sleep until the `embed-posts` job fires anywhere in the cluster (every
//! instance's scheduler sees the firing and ticks its pool) or is triggered; a worker that
//! claimed something claims again at once, so a backlog drains at full speed. Pausing the
//! job stops new claims on every instance; a batch in flight finishes.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::claim::{ClaimStrategy, ClaimedItem, Claimer, Outcome};
use crate::embed::{EmbedError, Embedder};
use crate::pause_point::{PausePoint, Point};

/// How the scheduler steers the pool: `paused` mirrors `job_schedules.paused` of
/// `embed-posts`; `tick` is bumped whenever a firing of it is seen.
#[derive(Debug, Clone)]
pub struct PoolControl {
    pub paused: watch::Sender<bool>,
    pub tick: watch::Sender<u64>,
}

impl PoolControl {
    pub fn new(paused: bool) -> Self {
        Self { paused: watch::Sender::new(paused), tick: watch::Sender::new(0) }
    }

    pub fn wake(&self) {
        self.tick.send_modify(|t| *t = t.wrapping_add(1));
    }
}

#[derive(Clone)]
pub struct EmbedPool {
    pub claimer: Claimer,
    pub embedder: Arc<dyn Embedder>,
    pub workers: u32,
    pub batch_size: u32,
    pub batch_timeout: Duration,
    pub control: PoolControl,
    /// When `embed-posts` has no schedule nothing ticks the pool: idle workers poll this often.
    pub idle_poll: Option<Duration>,
    /// Test-only: where SIGUSR1 may make this process stop itself (off unless set).
    pub pause: PausePoint,
}

/// The embed pool of this instance when posts are embedded inside the requests that write
/// them (`SERVER_EMBED_MODE=inline`); `None` in the default `batch` mode.
#[derive(Clone, Default)]
pub struct InlineEmbed(pub Option<EmbedPool>);

/// `embed_claims.worker` and `embed_attempts.worker` of the embeds done by requests (the
/// `inline` embed mode), told apart from the pool's workers 0, 1, ...
pub const INLINE_WORKER: u32 = u32::MAX;

/// What one worker step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub claimed: usize,
    pub committed: usize,
    pub fenced: usize,
    pub stale: usize,
    pub failed: usize,
}

/// Embeds up to `batch_size` claimable items now, on the caller's task, with a `skip-locked`
/// claim and fencing: for tests and one-off tools that must not wait for a worker's tick.
/// Returns how many embeddings were committed.
pub async fn embed_waiting(db: &sqlx::MySqlPool, embedder: Arc<dyn Embedder>, batch_size: u32) -> sqlx::Result<usize> {
    let pool = EmbedPool {
        claimer: Claimer {
            db: db.clone(),
            strategy: ClaimStrategy::SkipLocked,
            lease: Duration::from_secs(60),
            fencing: true,
            instance_id: "one-shot".to_string(),
        },
        embedder,
        workers: 1,
        batch_size,
        batch_timeout: Duration::from_secs(30),
        control: PoolControl::new(false),
        idle_poll: None,
        pause: PausePoint::off(),
    };
    Ok(pool.step(0).await?.committed)
}

impl EmbedPool {
    /// Runs the workers until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.workers == 0 {
            return;
        }
        tracing::info!(workers = self.workers, strategy = self.claimer.strategy.as_str(), "embed workers started");
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..self.workers {
            tasks.spawn(self.clone().worker(worker, shutdown.clone()));
        }
        while tasks.join_next().await.is_some() {}
        tracing::info!("embed workers stopped");
    }

    async fn worker(self, worker: u32, shutdown: CancellationToken) {
        let mut paused = self.control.paused.subscribe();
        let mut tick = self.control.tick.subscribe();
        loop {
            if *paused.borrow_and_update() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = paused.changed() => continue,
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            // A step in flight is finished, not abandoned, when the instance shuts down: it is
            // bounded by the embed timeout, and its claim is committed or released instead of
            // waiting out its lease. (Killed mid-step, its rows stay claimed until the lease
            // ends, and the token fences this worker out of them.)
            let step = self.step(worker).await;
            match step {
                Ok(step) if step.claimed > 0 => continue,
                Ok(_) => {}
                // Deadlocks between concurrent claims and a restarting database land here:
                // the next tick tries again.
                Err(e) => tracing::warn!(worker, error = %e, "embed step failed"),
            }
            let idle = async {
                match self.idle_poll {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.changed() => {}
                _ = paused.changed() => {}
                () = idle => {}
            }
        }
    }

    /// One claim and its processing: public so a test can drive a worker step by step.
    pub async fn step(&self, worker: u32) -> sqlx::Result<Step> {
        let claim = self.claimer.claim(worker, self.batch_size).await?;
        self.process(worker, claim).await
    }

    /// The `inline` embed mode: lists an item claimed under a hold and embeds it before
    /// returning, on a task of its own so that a client hanging up cannot leave the claim to
    /// its lease. The item is written whatever the embedder does; one it failed to embed is
    /// WAIT again, for the workers.
    pub async fn create_and_embed(
        &self,
        owner: u64,
        fields: crate::rental::RentalFields,
    ) -> Result<crate::rental::Rental, crate::error::ApiError> {
        let hold = self.claimer.hold();
        let item = crate::rental::create(&self.claimer.db, owner, fields, Some(&hold)).await?;
        let pool = self.clone();
        let embedded = tokio::spawn(async move {
            let claim = pool.claimer.claim_held(INLINE_WORKER, item.id, &hold.token).await?;
            pool.process(INLINE_WORKER, claim).await
        });
        self.after_inline(item.id, embedded).await
    }

    /// The `inline` embed mode after an edit: embeds the item now if it waits (its content
    /// changed), as [`EmbedPool::create_and_embed`] does.
    pub async fn embed_if_waiting(&self, id: u64) -> Result<crate::rental::Rental, crate::error::ApiError> {
        let pool = self.clone();
        let embedded = tokio::spawn(async move {
            let claim = pool.claimer.claim_item(INLINE_WORKER, id).await?;
            pool.process(INLINE_WORKER, claim).await
        });
        self.after_inline(id, embedded).await
    }

    async fn after_inline(
        &self,
        id: u64,
        embedded: tokio::task::JoinHandle<sqlx::Result<Step>>,
    ) -> Result<crate::rental::Rental, crate::error::ApiError> {
        match embedded.await {
            Ok(Ok(step)) if step.failed > 0 => {
                tracing::warn!(item = id, "the inline embed failed: the item waits for the embed workers")
            }
            Ok(Ok(_)) => {}
            // The item is written either way: its claim runs out and a worker embeds it.
            Ok(Err(e)) => tracing::warn!(item = id, error = %e, "the inline embed could not be written"),
            Err(e) => tracing::warn!(item = id, error = %e, "the inline embed task ended abnormally"),
        }
        crate::rental::get(&self.claimer.db, id).await
    }

    /// Embeds a claim's items and writes what the claim still holds.
    async fn process(&self, worker: u32, claim: super::claim::Claim) -> sqlx::Result<Step> {
        let mut step = Step { claimed: claim.items.len(), ..Step::default() };
        if claim.items.is_empty() {
            return Ok(step);
        }
        let texts: Vec<String> = claim.items.iter().map(|i| i.text.clone()).collect();
        let vectors = match tokio::time::timeout(self.batch_timeout, self.embedder.embed(&texts)).await {
            Ok(Ok(v)) if v.len() == texts.len() => v,
            Ok(Ok(v)) => {
                let why = format!("the embedder returned {} vectors for {} texts", v.len(), texts.len());
                self.claimer.release(worker, &claim, &why).await?;
                step.failed = claim.items.len();
                return Ok(step);
            }
            Ok(Err(e)) => {
                self.claimer.release(worker, &claim, &e.to_string()).await?;
                step.failed = claim.items.len();
                return Ok(step);
            }
            Err(_) => {
                let why = format!("the embed call took longer than {} ms", self.batch_timeout.as_millis());
                self.claimer.release(worker, &claim, &why).await?;
                step.failed = claim.items.len();
                return Ok(step);
            }
        };
        // The claim is held and embedded, nothing written yet: where a freeze past the lease
        // tests fencing (a no-op unless a test armed it).
        self.pause.reached(Point::EmbedBeforeCommit).await;
        let items: Vec<(&ClaimedItem, &[f32])> =
            claim.items.iter().zip(&vectors).map(|(item, vector)| (item, vector.as_slice())).collect();
        for outcome in self.claimer.commit_batch(worker, &claim.token, &items, self.embedder.name()).await? {
            match outcome {
                Outcome::Committed => step.committed += 1,
                Outcome::Fenced => step.fenced += 1,
                Outcome::Stale => step.stale += 1,
                Outcome::Failed => step.failed += 1,
            }
        }
        Ok(step)
    }
}

/// Wraps an embedder to model a model's cost (`embed_delay_ms` per call) and inject transient
/// failures (`embed_fail_rate` of calls), so a scenario can show that failed rows return to
/// WAIT and are finished later.
pub struct FaultyEmbedder {
    pub inner: Arc<dyn Embedder>,
    pub delay: Duration,
    pub fail_rate: f64,
}

impl FaultyEmbedder {
    /// `inner` itself when no fault is configured.
    pub fn wrap(inner: Arc<dyn Embedder>, delay: Duration, fail_rate: f64) -> Arc<dyn Embedder> {
        if delay.is_zero() && fail_rate <= 0.0 { inner } else { Arc::new(FaultyEmbedder { inner, delay, fail_rate }) }
    }
}

impl Embedder for FaultyEmbedder {
    fn embed<'a>(&'a self, texts: &'a [String]) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            if self.fail_rate > 0.0 && rand::random::<f64>() < self.fail_rate {
                return Err(EmbedError::Transient("injected failure (SERVER_EMBED_FAIL_RATE)".into()));
            }
            self.inner.embed(texts).await
        })
    }

    /// The wrapped embedder's name: its vectors are the ones stored and searched.
    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::hashing::HashingEmbedder;

    #[tokio::test]
    async fn the_wrapper_fails_at_its_rate_and_keeps_the_inner_name() {
        let always = FaultyEmbedder::wrap(Arc::new(HashingEmbedder), Duration::ZERO, 1.0);
        assert!(matches!(always.embed(&["a".into()]).await, Err(EmbedError::Transient(_))));
        assert_eq!(always.name(), "hashing");
        let never = FaultyEmbedder::wrap(Arc::new(HashingEmbedder), Duration::from_millis(1), 0.0);
        assert_eq!(never.embed(&["a".into(), "b".into()]).await.unwrap().len(), 2);
    }
}
