//! Points: earned by writing and commenting, spendable, never negative, never a lost update.
//!
//! Mechanism: every change is one conditional update,
//! `UPDATE point_balances SET balance = balance + ? WHERE user_id = ? AND balance + ? >= 0`,
//! and one `INSERT` into `point_log`, in the caller's transaction. The UPDATE is an atomic
//! read-modify-write under the row's exclusive lock, so concurrent changes for one user on any
//! number of instances serialise on that row and none is lost; the `WHERE` refuses an
//! overdraft without a prior read; the CHECK constraint is the last line of defence. The
//! seed's distributed lock (acquire, read, write, release, with a lease that can expire
//! mid-write) is not needed: the database row is already the one place all instances agree
//! on, and its lock ends exactly with the commit.

use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool};

use crate::pagination::{Page, Paged};

#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("insufficient points: the balance is {balance}, {needed} needed")]
    Insufficient { balance: i64, needed: i64 },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Why points changed. Awards are unique per (user, reason, ref).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'a> {
    DiaryWritten,
    CommentWritten,
    /// The award of a deleted diary, taken back.
    DiaryDeleted,
    /// The award of a deleted comment, taken back.
    CommentDeleted,
    Spent(&'a str),
}

impl Reason<'_> {
    fn as_str(&self) -> &str {
        match self {
            Reason::DiaryWritten => "diary_written",
            Reason::CommentWritten => "comment_written",
            Reason::DiaryDeleted => "diary_deleted",
            Reason::CommentDeleted => "comment_deleted",
            Reason::Spent(reason) => reason,
        }
    }
}

// The rules of earning, so that points measure writing, not a loop of requests:
// * what a diary or comment earned is taken back when it is deleted (as far as the balance
//   allows: a balance never goes below zero, so points already spent stay spent, and the daily
//   cap bounds what a write-spend-delete loop can take);
// * commenting on one's own diary earns nothing (the caller decides: see `diary::comments`);
// * earnings per UTC day are capped (`SERVER_POINTS_DAILY_CAP`), deletions notwithstanding.

/// Awards up to `amount` for an earning `reason`, within what `user_id` may still earn today
/// under `daily_cap`; returns what was awarded (0 once the cap is reached: nothing is logged).
#[tracing::instrument(skip(conn), fields(user_id = user_id))]
pub async fn award(
    conn: &mut MySqlConnection,
    user_id: u64,
    amount: i64,
    reason: Reason<'_>,
    ref_id: Option<u64>,
    daily_cap: i64,
) -> Result<i64, PointsError> {
    // The balance row's lock serialises this user's changes: the day's earnings cannot change
    // between this read and the award. A row last earned on an earlier day has earned 0 today;
    // "today" is the database's UTC day, read with the row.
    let (balance, earned, today): (i64, i64, chrono::NaiveDate) = sqlx::query_as(
        "SELECT balance, CAST(IF(earned_on = UTC_DATE(), earned_today, 0) AS SIGNED), UTC_DATE() \
         FROM point_balances WHERE user_id = ? FOR UPDATE",
    )
    .bind(user_id)
    .fetch_one(&mut *conn)
    .await?;
    let grant = amount.min(daily_cap - earned);
    if grant <= 0 {
        return Ok(0);
    }
    let updated = sqlx::query(
        "UPDATE point_balances SET balance = balance + ?, earned_today = ?, earned_on = ? \
         WHERE user_id = ? AND balance + ? >= 0",
    )
    .bind(grant)
    .bind(earned + grant)
    .bind(today)
    .bind(user_id)
    .bind(grant)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(PointsError::Insufficient { balance, needed: -grant });
    }
    log_change(conn, user_id, grant, balance + grant, reason, ref_id).await?;
    Ok(grant)
}

