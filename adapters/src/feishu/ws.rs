//! Long-connection mode (no public URL needed): ask the open platform for a WebSocket URL
//! (`POST /callback/ws/endpoint`), connect, ping at the server's `PingInterval`, join split
//! data frames, hand each event to the same sink the webhook uses (it persists to the inbox)
//! and acknowledge it by echoing the frame with `{"code":200}` (and, for a card press, the
//! answer as base64 JSON in `data`). A dropped connection is made again with exponential
//! backoff and jitter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use super::api::FeishuApi;
use super::frame::{Frame, METHOD_CONTROL, METHOD_DATA, Reassembly};

/// Where events go: persisted (the inbox), then acknowledged with what this returns (a card
/// press's toast and card), or refused with an error, so the platform sends them again.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync {
    async fn deliver(&self, event: Value) -> Result<Option<Value>, String>;
}

#[derive(Debug, Clone)]
pub struct WsOptions {
    /// First pause after a failure; doubled per failure in a row.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// At most this much random delay on top (the server's `ReconnectNonce` when smaller),
    /// so many gateways do not reconnect in step.
    pub max_jitter: Duration,
    /// Used until the server names its own `PingInterval`.
    pub ping_interval: Duration,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            max_jitter: Duration::from_secs(30),
            ping_interval: Duration::from_secs(120),
        }
    }
}

/// Keeps the long connection up, forever.
pub async fn run(api: Arc<FeishuApi>, sink: Arc<dyn EventSink>, options: WsOptions) {
    let mut failures: u32 = 0;
    let mut nonce = options.max_jitter;
    loop {
        match session(&api, &sink, &options, &mut nonce).await {
            Ok(()) => {
                tracing::info!("feishu long connection closed; reconnecting");
                failures = 0;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "feishu long connection failed");
            }
        }
        tokio::time::sleep(reconnect_delay(failures, &options, nonce)).await;
    }
}

/// Backoff for `failures` in a row, plus jitter below `nonce`.
pub fn reconnect_delay(failures: u32, options: &WsOptions, nonce: Duration) -> Duration {
    let base = options.min_backoff.saturating_mul(1u32 << failures.min(16)).min(options.max_backoff);
    let jitter_cap = nonce.min(options.max_jitter).as_millis() as u64;
    let jitter = if jitter_cap == 0 { 0 } else { fastrand::u64(0..jitter_cap) };
    base + Duration::from_millis(jitter)
}

