//! Who writes embeddings: claim WAIT items, embed them outside any transaction, and store each
//! vector only if the item's content did not change meanwhile (the seed's WAIT -> PENDING ->
//! DONE with a version check), plus a small per-instance worker that does it on a poll.
//!
//! The claim is its own function ([`claim`]) because the batch-job module will swap in other
//! claim strategies; [`embed_claimed`] works with whatever claimed the items.

use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;

use crate::embed::{Embedder, to_vector_bytes};

/// A claimed item whose worker died is claimable again after this long.
pub const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// One claimed item: what to embed, and the version and token the final write must match.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub item_id: u64,
    pub content_version: u64,
    pub claim_token: String,
    pub text: String,
}

/// The text an item's embedding is computed from.
pub fn embedding_text(title: &str, category: &str, description: &str) -> String {
    format!("{title}\n{category}\n{description}")
}

/// Claims up to `batch_size` items that need an embedding — WAIT, or PENDING whose lease ran
/// out — and sets them PENDING with a fresh token. `SKIP LOCKED` lets workers on several
/// instances claim disjoint sets at once; the transaction is only the claim, so no row lock is
/// held while embedding.
pub async fn claim(db: &MySqlPool, worker: &str, batch_size: u32) -> sqlx::Result<Vec<Claimed>> {
    let mut tx = db.begin().await?;
    let rows: Vec<(u64, u64, String, String, String)> = sqlx::query_as(
        "SELECT id, content_version, title, category, description FROM rental_items \
         WHERE embed_status = 'WAIT' OR (embed_status = 'PENDING' AND claimed_until < CURRENT_TIMESTAMP(6)) \
         ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED",
    )
    .bind(batch_size)
    .fetch_all(&mut *tx)
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (item_id, content_version, title, category, description) in rows {
        let claim_token = format!("{worker}:{item_id}:{content_version}:{:016x}", rand::random::<u64>());
        sqlx::query(
            "UPDATE rental_items SET embed_status = 'PENDING', claim_token = ?, claimed_by = ?, \
             claimed_until = CURRENT_TIMESTAMP(6) + INTERVAL ? SECOND WHERE id = ?",
        )
        .bind(&claim_token)
        .bind(worker)
        .bind(CLAIM_LEASE.as_secs())
        .bind(item_id)
        .execute(&mut *tx)
        .await?;
        claimed.push(Claimed {
            item_id,
            content_version,
            claim_token,
            text: embedding_text(&title, &category, &description),
        });
    }
    tx.commit().await?;
    Ok(claimed)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    /// Vectors stored and items set DONE.
    pub stored: usize,
    /// Results thrown away: the content changed or the claim was taken over meanwhile.
    pub stale: usize,
    /// Items put back to WAIT because the embedder failed.
    pub released: usize,
}

