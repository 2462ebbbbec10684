//! `/notifications/stream` (SSE), `/notifications` (list), read marks.
//!
//! The stream follows the HTML standard's server-sent events
//! (https://html.spec.whatwg.org/multipage/server-sent-events.html): each event has `id:`
//! (the notification's `seq`, the recipient's own sequence in commit order), `event:` (its
//! type) and JSON `data:`. A client that reconnects sends `Last-Event-ID`; a first connection
//! may pass `?last_event_id=`. The stream then sends every notification after that seq, one
//! `ready` event, and live ones, always in seq order with none left out
//! ([`crate::notify::stream`]): the last id a client holds is an exact resume point.
//!
//! The `ready` event's `id:` is the resume point, so a client always holds a `Last-Event-ID`,
//! even one that has received nothing yet: without it, a client whose instance died before its
//! first notification reconnected without an id, got no replay, and lost what was stored
//! while it was away (the harness's notify-faults scenario found this).
//!
//! Ids were once the notification ids, assigned at insert: transactions commit in another
//! order, so a client that resumed after 1595 never got 1586, committed a moment later
//! (notify-churn found this under every strategy). A `Last-Event-ID` is now a seq.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiPath, ApiQuery, CurrentUser, credential};
use crate::accounts::{Purpose, SessionId, SessionStore, StreamTickets};
use crate::error::ApiError;
use crate::notify::hub::Hub;
use crate::notify::stream::{Item, OrderedStream, Start};
use crate::notify::{Notification, store};
use crate::openapi::{BadRequest, ErrorBody, Unauthorized, Unavailable};
use crate::pagination::{PageQuery, Paged};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(stream))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Where a first connection starts: the `seq` of the last notification the client has,
    /// like `Last-Event-ID` (which a browser's `EventSource` cannot set); the header wins when
    /// both are sent.
    #[param(value_type = Option<u64>)]
    last_event_id: Option<String>,
    /// A ticket of `POST /auth/stream-ticket` (purpose `notifications`), for a page whose
    /// `EventSource` sends neither a header nor, from another site, the session cookie.
    ticket: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only notifications not yet marked read; `false` when not given.
    unread: Option<bool>,
    // utoipa's `IntoParams` does not follow `flatten`: the operation lists `PageQuery` itself.
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[derive(Debug, Serialize, ToSchema)]
struct MarkedRead {
    /// How many notifications this marked read.
    marked: u64,
}

fn parse_last_event_id(headers: &HeaderMap, query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let raw = match headers.get("last-event-id") {
        Some(v) => Some(v.to_str().map_err(|_| invalid_last_event_id("not ASCII"))?.trim().to_string()),
        None => query.map(|q| q.trim().to_string()),
    };
    match raw.as_deref() {
        None | Some("") => Ok(None),
        Some(id) => id.parse::<u64>().map(Some).map_err(|_| invalid_last_event_id(id)),
    }
}

fn invalid_last_event_id(got: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_last_event_id",
        format!(
            "Last-Event-ID `{got}` is not a stream position: send the `id:` of the last event received, a whole number"
        ),
    )
}

fn event(n: &Notification) -> Event {
    Event::default().id(n.seq.to_string()).event(n.kind.as_str()).data(serde_json::to_string(n).unwrap_or_default())
}

/// The `ready` event's data: where the stream resumes from and how much the replay sent.
#[derive(Debug, Serialize)]
struct StreamReady {
    /// The resume point (a seq), also the event's `id:`: send it back as `Last-Event-ID`.
    resume_from: u64,
    /// Notifications replayed before this event.
    replayed: u64,
}

fn ready_event(ready: &StreamReady) -> Event {
    Event::default()
        .id(ready.resume_from.to_string())
        .event("ready")
        .data(serde_json::to_string(ready).unwrap_or_default())
}

