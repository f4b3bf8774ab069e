//! A fake Telegram Bot API for the real teloxide client. It listens on 127.0.0.1 and serves
//! `POST /bot<token>/<method>`, matching the method case-insensitively (teloxide sends
//! `SendMessage`, the docs say `sendMessage`):
//!
//! * `getMe` (with the fields teloxide 0.17 requires), `deleteWebhook`, `setWebhook`;
//! * `getUpdates`: long polling over updates the test pushes, honouring `offset` (older updates
//!   are confirmed and dropped) and `timeout`;
//! * `sendMessage`, `editMessageText`, `editMessageReplyMarkup` (answering with a message),
//!   `answerCallbackQuery`, `sendMessageDraft` (Bot API 9.3+);
//! * `getFile` for files the test added ([`FakeTelegram::add_file`]) and their bytes at
//!   `GET /file/bot<token>/<file_path>` (failing the first downloads on request);
//! * injected failures: `429` with `retry_after`, or any API error description. Never 5xx:
//!   teloxide sleeps 10 s after one.
//!
//! Every call is recorded, with its JSON body, for assertions.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use taskgate::telegram::TelegramOptions;
use taskgate_adapters::telegram::outbound::OutboxOptions;
use taskgate_adapters::telegram::polling::PollOptions;
use tokio::sync::{Notify, oneshot};

pub const BOT_ID: u64 = 7_000_001;
pub const BOT_USERNAME: &str = "taskgate_test_bot";

/// The real Telegram channel's options against the fake: short polls, no pacing between
/// messages, a quick inbox.
pub fn channel_options() -> TelegramOptions {
    TelegramOptions {
        outbox: OutboxOptions {
            poll_interval: Duration::from_millis(50),
            chat_interval: Duration::ZERO,
            ..OutboxOptions::default()
        },
        poll: PollOptions { timeout_secs: 1, ..PollOptions::default() },
        inbox_interval: Duration::from_millis(100),
        ..TelegramOptions::default()
    }
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Lowercase method name, e.g. `sendmessage`.
    pub method: String,
    pub body: Value,
    pub status: u16,
    /// The path prefix before `bot<token>` (empty for the plain API URL): which client called.
    pub via: String,
    /// The whole JSON answer (`{"ok": true, "result": …}` or the error).
    pub reply: Value,
    pub at: Instant,
}

impl Call {
    /// The `message_id` of the message this call sent or edited.
    pub fn message_id(&self) -> Option<i64> {
        self.reply["result"]["message_id"].as_i64()
    }

    /// The `callback_data` of every inline button sent with this call, row by row.
    pub fn callback_data(&self) -> Vec<String> {
        let rows = self.body["reply_markup"]["inline_keyboard"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .flat_map(|r| r.as_array().cloned().unwrap_or_default())
            .filter_map(|b| b["callback_data"].as_str().map(str::to_owned))
            .collect()
    }
}

/// An injected failure for the next calls of one method.
#[derive(Debug, Clone)]
struct Failure {
    method: String,
    remaining: usize,
    code: u16,
    description: String,
    retry_after: Option<u64>,
}

struct State {
    token: String,
    calls: Mutex<Vec<Call>>,
    /// Updates not yet confirmed, in order.
    updates: Mutex<VecDeque<Value>>,
    arrived: Notify,
    failures: Mutex<Vec<Failure>>,
    next_message_id: AtomicI64,
    /// file_id → (file_path, bytes).
    files: Mutex<std::collections::HashMap<String, (String, Vec<u8>)>>,
    /// Downloads still to fail (404), and downloads served so far.
    failing_downloads: Mutex<usize>,
    downloads: Mutex<Vec<String>>,
}

/// A running fake; stops when dropped.
pub struct FakeTelegram {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeTelegram {
    /// Serves the bot `token` on a free port of 127.0.0.1, on the current tokio runtime.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        Self::serve_on(token, tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?)
    }

