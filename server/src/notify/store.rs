//! The `notifications` table: inserts that assign each recipient's sequence in commit order,
//! replay after a seq, listing, read marks.

use std::collections::{BTreeMap, HashSet};

use sqlx::{MySqlConnection, MySqlPool};

use super::{Kind, NewNotification, Notification};
use crate::pagination::{Page, Paged};

#[derive(sqlx::FromRow)]
struct Row {
    id: u64,
    recipient_id: u64,
    seq: u64,
    kind: String,
    cause_id: u64,
    actor_id: u64,
    created_at: chrono::NaiveDateTime,
    read_at: Option<chrono::NaiveDateTime>,
}

impl From<Row> for Notification {
    fn from(r: Row) -> Self {
        Notification {
            id: r.id,
            recipient_id: r.recipient_id,
            seq: r.seq,
            kind: Kind::parse(&r.kind).unwrap_or(Kind::Diary),
            cause_id: r.cause_id,
            actor_id: r.actor_id,
            created_at: r.created_at.and_utc(),
            read_at: r.read_at.map(|t| t.and_utc()),
        }
    }
}

const COLUMNS: &str = "id, recipient_id, seq, kind, cause_id, actor_id, created_at, read_at";

/// Whether the outbox relay still has to publish the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Pending,
    NotNeeded,
}

/// Stores the batch and returns the stored rows of the whole batch: the new ones and the ones a
/// redelivery found already stored, in (recipient, seq) order.
///
/// **`tx` must be inside a transaction**, committed by the caller: each recipient's
/// `notification_streams` row is locked from the moment its next seq is taken until that
/// commit, so seqs become visible in the order they were assigned (see the migration
/// `20261202000001_notification_seq.sql`). Rows are locked in recipient order, so two batches
/// never wait for each other in a cycle. A (recipient, kind, cause) already stored is a
/// redelivery: it keeps its row and its seq, and takes no new one.
///
/// Two queries in the common case: one `UPDATE` takes the seqs (and the locks), one
/// `INSERT ... VALUES ... RETURNING` writes the rows numbered from them and reads them back.
/// A redelivery shows as a duplicate key on that insert, which InnoDB undoes as a statement;
/// only then are the seqs given back, the stored rows read, and the rest inserted.
pub async fn insert_batch(
    tx: &mut MySqlConnection,
    batch: &[NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    let fresh = distinct(batch);
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let mut stored = match take_and_insert(tx, &fresh, relay).await {
        Ok(rows) => rows,
        Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            // Some of them were stored before: the insert did nothing, the locks stay held.
            advance(tx, &per_recipient(&fresh), Direction::GiveBack).await?;
            let mut stored = by_causes(tx, &fresh).await?;
            let found: HashSet<(u64, Kind, u64)> =
                stored.iter().map(|n| (n.recipient_id, n.kind, n.cause_id)).collect();
            let rest: Vec<&NewNotification> = fresh.into_iter().filter(|n| !found.contains(&cause_key(n))).collect();
            if !rest.is_empty() {
                stored.extend(take_and_insert(tx, &rest, relay).await?);
            }
            stored
        }
        Err(e) => return Err(e),
    };
    stored.sort_unstable_by_key(|n| (n.recipient_id, n.seq));
    Ok(stored)
}

fn cause_key(n: &NewNotification) -> (u64, Kind, u64) {
    (n.recipient_id, n.kind, n.cause_id)
}

/// The batch without the (recipient, kind, cause) pairs it repeats, in its order.
fn distinct(batch: &[NewNotification]) -> Vec<&NewNotification> {
    let mut seen = HashSet::new();
    batch.iter().filter(|n| seen.insert(cause_key(n))).collect()
}

/// How many notifications each recipient gets, in recipient order.
fn per_recipient(batch: &[&NewNotification]) -> BTreeMap<u64, u64> {
    let mut counts = BTreeMap::new();
    for n in batch {
        *counts.entry(n.recipient_id).or_default() += 1;
    }
    counts
}

#[derive(Clone, Copy)]
enum Direction {
    Take,
    GiveBack,
}

