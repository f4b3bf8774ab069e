//! A fake Feishu/Lark open platform for the real client. It listens on 127.0.0.1 and serves:
//!
//! * `POST /open-apis/auth/v3/tenant_access_token/internal` (checks the app id and secret);
//! * with a valid bearer token: `GET /open-apis/bot/v3/info`, `POST /open-apis/im/v1/messages`
//!   (idempotent on `uuid`, as Feishu is), `POST …/messages/{id}/reply`, `PATCH
//!   …/messages/{id}`, `GET /open-apis/contact/v3/users/{id}`, `GET /open-apis/im/v1/chats/{id}`,
//!   `GET /open-apis/im/v1/messages/{id}/resources/{key}?type=image|file` (bytes the test
//!   added with [`FakeFeishu::add_resource`]);
//! * CardKit card entities: `POST /open-apis/cardkit/v1/cards` (a `card_json` schema 2.0 card;
//!   refused with code 99991672 while [`FakeFeishu::refuse_cards`] says so), `PUT
//!   …/cards/{id}/elements/{element_id}/content` (only while streaming), `PUT …/cards/{id}`
//!   and `PATCH …/cards/{id}/settings`; each update's `sequence` must be greater than the
//!   card's last one (else code 300317, as Feishu answers), and the card's current JSON is kept
//!   ([`FakeFeishu::card`]); [`FakeFeishu::refuse_card_updates`] refuses updates;
//! * injected trouble: 429 with `x-ogw-ratelimit-reset` and code 99991400, and every token
//!   issued so far turned invalid (code 99991663);
//! * the long connection: `POST /callback/ws/endpoint`, and a WebSocket server speaking
//!   protobuf frames: it answers pings with pongs, pushes (optionally split) data frames and
//!   records what the client sends back.
//!
//! Every HTTP call is recorded, with its JSON body, for assertions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use serde_json::{Value, json};
use taskgate_adapters::feishu::frame::{Frame, Header, METHOD_CONTROL, METHOD_DATA};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub const APP_ID: &str = "cli_test";
pub const APP_SECRET: &str = "app-SECRET-1";
/// The bot's open_id (the one the SDK vectors mention).
pub const BOT_OPEN_ID: &str = "ou_bot0000000000000000000000000001";
/// The long connection's `service_id`.
pub const SERVICE_ID: i32 = 7;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Without the query.
    pub path: String,
    pub query: String,
    pub body: Value,
    pub status: u16,
    pub reply: Value,
    pub at: Instant,
}

impl Call {
    pub fn message_id(&self) -> Option<String> {
        self.reply["data"]["message_id"].as_str().map(str::to_owned)
    }

    /// The message's `content`, parsed (it is sent as a JSON string).
    pub fn content(&self) -> Value {
        self.body["content"].as_str().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
    }

    /// A text message's text, or a post's paragraphs (its `zh_cn` locale) one a line.
    pub fn text(&self) -> String {
        let content = self.content();
        if let Some(paragraphs) = content.pointer("/zh_cn/content").and_then(Value::as_array) {
            let line = |p: &Value| -> String {
                p.as_array().into_iter().flatten().filter_map(|e| e["text"].as_str()).collect()
            };
            return paragraphs.iter().map(line).collect::<Vec<_>>().join("\n");
        }
        content["text"].as_str().unwrap_or_default().to_owned()
    }

    /// A card's text (its first element), sent or PATCHed.
    pub fn card_text(&self) -> String {
        self.content().pointer("/elements/0/text/content").and_then(Value::as_str).unwrap_or_default().to_owned()
    }

    /// The `op` of each button on a card (`approve`, `deny`, `stop`, `choice`, …).
    pub fn button_ops(&self) -> Vec<String> {
        let elements = self.content()["elements"].as_array().cloned().unwrap_or_default();
        elements
            .iter()
            .filter(|e| e["tag"] == "action")
            .flat_map(|e| e["actions"].as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["value"]["op"].as_str().map(str::to_owned))
            .collect()
    }

    /// A card asking a question (an approval, a choice), as opposed to a status card, whose
    /// only button is Stop while its turn runs.
    pub fn has_buttons(&self) -> bool {
        self.button_ops().iter().any(|op| op != "stop")
    }

