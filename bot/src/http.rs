//! The HTTP surface owned by `taskgate serve`: health, readiness, metrics, channel webhooks,
//! and the web console with its JSON API (`crate::web`, merged below); and the connection
//! loop that serves it with limits ([`serve`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, middleware};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use taskgate_adapters::store::SeaStore;
use taskgate_core::store::Store;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower_http::limit::RequestBodyLimitLayer;

use crate::channel::Links;
use crate::config::ServerConfig;
use crate::metrics::{self, Metrics};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<SeaStore>,
    pub metrics: Arc<Metrics>,
    /// The chat channels' connection states.
    pub links: Links,
}

/// Webhook bodies are small; anything bigger is refused before it is read.
const BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route(crate::telegram::WEBHOOK_PATH, axum::routing::post(crate::telegram::webhook))
        .route(crate::feishu::WEBHOOK_PATH, axum::routing::post(crate::feishu::webhook))
        .route(
            crate::notes::mcp::PATH,
            axum::routing::post(crate::notes::mcp::handle).get(crate::notes::mcp::no_stream),
        )
        .merge(crate::web::router())
        .route_layer(middleware::from_fn_with_state(state.metrics.clone(), metrics::track))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        // After the limit: uploads are bounded by `[attachments] max_bytes` instead.
        .merge(crate::web::upload_router())
        .with_state(state)
}

/// Liveness: the process serves HTTP. Never touches the database, so a slow database does not
/// get the process restarted.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and its schema is current. Then one line per chat
/// channel with its connection state (`telegram: connected`, `feishu: retrying (attempt 3):
/// …`). A channel that cannot reach its platform does not make the replica unready: every
/// replica would be equally affected, and the console and the other channels still serve.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable: {e}"));
    }
    match state.store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => {
            let mut body = "ready".to_owned();
            for (channel, link) in state.links.snapshot() {
                body.push_str(&format!("\n{channel}: {link}"));
            }
            (StatusCode::OK, body)
        }
        Ok(pending) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{} migration(s) pending: {}", pending.len(), pending.join(", ")))
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")),
    }
}

/// The process's counters, and the database's queues as gauges (read at each scrape, so every
/// replica reports the same queue lengths).
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    match state.store.stats().await {
        Ok(stats) => {
            // Before the exposition's closing `# EOF`.
            let end = text.rfind("# EOF").unwrap_or(text.len());
            text.insert_str(end, &metrics::queue_gauges(&stats));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: reading the queues failed"),
    }
    ([("content-type", "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// Limits on the connections [`serve`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once. At the cap the server stops accepting, so further clients
    /// wait in the listen backlog until a connection ends (none is refused outright).
    pub max_connections: usize,
    /// A request's headers must arrive within this, counted from when the server starts
    /// reading them: a client dribbling a byte a second is cut off all the same. It also
    /// bounds how long a keep-alive connection waits for its next request.
    pub header_timeout: Duration,
    /// A connection on which no byte is read or written for this long is closed: a stalled
    /// body upload, a client that stopped reading its response. Long-lived streams stay open
    /// as long as they move (the console's event stream sends a keep-alive every 15 s).
    pub idle_timeout: Duration,
    /// After shutdown is asked, how long requests in flight may finish before their
    /// connections are closed (an open event stream never finishes by itself).
    pub drain_timeout: Duration,
}

impl Limits {
    pub fn from_config(server: &ServerConfig) -> Self {
        Self {
            max_connections: server.max_connections.clamp(1, MAX_CONNECTIONS),
            header_timeout: Duration::from_secs(server.header_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            drain_timeout: DRAIN_TIMEOUT,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&ServerConfig::default())
    }
}

/// Beyond this a cap is no cap (and the semaphore counts in `u32`).
const MAX_CONNECTIONS: usize = 1 << 20;
/// Well inside the systemd unit's `TimeoutStopSec=30`, leaving time for the agents to stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often "at the connection cap" is logged while it lasts.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish (up to `limits.drain_timeout`) and closes what is left.
///
/// `axum::serve` has no header-read timeout, no idle timeout and no connection cap: 200
/// clients dribbling headers stay connected for as long as they like. This is the same hyper
/// HTTP/1 connection axum uses, built here with hyper's `header_read_timeout` (which needs a
/// timer, hence `TokioTimer`), a semaphore permit per connection, and a watchdog that closes
/// a connection whose socket saw no progress for `idle_timeout`. (tower-http's `TimeoutLayer`
/// works per request, after the headers arrived, and would also cut the console's event
/// stream; it cannot see a client that never finishes its headers.)
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let capacity = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let permits = Arc::new(Semaphore::new(capacity));
    // `true` on `drain`: finish the request in flight, take no more; on `close`: stop now.
    let (drain_tx, drain_rx) = watch::channel(false);
    let (close_tx, close_rx) = watch::channel(false);
    let mut cap_warned: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if cap_warned.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    tracing::warn!(max_connections = capacity, "HTTP connection limit reached; new connections wait");
                    cap_warned = Some(Instant::now());
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                }
            }
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                // Out of file descriptors and the like: wait, as axum does, instead of
                // spinning or giving up on serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        let connection = connection(stream, peer, router.clone(), limits, drain_rx.clone(), close_rx.clone());
        tokio::spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = drain_tx.send(true);
    // Every permit back means every connection ended.
    let all = u32::try_from(capacity).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain_timeout, permits.acquire_many(all)).await.is_err() {
        let open = capacity - permits.available_permits();
        tracing::warn!(open, "connections still open after {:?}; closing them", limits.drain_timeout);
        let _ = close_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(1), permits.acquire_many(all)).await;
    }
    Ok(())
}

