//! Fake ACP agent: JSON-RPC 2.0 over stdio, written from the protocol schema with plain JSON
//! (not the crate the adapter uses) so the two sides are checked against each other.
//!
//! One connection hosts any number of sessions (one prompt at a time), each with the MCP
//! servers of its `session/new`; it advertises `session/close`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Context, FILE_CONTENT, Recv, new_id, run_command, write_file};
use crate::script::{PLAN_STEPS, Script, parse};

const WAIT: Duration = Duration::from_secs(60);

struct Fake {
    ctx: Context,
    /// Live sessions and the MCP server each was offered.
    sessions: HashMap<String, Option<crate::mcp::Mcp>>,
    next_request: u64,
    next_tool: u64,
    allowed: HashSet<String>,
}

enum Waited {
    Response(Value),
    Cancelled,
}

pub fn run(ctx: Context) -> i32 {
    let mut fake = Fake { ctx, sessions: HashMap::new(), next_request: 0, next_tool: 0, allowed: HashSet::new() };
    loop {
        match fake.ctx.recv(None) {
            Recv::Msg(msg) => fake.handle(msg),
            Recv::Eof | Recv::Timeout => return 0,
        }
    }
}

impl Fake {
    fn send(&self, mut msg: Value) {
        msg["jsonrpc"] = json!("2.0");
        self.ctx.send(&msg);
    }

    fn respond(&self, id: &Value, result: Value) {
        self.send(json!({ "id": id, "result": result }));
    }

    fn error(&self, id: &Value, code: i64, message: &str) {
        self.send(json!({ "id": id, "error": { "code": code, "message": message } }));
    }

    fn update(&self, session: &str, update: Value) {
        self.send(json!({ "method": "session/update", "params": { "sessionId": session, "update": update } }));
    }

