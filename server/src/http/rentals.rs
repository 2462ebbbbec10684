//! `/rentals/*`: items (here), their reservations (`reservations`) and search (`search`).

mod reservations;
mod search;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sqlx::MySqlPool;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::batch::embed_job::InlineEmbed;
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::rental::input::NewRental;
use crate::rental::{self, Category, ListFilter, Rental, RentalInput};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, update, remove))
        .merge(reservations::router())
        .merge(search::router())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only items of this category.
    #[param(value_type = Option<Category>)]
    category: Option<String>,
    /// Only items of this owner.
    #[param(value_type = Option<u64>)]
    owner_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// Lists an item for rent. It is searchable by text at once, and by meaning once the embedding
/// worker has embedded it (`embed_status` DONE). With `SERVER_EMBED_MODE=inline` the post is
/// embedded before the answer (DONE unless the embedder failed; then WAIT, for the workers).
#[utoipa::path(
    post,
    path = "/rentals",
    operation_id = "create_rental",
    tag = "rentals",
    request_body = NewRental,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The new item, `embed_status` WAIT (DONE when embedded inline)", body = Rental),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (
            status = 422,
            description = "`invalid_field` on `title`, `description`, `category`, `price_per_day`, `deposit`, \
                `location` or `photo_urls`",
            body = ErrorBody
        ),
        (status = 503, response = Unavailable),
    )
)]
async fn create(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(inline): State<InlineEmbed>,
    ApiJson(input): ApiJson<RentalInput>,
) -> Result<(StatusCode, Json<Rental>), ApiError> {
    let fields = input.parse()?;
    let item = match &inline.0 {
        Some(pool) => pool.create_and_embed(user.id, fields).await?,
        None => rental::create(&db, user.id, fields, None).await?,
    };
    Ok((StatusCode::CREATED, Json(item)))
}

/// Items, newest first, optionally of one category or one owner.
#[utoipa::path(
    get,
    path = "/rentals",
    operation_id = "list_rentals",
    tag = "rentals",
    params(ListQuery, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of items", body = Paged<Rental>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `category`, `owner_id` or `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Rental>>, ApiError> {
    let page = q.page.parse()?;
    let filter = ListFilter {
        category: q
            .category
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|c| Category::parse_field("category", c))
            .transpose()?,
        owner_id: q
            .owner_id
            .as_deref()
            .filter(|o| !o.is_empty())
            .map(|o| o.parse::<u64>().map_err(|_| ApiError::invalid("owner_id", format!("`{o}` is not a user id"))))
            .transpose()?,
    };
    Ok(Json(rental::list(&db, filter, page).await?))
}

/// Reads one item.
#[utoipa::path(
    get,
    path = "/rentals/{id}",
    operation_id = "get_rental",
    tag = "rentals",
    params(("id" = u64, Path, description = "The item's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The item", body = Rental),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn read(
    _user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<Json<Rental>, ApiError> {
    Ok(Json(rental::get(&db, id).await?))
}

/// Changes the fields sent of one of the caller's items. A new title, description or category
/// bumps `content_version` and sets `embed_status` back to WAIT.
#[utoipa::path(
    patch,
    path = "/rentals/{id}",
    operation_id = "update_rental",
    tag = "rentals",
    params(("id" = u64, Path, description = "The item's id")),
    request_body = RentalInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The item as changed", body = Rental),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: someone else's item", body = ErrorBody),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field`: a field is invalid, or none was sent", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn update(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    State(inline): State<InlineEmbed>,
    ApiPath(id): ApiPath<u64>,
    ApiJson(input): ApiJson<RentalInput>,
) -> Result<Json<Rental>, ApiError> {
    let fields = input.parse()?;
    let item = rental::update(&db, user.id, id, fields).await?;
    Ok(Json(match &inline.0 {
        Some(pool) if item.embed_status == rental::EmbedStatus::Wait => pool.embed_if_waiting(id).await?,
        _ => item,
    }))
}

/// Deletes one of the caller's items with its reservations.
#[utoipa::path(
    delete,
    path = "/rentals/{id}",
    operation_id = "delete_rental",
    tag = "rentals",
    params(("id" = u64, Path, description = "The item's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: someone else's item", body = ErrorBody),
        (status = 404, description = "`rental_not_found`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn remove(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    rental::delete(&db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