/// One connection, until it closes (`Ok`) or fails (`Err`, said without the ticket URL).
async fn session(
    api: &FeishuApi,
    sink: &Arc<dyn EventSink>,
    options: &WsOptions,
    nonce: &mut Duration,
) -> Result<(), String> {
    let endpoint = api.ws_endpoint().await.map_err(|e| e.to_string())?;
    if let Some(n) = endpoint.reconnect_nonce {
        *nonce = n;
    }
    let service = service_id(&endpoint.url);
    let (socket, _) = tokio_tungstenite::connect_async(endpoint.url.as_str())
        .await
        .map_err(|e| format!("connecting the WebSocket: {}", redact_ws_error(&e)))?;
    tracing::info!(app = api.app_id(), "feishu long connection up");
    let (mut write, mut read) = socket.split();
    let mut ping_every = endpoint.ping_interval.filter(|d| !d.is_zero()).unwrap_or(options.ping_interval);
    let mut next_ping = tokio::time::Instant::now();
    let (acks, mut ack_rx) = mpsc::channel::<Frame>(64);
    let mut parts = Reassembly::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next_ping) => {
                next_ping = tokio::time::Instant::now() + ping_every;
                write.send(Message::Binary(Frame::ping(service).encode_to_vec().into())).await.map_err(|e| format!("sending a ping: {e}"))?;
            }
            Some(ack) = ack_rx.recv() => {
                write.send(Message::Binary(ack.encode_to_vec().into())).await.map_err(|e| format!("sending an ack: {e}"))?;
            }
            incoming = read.next() => {
                let bytes = match incoming {
                    None | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Err(e)) => return Err(format!("reading: {e}")),
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(_)) => continue,
                };
                let Some(frame) = Frame::decode_bytes(&bytes) else {
                    tracing::warn!("feishu long connection: a frame that is not protobuf; ignored");
                    continue;
                };
                match frame.method {
                    METHOD_CONTROL => {
                        if frame.header("type") == Some("pong")
                            && let Some(every) = frame.payload.as_deref().and_then(pong_interval)
                            && every != ping_every
                        {
                            next_ping = tokio::time::Instant::now() + every;
                            ping_every = every;
                        }
                    }
                    METHOD_DATA => {
                        let Some(payload) = parts.add(&frame) else { continue };
                        // Delivered beside the read loop: a slow store must not stop pings.
                        let (sink, acks) = (sink.clone(), acks.clone());
                        tokio::spawn(async move {
                            let ack = handle_data(sink.as_ref(), frame, &payload).await;
                            let _ = acks.send(ack).await;
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Delivers one whole event and builds its ack: the frame echoed with `biz_rt` and a
/// `{"code", "headers", "data"}` payload.
async fn handle_data(sink: &dyn EventSink, mut frame: Frame, payload: &[u8]) -> Frame {
    let started = Instant::now();
    let (code, data) = match serde_json::from_slice::<Value>(payload) {
        Ok(event) => match sink.deliver(event).await {
            Ok(answer) => (200, answer),
            Err(e) => {
                tracing::warn!(error = %e, "feishu long connection: an event was not stored; the platform will resend it");
                (500, None)
            }
        },
        Err(_) => {
            tracing::warn!("feishu long connection: an event that is not JSON; acknowledged and dropped");
            (200, None)
        }
    };
    let data = data.map(|d| Value::String(STANDARD.encode(d.to_string())));
    frame.payload = Some(json!({"code": code, "headers": null, "data": data}).to_string().into_bytes());
    frame.set_header("biz_rt", &started.elapsed().as_millis().to_string());
    frame
}

/// A pong's payload may carry the server's `ClientConfig`; its `PingInterval` in seconds.
fn pong_interval(payload: &[u8]) -> Option<Duration> {
    let config: Value = serde_json::from_slice(payload).ok()?;
    let secs = config.get("PingInterval")?.as_u64()?;
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The `service_id` query parameter of the connection URL (pings carry it).
fn service_id(url: &str) -> i32 {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "service_id")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// A connection error without the URL (it carries a ticket).
fn redact_ws_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("HTTP {}", response.status()),
        Error::Url(_) => "bad URL".into(),
        Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_id_comes_from_the_url() {
        assert_eq!(service_id("wss://x/ws?device_id=d&service_id=7&ticket=t"), 7);
        assert_eq!(service_id("wss://x/ws"), 0);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let options = WsOptions {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_jitter: Duration::from_millis(50),
            ..WsOptions::default()
        };
        assert_eq!(reconnect_delay(0, &options, Duration::ZERO), Duration::from_millis(100));
        assert_eq!(reconnect_delay(2, &options, Duration::ZERO), Duration::from_millis(400));
        assert_eq!(reconnect_delay(30, &options, Duration::ZERO), Duration::from_secs(1));
        for _ in 0..50 {
            let d = reconnect_delay(0, &options, Duration::from_secs(30));
            assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(150), "{d:?}");
        }
    }

    #[test]
    fn a_pong_may_change_the_ping_interval() {
        assert_eq!(pong_interval(br#"{"PingInterval": 30, "ReconnectCount": -1}"#), Some(Duration::from_secs(30)));
        assert_eq!(pong_interval(b"not json"), None);
        assert_eq!(pong_interval(br#"{"PingInterval": 0}"#), None);
    }

    struct Echo;

    #[async_trait::async_trait]
    impl EventSink for Echo {
        async fn deliver(&self, event: Value) -> Result<Option<Value>, String> {
            if event["fail"] == true { Err("store down".into()) } else { Ok(Some(json!({"toast": {"content": "ok"}}))) }
        }
    }

    #[tokio::test]
    async fn an_ack_echoes_the_frame_with_code_and_data() {
        let frame = Frame { seq_id: 3, log_id: 4, service: 7, method: METHOD_DATA, ..Default::default() };
        let ack = handle_data(&Echo, frame.clone(), br#"{"header": {}}"#).await;
        assert_eq!((ack.seq_id, ack.log_id, ack.service, ack.method), (3, 4, 7, METHOD_DATA));
        assert!(ack.header("biz_rt").is_some());
        let body: Value = serde_json::from_slice(ack.payload.as_deref().unwrap()).unwrap();
        assert_eq!(body["code"], 200);
        let data = STANDARD.decode(body["data"].as_str().unwrap()).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&data).unwrap(), json!({"toast": {"content": "ok"}}));
        let failed = handle_data(&Echo, frame, br#"{"fail": true}"#).await;
        let body: Value = serde_json::from_slice(failed.payload.as_deref().unwrap()).unwrap();
        assert_eq!((body["code"].as_i64(), body["data"].is_null()), (Some(500), true));
    }
}
