//! The HTTP surface owned by `taskgate serve`: health, readiness, metrics, channel webhooks,
//! and the web console with its JSON API (`crate::web`, merged below).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, middleware};
use taskgate_adapters::store::SeaStore;
use taskgate_core::store::Store;
use tower_http::limit::RequestBodyLimitLayer;

use crate::metrics::{self, Metrics};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<SeaStore>,
    pub metrics: Arc<Metrics>,
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
        .with_state(state)
}

/// Liveness: the process serves HTTP. Never touches the database, so a slow database does not
/// get the process restarted.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the database answers and its schema is current.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(e) = state.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database unreachable: {e}"));
    }
    match state.store.pending_migrations().await {
        Ok(pending) if pending.is_empty() => (StatusCode::OK, "ready".to_owned()),
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