    /// Serves the bot `token` on `listener` (e.g. a port the gateway was configured with
    /// before the API came up).
    pub fn serve_on(token: &str, listener: tokio::net::TcpListener) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            token: token.to_owned(),
            calls: Mutex::new(Vec::new()),
            updates: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            failures: Mutex::new(Vec::new()),
            next_message_id: AtomicI64::new(1000),
            files: Mutex::default(),
            failing_downloads: Mutex::new(0),
            downloads: Mutex::default(),
        });
        let app = Router::new().fallback({
            let state = state.clone();
            move |uri: Uri, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, uri, body).await }
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                eprintln!("fake telegram on {addr}: {e}");
            }
        });
        Ok(Self { addr, state, stop: Some(stop) })
    }

    /// The API base for `Bot::set_api_url`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Queues an update for `getUpdates`.
    pub fn push_update(&self, update: Value) {
        self.lock_updates().push_back(update);
        self.state.arrived.notify_waiters();
    }

    /// The next `n` calls of `method` fail with 429 and `retry_after` seconds.
    pub fn rate_limit(&self, method: &str, n: usize, retry_after: u64) {
        self.fail(method, n, 429, &format!("Too Many Requests: retry after {retry_after}"), Some(retry_after));
    }

    /// The next `n` calls of `method` fail with `code` (4xx) and `description`.
    pub fn fail(&self, method: &str, n: usize, code: u16, description: &str, retry_after: Option<u64>) {
        self.state.failures.lock().expect("fake telegram poisoned").push(Failure {
            method: method.to_ascii_lowercase(),
            remaining: n,
            code,
            description: description.to_owned(),
            retry_after,
        });
    }

    /// A file `getFile` knows as `file_id`, served with `bytes`.
    pub fn add_file(&self, file_id: &str, bytes: &[u8]) {
        let path = format!("documents/{file_id}.bin");
        self.state.files.lock().expect("fake telegram poisoned").insert(file_id.to_owned(), (path, bytes.to_vec()));
    }

    /// The next `n` file downloads answer 404.
    pub fn fail_downloads(&self, n: usize) {
        *self.state.failing_downloads.lock().expect("fake telegram poisoned") = n;
    }

    /// The file paths downloaded (successfully or not), in order.
    pub fn downloads(&self) -> Vec<String> {
        self.state.downloads.lock().expect("fake telegram poisoned").clone()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().expect("fake telegram poisoned").clone()
    }

    /// The calls of one method (any case).
    pub fn calls_to(&self, method: &str) -> Vec<Call> {
        let method = method.to_ascii_lowercase();
        self.calls().into_iter().filter(|c| c.method == method).collect()
    }

    /// Texts sent with `sendMessage` to `chat_id`, in order (successful calls only).
    pub fn sent_texts(&self, chat_id: i64) -> Vec<String> {
        self.calls_to("sendMessage")
            .into_iter()
            .filter(|c| c.status == 200 && c.body["chat_id"].as_i64() == Some(chat_id))
            .filter_map(|c| c.body["text"].as_str().map(str::to_owned))
            .collect()
    }

    /// A one-line-per-call summary for failure messages (bodies, never the token).
    pub fn summary(&self) -> String {
        self.calls().iter().map(|c| format!("{} -> {} {}\n", c.method, c.status, c.body)).collect()
    }

    fn lock_updates(&self) -> std::sync::MutexGuard<'_, VecDeque<Value>> {
        self.state.updates.lock().expect("fake telegram poisoned")
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn handle(state: &State, uri: Uri, raw: Bytes) -> Response {
    let body: Value = if raw.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&raw).unwrap_or(json!({"_raw": String::from_utf8_lossy(&raw)}))
    };
    // `/<via>/bot<token>/<method>`: an optional prefix tells clients sharing the fake apart
    // (e.g. two replicas, each given its own api_url).
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let at = segments.iter().position(|s| s.starts_with("bot")).unwrap_or(0);
    let via = segments[..at.min(segments.len())].join("/");
    let bot = segments.get(at).copied().unwrap_or("");
    let method = segments.get(at + 1).copied().unwrap_or("").to_ascii_lowercase();
    if via.ends_with("file") && bot.strip_prefix("bot") == Some(state.token.as_str()) {
        return serve_file(state, &segments[at + 1..].join("/"));
    }
    let (status, reply) = if bot.strip_prefix("bot") != Some(state.token.as_str()) {
        (StatusCode::UNAUTHORIZED, json!({"ok": false, "error_code": 401, "description": "Unauthorized"}))
    } else if let Some(f) = take_failure(state, &method) {
        let mut reply = json!({"ok": false, "error_code": f.code, "description": f.description});
        if let Some(secs) = f.retry_after {
            reply["parameters"] = json!({"retry_after": secs});
        }
        (StatusCode::from_u16(f.code).unwrap_or(StatusCode::BAD_REQUEST), reply)
    } else {
        match answer(state, &method, &body).await {
            Some(result) => (StatusCode::OK, json!({"ok": true, "result": result})),
            None => (
                StatusCode::NOT_FOUND,
                json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}),
            ),
        }
    };
    state.calls.lock().expect("fake telegram poisoned").push(Call {
        method,
        body,
        status: status.as_u16(),
        via,
        reply: reply.clone(),
        at: Instant::now(),
    });
    (status, axum::Json(reply)).into_response()
}

