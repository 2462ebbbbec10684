//! Readiness as a client sees it: a service is ready when a real client completes a real
//! round trip (AMQP handshake + channel, Redis PING, SQL `SELECT 1`), not when a log line
//! appears. The same probes tell whether an external URL is reachable.

use std::time::{Duration, Instant};

use super::{InfraError, ServiceKind};

/// How long one probe attempt may take; a paused service must not hang the caller.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// One client round trip against `url`, bounded by [`ATTEMPT_TIMEOUT`].
pub async fn probe(kind: ServiceKind, url: &str) -> Result<(), String> {
    let attempt = async {
        match kind {
            ServiceKind::RabbitMq => probe_amqp(url).await,
            ServiceKind::Redis => probe_redis(url).await,
            ServiceKind::MariaDb => probe_mysql(url).await,
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
    }
}

/// Probes until one round trip succeeds or `deadline` passes.
pub async fn wait_ready(kind: ServiceKind, url: &str, deadline: Duration) -> Result<Duration, InfraError> {
    let started = Instant::now();
    loop {
        match probe(kind, url).await {
            Ok(()) => return Ok(started.elapsed()),
            Err(last_error) if started.elapsed() >= deadline => {
                return Err(InfraError::NotReady {
                    service: kind,
                    url: redact(url),
                    waited: started.elapsed(),
                    last_error,
                });
            }
            Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
        }
    }
}

async fn probe_amqp(url: &str) -> Result<(), String> {
    let conn =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.map_err(|e| e.to_string())?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    channel.close(200, "probe".into()).await.map_err(|e| e.to_string())?;
    conn.close(200, "probe".into()).await.map_err(|e| e.to_string())
}

async fn probe_redis(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_multiplexed_async_connection().await.map_err(|e| e.to_string())?;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.map_err(|e| e.to_string())?;
    if pong == "PONG" { Ok(()) } else { Err(format!("PING answered {pong:?}")) }
}

async fn probe_mysql(url: &str) -> Result<(), String> {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(url).await.map_err(|e| e.to_string())?;
    let one: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await.map_err(|e| e.to_string())?;
    conn.close().await.map_err(|e| e.to_string())?;
    if one == 1 { Ok(()) } else { Err(format!("SELECT 1 answered {one}")) }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_messages() {
        assert_eq!(redact("mysql://root:secret@127.0.0.1:3306"), "mysql://root:***@127.0.0.1:3306");
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
    }
}
