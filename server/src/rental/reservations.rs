//! Reservations of an item: requested by a borrower, then approved or rejected by the owner,
//! cancelled by either, and marked returned by the owner.
//!
//! A reservation covers calendar days (UTC), both ends inclusive: 2026-12-01 to 2026-12-01 is
//! one day, and two reservations overlap when `a.start <= b.end AND b.start <= a.end`.
//! The invariant is "no two approved reservations of one item overlap"; [`approve`] is the
//! only way into `approved` and keeps it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;

use super::not_found as rental_not_found;
use crate::error::ApiError;
use crate::pagination::{Page, Paged};
use crate::time::parse_date;

/// The longest reservation, in days.
pub const MAX_DAYS: i64 = 90;
/// How far ahead a reservation may start, in days from today.
pub const MAX_AHEAD_DAYS: i64 = 365;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationStatus {
    Requested,
    Approved,
    Rejected,
    Cancelled,
    Returned,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Requested => "requested",
            ReservationStatus::Approved => "approved",
            ReservationStatus::Rejected => "rejected",
            ReservationStatus::Cancelled => "cancelled",
            ReservationStatus::Returned => "returned",
        }
    }

    fn parse(s: &str) -> ReservationStatus {
        match s {
            "approved" => ReservationStatus::Approved,
            "rejected" => ReservationStatus::Rejected,
            "cancelled" => ReservationStatus::Cancelled,
            "returned" => ReservationStatus::Returned,
            _ => ReservationStatus::Requested,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reservation {
    pub id: u64,
    pub item_id: u64,
    pub item_owner_id: u64,
    pub requester_id: u64,
    /// First day, inclusive (`YYYY-MM-DD`, UTC).
    pub start_date: NaiveDate,
    /// Last day, inclusive.
    pub end_date: NaiveDate,
    /// Days covered, both ends counted.
    pub days: i64,
    pub status: ReservationStatus,
    /// Bumped by every status change.
    pub version: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: u64,
    item_id: u64,
    item_owner_id: u64,
    requester_id: u64,
    start_date: NaiveDate,
    end_date: NaiveDate,
    status: String,
    version: u64,
    created_at: chrono::NaiveDateTime,
    updated_at: chrono::NaiveDateTime,
}

impl From<ReservationRow> for Reservation {
    fn from(r: ReservationRow) -> Self {
        Reservation {
            id: r.id,
            item_id: r.item_id,
            item_owner_id: r.item_owner_id,
            requester_id: r.requester_id,
            start_date: r.start_date,
            end_date: r.end_date,
            days: (r.end_date - r.start_date).num_days() + 1,
            status: ReservationStatus::parse(&r.status),
            version: r.version,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

const SELECT: &str = "SELECT r.id, r.item_id, i.owner_id AS item_owner_id, r.requester_id, r.start_date, r.end_date, \
    r.status, r.version, r.created_at, r.updated_at FROM rental_reservations r JOIN rental_items i ON i.id = r.item_id";

/// The body of `POST /rentals/{id}/reservations`; dates stay strings so a bad one is a 422
/// naming the field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationInput {
    /// First day, inclusive: `YYYY-MM-DD` (UTC), today or later.
    #[schema(value_type = NaiveDate, required = true)]
    pub start_date: Option<String>,
    /// Last day, inclusive: on or after `start_date`, at most 90 days in all.
    #[schema(value_type = NaiveDate, required = true)]
    pub end_date: Option<String>,
}

/// A validated span of days, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl ReservationInput {
    /// Checks the rules of a new reservation against `today`.
    pub fn parse(&self, today: NaiveDate) -> Result<DateRange, ApiError> {
        let start = parse_date(
            "start_date",
            self.start_date.as_deref().ok_or_else(|| ApiError::invalid("start_date", "is required"))?,
        )?;
        let end = parse_date(
            "end_date",
            self.end_date.as_deref().ok_or_else(|| ApiError::invalid("end_date", "is required"))?,
        )?;
        if start < today {
            return Err(ApiError::invalid(
                "start_date",
                format!("{start} is in the past: start today ({today}) or later"),
            ));
        }
        if end < start {
            return Err(ApiError::invalid(
                "end_date",
                format!("{end} is before start_date {start}: a reservation ends on or after its first day"),
            ));
        }
        if (start - today).num_days() > MAX_AHEAD_DAYS {
            return Err(ApiError::invalid("start_date", format!("{start} is more than {MAX_AHEAD_DAYS} days ahead")));
        }
        let days = (end - start).num_days() + 1;
        if days > MAX_DAYS {
            return Err(ApiError::invalid(
                "end_date",
                format!("the reservation would last {days} days; at most {MAX_DAYS} are allowed"),
            ));
        }
        Ok(DateRange { start, end })
    }
}

pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

fn not_found(id: u64) -> ApiError {
    ApiError::not_found("reservation_not_found", format!("no reservation {id} of yours or of your items"))
}

async fn fetch(db: &MySqlPool, id: u64) -> sqlx::Result<Option<Reservation>> {
    let row: Option<ReservationRow> =
        sqlx::query_as(&format!("{SELECT} WHERE r.id = ?")).bind(id).fetch_optional(db).await?;
    Ok(row.map(Reservation::from))
}

/// An approved reservation of `item` that overlaps `range`, if any.
async fn approved_overlap<'e>(
    db: impl sqlx::MySqlExecutor<'e>,
    item: u64,
    range: DateRange,
) -> sqlx::Result<Option<(u64, NaiveDate, NaiveDate)>> {
    sqlx::query_as(
        "SELECT id, start_date, end_date FROM rental_reservations \
         WHERE item_id = ? AND status = 'approved' AND start_date <= ? AND end_date >= ? LIMIT 1",
    )
    .bind(item)
    .bind(range.end)
    .bind(range.start)
    .fetch_optional(db)
    .await
}

#[tracing::instrument(skip(db), fields(user_id = requester))]
pub async fn request(db: &MySqlPool, requester: u64, item_id: u64, range: DateRange) -> Result<Reservation, ApiError> {
    let item = super::get(db, item_id).await?;
    if item.owner_id == requester {
        return Err(ApiError::Forbidden(format!(
            "rental {item_id} is your own: owners cannot reserve their own items"
        )));
    }
    // Only a courtesy: the approval checks again, in the transaction that decides.
    if let Some((other, start, end)) = approved_overlap(db, item_id, range).await? {
        return Err(ApiError::conflict(
            "dates_unavailable",
            format!(
                "rental {item_id} is already booked from {start} to {end} (reservation {other}): choose other dates"
            ),
        ));
    }
    let id = sqlx::query(
        "INSERT INTO rental_reservations (item_id, requester_id, start_date, end_date) VALUES (?, ?, ?, ?)",
    )
    .bind(item_id)
    .bind(requester)
    .bind(range.start)
    .bind(range.end)
    .execute(db)
    .await?
    .last_insert_id();
    fetch(db, id).await?.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("reservation {id} vanished after insert")))
}

