//! Typed, validated settings. Sources, later ones winning: built-in defaults, an optional
//! TOML file (`SERVER_CONFIG=path`), environment variables `SERVER_<KEY>`.
//!
//! Every error names the setting as the user wrote it (`SERVER_LISTEN_ADDR`, or the file
//! key) and says what a valid value looks like.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ai::config::{AiGeneratorSetting, AiSettings};
use crate::batch::config::{BatchSettings, EmbedClaimSettings};
use crate::batch::schedule::Schedule;
use crate::chat::relay::RelayStrategy;
use crate::embed::config::EmbedderSetting;
use crate::http::browser::BrowserSettings;
use crate::notify::bus::Strategy;
use crate::notify::hub::GapRepair;
pub use crate::secret::Secret;
use crate::telemetry::LogFormat;

/// Every key the server understands, with its default (`None`: required or optional).
const KEYS: &[(&str, Option<&str>)] = &[
    ("instance_id", None),
    ("listen_addr", Some("127.0.0.1:8080")),
    ("database_url", None),
    ("redis_url", None),
    // One URL, or several separated by commas: the nodes of a RabbitMQ cluster, tried in
    // order, the next one first after a connection breaks.
    ("amqp_url", None),
    ("amqp_queue_type", Some("classic")),
    ("namespace", Some("diary:")),
    ("notify_delivery", Some("rabbitmq")),
    ("notify_gap_repair", Some("auto")),
    ("alert_webhook_url", None),
    ("ai_enabled", Some("true")),
    ("log_format", Some("text")),
    ("db_max_connections", Some("20")),
    ("db_store_connections", Some("4")),
    ("session_ttl_s", Some("86400")),
    ("argon2_memory_kib", Some("19456")),
    ("argon2_iterations", Some("2")),
    ("points_diary_reward", Some("10")),
    ("points_comment_reward", Some("2")),
    ("ai_generator", Some("offline")),
    ("ai_offline_latency_ms", Some("0")),
    ("ai_openai_base_url", Some("https://api.openai.com/v1")),
    ("ai_openai_model", Some("gpt-4o-mini")),
    ("ai_openai_api_key", None),
    ("ai_timeout_ms", Some("20000")),
    ("ai_max_retries", Some("3")),
    ("ai_worker_poll_ms", Some("500")),
    ("ai_job_lease_s", Some("60")),
    ("shutdown_grace_s", Some("10")),
    ("embedder", Some("hashing")),
    ("embed_model_dir", Some("models/all-MiniLM-L6-v2")),
    ("embed_openai_base_url", Some("https://api.openai.com/v1")),
    ("embed_openai_model", Some("text-embedding-3-small")),
    ("embed_openai_api_key", None),
    ("embed_timeout_ms", Some("10000")),
    ("embed_max_retries", Some("3")),
    // Clustered batch jobs and the embedding claim (crate::batch). A schedule set to the
    // empty string turns its job off.
    ("job_poll_ms", Some("200")),
    ("job_lease_s", Some("60")),
    ("job_misfire_threshold_ms", Some("5000")),
    ("job_scheduler", Some("clustered")),
    ("job_embed_schedule", Some("every 1s")),
    ("job_cleanup_schedule", Some("every 300s")),
    ("job_ai_retry_schedule", Some("every 60s")),
    ("job_heartbeat_schedule", None),
    ("cleanup_notifications_days", Some("30")),
    ("cleanup_history_days", Some("7")),
    ("embed_mode", Some("batch")),
    ("booking_guard", Some("version")),
    // Test-only: a point where SIGUSR1 makes this process stop itself (crate::pause_point).
    ("pause_point", None),
    ("booking_check_gap_ms", Some("0")),
    ("embed_workers", Some("1")),
    ("embed_claim_strategy", Some("skip-locked")),
    ("embed_batch_size", Some("32")),
    ("embed_batch_timeout_ms", Some("10000")),
    ("embed_lease_s", Some("30")),
    ("embed_fencing", Some("true")),
    ("embed_fail_rate", Some("0")),
    ("embed_delay_ms", Some("0")),
    ("admin_emails", None),
    // What protects the server from its own clients (crate::accounts, the SSE stream).
    ("hash_concurrency", Some("0")),
    ("hash_queue", Some("32")),
    ("login_window_s", Some("900")),
    ("login_attempts_per_account", Some("10")),
    ("login_failures_per_client", Some("100")),
    ("client_ip_header", None),
    ("streams_per_user", Some("8")),
    ("stream_session_check_s", Some("15")),
    ("points_daily_cap", Some("100")),
    // Chat (crate::chat): the relay between instances and each STOMP connection's limits.
    ("chat_relay", Some("redis-recovering")),
    ("chat_heartbeat_ms", Some("10000")),
    ("chat_outbound_queue", Some("1024")),
    ("chat_max_subscriptions", Some("64")),
    ("chat_max_frame_kib", Some("64")),
    // Browsers (crate::http::browser): other origins allowed, the session cookie, stream tickets.
    ("cors_origins", None),
    ("cookie_secure", Some("false")),
    ("ticket_secret", None),
    ("ticket_ttl_s", Some("60")),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {setting}: {message}")]
pub struct SettingsError {
    pub setting: String,
    pub message: String,
}

/// Limits that keep one client (or a crowd) from exhausting the server.
#[derive(Debug, Clone)]
pub struct GuardSettings {
    /// Password hashes computed at once. Each holds argon2's memory (19 MiB by default) for
    /// tens of milliseconds of CPU; unbounded, 64 concurrent logins took a process from 165 MB
    /// to 1.37 GB. `SERVER_HASH_CONCURRENCY=0` (the default) means the number of cores.
    pub hash_concurrency: usize,
    /// Sign-ups and logins waiting for a hashing slot; beyond this they are answered 503 with
    /// `Retry-After` at once.
    pub hash_queue: usize,
    /// The window of the login limits below.
    pub login_window: Duration,
    /// Login attempts per account and window (a success starts the count over): 429 beyond.
    pub login_attempts_per_account: u32,
    /// Failed logins per client address and window: 429 beyond.
    pub login_failures_per_client: u32,
    /// Where the client's address comes from behind a proxy: the last value of this header,
    /// the one the proxy appended (`x-forwarded-for`, say). None: the peer's address.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// SSE streams one user may hold on one instance; a new one closes the oldest.
    pub streams_per_user: usize,
    /// How often a stream checks that its session still exists (it ends when not).
    pub stream_session_check: Duration,
}

/// Chat: how messages reach other instances, and the limits of each STOMP connection.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub relay: RelayStrategy,
    /// The heart-beat interval offered and asked for, both ways (0: none).
    pub heartbeat: Duration,
    /// Frames waiting for one slow connection before it is closed.
    pub outbound_queue: usize,
    pub max_subscriptions: usize,
    /// The largest frame body accepted.
    pub max_frame_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub instance_id: String,
    pub listen_addr: SocketAddr,
    pub database_url: Secret,
    pub redis_url: String,
    /// The nodes of the broker, in the order they are tried (`SERVER_AMQP_URL`, comma-separated).
    pub amqp_urls: Vec<String>,
    /// How the durable queues are declared (`SERVER_AMQP_QUEUE_TYPE`).
    pub amqp_queue_type: crate::notify::bus::QueueType,
    /// Prefix of every Redis key, channel, stream and AMQP exchange/queue this server uses:
    /// instances that share one must share it; tests and tenants use their own.
    pub namespace: String,
    pub notify_delivery: Strategy,
    /// What a stream does with a live notification ahead of one it has not sent; `None`
    /// (`auto`): read the gap from the database, except for `local`, the naive baseline.
    pub notify_gap_repair: Option<GapRepair>,
    pub chat: ChatConfig,
    /// Slack-compatible webhook that dead-lettered notifications are reported to.
    pub alert_webhook_url: Option<url::Url>,
    pub log_format: LogFormat,
    /// The main pool's size.
    pub db_max_connections: u32,
    /// The size of the pool that stores notifications after their cause committed (every
    /// strategy but `outbox`). Few on purpose: a store holds its recipients' stream rows until
    /// its commit is durable, and the more stores run at once over all the instances, the longer
    /// the queues on those rows (measured with 3 instances: `reports/README.md`, "The table lock
    /// behind the row-lock waits").
    pub db_store_connections: u32,
    pub session_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub points_diary_reward: i64,
    pub points_comment_reward: i64,
    /// What keeps two approvals of overlapping reservations from both committing
    /// (`SERVER_BOOKING_GUARD`).
    pub booking_guard: crate::rental::approval::BookingGuard,
    /// A test-only pause point that SIGUSR1 arms (`SERVER_PAUSE_POINT`; off unless set).
    pub pause_point: Option<crate::pause_point::Point>,
    /// Points one user may earn per UTC day by writing diaries and comments.
    pub points_daily_cap: i64,
    pub guard: GuardSettings,
    pub ai: AiSettings,
    pub embedder: EmbedderSetting,
    pub shutdown_grace: Duration,
    pub batch: BatchSettings,
    pub browser: BrowserSettings,
}

