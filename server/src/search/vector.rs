//! Nearest items by cosine distance: through MariaDB's VECTOR INDEX, or exactly over the few
//! items a selective filter keeps, whichever the filter's selectivity makes cheaper. The plan
//! is chosen per query ([`plan`]):
//!
//! * **exact**, when the category and price filters (or, without them, the catalogue) keep at
//!   most [`EXACT_MAX_ROWS`] items (a count over `ix_rental_items_search`,
//!   `ix_rental_items_price` or `ix_rental_items_embed` that stops after `EXACT_MAX_ROWS + 1`
//!   says so, when this instance's counts, [`Selectivity`], do not already say far more):
//!   those items' ids come from the index alone, each one's distance is computed, and only
//!   the nearest `limit` item rows are read. Exact: recall 1.
//! * **index**, otherwise: MariaDB 11.8 uses the vector index (an HNSW graph) only for
//!   `ORDER BY VEC_DISTANCE_COSINE(col, <constant>) LIMIT n` on the vector's own table (joined
//!   and filtered, the optimiser reads the filter's index and sorts every matching row instead).
//!   So the `k` nearest vectors come from the index (EXPLAIN: `type index, key
//!   ix_rental_embeddings_embedding`), then a primary-key lookup of those items applies the
//!   filters. `k` is [`UNFILTERED_OVERFETCH`] times the limit when nothing is filtered;
//!   otherwise twice the limit over the share of items the filter keeps, by this instance's
//!   counts (at least [`FILTERED_MIN_OVERFETCH`] times the limit, at most 1,000). When fewer
//!   than `limit` survive although the index returned a full `k`, the share that survived sizes
//!   the next round, up to 1,000, then the exact path.

use std::sync::Arc;

use sqlx::MySqlPool;

use super::selectivity::Selectivity;
use super::{MatchedBy, SearchFilter, SearchHit};
use crate::embed::to_vector_bytes;
use crate::rental::{COLUMNS, Rental};

/// Most candidates fetched from the index in step 1.
const MAX_CANDIDATES: u32 = 1_000;

/// Candidates per wanted item without a filter. The graph is approximate: with 2 (40 for 20)
/// recall@20 was 0.955-0.967 over 100,000 items, too near the 0.95 goal; see reports/README.md.
pub const UNFILTERED_OVERFETCH: u32 = 3;

/// Fewest candidates per wanted item with a filter, whatever share it keeps: a price range
/// keeping 31% searched with k 80 for 20 had recall@20 0.948-0.968 (the graph is approximate).
pub const FILTERED_MIN_OVERFETCH: u32 = 6;

/// A filter that keeps at most this many items is searched exactly. Measured on 100,000 items
/// (`cargo bench -p server --bench search`): see `reports/README.md`.
pub const EXACT_MAX_ROWS: u64 = 5_000;

/// Conditions that make an embedding usable: DONE, of the item's current content, by the
/// embedder of the query.
const CURRENT: &str = "e.content_version = i.content_version AND i.embed_status = 'DONE' AND e.embedder = ?";

/// How one search runs, chosen from the filter's selectivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Every item the filters keep (`rows` of them), by exact distance.
    Exact { rows: u64 },
    /// The `k` nearest vectors from the index, then the filters (more rounds if too few pass).
    Index { k: u32 },
}

/// The plan for `filter`. From this instance's counts ([`Selectivity`]) of the items the
/// category and price filters keep: past twice [`EXACT_MAX_ROWS`], the index; otherwise a
/// count over the index that serves the filters, stopped after [`EXACT_MAX_ROWS`] + 1, decides
/// (so a stale count never sends a search to the exact path over too many rows). Availability
/// is not counted: it only removes items, so both counts are upper bounds.
pub async fn plan(
    db: &MySqlPool,
    selectivity: &Arc<Selectivity>,
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Plan> {
    // Without counts (the first count failed), the bounded count decides and k is the floor.
    let counts = selectivity.counts(db).await;
    let (estimated, total) = counts.as_ref().map_or((0, 0), |c| (c.kept(filter), c.total()));
    if estimated <= 2 * EXACT_MAX_ROWS {
        // Counted over the filter's index, or over (embed_status, id) without one: a catalogue
        // this small is searched exactly even unfiltered. The index's graph is approximate, and
        // scenarios/ci/embed-off-request-path.toml saw it miss a new post (embedded, DONE) for
        // its own title on every one of ~60 searches over 32 items.
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM rental_items i WHERE i.embed_status = 'DONE'{} LIMIT {}) t",
            filter.indexed_sql(),
            EXACT_MAX_ROWS + 1
        );
        let kept: i64 = filter.bind_indexed(sqlx::query_as::<_, (i64,)>(&sql)).fetch_one(db).await?.0;
        if kept.max(0) as u64 <= EXACT_MAX_ROWS {
            return Ok(Plan::Exact { rows: kept.max(0) as u64 });
        }
    }
    if filter.is_empty() {
        return Ok(Plan::Index { k: (limit * UNFILTERED_OVERFETCH).min(MAX_CANDIDATES) });
    }
    // A broad filter: twice the candidates its share of the items says `limit` needs, so one
    // round usually does (with half that, as a share estimated at twice the truth gave, 19 of
    // 50 bench queries of a category went round again; reports/README.md).
    let floor = u64::from(limit * FILTERED_MIN_OVERFETCH);
    let k = match (estimated, total) {
        (kept, total) if kept > 0 && total > 0 => (2 * u64::from(limit) * total).div_ceil(kept),
        _ => floor,
    };
    Ok(Plan::Index { k: k.clamp(floor, u64::from(MAX_CANDIDATES)) as u32 })
}