/// An item's reservations, newest first: all of them for its owner, one's own for others.
pub async fn list_for_item(
    db: &MySqlPool,
    viewer: u64,
    item_id: u64,
    page: Page,
) -> Result<Paged<Reservation>, ApiError> {
    let item = super::fetch(db, item_id).await?.ok_or_else(|| rental_not_found(item_id))?;
    let rows: Vec<ReservationRow> = sqlx::query_as(&format!(
        "{SELECT} WHERE r.item_id = ? AND (? OR r.requester_id = ?) AND r.id < ? ORDER BY r.id DESC LIMIT ?"
    ))
    .bind(item_id)
    .bind(item.owner_id == viewer)
    .bind(viewer)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Reservation::from).collect(), page, |r| r.id))
}

/// The caller's own requests, newest first.
pub async fn list_mine(db: &MySqlPool, viewer: u64, page: Page) -> sqlx::Result<Paged<Reservation>> {
    let rows: Vec<ReservationRow> =
        sqlx::query_as(&format!("{SELECT} WHERE r.requester_id = ? AND r.id < ? ORDER BY r.id DESC LIMIT ?"))
            .bind(viewer)
            .bind(page.after.unwrap_or(u64::MAX))
            .bind(page.limit + 1)
            .fetch_all(db)
            .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Reservation::from).collect(), page, |r| r.id))
}