/// Embeds claimed items in one embedder call and stores each result that is still wanted.
pub async fn embed_claimed(db: &MySqlPool, embedder: &dyn Embedder, claimed: &[Claimed]) -> sqlx::Result<Pass> {
    let mut pass = Pass { claimed: claimed.len(), ..Pass::default() };
    if claimed.is_empty() {
        return Ok(pass);
    }
    let texts: Vec<String> = claimed.iter().map(|c| c.text.clone()).collect();
    let vectors = match embedder.embed(&texts).await {
        Ok(v) if v.len() == claimed.len() => v,
        result => {
            let why = result.err().map_or_else(|| "wrong number of vectors".to_string(), |e| e.to_string());
            tracing::warn!(
                embedder = embedder.name(),
                why,
                items = claimed.len(),
                "embedding failed; items back to WAIT"
            );
            for c in claimed {
                sqlx::query("UPDATE rental_items SET embed_status = 'WAIT', claim_token = NULL, claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claim_token = ?")
                    .bind(c.item_id)
                    .bind(&c.claim_token)
                    .execute(db)
                    .await?;
            }
            pass.released = claimed.len();
            return Ok(pass);
        }
    };
    for (c, vector) in claimed.iter().zip(vectors) {
        let mut tx = db.begin().await?;
        // The fencing write: matches only while our claim stands and the content is the one
        // we embedded. An edit meanwhile set WAIT, bumped the version and dropped the token.
        let done = sqlx::query(
            "UPDATE rental_items SET embed_status = 'DONE', claim_token = NULL, claimed_by = NULL, claimed_until = NULL \
             WHERE id = ? AND content_version = ? AND claim_token = ? AND embed_status = 'PENDING'",
        )
        .bind(c.item_id)
        .bind(c.content_version)
        .bind(&c.claim_token)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done == 0 {
            pass.stale += 1;
            continue;
        }
        sqlx::query(
            "INSERT INTO rental_embeddings (item_id, content_version, embedder, embedding) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE content_version = VALUES(content_version), embedder = VALUES(embedder), \
             embedding = VALUES(embedding), created_at = CURRENT_TIMESTAMP(6)",
        )
        .bind(c.item_id)
        .bind(c.content_version)
        .bind(embedder.name())
        .bind(to_vector_bytes(&vector))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        pass.stored += 1;
    }
    Ok(pass)
}

/// One pass: claim up to `batch_size` WAIT items and embed them. Returns how many were stored.
pub async fn embed_waiting(db: &MySqlPool, embedder: &dyn Embedder, batch_size: u32) -> sqlx::Result<usize> {
    embed_pass(db, embedder, "embed", batch_size).await.map(|p| p.stored)
}

async fn embed_pass(db: &MySqlPool, embedder: &dyn Embedder, worker: &str, batch_size: u32) -> sqlx::Result<Pass> {
    let claimed = claim(db, worker, batch_size).await?;
    embed_claimed(db, embedder, &claimed).await
}

/// Sets DONE items whose stored vector is another embedder's back to WAIT, so they are
/// re-embedded by `embedder` (and found by text meanwhile): vectors of two models are not
/// comparable. Run when a worker starts; returns how many items were requeued.
///
/// Instances running different embedders at once (a rolling switch) would requeue each
/// other's work; one deployment runs one embedder.
pub async fn requeue_other_embedders(db: &MySqlPool, embedder: &str) -> sqlx::Result<u64> {
    let requeued = sqlx::query(
        "UPDATE rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
         SET i.embed_status = 'WAIT', i.claim_token = NULL, i.claimed_by = NULL, i.claimed_until = NULL \
         WHERE i.embed_status = 'DONE' AND e.embedder <> ?",
    )
    .bind(embedder)
    .execute(db)
    .await?
    .rows_affected();
    if requeued > 0 {
        tracing::info!(requeued, embedder, "items embedded by another embedder requeued");
    }
    Ok(requeued)
}

/// Runs [`embed_waiting`] passes on this instance until shutdown.
#[derive(Clone)]
pub struct EmbedWorker {
    pub db: MySqlPool,
    pub embedder: Arc<dyn Embedder>,
    pub instance_id: String,
    pub poll: Duration,
    pub batch_size: u32,
}

impl EmbedWorker {
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(embedder = self.embedder.name(), "embedding worker started");
        if let Err(e) = requeue_other_embedders(&self.db, self.embedder.name()).await {
            tracing::warn!(error = %e, "could not requeue items embedded by another embedder");
        }
        loop {
            // Abandoned on shutdown: the lease hands the claimed items to another worker.
            let pass = tokio::select! {
                _ = shutdown.cancelled() => break,
                pass = embed_pass(&self.db, self.embedder.as_ref(), &self.instance_id, self.batch_size) => pass,
            };
            match pass {
                // A full batch: there may be more waiting, go on at once.
                Ok(p) if p.claimed as u32 == self.batch_size && p.released == 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "embedding pass failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
        tracing::info!("embedding worker stopped");
    }
}