/// Up to `limit` embedded items nearest to `query`, nearest first.
#[tracing::instrument(skip_all, fields(limit = limit))]
pub async fn search(
    db: &MySqlPool,
    selectivity: &Arc<Selectivity>,
    embedder: &str,
    query: &[f32],
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Vec<SearchHit>> {
    let bytes = to_vector_bytes(query);
    let first = match plan(db, selectivity, filter, limit).await? {
        Plan::Exact { .. } => return exact(db, embedder, &bytes, filter, limit).await,
        Plan::Index { k } => k,
    };
    // A wider net before the exact scan, sized by the share of the candidates that passed the
    // filters: if 80 candidates left 10, 320 should leave the 40 wanted.
    let mut k = first;
    loop {
        let (hits, fetched, passed) = from_index(db, embedder, &bytes, filter, limit, k).await?;
        // Enough, or the index has nothing more to give.
        if hits.len() as u32 >= limit || fetched < u64::from(k) {
            return Ok(hits);
        }
        if k >= MAX_CANDIDATES {
            return exact(db, embedder, &bytes, filter, limit).await;
        }
        let share = passed.max(1) as f64 / fetched.max(1) as f64;
        let next = (2.0 * f64::from(limit) / share).ceil() as u32;
        k = next.max(k * 2).min(MAX_CANDIDATES);
    }
}

/// Step 1; also returns how many candidates the index gave and how many passed the filters.
async fn from_index(
    db: &MySqlPool,
    embedder: &str,
    query: &[u8],
    filter: &SearchFilter,
    limit: u32,
    k: u32,
) -> sqlx::Result<(Vec<SearchHit>, u64, u64)> {
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
        return Ok((Vec::new(), 0, 0));
    }
    // The filters, on the candidates only: a primary-key lookup of at most `k` rows that reads
    // no item's text; only the nearest `limit` that pass are read whole.
    let placeholders = vec!["?"; candidates.len()].join(", ");
    let sql = format!(
        "SELECT i.id FROM rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
         WHERE i.id IN ({placeholders}) AND {CURRENT}{filters}",
        filters = filter.sql()
    );
    let mut q = sqlx::query_as::<_, (u64,)>(&sql);
    for (id, _) in &candidates {
        q = q.bind(*id);
    }
    let kept: std::collections::HashSet<u64> =
        filter.bind_as(q.bind(embedder)).fetch_all(db).await?.into_iter().map(|(id,)| id).collect();
    let passed = kept.len() as u64;
    // The candidates come nearest first; ties in distance by id, as the exact path orders them.
    let mut nearest: Vec<(u64, f64)> = candidates.into_iter().filter(|(id, _)| kept.contains(id)).collect();
    nearest.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    nearest.truncate(limit as usize);
    Ok((rows_of(db, nearest).await?, fetched, passed))
}

/// Every embedded item that passes the filters, by exact distance: the ids and distances first,
/// from the filter's index and the vectors (no item row read), then the nearest `limit` items'
/// rows. Public for the bench, which compares it with the index path and measures recall with it.
pub async fn exact(
    db: &MySqlPool,
    embedder: &str,
    query: &[u8],
    filter: &SearchFilter,
    limit: u32,
) -> sqlx::Result<Vec<SearchHit>> {
    let sql = format!(
        "SELECT e.item_id, VEC_DISTANCE_COSINE(e.embedding, ?) AS distance \
         FROM rental_items i JOIN rental_embeddings e ON e.item_id = i.id \
         WHERE {CURRENT}{filters} ORDER BY distance, e.item_id LIMIT ?",
        filters = filter.sql()
    );
    let q = sqlx::query_as(&sql).bind(query).bind(embedder);
    let nearest: Vec<(u64, f64)> = filter.bind_as(q).bind(limit).fetch_all(db).await?;
    rows_of(db, nearest).await
}

/// The item rows of `(id, distance)` pairs, in that order.
async fn rows_of(db: &MySqlPool, nearest: Vec<(u64, f64)>) -> sqlx::Result<Vec<SearchHit>> {
    if nearest.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; nearest.len()].join(", ");
    let sql = format!("SELECT {COLUMNS} FROM rental_items i WHERE i.id IN ({placeholders})");
    let mut q = sqlx::query(&sql);
    for (id, _) in &nearest {
        q = q.bind(*id);
    }
    let mut items: std::collections::HashMap<u64, Rental> = q
        .fetch_all(db)
        .await?
        .iter()
        .map(|row| Rental::from_row(row).map(|r| (r.id, r)))
        .collect::<sqlx::Result<_>>()?;
    Ok(nearest
        .into_iter()
        .filter_map(|(id, distance)| {
            items.remove(&id).map(|item| SearchHit { item, score: 1.0 - distance, matched_by: MatchedBy::Vector })
        })
        .collect())
}
