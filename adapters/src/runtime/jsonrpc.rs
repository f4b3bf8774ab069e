//! JSON-RPC framing and request-id bookkeeping shared by codex app-server (no `jsonrpc` field)
//! and ACP (JSON-RPC 2.0).

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One decoded message from the agent.
#[derive(Debug)]
pub(crate) enum Message {
    /// The agent asks us something and waits for an answer.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: Value,
        outcome: Result<Value, RpcError>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct RpcError {
    pub code: i64,
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Decodes one line; logs and returns `None` for anything that is not a JSON-RPC message.
pub(crate) fn parse(agent: &str, line: &str) -> Option<Message> {
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(agent, error = %e, len = line.len(), "skipping a non-JSON line from the agent");
            return None;
        }
    };
    let Value::Object(mut obj) = value else {
        tracing::warn!(agent, "skipping a JSON line that is not an object");
        return None;
    };
    let method = obj.get("method").and_then(Value::as_str).map(str::to_owned);
    let id = obj.remove("id").filter(|id| !id.is_null());
    let params = obj.remove("params").unwrap_or(Value::Null);
    match (method, id) {
        (Some(method), Some(id)) => Some(Message::Request { id, method, params }),
        (Some(method), None) => Some(Message::Notification { method, params }),
        (None, Some(id)) => {
            if let Some(error) = obj.remove("error") {
                let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
                let message = error.get("message").and_then(Value::as_str).unwrap_or("error").to_owned();
                Some(Message::Response { id, outcome: Err(RpcError { code, message }) })
            } else {
                let result = obj.remove("result").unwrap_or(Value::Null);
                Some(Message::Response { id, outcome: Ok(result) })
            }
        }
        (None, None) => {
            tracing::warn!(agent, "skipping a JSON object that is neither request, response nor notification");
            None
        }
    }
}

/// Our side of a JSON-RPC connection: numbers outgoing requests and remembers what each was for.
pub(crate) struct Rpc<T> {
    out: mpsc::UnboundedSender<String>,
    /// ACP sends `"jsonrpc":"2.0"`; codex app-server omits it.
    version: bool,
    next_id: u64,
    pending: HashMap<u64, T>,
}

impl<T> Rpc<T> {
    pub fn new(out: mpsc::UnboundedSender<String>, version: bool) -> Self {
        Rpc { out, version, next_id: 0, pending: HashMap::new() }
    }

    /// Sends a request and remembers `tag` until its response arrives.
    pub fn request(&mut self, method: &str, params: Value, tag: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(id, tag);
        self.send(json!({ "id": id, "method": method, "params": params }));
        id
    }

    pub fn notify(&self, method: &str, params: Option<Value>) {
        match params {
            Some(params) => self.send(json!({ "method": method, "params": params })),
            None => self.send(json!({ "method": method })),
        }
    }

    pub fn respond(&self, id: &Value, result: Value) {
        self.send(json!({ "id": id, "result": result }));
    }

    pub fn respond_error(&self, id: &Value, code: i64, message: &str) {
        self.send(json!({ "id": id, "error": { "code": code, "message": message } }));
    }

    /// The tag of the request this response answers; `None` (logged) for an unknown id.
    pub fn take(&mut self, agent: &str, id: &Value) -> Option<T> {
        let tag = id.as_u64().and_then(|n| self.pending.remove(&n));
        if tag.is_none() {
            tracing::warn!(agent, %id, "skipping a response to an unknown request id");
        }
        tag
    }

    /// Forgets every request still waiting (the process is gone).
    pub fn drain(&mut self) -> Vec<T> {
        self.pending.drain().map(|(_, t)| t).collect()
    }

    fn send(&self, mut msg: Value) {
        if self.version
            && let Value::Object(obj) = &mut msg
        {
            obj.insert("jsonrpc".into(), Value::from("2.0"));
        }
        // A closed channel means the process is gone; the reader reports that.
        let _ = self.out.send(msg.to_string());
    }
}

/// JSON-RPC "method not found", used for agent requests the gateway does not serve.
pub(crate) const METHOD_NOT_FOUND: i64 = -32601;

/// A request id rendered as text, for approval ids shown to people and stored.
pub(crate) fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
