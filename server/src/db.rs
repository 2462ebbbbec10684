//! The MariaDB pool and the schema migrations.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlPool};

/// Run on every new connection: all DATETIME values are UTC; READ COMMITTED keeps gap locks
/// out of the hot paths (point updates lock exactly the balance row they change).
const SESSION_SETUP: &str = "SET time_zone = '+00:00', transaction_isolation = 'READ-COMMITTED'";

/// How long an instance waits for another to finish migrating.
const MIGRATION_LOCK_TIMEOUT_S: i64 = 120;

/// Connects a pool whose sessions run in UTC, and applies the migrations.
///
/// Several instances may start at once, so migrations run under a named lock. sqlx's own
/// MySQL migration lock asks for `GET_LOCK(name, -1)` and ignores the answer; MariaDB does not
/// wait on a negative timeout, so two instances both applied the first migration and one
/// failed on a duplicate key (found by `three_instances_starting_at_once_...`). We take the
/// lock ourselves, with a real timeout, and check that we got it.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let options: MySqlConnectOptions = url.parse()?;
    // One direct connection first: a pool would hide a wrong password or an unknown database
    // behind "pool timed out".
    let mut conn = options.connect().await?;
    conn.execute(SESSION_SETUP).await?;
    migrate(&mut conn).await?;
    conn.close().await?;
    Ok(open_pool(options, max_connections, 1, None).await?)
}

/// A pool whose every connection runs [`SESSION_SETUP`], then `extra` when given.
async fn open_pool(
    options: MySqlConnectOptions,
    max_connections: u32,
    min_connections: u32,
    extra: Option<String>,
) -> sqlx::Result<MySqlPool> {
    let extra: Option<std::sync::Arc<str>> = extra.map(Into::into);
    MySqlPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(min_connections)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(move |conn, _meta| {
            let extra = extra.clone();
            Box::pin(async move {
                conn.execute(SESSION_SETUP).await?;
                if let Some(sql) = extra.as_deref() {
                    conn.execute(sql).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
}

/// How long a store transaction may sit between two of its statements before MariaDB ends it
/// (`idle_transaction_timeout`), and how long a store waits for a stream row another one
/// locked (`innodb_lock_wait_timeout`, 50 s by default). A store locks its recipients' stream
/// rows (`SELECT … FOR UPDATE`); a process frozen between two of its statements (SIGSTOP, a
/// VM pause) held them until it woke, every other instance's stores queued behind them and
/// took their connection pools with them: scenarios/matrix/notify-instance-freeze.toml
/// measured 343 causing requests failing with 503 and nothing caused for the 12 s freeze
/// under `rabbitmq`, whose store consumers are always mid-transaction.
pub const STORE_IDLE_TIMEOUT_S: u32 = 5;
pub const STORE_LOCK_WAIT_S: u32 = 3;

/// The pool that stores notification batches after their cause committed: its sessions are
/// bounded as [`STORE_IDLE_TIMEOUT_S`] says, once, when each connection opens. Setting the
/// bounds around every store on the shared pool cost two more round trips per batch; other
/// paths (claims, bookings, the cause's own transaction) keep the server's defaults. The
/// sessions are strict whatever the server's `sql_mode`: a value that does not fit fails its
/// statement instead of being stored changed (a `NULL` seq as 0, before `ck_notifications_numbered`
/// refused it in every mode: [`crate::notify::store::insert_batch_committed`]).
pub async fn connect_store_pool(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let bounds = format!(
        "SET SESSION idle_transaction_timeout = {STORE_IDLE_TIMEOUT_S}, innodb_lock_wait_timeout = {STORE_LOCK_WAIT_S}, \
         sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'STRICT_ALL_TABLES')"
    );
    Ok(open_pool(url.parse()?, max_connections, 0, Some(bounds)).await?)
}

async fn migrate(conn: &mut sqlx::MySqlConnection) -> anyhow::Result<()> {
    let lock_name = "server_migrations";
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(CONCAT(DATABASE(), ':', ?), ?)")
        .bind(lock_name)
        .bind(MIGRATION_LOCK_TIMEOUT_S)
        .fetch_one(&mut *conn)
        .await?;
    if got != Some(1) {
        anyhow::bail!("another instance held the migration lock for more than {MIGRATION_LOCK_TIMEOUT_S} s");
    }
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_locking(false);
    let result = migrator.run_direct(&mut *conn).await;
    sqlx::query("SELECT RELEASE_LOCK(CONCAT(DATABASE(), ':', ?))").bind(lock_name).execute(&mut *conn).await?;
    result.map_err(Into::into)
}
