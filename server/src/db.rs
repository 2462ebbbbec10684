//! The MariaDB pool and the schema migrations.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlPool};

/// Run on every new connection: all DATETIME values are UTC; READ COMMITTED keeps gap locks
/// out of the hot paths (point updates lock exactly the balance row they change).
const SESSION_SETUP: &str = "SET time_zone = '+00:00', transaction_isolation = 'READ-COMMITTED'";

/// Connects a pool whose sessions run in UTC, and applies the migrations.
///
/// Several instances may start at once: sqlx's MySQL migrator takes a named lock
/// (`GET_LOCK`) around the migration run, so one applies and the others find them applied.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> anyhow::Result<MySqlPool> {
    let options: MySqlConnectOptions = url.parse()?;
    // One direct connection first: a pool would hide a wrong password or an unknown database
    // behind "pool timed out".
    let mut probe = options.connect().await?;
    probe.execute(SESSION_SETUP).await?;
    probe.close().await?;
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SESSION_SETUP).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}
