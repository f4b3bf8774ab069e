//! Building and running the gateway: everything `serve` needs, in an order that fails early
//! with a clear message (data dir, single-process lock, database, migrations, listener), then
//! the engine, which resumes the work a previous run left open before anything new arrives.

use std::fs::File;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use taskgate_adapters::runtime::{AgentRuntimes, RuntimeOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::model::Channel;
use taskgate_core::store::Store;
use tokio::net::TcpListener;

use crate::channel::Links;
use crate::config::{Config, redact_url};
use crate::engine::Engine;
use crate::feishu::{self, Feishu, FeishuOptions};
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::telegram::{self, Telegram, TelegramOptions};
use crate::web::{WebConsole, auth};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    engine: Arc<Engine>,
    /// The Telegram channel's workers, when `[telegram]` is configured.
    telegram: Option<Telegram>,
    /// The Feishu/Lark channel's workers, when `[feishu]` is configured.
    feishu: Option<Feishu>,
    /// The web console's workers, when `[web] enabled`.
    web: Option<WebConsole>,
    /// The console login token when this start created it (first start): shown once.
    new_token: Option<String>,
    /// Connection limits and timeouts of the HTTP server (`[server]`).
    limits: http::Limits,
    /// Held for the life of the process: a second `serve` on the same SQLite file is refused.
    _lock: Option<File>,
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        let lock = if config.uses_sqlite() { Some(lock_data_dir(config)?) } else { None };
        // A missing agent program is news for the operator now, not when a task first fails.
        crate::doctor::warn_missing_agent_programs(config);
        let store = open_store(config).await?;
        store.migrate().await.context("applying database migrations")?;
        for project in &config.projects {
            store
                .upsert_project(&project.name, &project.path.to_string_lossy(), project.default_agent.as_deref())
                .await
                .with_context(|| format!("registering project `{}`", project.name))?;
        }
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        let store = Arc::new(store);
        let engine = Arc::new(Engine::new(
            store.clone(),
            Arc::new(config.clone()),
            Arc::new(AgentRuntimes::new(RuntimeOptions::default())),
        ));
        // SQLite is one process (the data-dir lock above): every lease in it belongs to a run
        // that is gone, so its work is taken over at once rather than after the lease.
        if config.uses_sqlite() {
            let freed = store.release_all().await.context("releasing the last run's executions")?;
            if freed > 0 {
                tracing::info!(executions = freed, "the last run left executions open; taking them over");
            }
        }
        // Takes over what nobody runs (what the last run left open) and runs new work.
        engine.start();
        // Channels connect in the background: one that cannot reach its platform retries
        // without holding up the console and the other channels.
        let links = Links::default();
        let telegram = match &config.telegram {
            Some(tg) => {
                engine.set_admission(Channel::Telegram, telegram::admission(tg));
                let options = TelegramOptions {
                    links: links.clone(),
                    limits: config.limits.inbox(),
                    ..TelegramOptions::default()
                };
                let public_url = config.server.public_url.as_deref();
                Some(Telegram::start(engine.clone(), tg, public_url, options).await.context("starting Telegram")?)
            }
            None => None,
        };
        let feishu = match &config.feishu {
            Some(fs) => {
                engine.set_admission(Channel::Feishu, feishu::admission(fs));
                let options =
                    FeishuOptions { links: links.clone(), limits: config.limits.inbox(), ..FeishuOptions::default() };
                Some(Feishu::start(engine.clone(), fs, options).await.context("starting Feishu")?)
            }
            None => None,
        };
        let (web, new_token) = if config.web.enabled {
            let token = match auth::ensure_token(store.as_ref()).await.context("creating the console login token")? {
                auth::TokenState::Created(token) => Some(token),
                auth::TokenState::Existing => None,
            };
            (Some(WebConsole::start(engine.clone(), config)), token)
        } else {
            (None, None)
        };
        let state = AppState { store, metrics: Metrics::new(), links };
        let limits = http::Limits::from_config(&config.server);
        Ok(Self { listener, state, engine, telegram, feishu, web, new_token, limits, _lock: lock })
    }

    /// The engine channels feed messages to.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn store(&self) -> Arc<SeaStore> {
        self.state.store.clone()
    }

    /// The console login token, only on the start that created it (it is stored hashed).
    pub fn take_new_token(&mut self) -> Option<String> {
        self.new_token.take()
    }

    /// Serves until `shutdown` resolves, then stops gracefully: no new connections, open event
    /// streams ended, channels stop taking updates, running turns get
    /// `runtime.shutdown_grace_secs` to finish and are then handed over (another replica, or the
    /// next start, runs them again; the chat is told), the outbox gets a moment to deliver,
    /// and the database is closed. Bounded: the process ends within the grace plus a few
    /// seconds. Work accepted before the stop is in the database, so nothing accepted is lost.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Application { listener, state, engine, mut telegram, mut feishu, web, new_token: _, limits, _lock } = self;
        let store = state.store.clone();
        // The MCP server (restart-note tools) answers through the notes keeper.
        let mut router = http::router(state).layer(axum::Extension(engine.notes().clone()));
        if let Some(telegram) = &telegram {
            router = router.layer(axum::Extension(telegram.webhook()));
        }
        if let Some(feishu) = &feishu {
            router = router.layer(axum::Extension(feishu.webhook()));
        }
        if let Some(web) = &web {
            router = router.layer(axum::Extension(web.extension()));
        }
        let stopping = tokio_util::sync::CancellationToken::new();
        let mut server = {
            let stopping = stopping.clone();
            tokio::spawn(async move { http::serve(listener, router, limits, stopping.cancelled_owned()).await })
        };
        // The server ending on its own (it cannot, short of a bug) also stops the gateway.
        let mut served = tokio::select! {
            () = shutdown => None,
            ended = &mut server => Some(ended),
        };
        tracing::info!("stopping: no new requests or updates; running turns get their grace");
        stopping.cancel();
        if let Some(web) = &web {
            web.close_streams();
        }
        if let Some(telegram) = &mut telegram {
            telegram.stop_intake();
        }
        if let Some(feishu) = &mut feishu {
            feishu.stop_intake();
        }
        engine.shutdown(engine_grace(&engine)).await;
        // What the handover said to the chats goes out before the senders stop.
        flush_outbox(&store, FLUSH).await;
        drop(telegram);
        drop(feishu);
        drop(web);
        drop(engine);
        if served.is_none() {
            // Requests in flight had the whole handover to finish; what is left is cut.
            served = match tokio::time::timeout(std::time::Duration::from_millis(500), &mut server).await {
                Ok(ended) => Some(ended),
                Err(_) => {
                    server.abort();
                    None
                }
            };
        }
        if let Some(Ok(Err(e))) = served {
            return Err(anyhow::Error::new(e).context("HTTP server"));
        }
        if let Ok(store) = Arc::try_unwrap(store) {
            store.close().await.context("closing the database")?;
        }
        tracing::info!("taskgate stopped");
        Ok(())
    }
}

