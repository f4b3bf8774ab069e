//! `taskgate mcp`: the restart-note tools for agents that only speak stdio MCP. Every ACP
//! agent must accept a stdio MCP server, only some accept HTTP ones; the ACP adapter offers
//! this command (from `session/new`'s `mcpServers`) to those that do not advertise
//! `mcpCapabilities.http`.
//!
//! Newline-delimited JSON-RPC on stdin is POSTed, one message per request, to the gateway's
//! streamable-HTTP endpoint (`TASKGATE_MCP_URL`) under the session's bearer token (read from
//! the environment, never from arguments); whatever comes back, one JSON body or an SSE
//! stream of messages, goes to stdout a line per message. The `Mcp-Session-Id` the server
//! sets is sent back on every later request. A line that is not JSON gets a JSON-RPC parse
//! error; a request the gateway cannot answer gets an error response, so the agent never
//! waits for nothing. Ends cleanly when stdin ends.

pub mod sse;

use std::io;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use sse::SseReader;

/// The variable the adapters set for the bridge (one name, defined where it is set).
pub use taskgate_adapters::runtime::MCP_URL_ENV as URL_ENV;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";

const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Silence this long inside an answer ends it: every note tool answers at once.
const READ_WAIT: Duration = Duration::from_secs(120);
/// No request outlives this, streamed or not.
const REQUEST_WAIT: Duration = Duration::from_secs(600);
/// Ending the server-side session on exit is a courtesy, not worth waiting for.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Longest stdin line and longest JSON body taken: one message, not a memory bomb.
const MAX_MESSAGE: usize = 8 * 1024 * 1024;
/// Requests forwarded at once; beyond it stdin waits.
const MAX_IN_FLIGHT: usize = 16;
/// How much of an error body an error message quotes.
const EXCERPT: usize = 200;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INTERNAL_ERROR: i64 = -32603;
/// Implementation-defined server error: the gateway could not be reached or refused.
const GATEWAY_ERROR: i64 = -32000;

