//! Typed, validated settings. Sources, later ones winning: built-in defaults, an optional
//! TOML file (`SERVER_CONFIG=path`), environment variables `SERVER_<KEY>`.
//!
//! Every error names the setting as the user wrote it (`SERVER_LISTEN_ADDR`, or the file
//! key) and says what a valid value looks like.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::notify::bus::Strategy;

/// Every key the server understands, with its default (`None`: required or optional).
const KEYS: &[(&str, Option<&str>)] = &[
    ("instance_id", None),
    ("listen_addr", Some("127.0.0.1:8080")),
    ("database_url", None),
    ("redis_url", None),
    ("amqp_url", None),
    ("namespace", Some("diary:")),
    ("notify_delivery", Some("rabbitmq")),
    ("alert_webhook_url", None),
    ("ai_enabled", Some("true")),
    ("log_format", Some("text")),
    ("db_max_connections", Some("20")),
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
    ("embed_worker_enabled", Some("true")),
    ("embed_worker_poll_ms", Some("1000")),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid setting {setting}: {message}")]
pub struct SettingsError {
    pub setting: String,
    pub message: String,
}

/// Which AI generator writes empathic comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AiGeneratorSetting {
    /// Built in, no network: answers in the diary's language and fits its emotion.
    Offline { latency: Duration },
    /// An OpenAI-compatible chat-completions endpoint.
    OpenAi { base_url: url::Url, model: String, api_key: String },
}

/// Which embedder turns rental posts and search queries into vectors (see `crate::embed`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbedderSetting {
    /// Deterministic feature hashing: no model, for load tests.
    Hashing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct AiSettings {
    /// Off: diaries get no AI comment (load tests that measure notifications alone).
    pub enabled: bool,
    pub generator: AiGeneratorSetting,
    pub timeout: Duration,
    pub max_retries: u32,
    pub worker_poll: Duration,
    /// A claimed job whose worker died becomes claimable again after this long.
    pub job_lease: Duration,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub instance_id: String,
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub redis_url: String,
    pub amqp_url: String,
    /// Prefix of every Redis key, channel, stream and AMQP exchange/queue this server uses:
    /// instances that share one must share it; tests and tenants use their own.
    pub namespace: String,
    pub notify_delivery: Strategy,
    /// Slack-compatible webhook that dead-lettered notifications are reported to.
    pub alert_webhook_url: Option<url::Url>,
    pub log_format: LogFormat,
    pub db_max_connections: u32,
    pub session_ttl: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub points_diary_reward: i64,
    pub points_comment_reward: i64,
    pub ai: AiSettings,
    pub embedder: EmbedderSetting,
    pub shutdown_grace: Duration,
    pub embed_worker: EmbedWorkerSettings,
}

/// The per-instance worker that embeds rental items waiting for it (`crate::rental::embedding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedWorkerSettings {
    /// Off: items stay WAIT and search finds them by text only.
    pub enabled: bool,
    /// Pause between passes that found nothing to do.
    pub poll: Duration,
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

    fn settings(&self) -> Result<Settings, SettingsError> {
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
        let generator = match self.raw("ai_generator").unwrap_or("offline") {
            "offline" => AiGeneratorSetting::Offline {
                latency: Duration::from_millis(self.number("ai_offline_latency_ms", 0u64, 600_000)?),
            },
            "openai" => {
                let (_, base_url) =
                    self.url("ai_openai_base_url", &["http", "https"], "the chat-completions base URL")?;
                AiGeneratorSetting::OpenAi {
                    base_url,
                    model: self.required("ai_openai_model", "a model name")?,
                    api_key: self.required("ai_openai_api_key", "the API key of the provider")?,
                }
            }
            other => return Err(self.err("ai_generator", format!("`{other}` is not one of offline, openai"))),
        };
        Ok(Settings {
            instance_id,
            listen_addr,
            database_url: self.url("database_url", &["mysql", "mariadb"], "mysql://user:pass@host:port/db")?.0,
            redis_url: self.url("redis_url", &["redis", "rediss"], "redis://host:port/")?.0,
            amqp_url: self.url("amqp_url", &["amqp", "amqps"], "amqp://user:pass@host:port/%2f")?.0,
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
                let raw = self.raw("notify_delivery").unwrap_or("rabbitmq");
                raw.parse().map_err(|e: String| self.err("notify_delivery", e))?
            },
            alert_webhook_url: match self.raw("alert_webhook_url") {
                Some(_) => Some(self.url("alert_webhook_url", &["http", "https"], "a webhook URL")?.1),
                None => None,
            },
            log_format: match self.raw("log_format").unwrap_or("text") {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => return Err(self.err("log_format", format!("`{other}` is not one of text, json"))),
            },
            db_max_connections: self.number("db_max_connections", 1u32, 1000)?,
            session_ttl: Duration::from_secs(self.number("session_ttl_s", 60u64, 90 * 86400)?),
            // OWASP's minimum for argon2id is 19 MiB x 2; lower values exist for load tests
            // that sign up thousands of users on 2 cores, and are logged as weak at start-up.
            argon2_memory_kib: self.number("argon2_memory_kib", 64u32, 1 << 21)?,
            argon2_iterations: self.number("argon2_iterations", 1u32, 16)?,
            points_diary_reward: self.number("points_diary_reward", 0i64, 1_000_000)?,
            points_comment_reward: self.number("points_comment_reward", 0i64, 1_000_000)?,
            ai: AiSettings {
                enabled: match self.raw("ai_enabled").unwrap_or("true") {
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
            embed_worker: self.embed_worker()?,
        })
    }

    fn embedder(&self) -> Result<EmbedderSetting, SettingsError> {
        match self.raw("embedder").unwrap_or("hashing") {
            "hashing" => Ok(EmbedderSetting::Hashing),
            other => Err(self.err("embedder", format!("`{other}` is not one of hashing"))),
        }
    }
}

impl Resolver {
    fn embed_worker(&self) -> Result<EmbedWorkerSettings, SettingsError> {
        Ok(EmbedWorkerSettings {
            enabled: match self.raw("embed_worker_enabled").unwrap_or("true") {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => return Err(self.err("embed_worker_enabled", format!("`{other}` is not true or false"))),
            },
            poll: Duration::from_millis(self.number("embed_worker_poll_ms", 10u64, 600_000)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_embedding_worker_settings_are_parsed_and_named_when_wrong() {
        let s = Settings::from_sources(None, env(&[])).unwrap();
        assert_eq!(s.embed_worker, EmbedWorkerSettings { enabled: true, poll: Duration::from_secs(1) });
        let err = Settings::from_sources(None, env(&[("SERVER_EMBED_WORKER_POLL_MS", "1")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_WORKER_POLL_MS");
        let err = Settings::from_sources(None, env(&[("SERVER_EMBED_WORKER_ENABLED", "maybe")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_EMBED_WORKER_ENABLED");
    }

    #[test]
    fn openai_needs_a_key() {
        let err = Settings::from_sources(None, env(&[("SERVER_AI_GENERATOR", "openai")])).unwrap_err();
        assert_eq!(err.setting, "SERVER_AI_OPENAI_API_KEY");
        let err = Settings::from_sources(None, env(&[("SERVER_AI_GENERATOR", "magic")])).unwrap_err();
        assert!(err.message.contains("offline, openai"), "{err}");
    }
}
