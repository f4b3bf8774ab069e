//! The web console and its JSON API, served by `taskgate serve` itself: a page (HTML, CSS and
//! JS embedded in the binary), the API it uses (described in `bot/openapi.json`), live hints
//! over SSE, and the web chat, a channel like Telegram and Feishu.
//!
//! The routes need a [`Console`] installed as an `Extension` (see [`WebConsole::start`]); without
//! one (console disabled, or a test that starts only a channel) they answer 404.

pub mod activity;
pub mod api;
pub mod auth;
pub mod chat;
pub mod control;
pub mod files;
pub mod sse;

use std::sync::Arc;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::{Router, middleware};
use serde_json::json;
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::Chat;
use taskgate_core::model::{Channel, Id};
use taskgate_core::store::StoreError;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::{Engine, IncomingMessage};

/// What the console's handlers share.
pub struct Console {
    pub(crate) store: Arc<SeaStore>,
    engine: Arc<Engine>,
    hub: sse::Hub,
    /// Browsers get the cookie with `Secure` when the public URL is https.
    secure_cookie: bool,
    /// The console user's name on timelines.
    display_name: String,
    /// Wakes the web chat's inbox worker after a message was stored.
    inbox: Arc<Notify>,
    /// Wakes the web outbox drain (after an approval answered here, say).
    outbox: Arc<Notify>,
    /// Cancelled when the gateway stops: open event streams end.
    closing: tokio_util::sync::CancellationToken,
    /// When each task last had something happen (the task list's order).
    activity: activity::Activity,
    /// Uploaded files: checked and stored like any channel's.
    stash: crate::attachments::Stash,
}

impl Console {
    /// The console's user as the sender of a message or a press on the web chat, about `task`.
    pub(crate) fn user(&self, task: Option<Id>, text: &str) -> IncomingMessage {
        IncomingMessage {
            channel: Channel::Web,
            chat_id: chat::CHAT_ID.to_owned(),
            thread_id: String::new(),
            sender_id: chat::SENDER_ID.to_owned(),
            sender_name: self.display_name.clone(),
            text: text.to_owned(),
            reply_to_task: task,
            chat: Chat::Direct,
            mentioned: true,
            message_id: None,
            inbound: None,
        }
    }
}

/// The running console: its state for the router, and its workers (web chat inbox, web outbox
/// drain, change feed), which stop when this is dropped.
pub struct WebConsole {
    console: Arc<Console>,
    workers: Vec<JoinHandle<()>>,
}

impl WebConsole {
    pub fn start(engine: Arc<Engine>, config: &Config) -> Self {
        let store = engine.store().clone();
        let outbox = engine.outbox_wake(Channel::Web);
        let console = Arc::new(Console {
            store: store.clone(),
            engine,
            hub: sse::Hub::new(),
            secure_cookie: config.server.public_url.as_deref().is_some_and(|u| u.starts_with("https://")),
            display_name: config.web.display_name.clone(),
            inbox: Arc::new(Notify::new()),
            outbox,
            closing: Default::default(),
            activity: Default::default(),
            stash: crate::attachments::Stash::new(config),
        });
        let workers = vec![
            tokio::spawn(chat::inbox_worker(console.clone())),
            tokio::spawn(chat::outbox_drain(console.clone())),
            tokio::spawn(sse::change_feed(console.clone())),
        ];
        tracing::info!("web console started");
        Self { console, workers }
    }

    /// The gateway stops: live event streams end so they do not hold the server open.
    pub fn close_streams(&self) {
        self.console.closing.cancel();
    }

    /// The routes' state, for `router.layer(Extension(console.extension()))`.
    pub fn extension(&self) -> Arc<Console> {
        self.console.clone()
    }
}

impl Drop for WebConsole {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

/// The console's routes, merged into the gateway's router (`http::router`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes().router.route_layer(middleware::from_fn(auth::require))
}

/// Uploads, outside the gateway's 1 MB request limit: the handler reads at most
/// `[attachments] max_bytes` itself. Behind the same login.
pub fn upload_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    upload_routes().router.route_layer(middleware::from_fn(auth::require))
}

fn upload_routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    Routes { router: Router::new(), table: Vec::new() }.add("POST", "/api/files", post(files::upload))
}

/// Every console route as `(METHOD, path)`: what `bot/openapi.json` must describe, exactly.
pub fn route_table() -> Vec<(&'static str, &'static str)> {
    let mut table = routes::<()>().table;
    table.extend(upload_routes::<()>().table);
    table
}