/// Moves each recipient's `last_seq` by its count, locking the rows in recipient order;
/// returns how many rows it found.
async fn advance(tx: &mut MySqlConnection, counts: &BTreeMap<u64, u64>, direction: Direction) -> sqlx::Result<u64> {
    let update = advance_sql(counts, direction);
    let sql = match direction {
        // One query, two statements: the `SET` changes no row, so the count is the UPDATE's.
        Direction::Take => format!("{}; {update}", clear_seqs_sql(counts)),
        Direction::GiveBack => update,
    };
    Ok(sqlx::Executor::execute(&mut *tx, sql.as_str()).await?.rows_affected())
}

/// The `UPDATE` of [`advance`], as text: every value in it is a number. Taking, it also
/// leaves each recipient's new `last_seq` in the session variable `@seq_<recipient>`, which
/// [`insert_sql`] numbers the rows from.
fn advance_sql(counts: &BTreeMap<u64, u64>, direction: Direction) -> String {
    let cases: String = counts
        .iter()
        .map(|(recipient, count)| match direction {
            Direction::Take => format!(" WHEN {recipient} THEN (@seq_{recipient} := last_seq + {count})"),
            Direction::GiveBack => format!(" WHEN {recipient} THEN last_seq - {count}"),
        })
        .collect();
    let ids: Vec<String> = counts.keys().map(u64::to_string).collect();
    format!(
        "UPDATE notification_streams SET last_seq = CASE recipient_id{cases} END \
         WHERE recipient_id IN ({}) ORDER BY recipient_id",
        ids.join(", ")
    )
}

/// Clears the session variables [`advance_sql`] sets, so a recipient whose stream row is
/// missing leaves `NULL` there, never the seq of an earlier batch on the same connection.
fn clear_seqs_sql(counts: &BTreeMap<u64, u64>) -> String {
    let vars: Vec<String> = counts.keys().map(|r| format!("@seq_{r} = NULL")).collect();
    format!("SET {}", vars.join(", "))
}

/// Takes the next seqs of the batch's recipients and inserts the batch numbered from them.
/// Every pair of the batch must be new (else a duplicate key error, the statement undone).
async fn take_and_insert(
    tx: &mut MySqlConnection,
    batch: &[&NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    let counts = per_recipient(batch);
    if advance(tx, &counts, Direction::Take).await? < counts.len() as u64 {
        // A user whose row is missing (created by hand, not by sign-up). Give back what was
        // taken, create the missing rows at 0 (a concurrent batch may create one first: the
        // insert waits for it and leaves its row), and take again from rows that all exist.
        advance(tx, &counts, Direction::GiveBack).await?;
        let mut create = sqlx::QueryBuilder::new("INSERT IGNORE INTO notification_streams (recipient_id) ");
        create.push_values(counts.keys(), |mut row, r| {
            row.push_bind(*r);
        });
        create.build().execute(&mut *tx).await?;
        advance(tx, &counts, Direction::Take).await?;
    }
    let rows = sqlx::Executor::fetch_all(&mut *tx, insert_sql(batch, &counts, relay).as_str()).await?;
    parse(&rows)
}

/// The `INSERT ... RETURNING` that writes `batch` numbered from its recipients' new `last_seq`
/// (the variables [`advance_sql`] set, the rows still locked by this transaction): the k-th of
/// a recipient's n notifications takes `last_seq - (n - k)`.
///
/// The rows are `VALUES`, their number known to the statement: InnoDB then takes the
/// `AUTO_INCREMENT` ids under a short mutex. An `INSERT ... SELECT` (how the rows were written
/// before) is a bulk insert, which holds a lock on the whole table's `AUTO_INCREMENT` until the
/// statement ends (`innodb_autoinc_lock_mode = 1`, the default): every store of every instance
/// queued behind it (`reports/README.md`, "The table lock behind the row-lock waits").
///
/// Sent as text: sqlx sees no columns in a prepared INSERT ... RETURNING on MariaDB. Every
/// value in it is a number or a kind's fixed name, nothing a user wrote.
fn insert_sql(batch: &[&NewNotification], counts: &BTreeMap<u64, u64>, relay: Relay) -> String {
    let relayed = match relay {
        Relay::Pending => "NULL",
        Relay::NotNeeded => "CURRENT_TIMESTAMP(6)",
    };
    let mut left = counts.clone();
    let rows: Vec<String> = batch
        .iter()
        .map(|n| {
            let back = left.get_mut(&n.recipient_id).map(|c| {
                *c -= 1;
                *c
            });
            format!(
                "({r}, @seq_{r} - {}, '{}', {}, {}, {relayed})",
                back.unwrap_or_default(),
                n.kind.as_str(),
                n.cause_id,
                n.actor_id,
                r = n.recipient_id,
            )
        })
        .collect();
    format!(
        "INSERT INTO notifications (recipient_id, seq, kind, cause_id, actor_id, relayed_at) VALUES {} \
         RETURNING {COLUMNS}",
        rows.join(", ")
    )
}

fn parse(rows: &[sqlx::mysql::MySqlRow]) -> sqlx::Result<Vec<Notification>> {
    let rows = rows.iter().map(<Row as sqlx::FromRow<_>>::from_row).collect::<Result<Vec<Row>, _>>()?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// MariaDB's error for a `NULL` written to a `NOT NULL` column (`ER_BAD_NULL_ERROR`).
const NULL_SEQ: u16 = 1048;

/// Whether the one-round-trip store failed in a way the general one handles: a pair stored
/// before (a redelivery), or a recipient without its stream row (its seq came out `NULL`).
fn falls_back(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else { return false };
    db.is_unique_violation()
        || db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|m| m.number() == NULL_SEQ)
}

/// Whether [`insert_batch_committed`] failed for what the batch holds, so that storing it
/// again cannot succeed: a recipient that does not exist (its stream row cannot be created, the
/// general way's `INSERT IGNORE` skips it, and its seq stays `NULL`: 1048; or a foreign key,
/// 1452), or a value a CHECK constraint refuses (4025).
pub(crate) fn refused_for_good(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|m| matches!(m.number(), NULL_SEQ | 1452 | 4025))
}

