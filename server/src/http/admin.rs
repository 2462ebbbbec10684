//! `/admin/jobs`: the clustered jobs, their run history, pause / resume / trigger. Admins
//! only (role `admin`, granted by the operator with `server grant-admin <email>`); anyone else
//! signed in gets 403.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, CurrentUser};
use crate::accounts::Role;
use crate::batch::{JobRun, JobStatus, Jobs, JobsError};
use crate::error::ApiError;
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(list_runs))
        .routes(routes!(pause))
        .routes(routes!(resume))
        .routes(routes!(trigger))
}

/// Checked before the job name, so a non-admin learns nothing about which jobs exist.
fn require_admin(user: CurrentUser) -> Result<(), ApiError> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("this operation needs the admin role".into()))
    }
}

impl From<JobsError> for ApiError {
    fn from(err: JobsError) -> Self {
        match err {
            JobsError::Unknown(_) => ApiError::not_found("job_not_found", err.to_string()),
            JobsError::Disabled(_) => ApiError::conflict("job_disabled", err.to_string()),
            JobsError::Db(e) => e.into(),
        }
    }
}

/// Every job: schedule, paused, next fire time and last run.
#[utoipa::path(
    get,
    path = "/admin/jobs",
    operation_id = "list_jobs",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The jobs", body = Vec<JobStatus>),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list_jobs(user: CurrentUser, State(jobs): State<Arc<Jobs>>) -> Result<Json<Vec<JobStatus>>, ApiError> {
    require_admin(user)?;
    Ok(Json(jobs.list().await?))
}

/// A job's runs, newest first.
#[utoipa::path(
    get,
    path = "/admin/jobs/{name}/runs",
    operation_id = "list_job_runs",
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "`embed-posts`, `cleanup`, `ai-retry` or `heartbeat`"), PageQuery),
    responses(
        (status = 200, description = "A page of runs", body = Paged<JobRun>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list_runs(
    user: CurrentUser,
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<Paged<JobRun>>, ApiError> {
    require_admin(user)?;
    let page = query.parse()?;
    Ok(Json(jobs.runs(&name, page).await?))
}

/// Stops the job's firings on every instance; a run in progress finishes. Pausing
/// `embed-posts` stops the embed workers' claims.
#[utoipa::path(
    post,
    path = "/admin/jobs/{name}/pause",
    operation_id = "pause_job",
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The job")),
    responses(
        (status = 200, description = "The job, paused", body = JobStatus),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 409, description = "`job_disabled`: its schedule setting is empty", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn pause(
    user: CurrentUser,
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    require_admin(user)?;
    Ok(Json(jobs.pause(&name).await?))
}

/// Resumes a paused job from its next fire time after now (missed firings are not caught up).
#[utoipa::path(
    post,
    path = "/admin/jobs/{name}/resume",
    operation_id = "resume_job",
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The job")),
    responses(
        (status = 200, description = "The job, running on schedule", body = JobStatus),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 409, description = "`job_disabled`: its schedule setting is empty", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn resume(
    user: CurrentUser,
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    require_admin(user)?;
    Ok(Json(jobs.resume(&name).await?))
}

/// Fires the job once now, on whichever instance polls first (also when paused). The run
/// appears in its history with trigger `manual`.
#[utoipa::path(
    post,
    path = "/admin/jobs/{name}/trigger",
    operation_id = "trigger_job",
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The job")),
    responses(
        (status = 202, description = "The firing is requested", body = JobStatus),
        (status = 401, response = Unauthorized),
        (status = 403, description = "`forbidden`: the caller is not an admin", body = ErrorBody),
        (status = 404, description = "`job_not_found`", body = ErrorBody),
        (status = 409, description = "`job_disabled`: its schedule setting is empty", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn trigger(
    user: CurrentUser,
    State(jobs): State<Arc<Jobs>>,
    ApiPath(name): ApiPath<String>,
) -> Result<(axum::http::StatusCode, Json<JobStatus>), ApiError> {
    require_admin(user)?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(jobs.trigger(&name).await?)))
}
