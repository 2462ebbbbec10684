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
/// Two statements in the common case: one `UPDATE` takes the seqs (and the locks), one
/// `INSERT ... SELECT ... RETURNING` writes the rows numbered from them and reads them back.
/// A redelivery shows as a duplicate key on that insert, which InnoDB undoes as a statement;
/// only then are the seqs given back, the stored rows read, and the rest inserted.
pub async fn insert_batch(
    tx: &mut MySqlConnection,
    batch: &[NewNotification],
    relay: Relay,
) -> sqlx::Result<Vec<Notification>> {
    let mut seen = HashSet::new();
    let fresh: Vec<&NewNotification> = batch.iter().filter(|n| seen.insert(cause_key(n))).collect();
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
    let sign = match direction {
        Direction::Take => "+",
        Direction::GiveBack => "-",
    };
    let mut update = sqlx::QueryBuilder::new(format!(
        "UPDATE notification_streams SET last_seq = last_seq {sign} CASE recipient_id"
    ));
    for (recipient, count) in counts {
        update.push(" WHEN ").push_bind(*recipient).push(" THEN ").push_bind(*count);
    }
    update.push(" END WHERE recipient_id IN ");
    update.push_tuples(counts.keys(), |mut t, r| {
        t.push_bind(*r);
    });
    update.push(" ORDER BY recipient_id");
    Ok(update.build().execute(&mut *tx).await?.rows_affected())
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
    let relayed = match relay {
        Relay::Pending => "NULL",
        Relay::NotNeeded => "CURRENT_TIMESTAMP(6)",
    };
    // The k-th of a recipient's n notifications takes `last_seq - (n - k)`, `last_seq` being
    // already advanced by n and locked by this transaction. Sent as text: sqlx sees no columns
    // in a prepared INSERT ... RETURNING on MariaDB. Every value in it is a number or a kind's
    // fixed name, nothing a user wrote.
    let mut left = counts.clone();
    let rows: Vec<String> = batch
        .iter()
        .map(|n| {
            let back = left.get_mut(&n.recipient_id).map(|c| {
                *c -= 1;
                *c
            });
            format!(
                "SELECT {} AS recipient_id, {} AS back, '{}' AS kind, {} AS cause_id, {} AS actor_id",
                n.recipient_id,
                back.unwrap_or_default(),
                n.kind.as_str(),
                n.cause_id,
                n.actor_id
            )
        })
        .collect();
    let insert = format!(
        "INSERT INTO notifications (recipient_id, seq, kind, cause_id, actor_id, relayed_at) \
         SELECT v.recipient_id, s.last_seq - v.back, v.kind, v.cause_id, v.actor_id, {relayed} \
         FROM ({}) AS v JOIN notification_streams s ON s.recipient_id = v.recipient_id \
         RETURNING {COLUMNS}",
        rows.join(" UNION ALL ")
    );
    let rows = sqlx::Executor::fetch_all(&mut *tx, insert.as_str()).await?;
    let rows = rows.iter().map(<Row as sqlx::FromRow<_>>::from_row).collect::<Result<Vec<Row>, _>>()?;
    Ok(rows.into_iter().map(Notification::from).collect())
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