fn routes<S: Clone + Send + Sync + 'static>() -> Routes<S> {
    Routes { router: Router::new(), table: Vec::new() }
        .add("GET", "/", get(page))
        .add("GET", "/app.js", get(script))
        .add("GET", "/style.css", get(style))
        .add("GET", "/manifest.webmanifest", get(manifest))
        .add("GET", "/sw.js", get(service_worker))
        .add("GET", "/icon.svg", get(icon_svg))
        .add("GET", "/icon-192.png", get(icon_192))
        .add("GET", "/icon-512.png", get(icon_512))
        .add("GET", "/api/openapi.json", get(openapi))
        .add("POST", "/api/login", post(auth::login))
        .add("POST", "/api/logout", post(auth::logout))
        .add("GET", "/api/session", get(api::session))
        .add("GET", "/api/projects", get(api::projects))
        .add("GET", "/api/tasks", get(api::tasks))
        .add("GET", "/api/tasks/{id}", get(api::task))
        .add("GET", "/api/tasks/{id}/events", get(api::events))
        .add("GET", "/api/tasks/{id}/executions", get(api::executions))
        .add("GET", "/api/executions/{id}/diff", get(api::execution_diff))
        .add("POST", "/api/tasks/{id}/stop", post(control::stop))
        .add("POST", "/api/tasks/{id}/new-session", post(control::new_session))
        .add("POST", "/api/tasks/{id}/rename", post(control::rename))
        .add("POST", "/api/tasks/{id}/agents", post(control::spawn))
        .add("GET", "/api/approvals", get(api::approvals))
        .add("GET", "/api/approvals/{id}", get(api::approval))
        .add("POST", "/api/approvals/{id}/approve", post(api::approve))
        .add("POST", "/api/approvals/{id}/deny", post(api::deny))
        .add("GET", "/api/rules", get(api::rules))
        .add("POST", "/api/rules/{id}/revoke", post(api::revoke_rule))
        .add("GET", "/api/audit", get(api::audit))
        .add("GET", "/api/undelivered", get(api::undelivered))
        .add("GET", "/api/messages", get(chat::history))
        .add("POST", "/api/messages", post(chat::send))
        .add("POST", "/api/messages/{id}/choose", post(chat::choose))
        .add("GET", "/api/files/{sha256}", get(files::download))
        .add("GET", "/api/stream", get(sse::stream))
}

/// Builds the router and the route table from one list, so the two cannot drift apart.
struct Routes<S> {
    router: Router<S>,
    table: Vec<(&'static str, &'static str)>,
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    fn add(mut self, method: &'static str, path: &'static str, route: MethodRouter<S>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, route);
        self
    }
}

// Assets are compiled in: `serve` needs no files beside the binary and no CDN.
const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const MANIFEST: &str = include_str!("assets/manifest.webmanifest");
const SERVICE_WORKER: &str = include_str!("assets/sw.js");
const ICON_SVG: &str = include_str!("assets/icon.svg");
const ICON_192: &[u8] = include_bytes!("assets/icon-192.png");
const ICON_512: &[u8] = include_bytes!("assets/icon-512.png");
/// The API's description, the same file the tests hold the router to.
const OPENAPI: &str = include_str!("../../openapi.json");

/// Paths served without a login: the page shows the login form, and browsers fetch the
/// manifest and icons without cookies.
pub(crate) const PUBLIC_ASSETS: [&str; 8] =
    ["/", "/app.js", "/style.css", "/manifest.webmanifest", "/sw.js", "/icon.svg", "/icon-192.png", "/icon-512.png"];

/// Same-origin only, no inline script: the page loads nothing from anywhere else.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

async fn manifest() -> Response {
    asset("application/manifest+json", MANIFEST)
}

/// The service worker only shows notifications (and focuses the console when one is
/// clicked); it caches nothing, so the page is always the server's current one.
async fn service_worker() -> Response {
    asset("text/javascript; charset=utf-8", SERVICE_WORKER)
}

async fn icon_svg() -> Response {
    asset("image/svg+xml", ICON_SVG)
}

async fn icon_192() -> Response {
    asset("image/png", ICON_192)
}

async fn icon_512() -> Response {
    asset("image/png", ICON_512)
}

/// `GET /api/openapi.json`: this API's OpenAPI 3 description.
async fn openapi() -> Response {
    asset("application/json", OPENAPI)
}

/// An API error: a status and `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    detail: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), detail: None }
    }

    fn with(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict { .. } | StoreError::AlreadyExists(_) => {
                Self::new(StatusCode::CONFLICT, e.to_string())
            }
            StoreError::Backend(_) | StoreError::Fenced(_) => {
                tracing::error!(error = %e, "web console: store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database error")
            }
            StoreError::Busy(_) => {
                tracing::warn!(error = %e, "web console: the database is busy");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "the database is busy; try again")
            }
        }
    }
}

impl From<crate::engine::EngineError> for ApiError {
    fn from(e: crate::engine::EngineError) -> Self {
        match e {
            crate::engine::EngineError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(detail) = self.detail {
            body["detail"] = detail;
        }
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    /// The console is one script of top-level functions: a second `function name(` would
    /// silently replace the first for every caller (two branches once both added `diffView`).
    #[test]
    fn the_console_script_declares_each_function_once() {
        let mut seen = std::collections::HashSet::new();
        let dupes: Vec<&str> = super::APP_JS
            .lines()
            .filter_map(|line| line.strip_prefix("function ").or_else(|| line.strip_prefix("async function ")))
            .filter_map(|rest| rest.split('(').next())
            .filter(|name| !seen.insert(*name))
            .collect();
        assert!(dupes.is_empty(), "declared twice in app.js: {dupes:?}");
    }
}
