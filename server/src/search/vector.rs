//! Nearest items by cosine distance, through MariaDB's VECTOR INDEX when it can be used.
//!
//! MariaDB 11.8 uses the vector index (an HNSW graph) only for
//! `ORDER BY VEC_DISTANCE_COSINE(col, <constant>) LIMIT n` on the vector's own table. Joined
//! with `rental_items` and filtered, the optimiser instead reads the filter's index and sorts
//! every matching row by distance (EXPLAIN: `ref ix_rental_items_category ... Using filesort`,
//! no vector key). So the search runs in two steps:
//!
//! 1. candidates: the `k` nearest vectors from the index (EXPLAIN: `type index, key
//!    ix_rental_embeddings_embedding`, `rows` = k), then a primary-key lookup of those items
//!    with the filters (current content version, this embedder, DONE, category, price,
//!    availability). `k` is twice the limit without filters, ten times with them (at most
//!    1,000): the index's answer is approximate and filters drop some of it.
//! 2. when fewer than `limit` candidates survive although the index returned a full `k` (so
//!    more may exist), step 1 again with 1,000 candidates; and if that is still short, the
//!    same filters as a plain join ordered by distance: exact, and as fast as the filters are
//!    selective (a category is an eighth of the items).

use sqlx::{MySqlPool, Row};

use super::{MatchedBy, SearchFilter, SearchHit};
use crate::embed::to_vector_bytes;
use crate::rental::{COLUMNS, Rental};

/// Most candidates fetched from the index in step 1.
const MAX_CANDIDATES: u32 = 1_000;

/// Conditions that make an embedding usable: DONE, of the item's current content, by the
/// embedder of the query.
const CURRENT: &str = "e.content_version = i.content_version AND i.embed_status = 'DONE' AND e.embedder = ?";

fn candidates_for(filter: &SearchFilter, limit: u32) -> u32 {
    let factor = if filter.is_empty() { 2 } else { 10 };
    (limit * factor).min(MAX_CANDIDATES)
}

/// Up to `limit` embedded items nearest to `query`, nearest first.
#[tracing::instrument(skip_all, fields(limit = limit))]
pub async fn search(
    db: &MySqlPool,
    embedder: &str,
    query: &[f32],
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Vec<SearchHit>> {
    let bytes = to_vector_bytes(query);
    let first = candidates_for(filter, limit);
    // A wider net before the exact scan: a selective filter (one category and a price band
    // keep ~4% of the items) leaves few of the first candidates, but enough of 1,000.
    let rounds = if first < MAX_CANDIDATES { vec![first, MAX_CANDIDATES] } else { vec![first] };
    for k in rounds {
        let (hits, fetched) = from_index(db, embedder, &bytes, filter, limit, k).await?;
        if hits.len() as u32 >= limit || fetched < u64::from(k) {
            return Ok(hits);
        }
    }
    exact(db, embedder, &bytes, filter, limit).await
}

/// Step 1; also returns how many candidates the index gave.
async fn from_index(
    db: &MySqlPool,
    embedder: &str,
    query: &[u8],
    filter: &SearchFilter,
    limit: u32,
    k: u32,
) -> sqlx::Result<(Vec<SearchHit>, u64)> {
    // Exactly the shape the index serves; EXPLAIN: `index ix_rental_embeddings_embedding`.
    let candidates: Vec<(u64, f64)> = sqlx::query_as(
        "SELECT item_id, VEC_DISTANCE_COSINE(embedding, ?) AS distance FROM rental_embeddings \
         ORDER BY distance LIMIT ?",
    )
    .bind(query)
    .bind(k)
    .fetch_all(db)
    .await?;
    let fetched = candidates.len() as u64;
    if candidates.is_empty() {
        return Ok((Vec::new(), 0));
    }
    // The filters, on the candidates only: a primary-key lookup of at most `k` rows.
    let placeholders = vec!["?"; candidates.len()].join(", ");
    let sql = format!(
        "SELECT {COLUMNS} FROM rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
         WHERE i.id IN ({placeholders}) AND {CURRENT}{filters}",
        filters = filter.sql()
    );
    let mut q = sqlx::query(&sql);
    for (id, _) in &candidates {
        q = q.bind(*id);
    }
    let rows = filter.bind(q.bind(embedder)).fetch_all(db).await?;
    let distance_of: std::collections::HashMap<u64, f64> = candidates.into_iter().collect();
    let mut hits = rows
        .iter()
        .map(|row| {
            let item = Rental::from_row(row)?;
            let distance = distance_of.get(&item.id).copied().unwrap_or(2.0);
            Ok(SearchHit { item, score: 1.0 - distance, matched_by: MatchedBy::Vector })
        })
        .collect::<sqlx::Result<Vec<_>>>()?;
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.id.cmp(&b.item.id)));
    hits.truncate(limit as usize);
    Ok((hits, fetched))
}

/// Step 2: every embedded item that passes the filters, ordered by exact distance. Public for
/// the bench, which compares it with the index path.
pub async fn exact(
    db: &MySqlPool,
    embedder: &str,
    query: &[u8],
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Vec<SearchHit>> {
    let sql = format!(
        "SELECT {COLUMNS}, VEC_DISTANCE_COSINE(e.embedding, ?) AS distance \
         FROM rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
         WHERE {CURRENT}{filters} ORDER BY distance LIMIT ?",
        filters = filter.sql()
    );
    let q = sqlx::query(&sql).bind(query).bind(embedder);
    let rows = filter.bind(q).bind(limit).fetch_all(db).await?;
    rows.iter().map(hit).collect()
}

fn hit(row: &sqlx::mysql::MySqlRow) -> sqlx::Result<SearchHit> {
    let distance: f64 = row.try_get("distance")?;
    Ok(SearchHit { item: Rental::from_row(row)?, score: 1.0 - distance, matched_by: MatchedBy::Vector })
}