impl Settings {
    /// From `SERVER_CONFIG` (if set) and the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let file = match std::env::var("SERVER_CONFIG") {
            Ok(path) => Some(read_file(Path::new(&path))?),
            Err(_) => None,
        };
        Self::from_sources(file.as_deref(), env)
    }

    /// From an optional TOML document and `SERVER_*` pairs (tests pass their own).
    pub fn from_sources(
        file: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut values: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        for (key, default) in KEYS {
            if let Some(default) = default {
                values.insert(key, (default.to_string(), format!("default of {}", env_name(key))));
            }
        }
        if let Some(file) = file {
            let table: toml::Table = toml::from_str(file).map_err(|e| SettingsError {
                setting: "SERVER_CONFIG".into(),
                message: format!("not valid TOML: {e}"),
            })?;
            for (key, value) in table {
                let known = KEYS.iter().find(|(k, _)| *k == key).map(|(k, _)| *k).ok_or_else(|| SettingsError {
                    setting: key.clone(),
                    message: format!("unknown key in the settings file; known keys: {}", known_keys()),
                })?;
                let text = match value {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                values.insert(known, (text, format!("{key} in the settings file")));
            }
        }
        for (name, value) in env {
            let Some(key) = name.strip_prefix("SERVER_") else { continue };
            if name == "SERVER_CONFIG" {
                continue;
            }
            let key = key.to_ascii_lowercase();
            let known = KEYS.iter().find(|(k, _)| *k == key).map(|(k, _)| *k).ok_or_else(|| SettingsError {
                setting: name.clone(),
                message: format!("unknown setting; known: {}", known_keys()),
            })?;
            values.insert(known, (value, name));
        }
        Resolver { values }.settings()
    }
}

fn read_file(path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| SettingsError {
        setting: "SERVER_CONFIG".into(),
        message: format!("cannot read {}: {e}", path.display()),
    })
}

fn env_name(key: &str) -> String {
    format!("SERVER_{}", key.to_ascii_uppercase())
}

