//! Building and running one server: `App::build(settings)` connects everything and binds the
//! listener; `run_until(shutdown)` serves until the future resolves, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::throttle::LoginThrottle;
use crate::accounts::{PasswordHasher, SessionStore, StreamTickets};
use crate::ai::worker::AiWorker;
use crate::batch::claim::Claimer;
use crate::batch::config::EmbedMode;
use crate::batch::embed_job::{EmbedPool, FaultyEmbedder, InlineEmbed, PoolControl};
use crate::batch::jobs::JobRunner;
use crate::batch::scheduler::Scheduler;
use crate::batch::{JobName, Jobs};
use crate::chat::frame::Limits;
use crate::chat::relay::RelayContext;
use crate::chat::session::{ChatContext, ChatSettings};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::notify::alert::AlertSink;
use crate::notify::bus::{self, BusContext};
use crate::notify::hub::{GapRepair, Hub};
use crate::ops::Dependencies;
use crate::settings::Settings;
use crate::state::{AppState, Guard, Rules};

pub struct App {
    listener: TcpListener,
    state: AppState,
    ai_worker: AiWorker,
    scheduler: Scheduler,
    embed_pool: EmbedPool,
    settings: Settings,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("addr", &self.local_addr()).field("instance", &self.settings.instance_id).finish()
    }
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        use anyhow::Context;
        let db = crate::db::connect_and_migrate(settings.database_url.expose(), settings.db_max_connections)
            .await
            .context("connecting to the database (SERVER_DATABASE_URL) and applying migrations")?;
        // A second pool, small (`SERVER_DB_STORE_CONNECTIONS`), for the notification stores,
        // whose sessions are bounded (`db::connect_store_pool`).
        let store_db = crate::db::connect_store_pool(settings.database_url.expose(), settings.db_store_connections)
            .await
            .context("connecting the notification store pool (SERVER_DATABASE_URL)")?;
        let redis_config = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let redis_client = redis::Client::open(settings.redis_url.as_str()).context("SERVER_REDIS_URL")?;
        let redis = redis::aio::ConnectionManager::new_with_config(redis_client, redis_config)
            .await
            .context("connecting to Redis (SERVER_REDIS_URL)")?;
        if settings.argon2_memory_kib < 19_456 {
            tracing::warn!(
                memory_kib = settings.argon2_memory_kib,
                "argon2 memory below OWASP's 19 MiB: for load tests only"
            );
        }
        let metrics = Metrics::new(settings.notify_delivery.as_str(), settings.chat.relay.as_str());
        let repair = settings.notify_gap_repair.unwrap_or(match settings.notify_delivery {
            bus::Strategy::Local => GapRepair::Skip,
            _ => GapRepair::FromDatabase,
        });
        let hub = Hub::new(metrics.notify.clone(), repair, settings.guard.streams_per_user);
        let alert = match &settings.alert_webhook_url {
            Some(url) => Some(AlertSink::new(url.clone(), Duration::from_secs(5), 3)?),
            None => None,
        };
        let delivery = bus::build(
            settings.notify_delivery,
            BusContext {
                db: db.clone(),
                store_db,
                hub: hub.clone(),
                metrics: metrics.notify.clone(),
                instance_id: settings.instance_id.clone(),
                redis_url: settings.redis_url.clone(),
                brokers: Arc::new(crate::notify::bus::Brokers::new(
                    settings.amqp_urls.clone(),
                    settings.amqp_queue_type,
                )),
                prefix: settings.namespace.clone(),
                alert,
            },
        );
        let generator = crate::ai::from_settings(&settings.ai)?;
        let ai_worker = AiWorker::new(
            db.clone(),
            generator,
            settings.instance_id.clone(),
            settings.ai.job_lease,
            settings.ai.worker_poll,
        );
        let batch = &settings.batch;
        let jobs = Arc::new(Jobs::from_settings(db.clone(), batch));
        jobs.register().await.context("registering the batch jobs in job_schedules")?;
        let pool_control = PoolControl::new(jobs.is_paused(JobName::EmbedPosts).await?);
        // Search embeds queries with the embedder itself; the workers' copy carries the
        // scenario's injected delay and failures (none unless set).
        let embedder = crate::embed::from_settings(&settings.embedder)?;
        if batch.embed.workers > 0
            && let Err(e) = crate::rental::embedding::requeue_other_embedders(&db, embedder.name()).await
        {
            // Not fatal: search never compares vectors of another embedder, so the cost of a
            // failed requeue is that those items are found by text until the next start.
            tracing::warn!(error.cause_chain = ?e, "re-queueing items embedded by another embedder failed");
        }
        let embed_pool = EmbedPool {
            claimer: Claimer {
                db: db.clone(),
                strategy: batch.embed.strategy,
                lease: batch.embed.lease,
                fencing: batch.embed.fencing,
                instance_id: settings.instance_id.clone(),
            },
            embedder: FaultyEmbedder::wrap(embedder.clone(), batch.embed.delay, batch.embed.fail_rate),
            workers: batch.embed.workers,
            batch_size: batch.embed.batch_size,
            batch_timeout: batch.embed.batch_timeout,
            control: pool_control.clone(),
            // Nothing ticks the pool when embed-posts is off: fall back to polling.
            idle_poll: batch.embed_schedule.is_none().then_some(Duration::from_secs(1)),
            pause: match settings.pause_point {
                Some(point) => crate::pause_point::PausePoint::listen(point).context("listening for SIGUSR1")?,
                None => crate::pause_point::PausePoint::off(),
            },
        };
        let scheduler = Scheduler {
            db: db.clone(),
            instance_id: settings.instance_id.clone(),
            specs: jobs.specs.clone(),
            poll: batch.poll,
            job_lease: batch.job_lease,
            misfire_threshold: batch.misfire_threshold,
            mode: batch.scheduler,
            runner: Arc::new(JobRunner {
                db: db.clone(),
                notifications_retention_days: batch.notifications_retention_days,
                history_retention_days: batch.history_retention_days,
            }),
            pool: pool_control,
        };
        let tickets = {
            let browser = &settings.browser;
            match &browser.ticket_secret {
                Some(secret) => StreamTickets::new(secret.expose().as_bytes(), browser.ticket_ttl),
                None => {
                    tracing::warn!(
                        "SERVER_TICKET_SECRET is not set: stream tickets this instance issues open streams on it \
                         only; set the same secret on every instance"
                    );
                    StreamTickets::new(&rand::random::<[u8; 32]>(), browser.ticket_ttl)
                }
            }
        };
        let draining = crate::drain::Draining::new();
        let chat = {
            let config = &settings.chat;
            let (hub, changes) =
                crate::chat::hub::Hub::new(metrics.chat.clone(), config.outbound_queue, config.relay.per_room());
            let relay = crate::chat::relay::build(
                config.relay,
                RelayContext {
                    db: db.clone(),
                    hub: hub.clone(),
                    metrics: metrics.chat.clone(),
                    redis_url: settings.redis_url.clone(),
                    prefix: settings.namespace.clone(),
                },
                changes,
            );
            ChatContext {
                db: db.clone(),
                sessions: SessionStore::new(redis.clone(), settings.namespace.clone(), settings.session_ttl),
                tickets: tickets.clone(),
                hub,
                relay,
                metrics: metrics.chat.clone(),
                settings: Arc::new(ChatSettings {
                    heartbeat: config.heartbeat,
                    session_check: settings.guard.stream_session_check,
                    max_subscriptions: config.max_subscriptions,
                    limits: Limits { max_body: config.max_frame_bytes, ..Limits::default() },
                    ..ChatSettings::default()
                }),
                draining: draining.clone(),
            }
        };
        let notify_metrics = metrics.notify.clone();
        let state = AppState {
            db: db.clone(),
            sessions: SessionStore::new(redis.clone(), settings.namespace.clone(), settings.session_ttl),
            passwords: PasswordHasher::new(
                settings.argon2_memory_kib,
                settings.argon2_iterations,
                settings.guard.hash_concurrency,
                settings.guard.hash_queue,
            )?,
            guard: Arc::new(Guard {
                logins: LoginThrottle::new(
                    redis.clone(),
                    settings.namespace.clone(),
                    settings.guard.login_window,
                    settings.guard.login_attempts_per_account,
                    settings.guard.login_failures_per_client,
                ),
                client_ip_header: settings.guard.client_ip_header.clone(),
                stream_session_check: settings.guard.stream_session_check,
            }),
            rules: Arc::new(Rules {
                instance_id: settings.instance_id.clone(),
                diary_reward: settings.points_diary_reward,
                comment_reward: settings.points_comment_reward,
                daily_cap: settings.points_daily_cap,
                ai_comments: settings.ai.enabled,
                booking_guard: settings.booking_guard,
            }),
            metrics,
            dependencies: Arc::new(Dependencies {
                db,
                redis,
                delivery: delivery.clone(),
                chat_relay: chat.relay.clone(),
                draining: draining.clone(),
            }),
            ai_wake: ai_worker.waker(),
            notifier: Notifier::new(delivery, notify_metrics),
            hub,
            jobs,
            embedder,
            selectivity: crate::search::Selectivity::new(),
            inline_embed: InlineEmbed((batch.embed.mode == EmbedMode::Inline).then(|| embed_pool.clone())),
            chat,
            tickets,
            browser: Arc::new(settings.browser.clone()),
            draining,
        };
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("binding SERVER_LISTEN_ADDR={}", settings.listen_addr))?;
        Ok(App { listener, state, ai_worker, scheduler, embed_pool, settings })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn instance_id(&self) -> &str {
        &self.settings.instance_id
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves; then drains (see [`crate::drain`]): `/readyz` turns
    /// 503, the listener stops accepting, streams and chat connections are told to come back
    /// elsewhere, in-flight requests finish for up to `shutdown_grace`, and the background
    /// workers stop, each within that grace too.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let background = CancellationToken::new();
        let worker = if self.settings.ai.enabled {
            tokio::spawn(self.ai_worker.clone().run(background.child_token()))
        } else {
            tokio::spawn(async {})
        };
        let delivery = tokio::spawn(self.state.notifier.delivery().clone().run(background.child_token()));
        let chat_relay = tokio::spawn(self.state.chat.relay.clone().run(background.child_token()));
        let scheduler = tokio::spawn(self.scheduler.run(background.child_token()));
        let embed_pool = tokio::spawn(self.embed_pool.run(background.child_token()));
        let router = crate::http::router(self.state.clone());
        let signalled = CancellationToken::new();
        let on_signal = signalled.clone();
        let draining = self.state.draining.clone();
        // The peer's address reaches handlers (login throttling per client).
        let service = router.into_make_service_with_connect_info::<PeerAddr>();
        let serve = axum::serve(NoDelay(self.listener), service).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: draining streams and in-flight requests");
            draining.start();
            on_signal.cancel();
        });
        let grace = self.settings.shutdown_grace;
        let result = tokio::select! {
            result = serve => result,
            () = async { signalled.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(?grace, "in-flight requests still running after the grace period; closing them");
                Ok(())
            }
        };
        background.cancel();
        // The workers finish what they hold (an embed claim, a job run's record, a clean AMQP
        // close) within the same grace.
        let _ = tokio::time::timeout(grace.max(Duration::from_secs(1)), async {
            let _ = worker.await;
            let _ = delivery.await;
            let _ = chat_relay.await;
            let _ = scheduler.await;
            let _ = embed_pool.await;
        })
        .await;
        self.state.db.close().await;
        result
    }
}

/// The listener, with Nagle's algorithm off on every accepted connection: a STOMP frame or an
/// SSE event is a small write, and with Nagle on it waits for the ACK of the previous one,
/// which the client delays by up to 40 ms.
struct NoDelay(TcpListener);

impl axum::serve::Listener for NoDelay {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = io.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY on an accepted connection failed");
        }
        (io, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// The peer's address of a request (login throttling per client).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, NoDelay>> for PeerAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, NoDelay>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}
