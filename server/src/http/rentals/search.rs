//! `GET /rentals/search`: semantic search over items with a text fallback.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sqlx::MySqlPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::embed::Embedder;
use crate::error::ApiError;
use crate::http::extract::{ApiQuery, CurrentUser};
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::search::{self, SearchQuery, SearchResults, Selectivity};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_rentals))
}

/// Items by meaning: the query is embedded and compared with the items' embeddings (cosine);
/// items not embedded yet are matched by their words. `mode` says which answered, and each
/// hit's `matched_by` how it was found.
#[utoipa::path(
    get,
    path = "/rentals/search",
    operation_id = "search_rentals",
    tag = "rentals",
    params(SearchQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The best hits, best first", body = SearchResults),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (
            status = 422,
            description = "`invalid_field` on `q` (missing, empty, over 500 characters), `limit`, `category`, \
                `min_price`, `max_price` (below `min_price`), `available_from` or `available_to` (before \
                `available_from`)",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn search_rentals(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    State(embedder): State<Arc<dyn Embedder>>,
    State(selectivity): State<Arc<Selectivity>>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<Json<SearchResults>, ApiError> {
    let request = q.parse()?;
    Ok(Json(search::search(&db, &selectivity, embedder.as_ref(), &request).await?))
}
