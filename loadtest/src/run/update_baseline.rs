//! The raw single-row UPDATE rate of the same database, measured in the same run: the
//! yardstick for claim throughput (a claim is at least one UPDATE per post, the commit
//! another). A scratch table in a database of its own, `connections` clients each updating
//! random rows by primary key in autocommit, for `seconds`.

use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use sqlx::Connection;

#[derive(Debug, Clone, Serialize)]
pub struct RawUpdates {
    pub connections: u32,
    pub rows: u32,
    pub updates: u64,
    pub updates_per_s: f64,
    pub seconds: f64,
}

pub async fn raw_updates(database_url: &str, rows: u32, connections: u32, seconds: f64) -> anyhow::Result<RawUpdates> {
    let mut setup = sqlx::MySqlConnection::connect(database_url).await?;
    sqlx::query(
        "CREATE TABLE scratch (id INT UNSIGNED PRIMARY KEY, status VARCHAR(8) NOT NULL, version BIGINT NOT NULL)",
    )
    .execute(&mut setup)
    .await?;
    for chunk in (0..rows).collect::<Vec<_>>().chunks(1000) {
        let values: Vec<String> = chunk.iter().map(|id| format!("({id}, 'WAIT', 0)")).collect();
        sqlx::query(&format!("INSERT INTO scratch VALUES {}", values.join(","))).execute(&mut setup).await?;
    }
    let _ = setup.close().await;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers = (0..connections).map(|_| {
        let url = database_url.to_string();
        tokio::spawn(async move {
            let mut conn = sqlx::MySqlConnection::connect(&url).await?;
            let mut n = 0u64;
            while Instant::now() < end {
                let id = rand::rng().random_range(0..rows);
                sqlx::query("UPDATE scratch SET version = version + 1, status = 'DONE' WHERE id = ?")
                    .bind(id)
                    .execute(&mut conn)
                    .await?;
                n += 1;
            }
            let _ = conn.close().await;
            Ok::<u64, sqlx::Error>(n)
        })
    });
    let mut updates = 0;
    for w in futures::future::join_all(workers).await {
        updates += w??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(RawUpdates { connections, rows, updates, updates_per_s: updates as f64 / elapsed, seconds: elapsed })
}