    /// The card entity a message shows (`{"type": "card", "data": {"card_id"}}`), if it is one.
    pub fn card_id(&self) -> Option<String> {
        let content = self.content();
        (content["type"] == "card").then(|| content["data"]["card_id"].as_str().map(str::to_owned)).flatten()
    }

    /// The schema 2.0 card a CardKit call carries (creation, or a whole-card update), parsed.
    pub fn card_json(&self) -> Value {
        let data = self.body["data"].as_str().or_else(|| self.body["card"]["data"].as_str());
        data.and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default()
    }

    /// A CardKit update's `sequence`.
    pub fn sequence(&self) -> Option<i64> {
        self.body["sequence"].as_i64()
    }

    pub fn is_send(&self) -> bool {
        self.method == "POST" && (self.path == "/open-apis/im/v1/messages" || self.path.ends_with("/reply"))
    }
}

#[derive(Debug, Clone)]
struct Failure {
    /// Matched against `METHOD path`.
    pattern: String,
    remaining: usize,
    reset_secs: u64,
}

/// What the client sent over the long connection.
#[derive(Debug, Clone)]
pub struct WsFrame {
    pub frame: Frame,
    pub at: Instant,
}

impl WsFrame {
    /// An ack's `{"code", "headers", "data"}` payload.
    pub fn ack(&self) -> Value {
        self.frame.payload.as_deref().and_then(|p| serde_json::from_slice(p).ok()).unwrap_or_default()
    }
}

/// A message's file: (resource type, content type, bytes).
type Resource = (String, String, Vec<u8>);

#[derive(Default)]
struct State {
    calls: Mutex<Vec<Call>>,
    tokens: Mutex<Vec<String>>,
    issued: AtomicUsize,
    next_message: AtomicUsize,
    failures: Mutex<Vec<Failure>>,
    names: Mutex<HashMap<String, String>>,
    chat_modes: Mutex<HashMap<String, String>>,
    uuids: Mutex<HashMap<String, Value>>,
    ws_port: Mutex<u16>,
    ping_interval: AtomicUsize,
    ws_conns: Mutex<Vec<mpsc::UnboundedSender<Message>>>,
    ws_connections: AtomicUsize,
    ws_received: Mutex<Vec<WsFrame>>,
    next_frame: AtomicUsize,
    /// (message id, key) → the file.
    resources: Mutex<HashMap<(String, String), Resource>>,
    /// Card entities by id.
    cards: Mutex<HashMap<String, Card>>,
    /// Card creations still to refuse.
    refuse_cards: AtomicUsize,
    /// Card updates still to refuse.
    refuse_updates: AtomicUsize,
}

/// A CardKit card entity: its current JSON and the last sequence an update used.
#[derive(Debug, Clone)]
struct Card {
    json: Value,
    sequence: i64,
}

pub struct FakeFeishu {
    addr: SocketAddr,
    state: Arc<State>,
    stops: Vec<oneshot::Sender<()>>,
}