/// How long the outbox gets after the handover to deliver what it says.
const FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

fn engine_grace(engine: &Engine) -> std::time::Duration {
    engine.config().runtime.shutdown_grace()
}

/// Waits (at most `bound`) until no outbound message is due on any channel.
async fn flush_outbox(store: &SeaStore, bound: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + bound;
    while tokio::time::Instant::now() < deadline {
        let mut due = false;
        for channel in [Channel::Telegram, Channel::Feishu, Channel::Web] {
            due |= store.outbox_due(channel, chrono::Utc::now(), 1).await.is_ok_and(|d| !d.is_empty());
        }
        if !due {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Connects to the configured database, creating the data dir for SQLite.
pub async fn open_store(config: &Config) -> anyhow::Result<SeaStore> {
    if config.uses_sqlite() {
        std::fs::create_dir_all(&config.server.data_dir)
            .with_context(|| format!("creating data dir {}", config.server.data_dir.display()))?;
    }
    let url = config.database_url();
    SeaStore::connect(&url).await.with_context(|| format!("connecting to {}", redact_url(&url)))
}

/// SQLite has one writer process: a second gateway on the same file would fight over it.
fn lock_data_dir(config: &Config) -> anyhow::Result<File> {
    let dir = &config.server.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
    let path = dir.join("taskgate.lock");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another taskgate process is using {} (SQLite allows one; use PostgreSQL for several replicas)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("locking {}", path.display())),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing requests in flight");
}
