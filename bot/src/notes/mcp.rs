//! The `taskgate` MCP server: what agents use to read and write their task's restart note.
//!
//! Streamable HTTP at `/mcp`, answering each JSON-RPC POST with one JSON body (no server-sent
//! stream: every tool answers at once). A bearer token, issued per runtime session and held
//! only in memory, says which task and execution is calling: an agent can only write its own
//! task's note, and a restarted gateway issues new tokens with the new sessions.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use taskgate_adapters::runtime::RestartNoteSlot;
use taskgate_core::model::{Id, NoteKind};
use taskgate_core::runtime::McpServer;

use super::{Keeper, NoteError, NoteWrite};

pub const PATH: &str = "/mcp";
/// The child's environment variable that carries the token.
pub const TOKEN_ENV: &str = "TASKGATE_MCP_TOKEN";
const PROTOCOL_VERSION: &str = "2025-06-18";

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub task: Id,
    pub execution: Id,
}

/// The live tokens and the restart-note slots of live sessions.
#[derive(Default)]
pub struct Sessions {
    /// SHA-256 of the token → binding; one token per execution at a time.
    tokens: Mutex<HashMap<[u8; 32], Binding>>,
    /// Execution → (task, the supervised session's note slot).
    slots: Mutex<HashMap<Id, (Id, RestartNoteSlot)>>,
    /// The stdio bridge command offered instead of this process's own (see `set_bridge`).
    bridge: Mutex<Option<Vec<String>>>,
}

impl Sessions {
    /// A fresh token for `execution`'s next session; the execution's previous token stops
    /// working. `None` without randomness (the session then starts without the tools).
    pub fn issue(&self, task: Id, execution: Id) -> Option<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).ok()?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut tokens = self.tokens.lock().ok()?;
        tokens.retain(|_, b| b.execution != execution);
        tokens.insert(digest(&token), Binding { task, execution });
        Some(token)
    }

    pub fn binding(&self, token: &str) -> Option<Binding> {
        self.tokens.lock().ok()?.get(&digest(token)).copied()
    }

    /// Remembers where `execution`'s live session keeps its restart note.
    pub fn attach(&self, task: Id, execution: Id, slot: RestartNoteSlot) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.insert(execution, (task, slot));
        }
    }

    /// Offers `argv` (a `taskgate mcp` equivalent) as the stdio bridge, for an engine embedded
    /// in a process that is not the `taskgate` binary.
    pub fn set_bridge(&self, argv: Vec<String>) {
        if let Ok(mut bridge) = self.bridge.lock() {
            *bridge = Some(argv);
        }
    }

    /// The server description for a session's spec, with this engine's stdio bridge.
    pub fn server(&self, url: String, token: String) -> McpServer {
        let mut server = server(url, token);
        if let Some(argv) = self.bridge.lock().ok().and_then(|b| b.clone()) {
            server.stdio_bridge = Some(argv);
        }
        server
    }

    /// The note slots of `task`'s live sessions.
    pub fn slots(&self, task: Id) -> Vec<RestartNoteSlot> {
        let Ok(slots) = self.slots.lock() else { return Vec::new() };
        slots.values().filter(|(t, _)| *t == task).map(|(_, s)| s.clone()).collect()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `[<this executable>, "mcp"]`, once the `taskgate` binary said it is one (see
/// `offer_self_as_bridge`). A process global because only `main` knows what the running
/// executable is: an engine embedded in a test binary must not offer that binary.
static SELF_BRIDGE: OnceLock<Vec<String>> = OnceLock::new();

/// Called by the `taskgate` binary before serving: sessions of ACP agents without HTTP MCP
/// get `<current exe> mcp` as a stdio server. `false` (tools only over HTTP) when the
/// executable's path is unknown or not UTF-8.
pub fn offer_self_as_bridge() -> bool {
    let exe = std::env::current_exe().ok().and_then(|p| p.into_os_string().into_string().ok());
    match exe {
        Some(exe) => {
            SELF_BRIDGE.get_or_init(|| vec![exe, "mcp".to_owned()]);
            true
        }
        None => false,
    }
}

/// The server description a session spec carries (see the adapters' `mcp` module). The
/// token reaches a stdio bridge through `session/new`'s env block, never its arguments.
pub fn server(url: String, token: String) -> McpServer {
    let bridge = SELF_BRIDGE.get().cloned();
    McpServer { name: "taskgate".into(), url, token, token_env: TOKEN_ENV.into(), stdio_bridge: bridge }
}

/// The MCP route alone, for embedding (the tests serve it beside an in-process engine).
pub fn router(notes: Arc<Keeper>) -> axum::Router {
    axum::Router::new().route(PATH, axum::routing::post(handle).get(no_stream)).layer(Extension(notes))
}

/// `GET /mcp` would open a server-to-client stream; this server has nothing to push.
pub async fn no_stream() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

/// `POST /mcp`: one JSON-RPC message in, its response out (202 for a notification).
pub async fn handle(Extension(notes): Extension<Arc<Keeper>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(binding) = token.and_then(|t| notes.binding(t)) else {
        return (StatusCode::UNAUTHORIZED, "unknown or missing session token").into_response();
    };
    let message: Value = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return rpc_error(Value::Null, -32700, &format!("parse error: {e}")).into_response(),
    };
    let Some(method) = message.get("method").and_then(Value::as_str) else {
        // A response to a request we never sent, or a batch (not in this protocol version).
        return (StatusCode::ACCEPTED, "").into_response();
    };
    let Some(id) = message.get("id").cloned() else {
        // Notifications (`notifications/initialized`, cancellations): nothing to answer.
        return (StatusCode::ACCEPTED, "").into_response();
    };
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let result = match method {
        "initialize" => Ok(json!({
            "protocolVersion": params.get("protocolVersion").and_then(Value::as_str).unwrap_or(PROTOCOL_VERSION),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "taskgate", "version": env!("CARGO_PKG_VERSION")},
            "instructions": "Keep the task's restart note current: record what you verified, ruled out or \
                             could not finish, with evidence ids (turn:<id>, file:<path>), and set the next action.",
        })),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools()})),
        "tools/call" => Ok(call(&notes, binding, &params).await),
        other => Err((-32601, format!("unknown method {other}"))),
    };
    match result {
        Ok(result) => axum::Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response(),
        Err((code, message)) => rpc_error(id, code, &message).into_response(),
    }
}

