//! What rental items are embedded from, and how a change of embedder is handled. The
//! embedding itself is written by the batch module's claim workers (`crate::batch`).

use sqlx::MySqlPool;

/// A claim taken by the writer of an item in the same statement that writes it (the `inline`
/// embed mode): the row is born PENDING under this token, so no worker can claim it while the
/// request embeds it, and if the request dies the lease runs out and a worker takes it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub token: String,
    pub instance_id: String,
    pub lease_s: u64,
}

/// The text an item's embedding is computed from.
pub fn embedding_text(title: &str, category: &str, description: &str) -> String {
    format!("{title}\n{category}\n{description}")
}

/// Items requeued per transaction by [`requeue_other_embedders`].
const REQUEUE_BATCH: i64 = 500;

/// Sets DONE items whose stored vector is another embedder's back to WAIT, so they are
/// re-embedded by `embedder` (and found by text meanwhile): vectors of two models are not
/// comparable. Run when a worker starts; returns how many items were requeued.
///
/// In batches that skip locked rows: a single UPDATE over the whole table waited on the row
/// locks of a frozen instance's open transaction, and an instance starting meanwhile could not
/// finish its start-up (the claim-contention scenario found it: a restart during a peer's
/// SIGSTOP waited 8 s, then the database restart broke the start-up). A locked row is being
/// written by a worker, which leaves it WAIT or DONE with its own embedder.
///
/// Instances running different embedders at once (a rolling switch) would requeue each
/// other's work; one deployment runs one embedder.
pub async fn requeue_other_embedders(db: &MySqlPool, embedder: &str) -> sqlx::Result<u64> {
    let mut requeued = 0;
    loop {
        let mut tx = db.begin().await?;
        let ids: Vec<u64> = sqlx::query_scalar(
            "SELECT i.id FROM rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
             WHERE i.embed_status = 'DONE' AND e.embedder <> ? ORDER BY i.id LIMIT ? \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(embedder)
        .bind(REQUEUE_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            break;
        }
        let mut update = sqlx::QueryBuilder::new(
            "UPDATE rental_items SET embed_status = 'WAIT', claim_token = NULL, claimed_by = NULL, \
             claimed_until = NULL WHERE embed_status = 'DONE' AND id IN ",
        );
        update.push_tuples(&ids, |mut t, id| {
            t.push_bind(*id);
        });
        requeued += update.build().execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        if (ids.len() as i64) < REQUEUE_BATCH {
            break;
        }
    }
    if requeued > 0 {
        tracing::info!(requeued, embedder, "items embedded by another embedder requeued");
    }
    Ok(requeued)
}