/// Takes back what `awarded_for` + `ref_id` earned `user_id`, as far as the balance allows,
/// logged as `reversal`; returns the points taken back (0 when it earned nothing).
#[tracing::instrument(skip(conn), fields(user_id = user_id))]
pub async fn take_back(
    conn: &mut MySqlConnection,
    user_id: u64,
    awarded_for: Reason<'_>,
    ref_id: u64,
    reversal: Reason<'_>,
) -> Result<i64, PointsError> {
    let balance = lock_balance(conn, user_id).await?;
    let awarded: Option<i64> =
        sqlx::query_scalar("SELECT delta FROM point_log WHERE user_id = ? AND reason = ? AND ref_id = ?")
            .bind(user_id)
            .bind(awarded_for.as_str())
            .bind(ref_id)
            .fetch_optional(&mut *conn)
            .await?;
    let amount = awarded.unwrap_or(0).min(balance);
    if amount <= 0 {
        return Ok(0);
    }
    change_locked(conn, user_id, balance, -amount, reversal, Some(ref_id)).await?;
    Ok(amount)
}

async fn lock_balance(conn: &mut MySqlConnection, user_id: u64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT balance FROM point_balances WHERE user_id = ? FOR UPDATE")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await
}

/// Applies `delta` to the balance of `user_id` and logs it, in the caller's transaction.
/// Returns the balance after the change.
#[tracing::instrument(skip(conn), fields(user_id = user_id))]
pub async fn apply(
    conn: &mut MySqlConnection,
    user_id: u64,
    delta: i64,
    reason: Reason<'_>,
    ref_id: Option<u64>,
) -> Result<i64, PointsError> {
    let updated = update_balance(conn, user_id, delta).await?;
    // Read under the row lock the UPDATE holds (or a plain read when it changed nothing).
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM point_balances WHERE user_id = ?")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    if !updated {
        return Err(PointsError::Insufficient { balance, needed: -delta });
    }
    log_change(conn, user_id, delta, balance, reason, ref_id).await?;
    Ok(balance)
}

/// [`apply`] for a caller that holds the balance row's lock and read `balance` under it: the
/// balance after the change is known without reading it again.
async fn change_locked(
    conn: &mut MySqlConnection,
    user_id: u64,
    balance: i64,
    delta: i64,
    reason: Reason<'_>,
    ref_id: Option<u64>,
) -> Result<i64, PointsError> {
    if !update_balance(conn, user_id, delta).await? {
        return Err(PointsError::Insufficient { balance, needed: -delta });
    }
    let after = balance + delta;
    log_change(conn, user_id, delta, after, reason, ref_id).await?;
    Ok(after)
}

/// The conditional update: false when it would overdraw (nothing changed).
async fn update_balance(conn: &mut MySqlConnection, user_id: u64, delta: i64) -> sqlx::Result<bool> {
    let updated = sqlx::query("UPDATE point_balances SET balance = balance + ? WHERE user_id = ? AND balance + ? >= 0")
        .bind(delta)
        .bind(user_id)
        .bind(delta)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(updated > 0)
}

async fn log_change(
    conn: &mut MySqlConnection,
    user_id: u64,
    delta: i64,
    balance_after: i64,
    reason: Reason<'_>,
    ref_id: Option<u64>,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO point_log (user_id, delta, balance_after, reason, ref_id) VALUES (?, ?, ?, ?, ?)")
        .bind(user_id)
        .bind(delta)
        .bind(balance_after)
        .bind(reason.as_str())
        .bind(ref_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn balance(db: &MySqlPool, user_id: u64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT balance FROM point_balances WHERE user_id = ?").bind(user_id).fetch_one(db).await
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = PointsLogEntry)]
pub struct LogEntry {
    pub id: u64,
    pub delta: i64,
    pub balance_after: i64,
    pub reason: String,
    pub ref_id: Option<u64>,
    #[serde(serialize_with = "crate::time::serialize_utc")]
    pub created_at: chrono::NaiveDateTime,
}

/// Newest first; one range scan of `ix_point_log_user` whatever the page number.
#[tracing::instrument(skip(db), fields(user_id = user_id))]
pub async fn log(db: &MySqlPool, user_id: u64, page: Page) -> sqlx::Result<Paged<LogEntry>> {
    let rows: Vec<LogEntry> = sqlx::query_as(
        "SELECT id, delta, balance_after, reason, ref_id, created_at FROM point_log \
         WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows, page, |e| e.id))
}