/// Stores `batch` in a transaction of its own and commits it; returns what
/// [`insert_batch`] returns. The common case (every recipient has its stream row, nothing
/// was stored before) is one round trip: `BEGIN`, the seqs' `UPDATE`, the `INSERT ...
/// RETURNING` and `COMMIT` sent together, so the recipients' stream rows stay locked only while
/// the database runs them, never while it waits for this process to send the next statement
/// (on a busy machine, this process's turn may come milliseconds later, and every batch to the
/// same recipients waits meanwhile: `reports/README.md`, "The table lock behind the row-lock
/// waits"). Otherwise (a redelivery, a missing stream row) [`insert_batch`] in a
/// transaction.
///
/// `conn` must be strict (`STRICT_ALL_TABLES`, as the store pool's sessions are): a lax
/// session would store a missing stream row's `NULL` seq as 0 instead of failing. On an error
/// the connection may be left inside the transaction: close it (the database then rolls back),
/// never hand it out again.
pub async fn insert_batch_committed(
    conn: &mut MySqlConnection,
    batch: &[NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    use sqlx::Connection;
    let fresh = distinct(batch);
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let counts = per_recipient(&fresh);
    // A recipient without its stream row keeps `@seq_<id>` NULL, and its row's NULL seq fails
    // the insert (the store pool's sessions are strict: `crate::db::connect_store_pool`).
    let together = format!(
        "BEGIN; {}; {}; {}; COMMIT",
        clear_seqs_sql(&counts),
        advance_sql(&counts, Direction::Take),
        insert_sql(&fresh, &counts, relay)
    );
    // Without arguments, sqlx sends the text as one query (COM_QUERY), statements and all.
    match sqlx::Executor::fetch_all(&mut *conn, together.as_str()).await {
        Ok(rows) => {
            let mut stored = parse(&rows)?;
            stored.sort_unstable_by_key(|n| (n.recipient_id, n.seq));
            return Ok(stored);
        }
        // Stored before (a redelivery), or a recipient without its stream row: the insert
        // was undone, the transaction is open.
        Err(e) if falls_back(&e) => {
            sqlx::Executor::execute(&mut *conn, "ROLLBACK").await?;
        }
        Err(e) => return Err(e),
    }
    let mut tx = conn.begin().await?;
    let stored = insert_batch(&mut tx, batch, relay).await?;
    tx.commit().await?;
    Ok(stored)
}

/// The stored rows of these (recipient, kind, cause) pairs.
async fn by_causes(conn: &mut MySqlConnection, batch: &[&NewNotification]) -> sqlx::Result<Vec<Notification>> {
    let mut select = sqlx::QueryBuilder::new(format!(
        "SELECT {COLUMNS} FROM notifications WHERE (recipient_id, kind, cause_id) IN "
    ));
    select.push_tuples(batch, |mut t, n| {
        t.push_bind(n.recipient_id).push_bind(n.kind.as_str()).push_bind(n.cause_id);
    });
    let rows: Vec<Row> = select.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// The oldest `limit` rows the outbox relay has not published yet and no other relay holds,
/// locked until the caller's transaction ends (`FOR UPDATE SKIP LOCKED`: concurrent relays
/// take disjoint rows and never wait for each other), in id order.
pub async fn claim_unrelayed(tx: &mut MySqlConnection, limit: u32) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE relayed_at IS NULL ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
    ))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// Whether any committed notification waits for the outbox relay: a plain read of the first