impl FakeFeishu {
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let ws_listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let state = Arc::new(State::default());
        *state.ws_port.lock().unwrap() = ws_listener.local_addr()?.port();
        state.ping_interval.store(120, Ordering::SeqCst);
        let app = Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers, body) }
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        let (ws_stop, mut ws_stopped) = oneshot::channel::<()>();
        let ws_state = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut ws_stopped => return,
                    accepted = ws_listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        tokio::spawn(serve_ws(ws_state.clone(), stream));
                    }
                }
            }
        });
        Ok(Self { addr, state, stops: vec![stop, ws_stop] })
    }

    /// The API base (`api_url`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_name(&self, open_id: &str, name: &str) {
        self.state.names.lock().unwrap().insert(open_id.into(), name.into());
    }

    /// `p2p` or `group`; unknown chats are `p2p` when their id says so, else `group`.
    pub fn set_chat_mode(&self, chat_id: &str, mode: &str) {
        self.state.chat_modes.lock().unwrap().insert(chat_id.into(), mode.into());
    }

    /// The `PingInterval` (seconds) the endpoint and pongs announce.
    pub fn set_ping_interval(&self, secs: usize) {
        self.state.ping_interval.store(secs, Ordering::SeqCst);
    }

    /// The next `n` calls whose `METHOD path` contains `pattern` get 429 with
    /// `x-ogw-ratelimit-reset: reset_secs`.
    pub fn rate_limit(&self, pattern: &str, n: usize, reset_secs: u64) {
        self.state.failures.lock().unwrap().push(Failure { pattern: pattern.into(), remaining: n, reset_secs });
    }

    /// The next `n` card creations are refused as by an app without the CardKit permission.
    pub fn refuse_cards(&self, n: usize) {
        self.state.refuse_cards.store(n, Ordering::SeqCst);
    }

    /// The next `n` updates of card entities are refused (code 300305, as for a card deleted).
    pub fn refuse_card_updates(&self, n: usize) {
        self.state.refuse_updates.store(n, Ordering::SeqCst);
    }

    /// Card entity `card_id` as it stands (schema 2.0 JSON, updates applied).
    pub fn card(&self, card_id: &str) -> Option<Value> {
        self.state.cards.lock().unwrap().get(card_id).map(|c| c.json.clone())
    }

    /// Every tenant token issued so far stops being valid (as after its two hours).
    pub fn expire_tokens(&self) {
        self.state.tokens.lock().unwrap().clear();
    }

    /// A file of message `message_id` under `key`, served as `resource` (`image` or `file`).
    pub fn add_resource(&self, message_id: &str, key: &str, resource: &str, content_type: &str, bytes: &[u8]) {
        self.state.resources.lock().unwrap().insert(
            (message_id.to_owned(), key.to_owned()),
            (resource.to_owned(), content_type.to_owned(), bytes.to_vec()),
        );
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Calls whose `METHOD path` contains `pattern`.
    pub fn calls_to(&self, pattern: &str) -> Vec<Call> {
        self.calls().into_iter().filter(|c| format!("{} {}", c.method, c.path).contains(pattern)).collect()
    }

    /// Successful sends and replies, in order.
    pub fn sent(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.is_send() && c.status == 200).collect()
    }

    /// A one-line-per-call summary for failure messages.
    pub fn summary(&self) -> String {
        self.calls()
            .iter()
            .map(|c| format!("{} {}?{} -> {} {}\n", c.method, c.path, c.query, c.status, c.body))
            .collect()
    }

    pub fn ws_connections(&self) -> usize {
        self.state.ws_connections.load(Ordering::SeqCst)
    }

    /// Frames the client sent (pings and acks).
    pub fn ws_received(&self) -> Vec<WsFrame> {
        self.state.ws_received.lock().unwrap().clone()
    }

    /// The client's acks of the data frame `message_id`.
    pub fn ws_acks(&self, message_id: &str) -> Vec<WsFrame> {
        self.ws_received()
            .into_iter()
            .filter(|f| f.frame.method == METHOD_DATA && f.frame.header("message_id") == Some(message_id))
            .collect()
    }

    /// Pushes `event` over the open connections as one data message in `parts` frames (sent
    /// out of order when split, as the protocol allows). Returns the frames' `message_id`.
    pub fn push_ws_event(&self, event: &Value, parts: usize) -> String {
        let n = self.state.next_frame.fetch_add(1, Ordering::SeqCst) + 1;
        let message_id = format!("fm-{n}");
        let payload = serde_json::to_vec(event).unwrap();
        let parts = parts.max(1);
        let size = payload.len().div_ceil(parts);
        let chunks: Vec<&[u8]> = payload.chunks(size.max(1)).collect();
        let sum = chunks.len();
        let mut frames: Vec<Vec<u8>> = chunks
            .iter()
            .enumerate()
            .map(|(seq, chunk)| {
                Frame {
                    seq_id: n as u64,
                    log_id: 1000 + n as u64,
                    service: SERVICE_ID,
                    method: METHOD_DATA,
                    headers: [("type", "event"), ("message_id", message_id.as_str()), ("trace_id", "t-1")]
                        .iter()
                        .map(|(k, v)| Header { key: (*k).into(), value: (*v).into() })
                        .chain([
                            Header { key: "sum".into(), value: sum.to_string() },
                            Header { key: "seq".into(), value: seq.to_string() },
                        ])
                        .collect(),
                    payload: Some(chunk.to_vec()),
                    ..Default::default()
                }
                .encode_to_vec()
            })
            .collect();
        frames.reverse();
        for conn in self.state.ws_conns.lock().unwrap().iter() {
            for f in &frames {
                let _ = conn.send(Message::Binary(f.clone().into()));
            }
        }
        message_id
    }

    /// Closes every long connection from the server side.
    pub fn drop_ws(&self) {
        for conn in self.state.ws_conns.lock().unwrap().drain(..) {
            let _ = conn.send(Message::Close(None));
        }
    }
}