fn known_keys() -> String {
    KEYS.iter().map(|(k, _)| env_name(k)).collect::<Vec<_>>().join(", ")
}

struct Resolver {
    /// key -> (value, where it came from, as the user would name it)
    values: BTreeMap<&'static str, (String, String)>,
}

impl Resolver {
    fn err(&self, key: &str, message: impl Into<String>) -> SettingsError {
        let setting = self.values.get(key).map(|(_, origin)| origin.clone()).unwrap_or_else(|| env_name(key));
        SettingsError { setting, message: message.into() }
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(|(v, _)| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value of `key`, or its default from [`KEYS`] when it is unset or empty: defaults are
    /// written once, there.
    fn text(&self, key: &str) -> &str {
        self.raw(key).or_else(|| KEYS.iter().find(|(k, _)| *k == key).and_then(|(_, d)| *d)).unwrap_or("")
    }

    fn required(&self, key: &str, what: &str) -> Result<String, SettingsError> {
        self.raw(key).map(str::to_string).ok_or_else(|| self.err(key, format!("required: {what}")))
    }

    fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &self,
        key: &str,
        min: T,
        max: T,
    ) -> Result<T, SettingsError> {
        let raw = self.raw(key).ok_or_else(|| self.err(key, "required: a number"))?;
        let value: T =
            raw.parse().map_err(|_| self.err(key, format!("`{raw}` is not a number from {min} to {max}")))?;
        if value < min || value > max {
            return Err(self.err(key, format!("{value} is out of range: expected {min} to {max}")));
        }
        Ok(value)
    }

    fn url(&self, key: &str, schemes: &[&str], what: &str) -> Result<(String, url::Url), SettingsError> {
        let raw = self.required(key, what)?;
        let parsed = url::Url::parse(&raw).map_err(|e| self.err(key, format!("not a URL ({e}): expected {what}")))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(self.err(key, format!("scheme `{}` is not one of {}", parsed.scheme(), schemes.join(", "))));
        }
        Ok((raw, parsed))
    }

    /// `amqp_url`: one URL or several, comma-separated (a cluster's nodes), each checked.
    fn amqp_urls(&self) -> Result<Vec<String>, SettingsError> {
        const WHAT: &str = "amqp://user:pass@host:port/%2f, or several separated by commas (a cluster's nodes)";
        let raw = self.required("amqp_url", WHAT)?;
        let mut urls = Vec::new();
        for (i, one) in raw.split(',').map(str::trim).enumerate() {
            if one.is_empty() {
                return Err(self.err("amqp_url", format!("URL {} of the list is empty: expected {WHAT}", i + 1)));
            }
            let parsed = url::Url::parse(one)
                .map_err(|e| self.err("amqp_url", format!("URL {} is not a URL ({e}): expected {WHAT}", i + 1)))?;
            if !["amqp", "amqps"].contains(&parsed.scheme()) {
                return Err(self.err(
                    "amqp_url",
                    format!("URL {}: scheme `{}` is not one of amqp, amqps", i + 1, parsed.scheme()),
                ));
            }
            urls.push(one.to_string());
        }
        Ok(urls)
    }

