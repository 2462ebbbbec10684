//! Search over rental items: semantic (the query's embedding against the items' vectors in
//! MariaDB) with a text fallback for items whose embedding is missing or stale, and for every
//! item when the query itself cannot be embedded.
//!
//! Scores: a vector hit's is `1 - cosine distance` (-1 to 1; unrelated text is near 0); a text
//! hit's is the fraction of the query's words found in its title or description (0 to 1]. The
//! two are merged by score, so an item that contains every query word but is not embedded yet
//! ranks with the best semantic matches rather than after all of them.

pub mod filter;
pub mod selectivity;
pub mod text;
pub mod vector;

use std::sync::Arc;

use serde::Serialize;
use sqlx::MySqlPool;

use crate::embed::Embedder;
use crate::error::ApiError;
use crate::rental::Rental;

pub use filter::{SearchFilter, SearchQuery, SearchRequest};
pub use selectivity::Selectivity;

/// Which search produced a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MatchedBy {
    Vector,
    Text,
}

/// Which searches the answer's hits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Only vector hits (or none at all, with the query embedded).
    Vector,
    /// Only text hits, or the query could not be embedded.
    Text,
    /// Both kinds.
    Hybrid,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub item: Rental,
    /// Higher is better; see `matched_by` for the scale.
    pub score: f64,
    /// `vector`: 1 - cosine distance of the embeddings; `text`: the fraction of query words found.
    pub matched_by: MatchedBy,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub mode: SearchMode,
    /// The embedder the query and the vectors searched come from (`hashing`, `minilm`, ...).
    pub embedder: String,
    pub hits: Vec<SearchHit>,
}

/// Embeds the query with `embedder`, then runs the vector search over items embedded by it and
/// the text search over the rest, and merges them.
#[tracing::instrument(skip_all, fields(embedder = embedder.name()))]
pub async fn search(
    db: &MySqlPool,
    selectivity: &Arc<Selectivity>,
    embedder: &dyn Embedder,
    req: &SearchRequest,
) -> Result<SearchResults, ApiError> {
    let query_vector = match embedder.embed(std::slice::from_ref(&req.q)).await {
        // A query with no word the embedder knows (punctuation only, for the hashing embedder)
        // is the zero vector, whose cosine distance to anything is undefined.
        Ok(mut v) if v.len() == 1 && v[0].iter().any(|x| *x != 0.0) => v.pop(),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "the query could not be embedded; answering by text only");
            None
        }
    };
    let mut hits = match &query_vector {
        Some(v) => vector::search(db, selectivity, embedder.name(), v, &req.filter, req.limit).await?,
        None => Vec::new(),
    };
    let scope = if query_vector.is_some() { text::Scope::NotEmbedded } else { text::Scope::All };
    hits.extend(text::search(db, scope, &req.q, &req.filter, req.limit).await?);
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(b.item.id.cmp(&a.item.id)));
    hits.truncate(req.limit as usize);
    let by_vector = hits.iter().any(|h| h.matched_by == MatchedBy::Vector);
    let by_text = hits.iter().any(|h| h.matched_by == MatchedBy::Text);
    let mode = match (by_vector, by_text) {
        (true, true) => SearchMode::Hybrid,
        (false, true) => SearchMode::Text,
        (true, false) => SearchMode::Vector,
        (false, false) if query_vector.is_some() => SearchMode::Vector,
        (false, false) => SearchMode::Text,
    };
    Ok(SearchResults { mode, embedder: embedder.name().to_string(), hits })
}