impl Drop for FakeFeishu {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
    }
}

fn handle(state: &State, method: Method, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let body: Value = if raw.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&raw).unwrap_or(json!({"_raw": String::from_utf8_lossy(&raw)}))
    };
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    if let Some(response) = resource(state, &method, &path, &query, &headers) {
        return response;
    }
    let (status, reply, reset) = answer(state, &method, &path, &headers, &body);
    state.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path,
        query,
        body,
        status: status.as_u16(),
        reply: reply.clone(),
        at: Instant::now(),
    });
    let mut response = (status, axum::Json(reply)).into_response();
    if let Some(reset) = reset {
        response.headers_mut().insert("x-ogw-ratelimit-reset", reset.to_string().parse().unwrap());
    }
    response
}

/// `GET …/messages/{id}/resources/{key}?type=…`: the bytes, recorded as a call with a `Null`
/// body; a wrong type or an unknown key is Feishu's JSON error.
fn resource(state: &State, method: &Method, path: &str, query: &str, headers: &HeaderMap) -> Option<Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["open-apis", "im", "v1", "messages", message_id, "resources", key] = segments.as_slice() else {
        return None;
    };
    if method != Method::GET {
        return None;
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let authorised = bearer.is_some_and(|t| state.tokens.lock().unwrap().iter().any(|x| x == t));
    let wanted = query.split('&').find_map(|kv| kv.strip_prefix("type=")).unwrap_or_default();
    let found = state.resources.lock().unwrap().get(&((*message_id).to_owned(), (*key).to_owned())).cloned();
    let (status, response) = match found {
        _ if !authorised => {
            let reply = json!({"code": 99991663, "msg": "Invalid access token for authorization."});
            (StatusCode::BAD_REQUEST, (StatusCode::BAD_REQUEST, axum::Json(reply)).into_response())
        }
        Some((resource, content_type, bytes)) if resource == wanted => (
            StatusCode::OK,
            (StatusCode::OK, [(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response(),
        ),
        _ => {
            let reply = json!({"code": 234003, "msg": "File not in msg."});
            (StatusCode::BAD_REQUEST, (StatusCode::BAD_REQUEST, axum::Json(reply)).into_response())
        }
    };
    state.calls.lock().unwrap().push(Call {
        method: method.to_string(),
        path: path.to_owned(),
        query: query.to_owned(),
        body: Value::Null,
        status: status.as_u16(),
        reply: Value::Null,
        at: Instant::now(),
    });
    Some(response)
}

fn answer(
    state: &State,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &Value,
) -> (StatusCode, Value, Option<u64>) {
    let ok = |v: Value| (StatusCode::OK, v, None);
    if path == "/open-apis/auth/v3/tenant_access_token/internal" {
        if body["app_id"] != APP_ID || body["app_secret"] != APP_SECRET {
            return (StatusCode::BAD_REQUEST, json!({"code": 10014, "msg": "app secret invalid"}), None);
        }
        let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("t-{n}");
        state.tokens.lock().unwrap().push(token.clone());
        return ok(json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200}));
    }
    if path == "/callback/ws/endpoint" {
        if body["AppID"] != APP_ID || body["AppSecret"] != APP_SECRET {
            return (StatusCode::OK, json!({"code": 1000040351, "msg": "incorrect app id or secret"}), None);
        }
        let port = *state.ws_port.lock().unwrap();
        let ping = state.ping_interval.load(Ordering::SeqCst);
        return ok(json!({"code": 0, "msg": "ok", "data": {
            "URL": format!("ws://127.0.0.1:{port}/ws?device_id=dev1&service_id={SERVICE_ID}&ticket=secret-ticket"),
            "ClientConfig": {"ReconnectCount": -1, "ReconnectInterval": 1, "ReconnectNonce": 0, "PingInterval": ping}
        }}));
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|t| state.tokens.lock().unwrap().iter().any(|x| x == t)) {
        return (
            StatusCode::BAD_REQUEST,
            json!({"code": 99991663, "msg": "Invalid access token for authorization."}),
            None,
        );
    }
    let key = format!("{method} {path}");
    {
        let mut failures = state.failures.lock().unwrap();
        if let Some(f) = failures.iter_mut().find(|f| f.remaining > 0 && key.contains(&f.pattern)) {
            f.remaining -= 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"code": 99991400, "msg": "request trigger frequency limit"}),
                Some(f.reset_secs),
            );
        }
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["open-apis", "bot", "v3", "info"]) => ok(
            json!({"code": 0, "msg": "ok", "bot": {"open_id": BOT_OPEN_ID, "app_name": "taskgate", "activate_status": 2}}),
        ),
        ("POST", ["open-apis", "im", "v1", "messages"]) => {
            ok(send(state, body, body["receive_id"].as_str().unwrap_or_default()))
        }
        ("POST", ["open-apis", "im", "v1", "messages", _parent, "reply"]) => ok(send(state, body, "")),
        ("PATCH", ["open-apis", "im", "v1", "messages", _id]) => ok(json!({"code": 0, "msg": "success", "data": {}})),
        ("POST", ["open-apis", "cardkit", "v1", "cards"]) => create_card(state, body),
        (_, ["open-apis", "cardkit", "v1", "cards", id, rest @ ..]) => {
            update_card(state, method.as_str(), id, rest, body)
        }
        ("GET", ["open-apis", "contact", "v3", "users", id]) => match state.names.lock().unwrap().get(*id) {
            Some(name) => ok(json!({"code": 0, "msg": "success", "data": {"user": {"open_id": id, "name": name}}})),
            None => (StatusCode::BAD_REQUEST, json!({"code": 41050, "msg": "no user authority error"}), None),
        },
        ("GET", ["open-apis", "im", "v1", "chats", id]) => {
            let mode = state.chat_modes.lock().unwrap().get(*id).cloned();
            let mode = mode.unwrap_or_else(|| if id.contains("p2p") { "p2p".into() } else { "group".into() });
            ok(json!({"code": 0, "msg": "success", "data": {"chat_mode": mode, "name": id}}))
        }
        _ => (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "not found"}), None),
    }
}

