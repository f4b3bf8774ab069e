//! A whole gateway for console tests: `taskgate serve`'s `Application` on a free port with
//! SQLite in a temp dir and the fake agent behind codex and claude, plus the login token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
        let mut config = crate::world::fake_agents_config(dir.path(), fake_agent, turn_timeout)?;
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.server.data_dir = dir.path().join("data");
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