/// What the owner or the requester does to a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Approve,
    Reject,
    Cancel,
    Return,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Approve => "approved",
            Action::Reject => "rejected",
            Action::Cancel => "cancelled",
            Action::Return => "marked returned",
        }
    }

    /// The statuses the action applies to, and the one it leads to.
    fn transition(self) -> (&'static [ReservationStatus], ReservationStatus) {
        use ReservationStatus::*;
        match self {
            Action::Approve => (&[Requested], Approved),
            Action::Reject => (&[Requested], Rejected),
            Action::Cancel => (&[Requested, Approved], Cancelled),
            Action::Return => (&[Approved], Returned),
        }
    }
}

/// Applies `action` for `viewer`: 404 unless they are the requester or the item's owner, 403
/// when the action is the other party's, 409 when the status does not allow it.
#[tracing::instrument(skip(db), fields(user_id = viewer))]
pub async fn act(db: &MySqlPool, viewer: u64, id: u64, action: Action) -> Result<Reservation, ApiError> {
    act_guarded(db, viewer, id, action, super::approval::BookingGuard::Version).await
}

/// [`act`], with approvals guarded by `guard`.
pub async fn act_guarded(
    db: &MySqlPool,
    viewer: u64,
    id: u64,
    action: Action,
    guard: super::approval::BookingGuard,
) -> Result<Reservation, ApiError> {
    let current = fetch(db, id).await?.ok_or_else(|| not_found(id))?;
    let is_owner = current.item_owner_id == viewer;
    if !is_owner && current.requester_id != viewer {
        return Err(not_found(id));
    }
    if !is_owner && action != Action::Cancel {
        return Err(ApiError::Forbidden(format!("only the item's owner may have reservation {id} {}", action.verb())));
    }
    let (from, to) = action.transition();
    if !from.contains(&current.status) {
        let allowed: Vec<_> = from.iter().map(|s| s.as_str()).collect();
        return Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "reservation {id} is {}: only a {} reservation can be {}",
                current.status.as_str(),
                allowed.join(" or "),
                action.verb()
            ),
        ));
    }
    if action == Action::Return && current.start_date > today() {
        return Err(ApiError::conflict(
            "reservation_not_started",
            format!(
                "reservation {id} starts on {}: it cannot be returned before it starts; cancel it instead",
                current.start_date
            ),
        ));
    }
    if action == Action::Approve {
        super::approval::approve(db, &current, guard).await?;
    } else {
        let changed = sqlx::query(
            "UPDATE rental_reservations SET status = ?, version = version + 1, updated_at = CURRENT_TIMESTAMP(6) \
             WHERE id = ? AND version = ?",
        )
        .bind(to.as_str())
        .bind(id)
        .bind(current.version)
        .execute(db)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(changed_meanwhile(id));
        }
    }
    fetch(db, id).await?.ok_or_else(|| not_found(id))
}

pub(super) fn changed_meanwhile(id: u64) -> ApiError {
    ApiError::conflict(
        "reservation_changed",
        format!("reservation {id} was changed by someone else meanwhile: reload it and retry"),
    )
}

pub(super) async fn overlapping_approved(
    tx: &mut sqlx::MySqlConnection,
    r: &Reservation,
) -> sqlx::Result<Option<(u64, NaiveDate, NaiveDate)>> {
    approved_overlap(tx, r.item_id, DateRange { start: r.start_date, end: r.end_date }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(start: &str, end: &str) -> ReservationInput {
        ReservationInput { start_date: Some(start.into()), end_date: Some(end.into()) }
    }

    fn field(result: Result<DateRange, ApiError>) -> &'static str {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn date_rules_name_the_field_at_fault() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(input("2026-11-22", "2026-11-22").parse(today).unwrap().start, today);
        assert_eq!(field(input("2026-11-21", "2026-11-23").parse(today)), "start_date");
        assert_eq!(field(input("2026-11-25", "2026-11-24").parse(today)), "end_date");
        assert_eq!(field(input("2026-11-22", "2027-02-20").parse(today)), "end_date");
        assert!(input("2026-11-22", "2027-02-19").parse(today).is_ok(), "90 days, both ends counted");
        assert_eq!(field(input("2027-11-24", "2027-11-25").parse(today)), "start_date");
        assert_eq!(field(input("22/11/2026", "2026-11-25").parse(today)), "start_date");
        assert_eq!(
            field(ReservationInput { start_date: Some("2026-11-22".into()), end_date: None }.parse(today)),
            "end_date"
        );
    }
}
