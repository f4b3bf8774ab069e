//! Running gateways for tests: `taskgate serve`'s whole `Application` on a free port
//! ([`spawn_app`], [`spawn_console`]), or one router beside an in-process engine ([`Port`]).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use taskgate::config::Config;
use taskgate::engine::Engine;
use taskgate::startup::Application;
use taskgate_adapters::store::SeaStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::world::World;

/// How long [`TestApp::stop`] waits for the app to finish.
const STOP_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running `Application`; told to stop when dropped, or stopped and awaited with [`stop`].
///
/// [`stop`]: TestApp::stop
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub url: String,
    /// The console login token a first start creates.
    pub token: String,
    pub store: Arc<SeaStore>,
    pub engine: Arc<Engine>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<anyhow::Result<()>>>,
    _world: Option<World>,
}

/// Builds the application from `config` (a first start: its data dir is new) and serves it
/// until stopped.
pub async fn spawn_app(config: &Config) -> anyhow::Result<TestApp> {
    let mut app = Application::build(config).await?;
    let token = app.take_new_token().context("a first start creates the login token")?;
    let addr = app.local_addr();
    let (store, engine) = (app.store(), app.engine());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Ok(TestApp {
        addr,
        url: format!("http://{addr}"),
        token,
        store,
        engine,
        stop: Some(stop),
        served: Some(served),
        _world: None,
    })
}

/// The gateway for console tests: the shared [`World`]'s config served on a free port with
/// its data in the world's dir, and "Ada (web)" as the console's person.
pub async fn spawn_console() -> anyhow::Result<TestApp> {
    let mut world = World::new();
    world.config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    world.config.server.data_dir = world.dir.path().join("data");
    world.config.web.display_name = "Ada (web)".into();
    let mut app = spawn_app(&world.config).await?;
    app._world = Some(world);
    Ok(app)
}

impl TestApp {
    /// Stops serving and waits (bounded) for the agents to shut down. An error when the app had
    /// stopped before, did not stop in time (an open event stream keeps it serving), or did not
    /// stop cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let stop = self.stop.take().context("stopped twice")?;
        stop.send(()).map_err(|()| anyhow::anyhow!("the app had stopped before it was told to"))?;
        let served = self.served.take().context("stopped twice")?;
        tokio::time::timeout(STOP_LIMIT, served).await.context("the app did not stop in time")??
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A free port on 127.0.0.1, bound before what it will serve exists (its URL may have to go
/// into a config first).
pub struct Port {
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
}

impl Port {
    pub async fn bind() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Port { addr: listener.local_addr().expect("addr"), listener }
    }

    /// Serves `router` on the port until the returned server is dropped.
    pub fn serve(self, router: axum::Router) -> Server {
        let task = tokio::spawn(async move {
            let _ = axum::serve(self.listener, router).await;
        });
        Server { addr: self.addr, task }
    }
}

/// A router served on a [`Port`]; aborted when dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