/// entry of `ix_notifications_relay`, no lock taken.
pub async fn any_unrelayed(db: &MySqlPool) -> sqlx::Result<bool> {
    let first: Option<u64> =
        sqlx::query_scalar("SELECT id FROM notifications WHERE relayed_at IS NULL LIMIT 1").fetch_optional(db).await?;
    Ok(first.is_some())
}

/// The recipient's highest committed seq, 0 when there is none: where a stream that starts
/// now resumes from.
pub async fn latest_seq(db: &MySqlPool, recipient: u64) -> sqlx::Result<u64> {
    let seq: Option<u64> = sqlx::query_scalar("SELECT MAX(seq) FROM notifications WHERE recipient_id = ?")
        .bind(recipient)
        .fetch_one(db)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// The recipient's notifications with `after < seq <= upto`, in seq order, at most `limit`.
pub async fn between(
    db: &MySqlPool,
    recipient: u64,
    after: u64,
    upto: u64,
    limit: u32,
) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?"
    ))
    .bind(recipient)
    .bind(after)
    .bind(upto)
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Notification::from).collect())
}

/// Newest first.
pub async fn list(db: &MySqlPool, recipient: u64, unread_only: bool, page: Page) -> sqlx::Result<Paged<Notification>> {
    let unread = if unread_only { "AND read_at IS NULL" } else { "" };
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND id < ? {unread} ORDER BY id DESC LIMIT ?"
    ))
    .bind(recipient)
    .bind(page.after.unwrap_or(u64::MAX))
    .bind(page.limit + 1)
    .fetch_all(db)
    .await?;
    Ok(Paged::from_rows(rows.into_iter().map(Notification::from).collect(), page, |n| n.id))
}

/// Marks one of the recipient's notifications read; false when it is not theirs or absent.
pub async fn mark_read(db: &MySqlPool, recipient: u64, id: u64) -> sqlx::Result<bool> {
    let found: Option<u64> = sqlx::query_scalar("SELECT id FROM notifications WHERE id = ? AND recipient_id = ?")
        .bind(id)
        .bind(recipient)
        .fetch_optional(db)
        .await?;
    if found.is_none() {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE notifications SET read_at = COALESCE(read_at, CURRENT_TIMESTAMP(6)) WHERE id = ? AND recipient_id = ?",
    )
    .bind(id)
    .bind(recipient)
    .execute(db)
    .await?;
    Ok(true)
}

pub async fn mark_all_read(db: &MySqlPool, recipient: u64) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE notifications SET read_at = CURRENT_TIMESTAMP(6) WHERE recipient_id = ? AND read_at IS NULL",
    )
    .bind(recipient)
    .execute(db)
    .await?
    .rows_affected())
}
