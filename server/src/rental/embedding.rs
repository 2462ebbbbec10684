//! What rental items are embedded from, and how a change of embedder is handled. The
//! embedding itself is written by the batch module's claim workers (`crate::batch`).

use sqlx::MySqlPool;

/// The text an item's embedding is computed from.
pub fn embedding_text(title: &str, category: &str, description: &str) -> String {
    format!("{title}\n{category}\n{description}")
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