/// Errors of one connection that was being accepted, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// One HTTP/1 connection, with the header timeout, the idle watchdog and the shutdown signals.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut drain: watch::Receiver<bool>,
    mut close: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked { inner: stream, activity: activity.clone() });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let conn = builder.serve_connection(io, TowerToHyperService::new(router));
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                break;
            }
            // A dropped sender (the server is gone) counts as the signal too.
            _ = drain.wait_for(|d| *d), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = close.wait_for(|c| *c) => break,
            () = activity.idle_for(limits.idle_timeout) => {
                tracing::debug!(%peer, "HTTP connection idle for {:?}; closed", limits.idle_timeout);
                break;
            }
        }
    }
}

/// When a connection last moved a byte, as milliseconds since it opened.
struct Activity {
    opened: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { opened: Instant::now(), last: AtomicU64::new(0) }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let deadline = self.opened + Duration::from_millis(self.last.load(Ordering::Relaxed)) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A socket that records in [`Activity`] each read or write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// `taskgate health`: `GET /healthz` on this machine's address of `server.listen`, for
/// container health checks (no shell, curl or `/dev/tcp` needed in the image).
pub async fn probe(server: &ServerConfig, timeout: Duration) -> anyhow::Result<String> {
    let url = format!("http://{}/healthz", server.local_addr());
    // No proxy: HTTP(S)_PROXY in a container's environment must not capture a loopback probe.
    let client = reqwest::Client::builder().no_proxy().timeout(timeout).build().context("building the HTTP client")?;
    let response = client.get(&url).send().await.with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if status.is_success() && body.trim() == "ok" {
        Ok(url)
    } else {
        anyhow::bail!("GET {url}: {status} {}", body.trim())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const SLOW_CLIENTS: usize = 200;

    fn limits(header: u64, idle: u64, max: usize) -> Limits {
        Limits {
            max_connections: max,
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            drain_timeout: Duration::from_millis(500),
        }
    }

    /// The real router (health, metrics, webhooks, console) on a fresh SQLite store, plus two
    /// routes for the drain test: a slow answer and a stream that never ends.
    async fn app(dir: &tempfile::TempDir) -> Router {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Arc::new(SeaStore::connect(&url).await.unwrap());
        router(AppState { store, metrics: Metrics::new(), links: Default::default() })
            .route(
                "/test/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route(
                "/test/forever",
                get(|| async { axum::body::Body::from_stream(futures_util::stream::pending::<io::Result<Vec<u8>>>()) }),
            )
    }

    struct Running {
        addr: SocketAddr,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        served: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(router: Router, limits: Limits) -> Running {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, router, limits, async move {
            let _ = stopped.await;
        }));
        Running { addr, stop: Some(stop), served }
    }

    /// A raw `GET` on a fresh connection; the status line's code.
    async fn get_status(addr: SocketAddr, path: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        text.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }

    /// Waits until the server closes `stream` (EOF or reset), reading and discarding.
    async fn closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 1024];
        while let Ok(n) = stream.read(&mut buf).await
            && n > 0
        {}
    }

    /// 200 clients that send a header line every 100 ms and never finish: each is cut off at
    /// the header timeout, and /healthz answers quickly while all of them are connected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_clients_are_dropped_and_healthz_stays_fast() {
        let dir = tempfile::tempdir().unwrap();
        let header_timeout = Duration::from_millis(1500);
        let server = start(app(&dir).await, limits(1500, 60_000, 512)).await;
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..SLOW_CLIENTS {
            let addr = server.addr;
            clients.spawn(async move {
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let opened = Instant::now();
                stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n").await.unwrap();
                let (mut read, mut write) = stream.into_split();
                let dribble = tokio::spawn(async move {
                    for i in 0.. {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if write.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = [0u8; 1024];
                while let Ok(n) = read.read(&mut buf).await
                    && n > 0
                {}
                dribble.abort();
                opened.elapsed()
            });
        }
        // Every slow client connected and dribbling; the probe takes a fresh connection.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let asked = Instant::now();
        assert_eq!(get_status(server.addr, "/healthz").await, 200);
        let answered = asked.elapsed();
        eprintln!("/healthz answered in {answered:?} beside {SLOW_CLIENTS} slow clients");
        assert!(answered < Duration::from_millis(500), "/healthz took {answered:?}");

        let mut lifetimes = Vec::new();
        let all_dropped = tokio::time::timeout(header_timeout + Duration::from_secs(5), async {
            while let Some(lifetime) = clients.join_next().await {
                lifetimes.push(lifetime.unwrap());
            }
        })
        .await;
        assert!(
            all_dropped.is_ok(),
            "{} of {SLOW_CLIENTS} slow clients still connected",
            SLOW_CLIENTS - lifetimes.len()
        );
        let (shortest, longest) = (lifetimes.iter().min().unwrap(), lifetimes.iter().max().unwrap());
        eprintln!("slow clients dropped after {shortest:?} to {longest:?}");
        // (The server's clock starts at accept, a little before the client's.)
        assert!(*shortest >= header_timeout - Duration::from_millis(500), "dropped before the timeout: {shortest:?}");
        assert!(*longest < header_timeout + Duration::from_secs(2), "{longest:?}");
        // Their slots are free again.
        assert_eq!(get_status(server.addr, "/healthz").await, 200);
    }

    /// A stalled body upload and a keep-alive connection left idle are both closed.
    #[tokio::test]
    async fn idle_connections_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let server = start(app(&dir).await, limits(800, 600, 16)).await;

        // Headers complete, body promised and never sent: the idle watchdog ends it.
        let mut upload = TcpStream::connect(server.addr).await.unwrap();
        let opened = Instant::now();
        upload
            .write_all(b"POST /webhook/telegram HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), closed(&mut upload)).await.expect("stalled upload closed");
        let lifetime = opened.elapsed();
        assert!(lifetime >= Duration::from_millis(550), "closed too early: {lifetime:?}");

        // One full request on a keep-alive connection, then silence: closed by the header
        // timeout of the next request that never comes.
        let mut keep = TcpStream::connect(server.addr).await.unwrap();
        keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut first = [0u8; 256];
        let n = keep.read(&mut first).await.unwrap();
        assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "answered first");
        let answered = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), closed(&mut keep)).await.expect("idle keep-alive closed");
        assert!(answered.elapsed() >= Duration::from_millis(550), "{:?}", answered.elapsed());
    }

    /// At the cap a new connection waits (it is not refused) until a slot frees.
    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_slot() {
        let dir = tempfile::tempdir().unwrap();
        let server = start(app(&dir).await, limits(30_000, 30_000, 2)).await;
        let first = TcpStream::connect(server.addr).await.unwrap();
        let _second = TcpStream::connect(server.addr).await.unwrap();
        // Let the server accept both before the third arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = server.addr;
        let third = tokio::spawn(async move { get_status(addr, "/healthz").await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished(), "answered beyond the cap");
        drop(first);
        let status = tokio::time::timeout(Duration::from_secs(5), third).await.expect("served once a slot freed");
        assert_eq!(status.unwrap(), 200);
    }

    /// Shutdown lets a request in flight finish, closes a stream that never ends after the
    /// drain timeout, and returns.
    #[tokio::test]
    async fn shutdown_finishes_requests_in_flight_then_closes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let mut server = start(app(&dir).await, limits(5_000, 30_000, 16)).await;
        let addr = server.addr;
        let slow = tokio::spawn(async move { get_status(addr, "/test/slow").await });
        let mut forever = TcpStream::connect(addr).await.unwrap();
        forever.write_all(b"GET /test/forever HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let _idle = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let asked = Instant::now();
        server.stop.take().unwrap().send(()).unwrap();
        assert_eq!(slow.await.unwrap(), 200, "the request in flight finished");
        tokio::time::timeout(Duration::from_secs(3), closed(&mut forever)).await.expect("endless stream closed");
        let result = tokio::time::timeout(Duration::from_secs(3), &mut server.served).await.expect("serve returned");
        result.unwrap().unwrap();
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(2500), "{took:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "no longer listening");
    }

    #[tokio::test]
    async fn the_probe_reads_healthz_through_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let server = start(app(&dir).await, Limits::default()).await;
        let config =
            ServerConfig { listen: SocketAddr::from(([0, 0, 0, 0], server.addr.port())), ..ServerConfig::default() };
        let url = probe(&config, Duration::from_secs(3)).await.unwrap();
        assert_eq!(url, format!("http://127.0.0.1:{}/healthz", server.addr.port()));
        let nobody = ServerConfig { listen: SocketAddr::from(([127, 0, 0, 1], 1)), ..ServerConfig::default() };
        assert!(probe(&nobody, Duration::from_secs(3)).await.is_err());
    }
}
