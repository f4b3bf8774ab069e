//! A whole gateway for console tests: `taskgate serve`'s `Application` on a free port with
//! SQLite in a temp dir and the fake agent behind codex and claude, plus the login token.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use taskgate::config::{AgentConfig, AgentKind, Command, Config, ProjectConfig};
use taskgate::engine::Engine;
use taskgate::startup::Application;
use taskgate_adapters::store::SeaStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running gateway; stops (bounded) when dropped or on `stop`.
pub struct Gateway {
    pub url: String,
    pub token: String,
    pub store: Arc<SeaStore>,
    pub engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with `fake_agent` (the test's `env!("CARGO_BIN_EXE_fake-agent")`).
    pub async fn start(fake_agent: &str, turn_timeout: Duration) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let state = dir.path().join("fake-state").to_string_lossy().into_owned();
        let agent = |kind: AgentKind, mode: &str| AgentConfig {
            command: Some(Command::Argv(vec![fake_agent.into(), mode.into(), "--state-dir".into(), state.clone()])),
            ..AgentConfig::new(kind)
        };
        let mut agents = BTreeMap::new();
        agents.insert("codex".to_owned(), agent(AgentKind::Codex, "codex"));
        agents.insert("claude".to_owned(), agent(AgentKind::Claude, "claude"));
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work)?;
        let mut config = Config {
            projects: vec![ProjectConfig { name: "demo".into(), path: work, default_agent: Some("codex".into()), busy_policy: Default::default() }],
            agents,
            ..Config::default()
        };
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.data_dir = dir.path().join("data");
        config.runtime.turn_timeout_secs = turn_timeout.as_secs();
        config.runtime.interrupt_grace_secs = 1;
        config.web.display_name = "Ada (web)".into();
        let mut app = Application::build(&config).await?;
        let token = app.take_new_token().ok_or_else(|| anyhow::anyhow!("a first start creates the login token"))?;
        let url = format!("http://{}", app.local_addr());
        let (store, engine) = (app.store(), app.engine());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self { url, token, store, engine, stop: Some(stop), served: Some(served), _dir: dir })
    }

    /// Stops serving and waits (bounded) for the agents to shut down.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), served).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