fn serve_file(state: &State, path: &str) -> Response {
    state.downloads.lock().expect("fake telegram poisoned").push(path.to_owned());
    {
        let mut failing = state.failing_downloads.lock().expect("fake telegram poisoned");
        if *failing > 0 {
            *failing -= 1;
            return StatusCode::NOT_FOUND.into_response();
        }
    }
    let files = state.files.lock().expect("fake telegram poisoned");
    match files.values().find(|(p, _)| p == path) {
        Some((_, bytes)) => (StatusCode::OK, bytes.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn take_failure(state: &State, method: &str) -> Option<Failure> {
    let mut failures = state.failures.lock().expect("fake telegram poisoned");
    let f = failures.iter_mut().find(|f| f.method == method && f.remaining > 0)?;
    f.remaining -= 1;
    Some(f.clone())
}

async fn answer(state: &State, method: &str, body: &Value) -> Option<Value> {
    Some(match method {
        "getme" => json!({
            "id": BOT_ID, "is_bot": true, "first_name": "Taskgate", "username": BOT_USERNAME,
            "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false
        }),
        "deletewebhook" | "setwebhook" | "answercallbackquery" | "sendmessagedraft" => json!(true),
        "getupdates" => get_updates(state, body).await,
        "getfile" => {
            let id = body["file_id"].as_str().unwrap_or_default();
            let files = state.files.lock().expect("fake telegram poisoned");
            let (path, bytes) = files.get(id)?;
            json!({"file_id": id, "file_unique_id": format!("u-{id}"), "file_size": bytes.len(), "file_path": path})
        }
        "sendmessage" => {
            let id = state.next_message_id.fetch_add(1, Ordering::SeqCst);
            message(id, body)
        }
        "editmessagetext" | "editmessagereplymarkup" => {
            let id = body["message_id"].as_i64().unwrap_or(0);
            message(id, body)
        }
        _ => return None,
    })
}

/// The message Telegram answers with: enough for teloxide to parse it.
fn message(id: i64, body: &Value) -> Value {
    let chat_id = body["chat_id"].as_i64().unwrap_or(0);
    let chat = if chat_id < 0 {
        json!({"id": chat_id, "type": "supergroup", "title": "group"})
    } else {
        json!({"id": chat_id, "type": "private", "first_name": "User"})
    };
    let mut m = json!({
        "message_id": id,
        "date": chrono::Utc::now().timestamp(),
        "chat": chat,
        "from": {"id": BOT_ID, "is_bot": true, "first_name": "Taskgate", "username": BOT_USERNAME},
        "text": body["text"].as_str().unwrap_or(""),
    });
    if let Some(thread) = body.get("message_thread_id") {
        m["message_thread_id"] = thread.clone();
        m["is_topic_message"] = json!(true);
    }
    if let Some(markup) = body.get("reply_markup") {
        m["reply_markup"] = markup.clone();
    }
    m
}

/// Long polling: updates at or after `offset` (confirming, and dropping, the older ones), or
/// an empty list after `timeout` seconds.
async fn get_updates(state: &State, body: &Value) -> Value {
    let offset = body["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(body["timeout"].as_u64().unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let arrived = state.arrived.notified();
        {
            let mut queue = state.updates.lock().expect("fake telegram poisoned");
            queue.retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            if !queue.is_empty() {
                return Value::Array(queue.iter().cloned().collect());
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return json!([]);
        }
    }
}