fn rpc_error(id: Value, code: i64, message: &str) -> axum::Json<Value> {
    axum::Json(json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}))
}

fn tools() -> Value {
    let text = json!({"type": "string"});
    json!([
        {
            "name": "read_note",
            "description": "Read this task's restart note: objective, reproduction, every entry (verified, rejected, open, blocked, stale) with its evidence, and the next action.",
            "inputSchema": {"type": "object", "properties": {}},
        },
        {
            "name": "record_entry",
            "description": "Add an entry to the note. Entries are never edited: to contradict one, record a new entry with its own evidence. Evidence ids: turn:<id> (a finished turn: its commands and changed files), file:<path> (relative to the project).",
            "inputSchema": {"type": "object", "required": ["kind", "text"], "properties": {
                "kind": {"type": "string", "enum": NoteKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>()},
                "text": text,
                "evidence": {"type": "array", "items": {"type": "string"}},
            }},
        },
        {
            "name": "set_next_action",
            "description": "Set the one next step whoever continues this task should take.",
            "inputSchema": {"type": "object", "required": ["text"], "properties": {"text": text}},
        },
        {
            "name": "set_reproduction",
            "description": "Set how to reproduce the problem (commands, inputs, expected vs actual).",
            "inputSchema": {"type": "object", "required": ["text"], "properties": {"text": text}},
        },
    ])
}

/// Runs a tool. Bad input is a tool error the agent can read, never a failed request.
async fn call(notes: &Keeper, binding: Binding, params: &Value) -> Value {
    let name = params.get("name").and_then(Value::as_str).unwrap_or_default();
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let text = |key: &str| args.get(key).and_then(Value::as_str).map(str::to_owned);
    let write = match name {
        "read_note" => {
            return match notes.restart_note(binding.task).await {
                Ok(note) => tool_text(&note.condensed().unwrap_or_else(|| "The note is empty.".to_owned()), false),
                Err(e) => tool_text(&format!("could not read the note: {e}"), true),
            };
        }
        "record_entry" => {
            let kind = text("kind").and_then(|k| k.trim().to_lowercase().parse::<NoteKind>().ok());
            let Some(kind) = kind else {
                return tool_text("kind must be one of verified, rejected, open, blocked, stale", true);
            };
            let evidence = args
                .get("evidence")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            NoteWrite::Entry { kind, text: text("text").unwrap_or_default(), evidence }
        }
        "set_next_action" => NoteWrite::NextAction(text("text").unwrap_or_default()),
        "set_reproduction" => NoteWrite::Reproduction(text("text").unwrap_or_default()),
        other => return tool_text(&format!("unknown tool {other}"), true),
    };
    let author = format!("execution:{}", binding.execution);
    match notes.write(binding.task, write, &author).await {
        Ok(done) => tool_text(&done, false),
        Err(NoteError::Invalid(why)) => tool_text(&why, true),
        Err(e) => tool_text(&format!("could not write the note: {e}"), true),
    }
}

fn tool_text(text: &str, is_error: bool) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": is_error})
}
