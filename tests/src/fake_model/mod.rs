//! A scripted fake model server for the real agent CLIs, a Rust port of
//! `shared/tools/fake_llm.py`. It listens on 127.0.0.1 only and serves
//!
//! * `POST /v1/responses`: the OpenAI Responses API as SSE (codex, `wire_api = "responses"`);
//! * `POST /v1/messages`: the Anthropic Messages API, SSE or JSON (claude), plus
//!   `POST /v1/messages/count_tokens`, `GET …/models` (empty) and `HEAD` on any path.
//!
//! The latest user text decides the reply: `RUN_CMD: <cmd>` asks to run `<cmd>` with the shell
//! tool, `ESCALATE_CMD: <cmd>` does so outside the sandbox (codex), `WRITE_FILE: <path>` writes a
//! file (apply_patch / Write), `CALL_TOOL: <name> <json>` calls the offered tool `<name>` (or
//! `mcp__<server>__<name>`, or `<name>` in a codex tool namespace) with those arguments,
//! `FAIL_HTTP` answers 400, `FAIL_SSE` fails the stream (codex), `SLOW_REPLY` waits 8 s first;
//! anything else, and every tool result, gets `FAKE-REPLY: …` text.
//! Every request and reply is recorded for assertions.

mod messages;
mod responses;
mod script;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// One request the fake received, with what it answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query as sent, e.g. `/v1/messages?beta=true`.
    pub path: String,
    /// Header names lowercased; credentials cut to their first 12 characters.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body, `{"_raw": …}` when it was not JSON, `Null` when empty.
    pub body: Value,
    /// 0 while the reply is still being made.
    pub status: u16,
    /// The SSE events or JSON body sent back (`Null` for HEAD and 404s).
    pub reply: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }
}

#[derive(Default)]
struct State {
    counter: AtomicU64,
    log: Mutex<Vec<Recorded>>,
}

/// A running fake; stops when dropped.
pub struct FakeModel {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
}

impl FakeModel {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let app = Router::new().fallback({
            let state = state.clone();
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { handle(&state, method, uri, headers, body).await }
            }
        });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            // Serving only ends on shutdown; an accept error has nowhere better to go.
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
                eprintln!("fake model server on {addr}: {e}");
            }
        });
        Ok(Self { addr, state, stop: Some(stop) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (claude's `ANTHROPIC_BASE_URL`; codex wants `{origin}/v1`).
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.log.lock().expect("fake model log poisoned").clone()
    }

    /// The requests to one route (path without query), e.g. `/v1/responses`.
    pub fn requests_to(&self, route: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.route() == route).collect()
    }

    /// A one-line-per-request summary for failure messages.
    pub fn summary(&self) -> String {
        self.requests().iter().map(|r| format!("{} {} -> {}\n", r.method, r.path, r.status)).collect()
    }
}

impl Drop for FakeModel {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn handle(state: &State, method: Method, uri: Uri, headers: HeaderMap, raw: Bytes) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| uri.path().to_owned());
    let route = uri.path().to_owned();
    let body = parse_body(&raw);
    // Recorded on arrival so a test can see a request that is still being answered (SLOW_REPLY).
    let index = {
        let mut log = state.log.lock().expect("fake model log poisoned");
        log.push(Recorded {
            method: method.to_string(),
            path,
            headers: redacted(&headers),
            body: body.clone(),
            status: 0,
            reply: Value::Null,
        });
        log.len() - 1
    };
    let (status, reply, response) = if method == Method::HEAD {
        (StatusCode::OK, Value::Null, StatusCode::OK.into_response())
    } else if method == Method::GET {
        if route.trim_end_matches('/').ends_with("/models") {
            json_reply(StatusCode::OK, json!({"object": "list", "data": [], "models": []}))
        } else {
            not_found()
        }
    } else if method == Method::POST && headers.contains_key(header::CONTENT_ENCODING) {
        // fake_llm.py cannot read compressed bodies either; say so instead of mis-scripting.
        let error = json!({"error": {"message": "fake model: compressed request bodies are not supported", "type": "invalid_request_error"}});
        json_reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, error)
    } else if method == Method::POST {
        post(state, &route, &body).await
    } else {
        not_found()
    };
    if let Some(entry) = state.log.lock().expect("fake model log poisoned").get_mut(index) {
        entry.status = status.as_u16();
        entry.reply = reply;
    }
    response
}

async fn post(state: &State, route: &str, body: &Value) -> (StatusCode, Value, Response) {
    let is_messages = body.get("messages").is_some();
    let last_text = if is_messages { messages::latest_user_text(body) } else { responses::latest_user_text(body) };
    if last_text.contains("SLOW_REPLY") {
        // Lets a test interrupt or cancel while a request is in flight.
        tokio::time::sleep(Duration::from_secs(8)).await;
    }
    if route.ends_with("/responses") {
        let last_input = body.get("input").and_then(Value::as_array).and_then(|i| i.last());
        let last_input = last_input.map(|v| v.to_string()).unwrap_or_default();
        if last_input.contains("FAIL_HTTP") {
            return json_reply(StatusCode::BAD_REQUEST, responses::bad_request());
        }
        if last_input.contains("FAIL_SSE") {
            return sse_reply(responses::failed_stream());
        }
        return sse_reply(responses::reply(body, state.next()));
    }
    if route.ends_with("/messages/count_tokens") {
        return json_reply(StatusCode::OK, json!({"input_tokens": 42}));
    }
    if route.ends_with("/messages") {
        let last_user = messages::last_user_message(body).map(|m| m.to_string()).unwrap_or_default();
        if last_user.contains("FAIL_HTTP") {
            return json_reply(StatusCode::BAD_REQUEST, messages::bad_request());
        }
        return match messages::reply(body, state.next()) {
            messages::Reply::Stream(events) => sse_reply(events),
            messages::Reply::Json(message) => json_reply(StatusCode::OK, message),
        };
    }
    not_found()
}

impl State {
    fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }
}

fn parse_body(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(raw).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(raw);
        json!({"_raw": script::head(&text, 2000)})
    })
}

fn redacted(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let secret = k == header::AUTHORIZATION || k.as_str() == "x-api-key";
            (k.as_str().to_owned(), if secret { format!("{}...", script::head(&v, 12)) } else { v })
        })
        .collect()
}

fn json_reply(status: StatusCode, body: Value) -> (StatusCode, Value, Response) {
    let response = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    (status, body, response)
}

fn sse_reply(events: Vec<Value>) -> (StatusCode, Value, Response) {
    let response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")],
        script::sse(&events),
    )
        .into_response();
    (StatusCode::OK, Value::Array(events), response)
}

fn not_found() -> (StatusCode, Value, Response) {
    json_reply(StatusCode::NOT_FOUND, json!({"error": {"message": "not found", "type": "not_found"}}))
}
