//! The world every end-to-end test starts from: a temp dir, a config with a project in it and
//! two agents, `codex` and `claude`, both played by the fake agent binary, and the in-process
//! engine over SQLite in that dir. Tests that need something else say so by changing
//! `World::config` (or starting from [`World::bare`]) before they build the engine.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use taskgate::config::{AgentConfig, AgentKind, Command, Config, ProjectConfig};
use taskgate::engine::{Engine, IncomingMessage};
use taskgate_adapters::runtime::{AgentRuntimes, RuntimeOptions};
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::Chat;
use taskgate_core::model::Channel;

use crate::harness::WAIT;

static FAKE_AGENT: OnceLock<&'static str> = OnceLock::new();

/// Records the fake agent binary's path. Only an integration test can name it
/// (`env!("CARGO_BIN_EXE_fake-agent")`), so the test binary's `main` does, before any trial.
pub fn set_fake_agent(path: &'static str) {
    let _ = FAKE_AGENT.set(path);
}

/// The fake agent binary (see [`set_fake_agent`]).
pub fn fake_agent() -> &'static str {
    FAKE_AGENT.get().expect("the test binary's main sets the fake agent's path before running trials")
}

/// An agent of `kind` played by the fake agent binary: `fake-agent <mode> <args…>`.
pub fn fake_agent_config(kind: AgentKind, args: impl IntoIterator<Item = String>) -> AgentConfig {
    let mode = match kind {
        AgentKind::Codex => "codex",
        AgentKind::Claude => "claude",
        AgentKind::Acp => "acp",
    };
    let argv = [fake_agent().to_owned(), mode.to_owned()].into_iter().chain(args).collect();
    AgentConfig { command: Some(Command::Argv(argv)), ..AgentConfig::new(kind) }
}

/// The shared config: project `demo` in `dir/work` (default agent `codex`), agents `codex` and
/// `claude` played by the fake agent (state in `dir/fake-state`). `turn_timeout` bounds every
/// turn, so no agent outlives the test's own wait.
pub fn fake_agents_config(dir: &Path, turn_timeout: Duration) -> std::io::Result<Config> {
    let state = dir.join("fake-state").to_string_lossy().into_owned();
    let agent = |kind| fake_agent_config(kind, ["--state-dir".to_owned(), state.clone()]);
    let mut agents = BTreeMap::new();
    agents.insert("codex".to_owned(), agent(AgentKind::Codex));
    agents.insert("claude".to_owned(), agent(AgentKind::Claude));
    let work = dir.join("work");
    std::fs::create_dir_all(&work)?;
    let mut config = Config {
        projects: vec![ProjectConfig {
            name: "demo".into(),
            path: work,
            default_agent: Some("codex".into()),
            busy_policy: Default::default(),
            approvers: Vec::new(),
            isolation: None,
        }],
        agents,
        ..Config::default()
    };
    config.runtime.turn_timeout_secs = turn_timeout.as_secs();
    config.runtime.interrupt_grace_secs = 1;
    Ok(config)
}

/// A temp dir and the config an engine built from it reads.
pub struct World {
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// The shared config ([`fake_agents_config`]) with [`WAIT`] as the turn limit.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// The shared config as `tune` adjusts it (limits, policies).
    pub fn with(tune: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = fake_agents_config(dir.path(), WAIT).expect("config");
        tune(&mut config);
        World { dir, config }
    }

    /// `Config::default()`: no projects, no agents (for an engine that only serves its routes).
    pub fn bare() -> Self {
        World { dir: tempfile::tempdir().expect("tempdir"), config: Config::default() }
    }

    /// The URL of SQLite database `file` in the world's dir.
    pub fn db_url(&self, file: &str) -> String {
        format!("sqlite://{}?mode=rwc", self.dir.path().join(file).display())
    }

    /// A connected, migrated store on database `file` in the world's dir.
    pub async fn store_on(&self, file: &str) -> SeaStore {
        let store = SeaStore::connect(&self.db_url(file)).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// A new engine on the world's database (`taskgate.db`): what `taskgate serve` builds, minus
    /// the channels. Call again after dropping one to "restart the gateway".
    pub async fn engine(&self) -> Engine {
        self.engine_on("taskgate.db").await
    }

    /// A new engine on database `file` in the world's dir, running: as `taskgate serve` on
    /// SQLite, it first frees what an earlier engine on the file held (one process owns a
    /// SQLite database), then takes over open work.
    pub async fn engine_on(&self, file: &str) -> Engine {
        let store = self.store_on(file).await;
        taskgate_core::store::Store::release_all(&store).await.expect("release");
        let engine = self.engine_with_store(store);
        engine.start();
        engine
    }

    /// A new engine on `store` (a database elsewhere, such as a shared PostgreSQL one), not yet
    /// started (see `Engine::start`).
    pub fn engine_with_store(&self, store: SeaStore) -> Engine {
        // The supervisor's limits come from `[runtime]`, as in `taskgate serve`.
        Engine::new(Arc::new(store), Arc::new(self.config.clone()), Arc::new(runtime()))
    }
}

/// The real runtime adapters with test-sized timeouts: a fake agent shakes hands at once and
/// stops quickly.
pub fn runtime() -> AgentRuntimes {
    AgentRuntimes::new(RuntimeOptions {
        handshake_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_millis(300),
        ..RuntimeOptions::default()
    })
}

/// A direct Telegram message from `from` (`name`) in `chat`, as the engine receives it.
pub fn message(chat: &str, from: &str, name: &str, text: &str) -> IncomingMessage {
    IncomingMessage {
        channel: Channel::Telegram,
        chat_id: chat.into(),
        thread_id: String::new(),
        sender_id: from.into(),
        sender_name: name.into(),
        text: text.into(),
        reply_to_task: None,
        chat: Chat::Direct,
        mentioned: false,
        message_id: None,
        inbound: None,
    }
}