/// `taskgate mcp`: runs the bridge on stdin/stdout until stdin ends. Exit 2 when the
/// environment does not say where the gateway is.
pub fn main(token_env: &str) -> ExitCode {
    let bridge = match Bridge::from_env(token_env) {
        Ok(bridge) => Arc::new(bridge),
        Err(why) => {
            eprintln!("taskgate mcp: {why}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("taskgate mcp: {e}");
            return ExitCode::FAILURE;
        }
    };
    let input = tokio::io::BufReader::new(tokio::io::stdin());
    let result = runtime.block_on(serve(bridge, input, tokio::io::stdout()));
    // Tokio reads stdin on a blocking thread that may still sit in `read` (when stdout, not
    // stdin, closed first): do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("taskgate mcp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One stdio session's link to the gateway.
pub struct Bridge {
    client: reqwest::Client,
    url: String,
    token: String,
    /// `Mcp-Session-Id` from the server, sent back on every later request.
    session: Mutex<Option<String>>,
    /// The version `initialize` settled on, sent as `MCP-Protocol-Version` afterwards.
    version: Mutex<Option<String>>,
}

impl Bridge {
    pub fn new(url: String, token: String) -> Result<Self, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{URL_ENV} must be an http:// or https:// URL"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_WAIT)
            .read_timeout(READ_WAIT)
            .timeout(REQUEST_WAIT)
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        Ok(Bridge { client, url, token, session: Mutex::new(None), version: Mutex::new(None) })
    }

    /// From the environment the agent passes on: the URL and the token (by variable name,
    /// so messages can say which one is missing without showing a value).
    pub fn from_env(token_env: &str) -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url =
            var(URL_ENV).ok_or_else(|| format!("{URL_ENV} is not set (taskgate sets it for the agents it starts)"))?;
        let token = var(token_env)
            .ok_or_else(|| format!("{token_env} is not set (taskgate sets it for the agents it starts)"))?;
        Self::new(url, token.trim().to_owned())
    }

    /// Forwards one message; what comes back goes to `out`, a line per message.
    async fn forward(&self, message: Value, mut pending: Vec<Value>, out: &mpsc::Sender<String>) {
        let initializing = message.get("method").and_then(Value::as_str) == Some("initialize");
        let outcome = self.post(&message, initializing, &mut pending, out).await;
        if pending.is_empty()
            && let Err((_, why)) = &outcome
        {
            tracing::warn!("taskgate mcp: a notification or response was not delivered: {why}");
        }
        let (code, why) = match outcome {
            Ok(()) => (INTERNAL_ERROR, "taskgate ended its answer without a response".to_owned()),
            Err(failure) => failure,
        };
        // Every request gets an answer, or the agent would wait for one forever.
        for id in pending {
            emit(out, error_response(id, code, &why)).await;
        }
    }

    /// POSTs `message`, delivering each message of the answer as it arrives and striking
    /// answered ids from `pending`. `Err` is why the rest will not come.
    async fn post(
        &self,
        message: &Value,
        initializing: bool,
        pending: &mut Vec<Value>,
        out: &mpsc::Sender<String>,
    ) -> Result<(), (i64, String)> {
        // `bearer_auth` marks the header sensitive: reqwest never prints it.
        let mut request = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(ACCEPT, "application/json, text/event-stream")
            .json(message);
        if let Some(session) = read(&self.session) {
            request = request.header(SESSION_HEADER, session);
        }
        if let Some(version) = read(&self.version) {
            request = request.header(VERSION_HEADER, version);
        }
        let broke = |e: reqwest::Error| (GATEWAY_ERROR, format!("taskgate is not reachable: {}", describe(e)));
        let mut response = request.send().await.map_err(broke)?;
        // Before any answer goes out: the agent's next request must carry the session.
        if let Some(session) = header(response.headers(), SESSION_HEADER) {
            write(&self.session, session);
        }
        let status = response.status();
        if !status.is_success() {
            let body = body(&mut response, EXCERPT).await.unwrap_or_default();
            let excerpt = self.excerpt(&body);
            let hint = if status == reqwest::StatusCode::NOT_FOUND && read(&self.session).is_some() {
                " (its MCP session ended: initialize again)"
            } else {
                ""
            };
            return Err((GATEWAY_ERROR, format!("taskgate answered HTTP {}{hint}{excerpt}", status.as_u16())));
        }
        let streamed = header(response.headers(), CONTENT_TYPE.as_str())
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("text/event-stream"));
        if streamed {
            let mut events = SseReader::default();
            while let Some(chunk) = response.chunk().await.map_err(broke)? {
                for data in events.push(&chunk) {
                    self.deliver(sse::message(&data), initializing, pending, out).await;
                }
            }
        } else {
            let body = body(&mut response, MAX_MESSAGE)
                .await
                .map_err(|e| (GATEWAY_ERROR, format!("taskgate's answer broke off: {}", describe(e))))?;
            // 202 Accepted (a notification or a response we passed on) has no body.
            if !body.trim().is_empty() {
                self.deliver(&body, initializing, pending, out).await;
            }
        }
        Ok(())
    }

    /// One message (or batch) from the server, to stdout on one line.
    async fn deliver(&self, text: &str, initializing: bool, pending: &mut Vec<Value>, out: &mpsc::Sender<String>) {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            // Its request, if any, stays pending and gets an error instead.
            tracing::warn!(bytes = text.len(), "taskgate mcp: skipping a message from the server that is not JSON");
            return;
        };
        let messages = match &value {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for m in messages {
            if m.get("method").is_none()
                && let Some(id) = m.get("id")
            {
                pending.retain(|p| p != id);
                if initializing && let Some(version) = m.pointer("/result/protocolVersion").and_then(Value::as_str) {
                    write(&self.version, version.to_owned());
                }
            }
        }
        emit(out, value).await;
    }

    /// Part of an error body for a message: one line, short, the token blanked should a
    /// proxy ever echo the request.
    fn excerpt(&self, body: &str) -> String {
        let mut text: String = body.chars().take(EXCERPT).map(|c| if c.is_control() { ' ' } else { c }).collect();
        if !self.token.is_empty() {
            text = text.replace(&self.token, "[REDACTED]");
        }
        let text = text.trim();
        if text.is_empty() { String::new() } else { format!(": {text}") }
    }

    /// Ends the server-side session, if the server keyed one (streamable HTTP's DELETE).
    async fn close(&self) {
        let Some(session) = read(&self.session) else { return };
        let request = self.client.delete(&self.url).bearer_auth(&self.token).header(SESSION_HEADER, session);
        let _ = tokio::time::timeout(CLOSE_WAIT, request.send()).await;
    }
}