    fn settings(&self) -> Result<Settings, SettingsError> {
        self.no_admin_emails()?;
        let instance_id = match self.raw("instance_id") {
            Some(id) if id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {
                id.to_string()
            }
            Some(id) => return Err(self.err("instance_id", format!("`{id}`: use 1-64 letters, digits, `-` or `_`"))),
            None => format!("srv-{:08x}", rand::random::<u32>()),
        };
        let listen_raw = self.required("listen_addr", "host:port, e.g. 127.0.0.1:8080 (port 0 picks a free one)")?;
        let listen_addr = listen_raw
            .parse()
            .map_err(|_| self.err("listen_addr", format!("`{listen_raw}` is not host:port, e.g. 127.0.0.1:8080")))?;
        let generator = match self.text("ai_generator") {
            "offline" => AiGeneratorSetting::Offline {
                latency: Duration::from_millis(self.number("ai_offline_latency_ms", 0u64, 600_000)?),
            },
            "openai" => {
                let (_, base_url) =
                    self.url("ai_openai_base_url", &["http", "https"], "the chat-completions base URL")?;
                AiGeneratorSetting::OpenAi {
                    base_url,
                    model: self.required("ai_openai_model", "a model name")?,
                    api_key: Secret::new(self.required("ai_openai_api_key", "the API key of the provider")?),
                }
            }
            other => return Err(self.err("ai_generator", format!("`{other}` is not one of offline, openai"))),
        };
        Ok(Settings {
            instance_id,
            listen_addr,
            database_url: Secret::new(
                self.url("database_url", &["mysql", "mariadb"], "mysql://user:pass@host:port/db")?.0,
            ),
            redis_url: self.url("redis_url", &["redis", "rediss"], "redis://host:port/")?.0,
            amqp_urls: self.amqp_urls()?,
            amqp_queue_type: self
                .text("amqp_queue_type")
                .parse()
                .map_err(|e: String| self.err("amqp_queue_type", e))?,
            // Set but empty means no prefix at all, not the default.
            namespace: match self.raw("namespace").unwrap_or("") {
                ns if ns.len() <= 40 && ns.chars().all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c)) => {
                    ns.to_string()
                }
                ns => {
                    return Err(
                        self.err("namespace", format!("`{ns}`: use up to 40 letters, digits, `-`, `_`, `:`, `.`"))
                    );
                }
            },
            notify_delivery: {
                let raw = self.text("notify_delivery");
                raw.parse().map_err(|e: String| self.err("notify_delivery", e))?
            },
            notify_gap_repair: match self.text("notify_gap_repair") {
                "auto" => None,
                "database" => Some(GapRepair::FromDatabase),
                "skip" => Some(GapRepair::Skip),
                other => {
                    return Err(self.err(
                        "notify_gap_repair",
                        format!(
                            "`{other}` is not one of auto, database, skip (auto: database for every strategy but \
                             local)"
                        ),
                    ));
                }
            },
            chat: ChatConfig {
                relay: {
                    let raw = self.text("chat_relay");
                    raw.parse().map_err(|e: String| self.err("chat_relay", e))?
                },
                heartbeat: Duration::from_millis(self.number("chat_heartbeat_ms", 0u64, 3_600_000)?),
                outbound_queue: self.number("chat_outbound_queue", 1usize, 1_000_000)?,
                max_subscriptions: self.number("chat_max_subscriptions", 1usize, 10_000)?,
                max_frame_bytes: self.number("chat_max_frame_kib", 1usize, 16 * 1024)? * 1024,
            },
            alert_webhook_url: match self.raw("alert_webhook_url") {
                Some(_) => Some(self.url("alert_webhook_url", &["http", "https"], "a webhook URL")?.1),
                None => None,
            },
            log_format: match self.text("log_format") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(self.err("log_format", format!("`{other}` is not one of text, json"))),
            },
            db_max_connections: self.number("db_max_connections", 1u32, 1000)?,
            db_store_connections: self.number("db_store_connections", 1u32, 1000)?,
            session_ttl: Duration::from_secs(self.number("session_ttl_s", 60u64, 90 * 86400)?),
            // OWASP's minimum for argon2id is 19 MiB x 2; lower values exist for load tests
            // that sign up thousands of users on 2 cores, and are logged as weak at start-up.
            argon2_memory_kib: self.number("argon2_memory_kib", 64u32, 1 << 21)?,
            argon2_iterations: self.number("argon2_iterations", 1u32, 16)?,
            points_diary_reward: self.number("points_diary_reward", 0i64, 1_000_000)?,
            points_comment_reward: self.number("points_comment_reward", 0i64, 1_000_000)?,
            points_daily_cap: self.number("points_daily_cap", 0i64, 1_000_000_000)?,
            booking_guard: match self.text("booking_guard").parse().map_err(|e: String| self.err("booking_guard", e))? {
                crate::rental::approval::BookingGuard::None { .. } => crate::rental::approval::BookingGuard::None {
                    gap: Duration::from_millis(self.number("booking_check_gap_ms", 0u64, 10_000)?),
                },
                version => version,
            },
            pause_point: self
                .raw("pause_point")
                .map(|p| p.parse().map_err(|e: String| self.err("pause_point", e)))
                .transpose()?,
            guard: self.guard()?,
            ai: AiSettings {
                enabled: match self.text("ai_enabled") {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    other => return Err(self.err("ai_enabled", format!("`{other}` is not true or false"))),
                },
                generator,
                timeout: Duration::from_millis(self.number("ai_timeout_ms", 100u64, 600_000)?),
                max_retries: self.number("ai_max_retries", 0u32, 10)?,
                worker_poll: Duration::from_millis(self.number("ai_worker_poll_ms", 10u64, 60_000)?),
                job_lease: Duration::from_secs(self.number("ai_job_lease_s", 5u64, 3600)?),
            },
            embedder: self.embedder()?,
            shutdown_grace: Duration::from_secs(self.number("shutdown_grace_s", 0u64, 600)?),
            batch: self.batch()?,
            browser: self.browser()?,
        })
    }

    fn browser(&self) -> Result<BrowserSettings, SettingsError> {
        let mut cors_origins = Vec::new();
        for raw in self.raw("cors_origins").unwrap_or("").split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let origin = crate::http::browser::parse_origin(raw).map_err(|e| self.err("cors_origins", e))?;
            cors_origins.push(origin);
        }
        let ticket_secret = match self.raw("ticket_secret") {
            Some(secret) if secret.len() < 32 => {
                return Err(self.err(
                    "ticket_secret",
                    format!(
                        "is {} characters long: use at least 32 random ones, the same on every instance \
                         (e.g. `openssl rand -base64 32`)",
                        secret.len()
                    ),
                ));
            }
            Some(secret) => Some(Secret::new(secret)),
            None => None,
        };
        Ok(BrowserSettings {
            cors_origins,
            cookie_secure: self.flag("cookie_secure", false)?,
            ticket_secret,
            ticket_ttl: Duration::from_secs(self.number("ticket_ttl_s", 5u64, 3_600)?),
        })
    }

    fn flag(&self, key: &str, default: bool) -> Result<bool, SettingsError> {
        match self.raw(key) {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(self.err(key, format!("`{other}` is not true or false"))),
        }
    }

    fn schedule(&self, key: &str) -> Result<Option<Schedule>, SettingsError> {
        self.raw(key).map(Schedule::parse).transpose().map_err(|e| self.err(key, e))
    }

    fn batch(&self) -> Result<BatchSettings, SettingsError> {
        let strategy = {
            let raw = self.text("embed_claim_strategy");
            raw.parse().map_err(|e: String| self.err("embed_claim_strategy", e))?
        };
        let fail_rate: f64 = self.number("embed_fail_rate", 0.0, 1.0)?;
        if !fail_rate.is_finite() {
            return Err(self.err("embed_fail_rate", "expected a number from 0 to 1"));
        }
        let batch_timeout = Duration::from_millis(self.number("embed_batch_timeout_ms", 10u64, 600_000)?);
        let lease = Duration::from_secs(self.number("embed_lease_s", 1u64, 3600)?);
        if lease <= batch_timeout {
            return Err(self.err(
                "embed_lease_s",
                format!(
                    "{} s is not longer than {} ({} ms): a worker's claim would run out while it still \
                     waits for the embedder, and another worker would take the rows over",
                    lease.as_secs(),
                    self.values.get("embed_batch_timeout_ms").map_or("SERVER_EMBED_BATCH_TIMEOUT_MS", |(_, o)| o),
                    batch_timeout.as_millis()
                ),
            ));
        }
        Ok(BatchSettings {
            poll: Duration::from_millis(self.number("job_poll_ms", 10u64, 60_000)?),
            job_lease: Duration::from_secs(self.number("job_lease_s", 1u64, 86_400)?),
            misfire_threshold: Duration::from_millis(self.number("job_misfire_threshold_ms", 0u64, 86_400_000)?),
            scheduler: self.text("job_scheduler").parse().map_err(|e: String| self.err("job_scheduler", e))?,
            embed_schedule: self.schedule("job_embed_schedule")?,
            cleanup_schedule: self.schedule("job_cleanup_schedule")?,
            ai_retry_schedule: self.schedule("job_ai_retry_schedule")?,
            heartbeat_schedule: self.schedule("job_heartbeat_schedule")?,
            notifications_retention_days: self.number("cleanup_notifications_days", 1u32, 36_500)?,
            history_retention_days: self.number("cleanup_history_days", 1u32, 36_500)?,
            embed: EmbedClaimSettings {
                mode: self.text("embed_mode").parse().map_err(|e: String| self.err("embed_mode", e))?,
                workers: self.number("embed_workers", 0u32, 64)?,
                strategy,
                batch_size: self.number("embed_batch_size", 1u32, 1000)?,
                batch_timeout,
                lease,
                fencing: self.flag("embed_fencing", true)?,
                fail_rate,
                delay: Duration::from_millis(self.number("embed_delay_ms", 0u64, 600_000)?),
            },
        })
    }

    fn guard(&self) -> Result<GuardSettings, SettingsError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(GuardSettings {
            hash_concurrency: match self.number("hash_concurrency", 0usize, 256)? {
                0 => cores,
                n => n,
            },
            hash_queue: self.number("hash_queue", 0usize, 100_000)?,
            login_window: Duration::from_secs(self.number("login_window_s", 1u64, 86_400)?),
            login_attempts_per_account: self.number("login_attempts_per_account", 1u32, 1_000_000)?,
            login_failures_per_client: self.number("login_failures_per_client", 1u32, 1_000_000)?,
            client_ip_header: match self.raw("client_ip_header") {
                None => None,
                Some(raw) => Some(raw.to_ascii_lowercase().parse().map_err(|_| {
                    self.err("client_ip_header", format!("`{raw}` is not a header name, e.g. x-forwarded-for"))
                })?),
            },
            streams_per_user: self.number("streams_per_user", 1usize, 1_000)?,
            stream_session_check: Duration::from_secs(self.number("stream_session_check_s", 1u64, 3_600)?),
        })
    }

    /// `SERVER_ADMIN_EMAILS` once made a sign-up with a listed address an admin. Nobody
    /// verifies an address at sign-up, so the first to sign up with it got the role (and a
    /// look-alike did too, under an accent-blind collation). Refused with the way to do it now.
    fn no_admin_emails(&self) -> Result<(), SettingsError> {
        match self.raw("admin_emails") {
            None => Ok(()),
            Some(_) => Err(self.err(
                "admin_emails",
                "is no longer read: sign-up never grants a role, since nobody verified the address. Sign up, \
                 then grant the role to that account with `server grant-admin <email>` (run with the \
                 server's database settings)",
            )),
        }
    }

    fn embedder(&self) -> Result<EmbedderSetting, SettingsError> {
        match self.text("embedder") {
            "hashing" => Ok(EmbedderSetting::Hashing),
            "minilm" => Ok(EmbedderSetting::MiniLm { model_dir: self.model_dir()? }),
            "openai" => {
                let (_, base_url) =
                    self.url("embed_openai_base_url", &["http", "https"], "the embeddings API base URL")?;
                Ok(EmbedderSetting::OpenAi {
                    base_url,
                    model: self.required("embed_openai_model", "an embedding model name")?,
                    api_key: Secret::new(
                        self.required("embed_openai_api_key", "the API key of the embeddings provider")?,
                    ),
                    timeout: Duration::from_millis(self.number("embed_timeout_ms", 100u64, 600_000)?),
                    max_retries: self.number("embed_max_retries", 0u32, 10)?,
                })
            }
            other => Err(self.err("embedder", format!("`{other}` is not one of hashing, minilm, openai"))),
        }
    }

    /// The model folder, refused at start-up when it or one of its files is missing: better
    /// than a server that starts and fails every search.
    fn model_dir(&self) -> Result<PathBuf, SettingsError> {
        let dir = PathBuf::from(self.required("embed_model_dir", "a folder holding all-MiniLM-L6-v2")?);
        let fix = "run scripts/fetch-model.sh (it puts the model in models/all-MiniLM-L6-v2), or point \
                   SERVER_EMBED_MODEL_DIR at a folder with config.json, model.safetensors and tokenizer.json";
        if !dir.is_dir() {
            return Err(self.err("embed_model_dir", format!("{} is not a folder: {fix}", dir.display())));
        }
        for file in crate::embed::minilm::REQUIRED_FILES {
            if !dir.join(file).is_file() {
                return Err(self.err("embed_model_dir", format!("{} has no {file}: {fix}", dir.display())));
            }
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::claim::ClaimStrategy;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = vec![
            ("SERVER_DATABASE_URL", "mysql://root:pw@127.0.0.1:3306/app"),
            ("SERVER_REDIS_URL", "redis://127.0.0.1:6379/"),
            ("SERVER_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ];
        all.extend_from_slice(pairs);
        all.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_fill_everything_but_the_urls() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.listen_addr.to_string(), "127.0.0.1:8080");
        assert!(s.instance_id.starts_with("srv-"));
        assert_eq!(s.ai.generator, AiGeneratorSetting::Offline { latency: Duration::ZERO });
        assert_eq!((s.db_max_connections, s.db_store_connections), (20, 4));
    }

    #[test]
    fn the_embed_mode_is_batch_unless_set_and_a_wrong_one_names_both() {
        use crate::batch::config::EmbedMode;
        assert_eq!(Settings::from_sources(None, env(&[])).unwrap().batch.embed.mode, EmbedMode::Batch);
        let inline = Settings::from_sources(None, env(&[("SERVER_EMBED_MODE", "inline")])).unwrap();
        assert_eq!(inline.batch.embed.mode, EmbedMode::Inline);
        let err = Settings::from_sources(None, env(&[("SERVER_EMBED_MODE", "eventually")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_MODE");
        assert!(err.message.contains("batch, inline"), "{err}");
    }

    #[test]
    fn approvals_are_guarded_unless_the_control_group_is_asked_for_by_name() {
        use crate::rental::approval::BookingGuard;
        use std::time::Duration;
        assert_eq!(Settings::from_sources(None, env(&[])).unwrap().booking_guard, BookingGuard::Version);
        let none = Settings::from_sources(
            None,
            env(&[("SERVER_BOOKING_GUARD", "none"), ("SERVER_BOOKING_CHECK_GAP_MS", "50")]),
        )
        .unwrap();
        assert_eq!(none.booking_guard, BookingGuard::None { gap: Duration::from_millis(50) });
        let err = Settings::from_sources(None, env(&[("SERVER_BOOKING_GUARD", "lock")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_BOOKING_GUARD");
        assert!(err.message.contains("version, none"), "{err}");
        let err = Settings::from_sources(
            None,
            env(&[("SERVER_BOOKING_GUARD", "none"), ("SERVER_BOOKING_CHECK_GAP_MS", "99999")]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_BOOKING_CHECK_GAP_MS");
    }

    #[test]
    fn the_scheduler_and_the_pause_point_name_their_values_when_wrong() {
        use crate::batch::config::SchedulerMode;
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!((s.batch.scheduler, s.pause_point), (SchedulerMode::Clustered, None));
        let err = Settings::from_sources(None, env(&[("SERVER_JOB_SCHEDULER", "quartz")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_JOB_SCHEDULER");
        assert!(err.message.contains("clustered, local"), "{err}");
        let err = Settings::from_sources(None, env(&[("SERVER_PAUSE_POINT", "commit")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_PAUSE_POINT");
        assert!(err.message.contains("embed-before-commit"), "{err}");
        let on = Settings::from_sources(None, env(&[("SERVER_PAUSE_POINT", "embed-before-commit")])).unwrap();
        assert_eq!(on.pause_point, Some(crate::pause_point::Point::EmbedBeforeCommit));
    }

    #[test]
    fn several_amqp_urls_are_a_list_and_a_bad_one_is_named_by_its_place() {
        use crate::notify::bus::QueueType;
        let one = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(one.amqp_urls, ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
        assert_eq!(one.amqp_queue_type, QueueType::Classic);
        let three = Settings::from_sources(
            None,
            env(&[
                ("SERVER_AMQP_URL", "amqp://g:g@127.0.0.1:1/%2f, amqp://g:g@127.0.0.1:2/%2f,amqps://g:g@h:3/%2f"),
                ("SERVER_AMQP_QUEUE_TYPE", "quorum"),
            ]),
        )
        .unwrap();
        assert_eq!(three.amqp_urls.len(), 3);
        assert_eq!(three.amqp_urls[1], "amqp://g:g@127.0.0.1:2/%2f");
        assert_eq!(three.amqp_queue_type, QueueType::Quorum);
        let err =
            Settings::from_sources(None, env(&[("SERVER_AMQP_URL", "amqp://g:g@127.0.0.1:1/%2f,http://127.0.0.1:2/")]))
                .unwrap_err();
        assert_eq!(err.setting, "SERVER_AMQP_URL");
        assert!(err.message.contains("URL 2") && err.message.contains("`http`"), "{err}");
        let err =
            Settings::from_sources(None, env(&[("SERVER_AMQP_URL", "amqp://g:g@127.0.0.1:1/%2f,,")])).unwrap_err();
        assert!(err.message.contains("URL 2 of the list is empty"), "{err}");
        let err = Settings::from_sources(None, env(&[("SERVER_AMQP_QUEUE_TYPE", "stream")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_AMQP_QUEUE_TYPE");
        assert!(err.message.contains("classic, quorum"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_the_variable() {
        let err = Settings::from_sources(None, env(&[("SERVER_LISTEN_ADDR", "localhost")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_LISTEN_ADDR");
        assert!(err.message.contains("host:port"), "{err}");
    }

    #[test]
    fn a_missing_database_url_is_named() {
        let err = Settings::from_sources(None, vec![]).unwrap_err();
        assert!(err.to_string().contains("SERVER_DATABASE_URL"), "{err}");
    }

    #[test]
    fn a_wrong_scheme_is_refused() {
        let err = Settings::from_sources(None, env(&[("SERVER_REDIS_URL", "http://x")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_REDIS_URL");
    }

    #[test]
    fn out_of_range_numbers_say_the_range() {
        let err = Settings::from_sources(None, env(&[("SERVER_DB_MAX_CONNECTIONS", "0")])).unwrap_err();
        assert!(err.message.contains("1 to 1000"), "{err}");
        let err = Settings::from_sources(None, env(&[("SERVER_DB_STORE_CONNECTIONS", "0")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_DB_STORE_CONNECTIONS");
        assert!(err.message.contains("1 to 1000"), "{err}");
        let err = Settings::from_sources(None, env(&[("SERVER_SESSION_TTL_S", "soon")])).unwrap_err();
        assert!(err.message.contains("not a number"), "{err}");
    }

    #[test]
    fn unknown_environment_settings_are_refused_not_ignored() {
        let err = Settings::from_sources(None, env(&[("SERVER_LISTEN_ADRR", "x")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_LISTEN_ADRR");
    }

    #[test]
    fn the_file_is_read_and_the_environment_wins() {
        let file = "listen_addr = \"127.0.0.1:0\"\ninstance_id = \"from-file\"\ndb_max_connections = 5\n";
        let s = Settings::from_sources(Some(file), env(&[("SERVER_INSTANCE_ID", "from-env")])).unwrap();
        assert_eq!(s.listen_addr.port(), 0);
        assert_eq!(s.instance_id, "from-env");
        assert_eq!(s.db_max_connections, 5);
        let err = Settings::from_sources(Some("listen = 1"), env(&[])).unwrap_err();
        assert_eq!(err.setting, "listen");
    }

    #[test]
    fn the_delivery_strategy_is_parsed_and_named_when_wrong() {
        let s = Settings::from_sources(None, env(&[("SERVER_NOTIFY_DELIVERY", "outbox")])).unwrap();
        assert_eq!(s.notify_delivery, Strategy::Outbox);
        let err = Settings::from_sources(None, env(&[("SERVER_NOTIFY_DELIVERY", "kafka")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_NOTIFY_DELIVERY");
        assert!(err.message.contains("redis-streams"), "{err}");
    }

    #[test]
    fn batch_defaults_are_valid_and_the_heartbeat_is_off() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert!(s.batch.heartbeat_schedule.is_none());
        assert_eq!(s.batch.embed_schedule.as_ref().map(Schedule::text), Some("every 1s"));
        assert_eq!(s.batch.embed.strategy, ClaimStrategy::SkipLocked);
        assert!(s.batch.embed.fencing);
        let s = Settings::from_sources(None, env(&[("SERVER_JOB_CLEANUP_SCHEDULE", "")])).unwrap();
        assert!(s.batch.cleanup_schedule.is_none(), "an empty schedule turns the job off");
    }

    #[test]
    fn an_invalid_schedule_names_its_setting() {
        let err = Settings::from_sources(None, env(&[("SERVER_JOB_HEARTBEAT_SCHEDULE", "0 0 25 * * *")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_JOB_HEARTBEAT_SCHEDULE");
        assert!(err.message.contains("cron expression with seconds"), "{err}");
        let err = Settings::from_sources(None, env(&[("SERVER_JOB_CLEANUP_SCHEDULE", "every 5 days")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_JOB_CLEANUP_SCHEDULE");
        let s = Settings::from_sources(None, env(&[("SERVER_JOB_HEARTBEAT_SCHEDULE", "*/2 * * * * *")])).unwrap();
        assert!(s.batch.heartbeat_schedule.is_some());
    }

    #[test]
    fn the_embed_lease_must_outlast_the_batch_timeout() {
        let err = Settings::from_sources(
            None,
            env(&[("SERVER_EMBED_LEASE_S", "5"), ("SERVER_EMBED_BATCH_TIMEOUT_MS", "5000")]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_LEASE_S");
        assert!(err.message.contains("SERVER_EMBED_BATCH_TIMEOUT_MS"), "{err}");
        assert!(
            Settings::from_sources(
                None,
                env(&[("SERVER_EMBED_LEASE_S", "6"), ("SERVER_EMBED_BATCH_TIMEOUT_MS", "5000")])
            )
            .is_ok()
        );
    }

    #[test]
    fn an_unknown_claim_strategy_lists_the_valid_ones() {
        let err = Settings::from_sources(None, env(&[("SERVER_EMBED_CLAIM_STRATEGY", "optimistic")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_CLAIM_STRATEGY");
        assert!(err.message.contains("naive, version, skip-locked"), "{err}");
        let s = Settings::from_sources(None, env(&[("SERVER_EMBED_CLAIM_STRATEGY", "version")])).unwrap();
        assert_eq!(s.batch.embed.strategy, ClaimStrategy::Version);
    }

    #[test]
    fn the_fail_rate_is_a_share_from_0_to_1() {
        for bad in ["1.5", "-0.1", "NaN", "often"] {
            let err = Settings::from_sources(None, env(&[("SERVER_EMBED_FAIL_RATE", bad)])).unwrap_err();
            assert_eq!(err.setting, "SERVER_EMBED_FAIL_RATE", "{bad}");
        }
        let s = Settings::from_sources(None, env(&[("SERVER_EMBED_FAIL_RATE", "0.25")])).unwrap();
        assert!((s.batch.embed.fail_rate - 0.25).abs() < f64::EPSILON);
    }

    #[test]
    fn gap_repair_is_auto_unless_asked_and_names_its_values() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.notify_gap_repair, None);
        let s = Settings::from_sources(None, env(&[("SERVER_NOTIFY_GAP_REPAIR", "database")])).unwrap();
        assert_eq!(s.notify_gap_repair, Some(GapRepair::FromDatabase));
        let err = Settings::from_sources(None, env(&[("SERVER_NOTIFY_GAP_REPAIR", "always")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_NOTIFY_GAP_REPAIR");
        assert!(err.message.contains("not one of auto, database, skip"), "{}", err.message);
    }

    #[test]
    fn admin_emails_are_refused_with_the_command_that_grants_the_role() {
        let err = Settings::from_sources(None, env(&[("SERVER_ADMIN_EMAILS", "ops@example.test")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_ADMIN_EMAILS");
        assert!(err.message.contains("server grant-admin <email>"), "{}", err.message);
    }

    #[test]
    fn secrets_print_as_stars() {
        let s = Settings::from_sources(
            None,
            env(&[("SERVER_AI_GENERATOR", "openai"), ("SERVER_AI_OPENAI_API_KEY", "sk-very-secret")]),
        )
        .unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("sk-very-secret") && !printed.contains("root:pw@"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }

    #[test]
    fn openai_needs_a_key() {
        let err = Settings::from_sources(None, env(&[("SERVER_AI_GENERATOR", "openai")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_AI_OPENAI_API_KEY");
        let err = Settings::from_sources(None, env(&[("SERVER_AI_GENERATOR", "magic")])).unwrap_err();
        assert!(err.message.contains("offline, openai"), "{err}");
    }

    /// A model folder of its own under the temp dir, holding `files` (empty: settings only
    /// check that they are there).
    fn model_folder(name: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("settings-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        dir
    }

    #[test]
    fn the_embedder_is_hashing_unless_asked_and_unknown_ones_are_listed() {
        assert_eq!(Settings::from_sources(None, env(&[])).unwrap().embedder, EmbedderSetting::Hashing);
        let err = Settings::from_sources(None, env(&[("SERVER_EMBEDDER", "bert")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBEDDER");
        assert!(err.message.contains("hashing, minilm, openai"), "{err}");
    }

    #[test]
    fn a_missing_model_folder_names_the_setting_and_the_fetch_script() {
        let err = Settings::from_sources(
            None,
            env(&[("SERVER_EMBEDDER", "minilm"), ("SERVER_EMBED_MODEL_DIR", "/nonexistent/minilm")]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_MODEL_DIR");
        assert!(err.message.contains("/nonexistent/minilm is not a folder"), "{err}");
        assert!(err.message.contains("run scripts/fetch-model.sh"), "{err}");
    }

    #[test]
    fn the_default_model_folder_is_named_too_when_missing() {
        // The tests run in server/, where models/ does not exist: the default is refused.
        let err = Settings::from_sources(None, env(&[("SERVER_EMBEDDER", "minilm")])).unwrap_err();
        assert!(err.to_string().contains("SERVER_EMBED_MODEL_DIR"), "{err}");
        assert!(err.message.contains("models/all-MiniLM-L6-v2"), "{err}");
    }

    #[test]
    fn a_model_folder_without_its_weights_names_the_missing_file() {
        let dir = model_folder("no-weights", &["config.json", "tokenizer.json"]);
        let err = Settings::from_sources(
            None,
            env(&[("SERVER_EMBEDDER", "minilm"), ("SERVER_EMBED_MODEL_DIR", dir.to_str().unwrap())]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_MODEL_DIR");
        assert!(err.message.contains("has no model.safetensors"), "{err}");
        assert!(err.message.contains("run scripts/fetch-model.sh"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_complete_model_folder_is_accepted() {
        let dir = model_folder("complete", &["config.json", "model.safetensors", "tokenizer.json"]);
        let s = Settings::from_sources(
            None,
            env(&[("SERVER_EMBEDDER", "minilm"), ("SERVER_EMBED_MODEL_DIR", dir.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(s.embedder, EmbedderSetting::MiniLm { model_dir: dir.clone() });
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn openai_embeddings_need_a_key_and_take_their_own_timeout_and_retries() {
        let err = Settings::from_sources(None, env(&[("SERVER_EMBEDDER", "openai")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_OPENAI_API_KEY");
        let s = Settings::from_sources(
            None,
            env(&[
                ("SERVER_EMBEDDER", "openai"),
                ("SERVER_EMBED_OPENAI_API_KEY", "sk-test"),
                ("SERVER_EMBED_OPENAI_BASE_URL", "http://127.0.0.1:9000/v1"),
                ("SERVER_EMBED_TIMEOUT_MS", "1500"),
                ("SERVER_EMBED_MAX_RETRIES", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(
            s.embedder,
            EmbedderSetting::OpenAi {
                base_url: url::Url::parse("http://127.0.0.1:9000/v1").unwrap(),
                model: "text-embedding-3-small".into(),
                api_key: Secret::new("sk-test"),
                timeout: Duration::from_millis(1500),
                max_retries: 1,
            }
        );
        let err = Settings::from_sources(
            None,
            env(&[
                ("SERVER_EMBEDDER", "openai"),
                ("SERVER_EMBED_OPENAI_API_KEY", "k"),
                ("SERVER_EMBED_TIMEOUT_MS", "5"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_TIMEOUT_MS");
        let err = Settings::from_sources(
            None,
            env(&[
                ("SERVER_EMBEDDER", "openai"),
                ("SERVER_EMBED_OPENAI_API_KEY", "k"),
                ("SERVER_EMBED_OPENAI_BASE_URL", "ftp://x"),
            ]),
        )
        .unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_OPENAI_BASE_URL");
    }
}