/// `POST /open-apis/cardkit/v1/cards`: a card entity from a `card_json` schema 2.0 card.
fn create_card(state: &State, body: &Value) -> (StatusCode, Value, Option<u64>) {
    let refused = state.refuse_cards.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if refused {
        let msg = "Access denied. One of the following scopes is required: [cardkit:card:write]";
        return (StatusCode::BAD_REQUEST, json!({"code": 99991672, "msg": msg}), None);
    }
    let json: Option<Value> = body["data"].as_str().and_then(|d| serde_json::from_str(d).ok());
    let Some(json) = json.filter(|j| body["type"] == "card_json" && j["schema"] == "2.0") else {
        return (StatusCode::BAD_REQUEST, json!({"code": 200621, "msg": "parse card json err"}), None);
    };
    let mut cards = state.cards.lock().unwrap();
    let id = format!("ck_{}", cards.len() + 1);
    cards.insert(id.clone(), Card { json, sequence: 0 });
    (StatusCode::OK, json!({"code": 0, "msg": "success", "data": {"card_id": id}}), None)
}

/// An update of card entity `id` (`rest`: what of it): checked against the card's sequence.
fn update_card(state: &State, method: &str, id: &str, rest: &[&str], body: &Value) -> (StatusCode, Value, Option<u64>) {
    let refuse = |code: i64, msg: &str| (StatusCode::BAD_REQUEST, json!({"code": code, "msg": msg}), None);
    let refused = state.refuse_updates.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let mut cards = state.cards.lock().unwrap();
    let Some(card) = cards.get_mut(id).filter(|_| !refused) else { return refuse(300305, "card not found") };
    let Some(sequence) = body["sequence"].as_i64() else {
        return refuse(99992402, "field validation failed: sequence");
    };
    if sequence <= card.sequence {
        return refuse(300317, "sequence number compare failed");
    }
    let streaming = card.json["config"]["streaming_mode"] == true;
    match (method, rest) {
        ("PUT", ["elements", element, "content"]) => {
            if !streaming {
                return refuse(300309, "streaming mode is closed");
            }
            let elements = card.json.pointer_mut("/body/elements").and_then(Value::as_array_mut);
            let Some(element) = elements.into_iter().flatten().find(|e| e["element_id"] == *element) else {
                return refuse(300302, "element not found");
            };
            let Some(content) = body["content"].as_str() else { return refuse(99992402, "content") };
            match element["tag"].as_str() {
                Some("markdown") => element["content"] = json!(content),
                _ => element["text"]["content"] = json!(content),
            }
        }
        ("PUT", []) => {
            let json: Option<Value> = body["card"]["data"].as_str().and_then(|d| serde_json::from_str(d).ok());
            let Some(json) = json.filter(|j| j["schema"] == "2.0") else {
                return refuse(200621, "parse card json err");
            };
            card.json = json;
        }
        ("PATCH", ["settings"]) => {
            let settings: Option<Value> = body["settings"].as_str().and_then(|d| serde_json::from_str(d).ok());
            let Some(mode) = settings.as_ref().and_then(|s| s.pointer("/config/streaming_mode")).cloned() else {
                return refuse(99992402, "settings");
            };
            card.json["config"]["streaming_mode"] = mode;
        }
        _ => return (StatusCode::NOT_FOUND, json!({"code": 404, "msg": "not found"}), None),
    }
    card.sequence = sequence;
    (StatusCode::OK, json!({"code": 0, "msg": "success", "data": {}}), None)
}

