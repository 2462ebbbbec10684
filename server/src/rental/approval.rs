//! Approving a reservation: the one place two requests race for the same days.
//!
//! One transaction, in this order:
//!
//! 1. read the item's `booking_version` (a plain, non-locking read);
//! 2. look for an approved reservation of the item overlapping ours (non-locking too);
//! 3. `UPDATE rental_items SET booking_version = v + 1 WHERE id = ? AND booking_version = v`
//!    — the seed's optimistic lock; 0 rows means another approval committed since step 1;
//! 4. `UPDATE rental_reservations SET status = 'approved' ... WHERE id = ? AND version = ?`
//!    — 0 rows means the reservation was cancelled or rejected meanwhile;
//! 5. commit.
//!
//! Why the optimistic check alone is enough here, under both isolation levels:
//!
//! * Every approval bumps `booking_version`, so every approval of this item is a write to one
//!   row. Two approvals that read the same `v` in step 1 both reach step 3; InnoDB makes the
//!   second wait for the first's row lock. An UPDATE is a *locking* read: it evaluates its
//!   WHERE against the latest committed row, not the transaction's snapshot. Once the first
//!   commits, the second sees `v + 1`, matches 0 rows, and we roll back with 409. (With
//!   `innodb_snapshot_isolation=ON`, MariaDB's default since 11.6, a REPEATABLE READ
//!   transaction gets error 1020 "Record has changed since last read" there instead of 0 rows;
//!   the pool runs READ COMMITTED, but 1020 is mapped to the same 409 in case it does not.)
//! * An approval that committed *before* our step 1 is seen by step 2: under READ COMMITTED
//!   step 2 is a new statement and sees everything committed before it; under REPEATABLE READ
//!   the snapshot is taken at step 1, which is after that commit. An approval that commits
//!   *after* our step 1 changed `booking_version`, so our step 3 fails. There is no third case,
//!   so no two overlapping approvals can both commit.
//! * Step 3 comes before step 4, so the item row is the first lock each approval takes: two
//!   approvals cannot hold locks in opposite orders (no deadlock between approvals).
//!
//! The price is that concurrent approvals of *non-overlapping* reservations of one item also
//! conflict and must be retried; approvals are rare human actions, so that is acceptable. A
//! `SELECT ... FOR UPDATE` of the item row in step 1 would serialise them instead of failing
//! one, at the cost of holding the lock across step 2.

use crate::error::ApiError;

use super::reservations::{Reservation, changed_meanwhile, overlapping_approved};

/// What keeps two approvals of overlapping reservations from both committing
/// (`SERVER_BOOKING_GUARD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingGuard {
    /// The item's `booking_version`, in one transaction (above): the default.
    Version,
    /// Nothing: look for an approved overlap, then approve, as a plain read-then-write does.
    /// Two approvals that both look before either writes both commit. Never for use: the
    /// control group that shows a booking race can be caught (scenarios/booking-race.toml).
    /// `gap` waits between the look and the write (`SERVER_BOOKING_CHECK_GAP_MS`, 0 unless
    /// set), the time real code spends there on other reads, so that concurrent approvals
    /// overlap in every run instead of by luck.
    None { gap: std::time::Duration },
}

impl std::str::FromStr for BookingGuard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "version" => Ok(BookingGuard::Version),
            "none" => Ok(BookingGuard::None { gap: std::time::Duration::ZERO }),
            other => Err(format!("`{other}` is not one of version, none")),
        }
    }
}

/// MariaDB's errors for "another transaction got there first": deadlock (1213), lock wait
/// timeout (1205), and "record has changed since last read" (1020, snapshot isolation).
fn lost_race(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|e| matches!(e.number(), 1020 | 1205 | 1213))
}

fn booking_conflict(r: &Reservation, why: String) -> ApiError {
    ApiError::conflict(
        "booking_conflict",
        format!("reservation {} was not approved: {why}; reload the item's reservations and retry", r.id),
    )
}

/// Approves `r` (already checked to be `requested` and the caller's to approve).
#[tracing::instrument(skip_all, fields(reservation_id = r.id, item_id = r.item_id))]
pub async fn approve(db: &sqlx::MySqlPool, r: &Reservation, guard: BookingGuard) -> Result<(), ApiError> {
    if let BookingGuard::None { gap } = guard {
        return approve_unguarded(db, r, gap).await;
    }
    match try_approve(db, r).await {
        Err(ApiError::Internal(e)) => match e.downcast_ref::<sqlx::Error>() {
            Some(db_err) if lost_race(db_err) => {
                Err(booking_conflict(r, "another approval of the same item committed at the same time".to_string()))
            }
            _ => Err(ApiError::Internal(e)),
        },
        other => other,
    }
}

/// [`BookingGuard::None`]: a read, then a write, each on its own.
async fn approve_unguarded(db: &sqlx::MySqlPool, r: &Reservation, gap: std::time::Duration) -> Result<(), ApiError> {
    let mut conn = db.acquire().await.map_err(ApiError::from)?;
    no_approved_overlap(&mut conn, r).await?;
    if !gap.is_zero() {
        tokio::time::sleep(gap).await;
    }
    mark_approved(&mut conn, r).await?;
    Ok(())
}

/// Step 2: a 409 when an approved reservation of the item overlaps `r`.
async fn no_approved_overlap(conn: &mut sqlx::MySqlConnection, r: &Reservation) -> Result<(), ApiError> {
    let found = overlapping_approved(conn, r).await.map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?;
    match found {
        Some((other, start, end)) => Err(booking_conflict(
            r,
            format!("reservation {other} of the same item is already approved from {start} to {end}"),
        )),
        None => Ok(()),
    }
}

/// Step 4: `r` becomes approved, unless it changed since it was read.
async fn mark_approved(conn: &mut sqlx::MySqlConnection, r: &Reservation) -> Result<(), ApiError> {
    let approved = sqlx::query(
        "UPDATE rental_reservations SET status = 'approved', version = version + 1, \
         updated_at = CURRENT_TIMESTAMP(6) WHERE id = ? AND version = ? AND status = 'requested'",
    )
    .bind(r.id)
    .bind(r.version)
    .execute(conn)
    .await
    .map_err(|e| ApiError::Internal(anyhow::Error::new(e)))?
    .rows_affected();
    if approved == 0 {
        return Err(changed_meanwhile(r.id));
    }
    Ok(())
}

async fn try_approve(db: &sqlx::MySqlPool, r: &Reservation) -> Result<(), ApiError> {
    let internal = |e: sqlx::Error| ApiError::Internal(anyhow::Error::new(e));
    // Dropping `tx` on any early return rolls it back.
    let mut tx = db.begin().await.map_err(ApiError::from)?;
    let booking_version: Option<u64> = sqlx::query_scalar("SELECT booking_version FROM rental_items WHERE id = ?")
        .bind(r.item_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(internal)?;
    let Some(booking_version) = booking_version else {
        return Err(super::not_found(r.item_id));
    };
    no_approved_overlap(&mut tx, r).await?;
    let bumped = sqlx::query(
        "UPDATE rental_items SET booking_version = booking_version + 1 WHERE id = ? AND booking_version = ?",
    )
    .bind(r.item_id)
    .bind(booking_version)
    .execute(&mut *tx)
    .await
    .map_err(internal)?
    .rows_affected();
    if bumped == 0 {
        return Err(booking_conflict(r, "another reservation of the same item was approved meanwhile".to_string()));
    }
    mark_approved(&mut tx, r).await?;
    tx.commit().await.map_err(internal)?;
    Ok(())
}
