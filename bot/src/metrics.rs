//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    /// The route pattern, not the raw path, so ids don't explode the label set.
    pub route: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub started: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("taskgate");
        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", http_requests.clone());
        let started = Gauge::default();
        registry.register("start_time_seconds", "Unix time the process started", started.clone());
        started.set(chrono::Utc::now().timestamp());
        Arc::new(Self { registry, http_requests, started })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Counts every request by method, route and status.
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let labels = RequestLabels { method, route, status: response.status().as_u16() };
    metrics.http_requests.get_or_create(&labels).inc();
    response
}

/// The store's queue lengths as gauges in the text exposition format.
pub fn queue_gauges(stats: &taskgate_core::store::StoreStats) -> String {
    let gauges = [
        ("taskgate_inbox_pending", "Inbound updates accepted and not handled yet", stats.inbox_pending),
        ("taskgate_inbox_set_aside", "Inbound updates set aside after failing", stats.inbox_set_aside),
        ("taskgate_outbox_pending", "Outbound messages not delivered yet", stats.outbox_pending),
        ("taskgate_outbox_dropped", "Outbound messages given up on for good", stats.outbox_dropped),
        ("taskgate_executions_with_work", "Executions with work waiting for a runner", stats.executions_with_work),
    ];
    gauges
        .iter()
        .map(|(name, help, value)| format!("# HELP {name} {help}.\n# TYPE {name} gauge\n{name} {value}\n"))
        .collect()
}