/// The caller's notifications as server-sent events: first those after `Last-Event-ID`, then
/// live ones as they happen.
#[utoipa::path(
    get,
    path = "/notifications/stream",
    operation_id = "stream_notifications",
    tag = "notifications",
    params(
        (
            "Last-Event-ID" = Option<u64>,
            Header,
            nullable = false,
            description = "The `id:` of the last event received (a notification's `seq`, or a `ready` event's \
                resume point); a reconnecting `EventSource` sends it by itself"
        ),
        StreamQuery,
    ),
    security(("bearer" = [])),
    responses(
        (
            status = 200,
            description = "An endless event stream. First the notifications after `Last-Event-ID`, then one \
                `ready` event (`id:` the resume point; `data:` `{\"resume_from\": seq, \"replayed\": n}`), then live \
                ones, always in `seq` order with no gap. Each notification event has `id:` (the notification's \
                `seq`: the recipient's own sequence, in commit order), `event:` (`diary` or `comment`) and `data:` \
                (a `Notification` as JSON); a `keep-alive` comment comes every 15 seconds. The server ends a \
                stream with a last event without `id:`: `session-ended` when its session is gone (logged out, \
                expired), `displaced` when its user opened more streams than allowed (the oldest closes): a page \
                closes its `EventSource` on either. An instance that shuts down ends every stream with `retry: <ms>` \
                and a last `restart` event (also without `id:`): an `EventSource` comes back by itself after that \
                time with its `Last-Event-ID`, and loses nothing. When the stream cannot open now (Redis or the database down) \
                the answer is still 200: `retry: <ms>`, one `unavailable` event, and the end, so that a browser \
                comes back by itself (any other status makes `EventSource` give up for good). A real \
                authentication failure is a 401, which ends it. See \
                https://html.spec.whatwg.org/multipage/server-sent-events.html",
            content_type = "text/event-stream",
            body = String
        ),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
    )
)]
async fn stream(
    State(streams): State<Streams>,
    method: Method,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Response {
    match open(streams, &method, &headers, q).await {
        Ok(stream) => stream.into_response(),
        Err(e) if e.status().is_server_error() => come_back_later(&e),
        Err(e) => e.into_response(),
    }
}

/// How long a browser waits before it opens a stream again after a passing failure, at least;
/// each answer adds up to a second more, so a crowd does not come back at once.
const RETRY_MS: u64 = 2_000;

/// The answer to a stream that cannot open now (Redis or the database is down): `200` with a
/// `retry:` hint and one `unavailable` event, then the end. A browser's `EventSource` gives up
/// for good on any other status (the HTML standard: "fail the connection"); on a stream that
/// ends it reconnects by itself after `retry` ms, with the `Last-Event-ID` it had.
fn come_back_later(e: &ApiError) -> Response {
    let retry_ms = RETRY_MS + rand::random_range(0..1_000);
    let data = serde_json::json!({ "error": "unavailable", "message": e.to_string(), "retry_ms": retry_ms });
    let body = format!("retry: {retry_ms}\nevent: unavailable\ndata: {data}\n\n");
    tracing::warn!(error = %e, "a stream could not open; the client is told to come back");
    ([(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Who is asking and under which session: a ticket in the query, else the bearer token or the
/// session cookie.
async fn caller(
    streams: &Streams,
    method: &Method,
    headers: &HeaderMap,
    ticket: Option<&str>,
) -> Result<(u64, SessionId), ApiError> {
    if let Some(ticket) = ticket {
        let ticket = streams
            .tickets
            .verify(ticket, Purpose::Notifications)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        return Ok((ticket.user.user_id, ticket.session));
    }
    let credential = credential(headers, method)?;
    let user = streams
        .sessions
        .lookup(credential.token())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("session unknown or expired: log in again".into()))?;
    Ok((user.user_id, SessionId::of(credential.token())))
}

async fn open(
    streams: Streams,
    method: &Method,
    headers: &HeaderMap,
    q: StreamQuery,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let last_event_id = parse_last_event_id(headers, q.last_event_id.as_deref())?;
    let (user_id, session) = caller(&streams, method, headers, q.ticket.as_deref()).await?;
    let Streams { db, hub, sessions, session_check, draining, .. } = streams;
    // Subscribe before reading the database: anything committed from now on reaches us live.
    let subscription = hub.subscribe(user_id);
    let start = match last_event_id {
        Some(seq) => Start::After(seq),
        None => Start::Head(store::latest_seq(&db, user_id).await?),
    };
    let ordered = OrderedStream::new(db, user_id, subscription, hub.repair(), hub.metrics().clone(), start);
    let session_gone: SessionGone = Box::pin(session_ends(sessions, session, session_check));
    let restart: SessionGone = Box::pin({
        let draining = draining.clone();
        async move { draining.started().await }
    });
    let events = futures::stream::unfold(Some((ordered, session_gone, restart)), move |state| {
        let draining = draining.clone();
        async move {
            let (mut ordered, mut session_gone, mut restart) = state?;
            tokio::select! {
                // Checked first: a draining instance ends the stream even while it is busy.
                biased;
                () = &mut restart => Some((Ok(closing_event("restart", RESTART).retry(draining.retry())), None)),
                item = ordered.next() => match item? {
                    Item::Notification(n) => Some((Ok(event(&n)), Some((ordered, session_gone, restart)))),
                    Item::Ready { resume_from, replayed } => Some((
                        Ok(ready_event(&StreamReady { resume_from, replayed })),
                        Some((ordered, session_gone, restart)),
                    )),
                    Item::Displaced => Some((Ok(closing_event("displaced", DISPLACED)), None)),
                },
                // The stream ends; what `ordered` was doing is dropped with it.
                () = &mut session_gone => Some((Ok(closing_event("session-ended", SESSION_ENDED)), None)),
            }
        }
    });
    let keep_alive = KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive");
    Ok(Sse::new(events).keep_alive(keep_alive))
}

type SessionGone = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a stream needs of the application.
#[derive(Clone)]
struct Streams {
    db: MySqlPool,
    hub: Hub,
    sessions: SessionStore,
    tickets: StreamTickets,
    /// How often the stream checks that its session still exists.
    session_check: Duration,
    draining: crate::drain::Draining,
}

impl FromRef<AppState> for Streams {
    fn from_ref(state: &AppState) -> Self {
        Streams {
            db: state.db.clone(),
            hub: state.hub.clone(),
            sessions: state.sessions.clone(),
            tickets: state.tickets.clone(),
            session_check: state.guard.stream_session_check,
            draining: state.draining.clone(),
        }
    }
}

const DISPLACED: &str =
    "you opened more streams than one user may hold; this one, the oldest, is closed: do not reconnect it";
const RESTART: &str = "this instance is shutting down: reconnect (after `retry` ms) with the Last-Event-ID you have; \
     nothing is lost";
const SESSION_ENDED: &str = "your session ended (logged out or expired): log in again, then reconnect";

/// Resolves once the session `session` no longer exists, checked every `every`. A session
/// store that does not answer keeps the stream open: an outage of Redis must not close every
/// stream of the instance.
async fn session_ends(sessions: SessionStore, session: SessionId, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match sessions.lookup_id(&session).await {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => tracing::debug!(error = %e, "could not check a stream's session; keeping the stream"),
        }
    }
}

/// The last event of a stream that the server ends: `event:` says why, `data:` explains. It
/// has no `id:`, so the client's resume point stays where it was.
fn closing_event(kind: &str, reason: &str) -> Event {
    Event::default().event(kind).data(serde_json::json!({ "reason": reason }).to_string())
}

/// The caller's notifications, newest first.
#[utoipa::path(
    get,
    path = "/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    params(ListQuery, PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of notifications", body = Paged<Notification>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 422, description = "`invalid_field` on `limit`", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Notification>>, ApiError> {
    Ok(Json(store::list(&db, user.id, q.unread.unwrap_or(false), q.page.parse()?).await?))
}

/// Marks one of the caller's notifications read.
#[utoipa::path(
    post,
    path = "/notifications/{id}/read",
    operation_id = "mark_notification_read",
    tag = "notifications",
    params(("id" = u64, Path, description = "The notification's id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Marked read (also when it already was)"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`notification_not_found`: none of the caller's has this id", body = ErrorBody),
        (status = 503, response = Unavailable),
    )
)]
async fn mark_read(
    user: CurrentUser,
    State(db): State<MySqlPool>,
    ApiPath(id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    if store::mark_read(&db, user.id, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("notification_not_found", format!("no notification {id} of yours")))
    }
}

/// Marks all of the caller's notifications read.
#[utoipa::path(
    post,
    path = "/notifications/read-all",
    operation_id = "mark_all_notifications_read",
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "How many were unread", body = MarkedRead),
        (status = 401, response = Unauthorized),
        (status = 503, response = Unavailable),
    )
)]
async fn mark_all_read(user: CurrentUser, State(db): State<MySqlPool>) -> Result<Json<MarkedRead>, ApiError> {
    Ok(Json(MarkedRead { marked: store::mark_all_read(&db, user.id).await? }))
}