/// A sent message; the same `uuid` answers with the same message, as Feishu's dedupe does.
fn send(state: &State, body: &Value, chat_id: &str) -> Value {
    let uuid = body["uuid"].as_str().unwrap_or_default().to_owned();
    let mut uuids = state.uuids.lock().unwrap();
    if let Some(earlier) = uuids.get(&uuid).filter(|_| !uuid.is_empty()) {
        return earlier.clone();
    }
    let n = state.next_message.fetch_add(1, Ordering::SeqCst) + 1;
    let reply = json!({"code": 0, "msg": "success", "data": {
        "message_id": format!("om_sent_{n}"), "chat_id": chat_id, "msg_type": body["msg_type"], "body": {"content": body["content"]}
    }});
    uuids.insert(uuid, reply.clone());
    reply
}

async fn serve_ws(state: Arc<State>, stream: tokio::net::TcpStream) {
    let Ok(socket) = tokio_tungstenite::accept_async(stream).await else { return };
    state.ws_connections.fetch_add(1, Ordering::SeqCst);
    let (mut write, mut read) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    state.ws_conns.lock().unwrap().push(tx.clone());
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if write.send(m).await.is_err() || close {
                break;
            }
        }
    });
    while let Some(Ok(message)) = read.next().await {
        let Message::Binary(bytes) = message else { continue };
        let Some(frame) = Frame::decode_bytes(&bytes) else { continue };
        if frame.method == METHOD_CONTROL && frame.header("type") == Some("ping") {
            let config = json!({"PingInterval": state.ping_interval.load(Ordering::SeqCst), "ReconnectCount": -1});
            let pong = Frame {
                service: frame.service,
                method: METHOD_CONTROL,
                headers: vec![Header { key: "type".into(), value: "pong".into() }],
                payload: Some(config.to_string().into_bytes()),
                ..Default::default()
            };
            let _ = tx.send(Message::Binary(pong.encode_to_vec().into()));
        }
        state.ws_received.lock().unwrap().push(WsFrame { frame, at: Instant::now() });
    }
    writer.abort();
}