/// Runs the bridge until `input` ends and every forwarded request is answered.
pub async fn serve<R, W>(bridge: Arc<Bridge>, mut input: R, output: W) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, lines) = mpsc::channel::<String>(64);
    let writer = tokio::spawn(write_lines(lines, output));
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut requests = JoinSet::new();
    loop {
        let line = match read_line(&mut input).await? {
            Line::Eof => break,
            Line::TooLong => {
                let why = format!("a message is longer than {MAX_MESSAGE} bytes");
                emit(&out, error_response(Value::Null, INVALID_REQUEST, &why)).await;
                continue;
            }
            Line::Message(line) if line.trim_ascii().is_empty() => continue,
            Line::Message(line) => line,
        };
        let (message, ids) = match classify(&line) {
            Ok(parsed) => parsed,
            Err(error) => {
                emit(&out, error).await;
                continue;
            }
        };
        while requests.try_join_next().is_some() {}
        if ids.is_empty() {
            // Notifications and our answers to the server, in order: `initialized` must be
            // through before the requests that follow it.
            bridge.forward(message, ids, &out).await;
        } else {
            // Concurrent, so a slow call does not hold up a ping or a cancellation.
            let Ok(permit) = limit.clone().acquire_owned().await else { break };
            let (bridge, out) = (bridge.clone(), out.clone());
            requests.spawn(async move {
                bridge.forward(message, ids, &out).await;
                drop(permit);
            });
        }
    }
    while requests.join_next().await.is_some() {}
    bridge.close().await;
    drop(out);
    writer.await.map_err(io::Error::other)?
}

/// A stdin line parsed: the message and the ids of its requests, or the error line to
/// answer with (`id: null`, as JSON-RPC says when the id cannot be known).
fn classify(line: &[u8]) -> Result<(Value, Vec<Value>), Value> {
    let message: Value = serde_json::from_slice(line)
        .map_err(|e| error_response(Value::Null, PARSE_ERROR, &format!("parse error: {e}")))?;
    let ids = match &message {
        Value::Object(_) => request_id(&message).into_iter().collect(),
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            items.iter().filter_map(request_id).collect()
        }
        _ => return Err(error_response(Value::Null, INVALID_REQUEST, "invalid request: not a JSON-RPC message")),
    };
    Ok((message, ids))
}

/// A request's id; notifications and responses have none that wants an answer.
fn request_id(message: &Value) -> Option<Value> {
    message.get("method")?;
    message.get("id").filter(|id| !id.is_null()).cloned()
}

fn error_response(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

async fn emit(out: &mpsc::Sender<String>, message: Value) {
    // Compact JSON has no raw newline: one message, one line. A closed stdout drops it.
    let _ = out.send(message.to_string()).await;
}

async fn write_lines<W: AsyncWrite + Unpin>(mut lines: mpsc::Receiver<String>, mut out: W) -> io::Result<()> {
    while let Some(line) = lines.recv().await {
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

enum Line {
    Message(Vec<u8>),
    TooLong,
    Eof,
}

/// The next line of `input`, without keeping more than `MAX_MESSAGE` bytes of it. A last
/// line without a newline still counts.
async fn read_line<R: AsyncBufRead + Unpin>(input: &mut R) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let available = input.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (too_long, line.is_empty()) {
                (true, _) => Line::TooLong,
                (false, true) => Line::Eof,
                (false, false) => Line::Message(line),
            });
        }
        let (take, ended) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if !too_long && line.len() + take <= MAX_MESSAGE + 1 {
            line.extend_from_slice(&available[..take]);
        } else {
            too_long = true;
            line = Vec::new();
        }
        input.consume(take);
        if ended {
            return Ok(if too_long { Line::TooLong } else { Line::Message(line) });
        }
    }
}

/// Up to `max` bytes of the body as text; the rest is dropped (cut JSON then fails to
/// parse, and its request gets an error).
async fn body(response: &mut reqwest::Response, max: usize) -> Result<String, reqwest::Error> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = max.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room < chunk.len() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An HTTP error with its causes ("error sending request" alone says little), without the
/// URL, which may carry credentials of its own. Headers, and so the token, are never in it.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn read(slot: &Mutex<Option<String>>) -> Option<String> {
    slot.lock().ok()?.clone()
}

fn write(slot: &Mutex<Option<String>>, value: String) {
    if let Ok(mut slot) = slot.lock() {
        *slot = Some(value);
    }
}

#[cfg(test)]
mod tests;