    fn handle(&mut self, msg: Value) {
        let id = msg.get("id").cloned();
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            if let Some(id) = &id {
                self.error(id, -32600, "jsonrpc must be \"2.0\"");
            }
            return;
        }
        let Some(id) = id else { return };
        match method.as_str() {
            "initialize" => {
                if params.get("protocolVersion").and_then(Value::as_u64) != Some(1) {
                    return self.error(&id, -32602, "protocolVersion 1 expected");
                }
                self.respond(&id, json!({
                    "protocolVersion": 1,
                    "agentCapabilities": { "loadSession": self.ctx.acp_load, "promptCapabilities": {}, "mcpCapabilities": { "http": !self.ctx.acp_stdio_mcp }, "sessionCapabilities": { "close": {} } },
                    "authMethods": [],
                    "agentInfo": { "name": "fake-acp", "version": "0.0.1" },
                }));
            }
            "session/new" => {
                if !params.get("mcpServers").is_some_and(Value::is_array) || params.get("cwd").is_none() {
                    return self.error(&id, -32602, "cwd and mcpServers are required");
                }
                let session = new_id("sess");
                self.ctx.save_session(&session, "");
                self.respond(&id, json!({ "sessionId": session }));
                self.sessions.insert(session, crate::mcp::Mcp::from_acp(&params));
            }
            "session/load" => {
                let session = params.get("sessionId").and_then(Value::as_str).unwrap_or_default().to_string();
                if !self.ctx.acp_load {
                    return self.error(&id, -32601, "session/load not supported");
                }
                if !self.ctx.session_exists(&session) {
                    return self.error(&id, -32002, &format!("session {session} not found"));
                }
                // Loading replays the conversation before answering.
                let previous = self.ctx.recall(&session);
                self.update(
                    &session,
                    json!({ "sessionUpdate": "user_message_chunk", "content": { "type": "text", "text": previous } }),
                );
                self.update(&session, json!({ "sessionUpdate": "agent_message_chunk", "content": { "type": "text", "text": "REPLAYED" } }));
                self.respond(&id, json!({}));
                self.sessions.insert(session, crate::mcp::Mcp::from_acp(&params));
            }
            "session/close" => {
                let session = params.get("sessionId").and_then(Value::as_str).unwrap_or_default();
                match self.sessions.remove(session) {
                    Some(_) => self.respond(&id, json!({})),
                    None => self.error(&id, -32602, "unknown sessionId"),
                }
            }
            "session/prompt" => {
                let session = params.get("sessionId").and_then(Value::as_str).unwrap_or_default().to_string();
                let Some(mcp) = self.sessions.get(&session) else {
                    return self.error(&id, -32602, "unknown sessionId");
                };
                // Its own MCP server, for the `NOTE:` marker.
                if mcp.is_some() {
                    self.ctx.mcp = mcp.clone();
                }
                let text: String = params
                    .get("prompt")
                    .and_then(Value::as_array)
                    .map(|blocks| blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect())
                    .unwrap_or_default();
                self.ctx.log_input(&text, params.get("prompt").unwrap_or(&Value::Null));
                self.turn(&id, &session, &text);
            }
            _ => self.error(&id, -32601, &format!("method not found: {method}")),
        }
    }

    fn say(&self, session: &str, text: &str) {
        // Two chunks: the client must concatenate.
        let mid = text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i);
        for part in [&text[..mid], &text[mid..]] {
            self.update(
                session,
                json!({ "sessionUpdate": "agent_message_chunk", "content": { "type": "text", "text": part } }),
            );
        }
    }

    fn turn(&mut self, id: &Value, session: &str, text: &str) {
        let stop = match parse(text) {
            Script::Echo | Script::Stream(_) | Script::Ask(_) => {
                self.say(session, &format!("FAKE-REPLY: you said '{text}'"));
                "end_turn"
            }
            Script::Reply(reply) => {
                self.say(session, &reply);
                "end_turn"
            }
            Script::Note(spec) => {
                let said = self.ctx.note(&spec);
                self.say(session, &said);
                "end_turn"
            }
            Script::Recall => {
                let previous = self.ctx.recall(session);
                self.say(session, &format!("FAKE-REPLY: previous input was '{previous}'"));
                "end_turn"
            }
            Script::RunCmd(cmd) => self.run_cmd(session, &cmd),
            Script::WriteFile(path) => self.write(session, &path),
            Script::Slow(limit) => match self.wait(None, limit) {
                Some(Waited::Cancelled) => "cancelled",
                _ => {
                    self.say(session, "FAKE-REPLY: slow reply done");
                    "end_turn"
                }
            },
            Script::Stubborn => {
                std::thread::sleep(Duration::from_secs(20));
                self.say(session, "FAKE-REPLY: finally");
                "end_turn"
            }
            Script::Plan => {
                let entries = |done: usize| -> Vec<Value> {
                    PLAN_STEPS
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let status = if i < done {
                                "completed"
                            } else if i == done {
                                "in_progress"
                            } else {
                                "pending"
                            };
                            json!({ "content": s, "priority": "medium", "status": status })
                        })
                        .collect()
                };
                self.update(session, json!({ "sessionUpdate": "plan", "entries": entries(0) }));
                self.update(session, json!({ "sessionUpdate": "plan", "entries": entries(3) }));
                self.say(session, "FAKE-REPLY: planned");
                "end_turn"
            }
            Script::Fail => {
                self.error(id, -32603, "fake model: bad request (FAIL_TURN)");
                return;
            }
            Script::Crash { once, forget } => {
                if !once || self.ctx.crash_once(if forget { "acp-forget" } else { "acp" }) {
                    if forget {
                        self.ctx.forget_session(session);
                    }
                    eprintln!("fake-agent: crashing as asked");
                    std::process::exit(3);
                }
                self.say(session, "FAKE-REPLY: survived");
                "end_turn"
            }
            Script::Garbage => {
                self.ctx.send_garbage("fake/unknown", json!({ "jsonrpc": "2.0", "id": 4242, "result": {} }));
                self.update(session, json!({ "sessionUpdate": "mystery_update", "what": 1 }));
                self.send(json!({ "method": "session/update", "params": { "sessionId": "someone-else", "update": { "sessionUpdate": "agent_message_chunk", "content": { "type": "text", "text": "NOT YOURS" } } } }));
                self.say(session, "FAKE-REPLY: after garbage");
                "end_turn"
            }
        };
        self.respond(id, json!({ "stopReason": stop }));
        if stop == "end_turn" {
            self.ctx.save_session(session, text);
        }
    }

    fn options() -> Value {
        json!([
            { "optionId": "allow-once", "name": "Allow", "kind": "allow_once" },
            { "optionId": "allow-always", "name": "Always allow", "kind": "allow_always" },
            { "optionId": "reject-once", "name": "Reject", "kind": "reject_once" },
            { "optionId": "reject-always", "name": "Always reject", "kind": "reject_always" },
        ])
    }

    fn run_cmd(&mut self, session: &str, cmd: &str) -> &'static str {
        let tool = self.tool_id();
        self.update(session, json!({ "sessionUpdate": "tool_call", "toolCallId": tool, "title": format!("Run {cmd}"), "kind": "execute", "status": "pending", "rawInput": { "command": cmd } }));
        let choice = if self.allowed.contains(cmd) {
            "allow-once".to_string()
        } else {
            match self.permission(session, json!({ "toolCallId": tool, "title": format!("Run {cmd}"), "kind": "execute", "status": "pending", "rawInput": { "command": cmd } })) {
                Some(c) => c,
                None => return "cancelled",
            }
        };
        if choice.starts_with("allow") {
            if choice == "allow-always" {
                self.allowed.insert(cmd.to_string());
            }
            self.update(
                session,
                json!({ "sessionUpdate": "tool_call_update", "toolCallId": tool, "status": "in_progress" }),
            );
            let (code, output) = run_command(cmd);
            let status = if code == 0 { "completed" } else { "failed" };
            self.update(session, json!({ "sessionUpdate": "tool_call_update", "toolCallId": tool, "status": status,
                "content": [{ "type": "content", "content": { "type": "text", "text": output } }], "rawOutput": { "exitCode": code } }));
            self.say(session, &format!("FAKE-REPLY: tool finished. exit={code}"));
        } else {
            self.update(
                session,
                json!({ "sessionUpdate": "tool_call_update", "toolCallId": tool, "status": "failed",
                "content": [{ "type": "content", "content": { "type": "text", "text": "rejected by user" } }] }),
            );
            self.say(session, "FAKE-REPLY: tool finished. output=\"rejected by user\"");
        }
        "end_turn"
    }

    fn write(&mut self, session: &str, path: &str) -> &'static str {
        let tool = self.tool_id();
        let abs = self.ctx.cwd.join(path).to_string_lossy().into_owned();
        let call = json!({ "toolCallId": tool, "title": format!("Write {path}"), "kind": "edit", "status": "pending",
            "locations": [{ "path": abs }], "content": [{ "type": "diff", "path": abs, "oldText": null, "newText": FILE_CONTENT }] });
        let mut announced = call.clone();
        announced["sessionUpdate"] = json!("tool_call");
        self.update(session, announced);
        let Some(choice) = self.permission(session, call) else { return "cancelled" };
        let status = if choice.starts_with("allow") && write_file(&abs).is_ok() { "completed" } else { "failed" };
        self.update(session, json!({ "sessionUpdate": "tool_call_update", "toolCallId": tool, "status": status }));
        self.say(session, &format!("FAKE-REPLY: write {status}"));
        "end_turn"
    }

    /// Asks for permission; `None` when the client cancelled (it must still answer us).
    fn permission(&mut self, session: &str, tool_call: Value) -> Option<String> {
        self.next_request += 1;
        let request = self.next_request;
        self.send(json!({ "id": request, "method": "session/request_permission", "params": {
            "sessionId": session, "toolCall": tool_call, "options": Self::options() } }));
        let mut cancelled = false;
        loop {
            match self.wait(Some(request), WAIT) {
                Some(Waited::Response(result)) => {
                    return match result.pointer("/outcome/outcome").and_then(Value::as_str) {
                        Some("selected") if !cancelled => {
                            result.pointer("/outcome/optionId").and_then(Value::as_str).map(str::to_owned)
                        }
                        _ => None,
                    };
                }
                Some(Waited::Cancelled) => cancelled = true,
                None => return None,
            }
        }
    }

    fn wait(&mut self, request: Option<u64>, timeout: Duration) -> Option<Waited> {
        loop {
            let msg = match self.ctx.recv(Some(timeout)) {
                Recv::Msg(msg) => msg,
                Recv::Timeout => return None,
                Recv::Eof => std::process::exit(0),
            };
            let method = msg.get("method").and_then(Value::as_str);
            match (method, msg.get("id")) {
                (Some("session/cancel"), None) => return Some(Waited::Cancelled),
                (None, Some(id)) if request.is_some() && id.as_u64() == request => {
                    return Some(Waited::Response(msg.get("result").cloned().unwrap_or(Value::Null)));
                }
                (Some(_), Some(id)) => {
                    let id = id.clone();
                    self.error(&id, -32000, "busy with a prompt");
                }
                _ => eprintln!("fake-agent: ignoring input during a prompt"),
            }
        }
    }

    fn tool_id(&mut self) -> String {
        self.next_tool += 1;
        format!("call_{}", self.next_tool)
    }
}
