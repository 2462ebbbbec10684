//! The `notifications` table: inserts that assign each recipient's sequence in commit order
//! (in the cause's or a store transaction; the outbox's rows in a relay pass), replay after a
//! seq, listing, read marks.

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
pub async fn insert_batch(tx: &mut MySqlConnection, batch: &[NewNotification]) -> sqlx::Result<Vec<Notification>> {
    let fresh = distinct(batch);
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let mut stored = match take_and_insert(tx, &fresh).await {
        Ok(rows) => rows,
        Err(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            // Some of them were stored before: the insert did nothing, the locks stay held.
            advance(tx, &per_recipient(&fresh), Direction::GiveBack).await?;
            let mut stored = by_causes(tx, &fresh).await?;
            let found: HashSet<(u64, Kind, u64)> =
                stored.iter().map(|n| (n.recipient_id, n.kind, n.cause_id)).collect();
            let rest: Vec<&NewNotification> = fresh.into_iter().filter(|n| !found.contains(&cause_key(n))).collect();
            if !rest.is_empty() {
                stored.extend(take_and_insert(tx, &rest).await?);
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
async fn take_and_insert(tx: &mut MySqlConnection, batch: &[&NewNotification]) -> sqlx::Result<Vec<Notification>> {
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
    let rows = sqlx::Executor::fetch_all(&mut *tx, insert_sql(batch, &counts).as_str()).await?;
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
fn insert_sql(batch: &[&NewNotification], counts: &BTreeMap<u64, u64>) -> String {
    let mut left = counts.clone();
    let rows: Vec<String> = batch
        .iter()
        .map(|n| {
            let back = left.get_mut(&n.recipient_id).map(|c| {
                *c -= 1;
                *c
            });
            format!(
                "({r}, @seq_{r} - {}, '{}', {}, {}, CURRENT_TIMESTAMP(6))",
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

/// MariaDB's error for a row a CHECK constraint refuses (`ER_CONSTRAINT_FAILED`).
const CHECK_FAILED: u16 = 4025;

/// Whether `e` is `ck_notifications_numbered` refusing a row: a seq that came out `NULL`, for a
/// recipient without its stream row (see the migration `20261205000001_outbox_numbers_at_relay.sql`).
fn not_numbered(m: &sqlx::mysql::MySqlDatabaseError) -> bool {
    m.number() == CHECK_FAILED && m.message().contains("ck_notifications_numbered")
}

/// Whether the one-round-trip store failed in a way the general one handles: a pair stored
/// before (a redelivery), or a recipient without its stream row (its seq came out `NULL`).
fn falls_back(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else { return false };
    db.is_unique_violation() || db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(not_numbered)
}

/// Whether [`insert_batch_committed`] failed for what the batch holds, so that storing it
/// again cannot succeed: a recipient that does not exist (its stream row cannot be created, the
/// general way's `INSERT IGNORE` skips it, and its seq stays `NULL`, which
/// `ck_notifications_numbered` refuses: 4025; or a foreign key, 1452), or another value a CHECK
/// constraint refuses (4025).
pub(crate) fn refused_for_good(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|m| matches!(m.number(), 1452 | CHECK_FAILED))
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
/// A missing stream row leaves its recipient's seq `NULL`, which `ck_notifications_numbered`
/// refuses (the row has `relayed_at` set): the insert fails and is undone. On an error
/// the connection may be left inside the transaction: close it (the database then rolls back),
/// never hand it out again.
pub async fn insert_batch_committed(
    conn: &mut MySqlConnection,
    batch: &[NewNotification],
) -> sqlx::Result<Vec<Notification>> {
    use sqlx::Connection;
    let fresh = distinct(batch);
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let counts = per_recipient(&fresh);
    // A recipient without its stream row keeps `@seq_<id>` NULL, and its row's NULL seq fails
    // the insert (`ck_notifications_numbered`).
    let together = format!(
        "BEGIN; {}; {}; {}; COMMIT",
        clear_seqs_sql(&counts),
        advance_sql(&counts, Direction::Take),
        insert_sql(&fresh, &counts)
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
    let stored = insert_batch(&mut tx, batch).await?;
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

/// Writes the outbox's rows in the cause's transaction `tx`, without their seqs: a relay pass
/// numbers them ([`number_pending`]) before it publishes them. Nothing else is locked: no
/// recipient's stream row waits for the cause's commit. The cause is new, so none of its pairs
/// can have been stored before: one that was is refused (a duplicate key), never stored twice.
/// Returns how many rows it wrote.
///
/// Sent as text, one statement whatever the batch's size (a prepared statement per batch size
/// would be prepared again and again): every value in it is a number or a kind's fixed name.
pub async fn insert_unnumbered(tx: &mut MySqlConnection, batch: &[NewNotification]) -> sqlx::Result<u64> {
    let fresh = distinct(batch);
    if fresh.is_empty() {
        return Ok(0);
    }
    let rows: Vec<String> = fresh
        .iter()
        .map(|n| format!("({}, '{}', {}, {})", n.recipient_id, n.kind.as_str(), n.cause_id, n.actor_id))
        .collect();
    let sql = format!("INSERT INTO notifications (recipient_id, kind, cause_id, actor_id) VALUES {}", rows.join(", "));
    Ok(sqlx::Executor::execute(&mut *tx, sql.as_str()).await?.rows_affected())
}

/// Numbers the oldest `limit` outbox rows that have no seq yet and that no other relay holds,
/// in a transaction of its own, committed before this returns; returns how many it numbered.
///
/// Two round trips: `BEGIN` and the claim (`FOR UPDATE SKIP LOCKED`: relays number disjoint
/// rows), then the seqs taken, the rows numbered and `COMMIT` sent together. A recipient's
/// stream row is locked from its seqs' taking to that commit, as in [`insert_batch`], so when
/// seq n is visible every seq below it is too; it is locked while the database runs those
/// statements, never while it waits for this process. The stream rows are written by one
/// `INSERT ... ON DUPLICATE KEY UPDATE` in recipient order: a recipient without one (a user made
/// by hand) gets it, starting at 0, and two relays never wait for each other in a cycle.
///
/// Committed before the rows are published: a stream that receives seq n reads the seqs below
/// it from the database at once ([`super::stream`]), so no seq may go out before it commits.
///
/// On an error the connection may be left inside the transaction: close it (the database then
/// rolls back), never hand it out again.
pub async fn number_pending(conn: &mut MySqlConnection, limit: u32) -> sqlx::Result<usize> {
    let claim = format!(
        "BEGIN; SELECT id, recipient_id FROM notifications WHERE relayed_at IS NULL AND seq IS NULL \
         ORDER BY id LIMIT {limit} FOR UPDATE SKIP LOCKED"
    );
    let rows = sqlx::Executor::fetch_all(&mut *conn, claim.as_str()).await?;
    let pending = rows
        .iter()
        .map(|row| Ok((sqlx::Row::try_get::<u64, _>(row, 0)?, sqlx::Row::try_get::<u64, _>(row, 1)?)))
        .collect::<sqlx::Result<Vec<(u64, u64)>>>()?;
    if pending.is_empty() {
        sqlx::Executor::execute(&mut *conn, "COMMIT").await?;
        return Ok(0);
    }
    sqlx::Executor::execute(&mut *conn, numbering_sql(&pending).as_str()).await?;
    Ok(pending.len())
}

/// What [`number_pending`] sends after its claim, as text (every value in it is a number):
/// each recipient's `last_seq` moved by its count of `pending` (id, recipient) rows, the new
/// value left in `@seq_<recipient>`, and the k-th of a recipient's n rows (in id order)
/// numbered `last_seq - (n - k)`; then `COMMIT`.
fn numbering_sql(pending: &[(u64, u64)]) -> String {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, recipient) in pending {
        *counts.entry(*recipient).or_default() += 1;
    }
    let values: Vec<String> = counts.iter().map(|(r, n)| format!("({r}, @seq_{r} := {n})")).collect();
    let cases: String =
        counts.keys().map(|r| format!(" WHEN {r} THEN (@seq_{r} := last_seq + VALUES(last_seq))")).collect();
    let mut left = counts.clone();
    let seqs: String = pending
        .iter()
        .map(|(id, r)| {
            let back = left.get_mut(r).map_or(0, |c| {
                *c -= 1;
                *c
            });
            format!(" WHEN {id} THEN @seq_{r} - {back}")
        })
        .collect();
    let ids: Vec<String> = pending.iter().map(|(id, _)| id.to_string()).collect();
    format!(
        "INSERT INTO notification_streams (recipient_id, last_seq) VALUES {} \
         ON DUPLICATE KEY UPDATE last_seq = CASE recipient_id{cases} END; \
         UPDATE notifications SET seq = CASE id{seqs} END WHERE id IN ({}); COMMIT",
        values.join(", "),
        ids.join(", ")
    )
}

/// Up to `limit` numbered rows the outbox relay has not published yet and no other relay
/// holds, locked until the caller's transaction ends (`FOR UPDATE SKIP LOCKED`: concurrent
/// relays take disjoint rows and never wait for each other), lowest seqs first: every
/// recipient's in order, and a recipient with many waiting does not hold back the others. A
/// row not yet numbered ([`number_pending`]) is left for a numbering pass.
///
/// Read in the order of `ix_notifications_relay` (`relayed_at, seq, id`), so the read stops
/// after `limit` rows. In any other order the database would sort every waiting row first,
/// and lock every one of them it read, not only the `limit` it returns.
pub async fn claim_unrelayed(tx: &mut MySqlConnection, limit: u32) -> sqlx::Result<Vec<Notification>> {
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE relayed_at IS NULL AND seq IS NOT NULL \
         ORDER BY seq, id LIMIT ? FOR UPDATE SKIP LOCKED"
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

/// Newest first. An outbox row not numbered yet is not listed: it is not part of its
/// recipient's stream until a relay pass numbers it (tens of milliseconds).
pub async fn list(db: &MySqlPool, recipient: u64, unread_only: bool, page: Page) -> sqlx::Result<Paged<Notification>> {
    let unread = if unread_only { "AND read_at IS NULL" } else { "" };
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE recipient_id = ? AND id < ? AND seq IS NOT NULL {unread} \
         ORDER BY id DESC LIMIT ?"
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
        "UPDATE notifications SET read_at = CURRENT_TIMESTAMP(6) WHERE recipient_id = ? AND read_at IS NULL \
         AND seq IS NOT NULL",
    )
    .bind(recipient)
    .execute(db)
    .await?
    .rows_affected())
}
