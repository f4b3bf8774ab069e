//! Fake `codex app-server`: JSON-RPC without the `jsonrpc` field, shaped after
//! `codex-app-server-transcript-*.jsonl` and `codex-app-server-turn-interrupt.jsonl`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Context, FILE_CONTENT, Recv, new_id, run_command, write_file};
use crate::script::{PLAN_STEPS, Script, parse};

const WAIT: Duration = Duration::from_secs(60);

struct Fake {
    ctx: Context,
    initialize_seen: bool,
    initialized: bool,
    thread: Option<String>,
    next_request: u64,
    next_item: u64,
    allowed: HashSet<String>,
}

enum Waited {
    Result(Value),
    Interrupted,
}

pub fn run(ctx: Context) -> i32 {
    let mut fake = Fake {
        ctx,
        initialize_seen: false,
        initialized: false,
        thread: None,
        next_request: 0,
        next_item: 0,
        allowed: HashSet::new(),
    };
    loop {
        match fake.ctx.recv(None) {
            Recv::Msg(msg) => fake.handle(msg),
            Recv::Eof | Recv::Timeout => return 0,
        }
    }
}

impl Fake {
    fn notify(&self, method: &str, params: Value) {
        self.ctx.send(&json!({ "method": method, "params": params }));
    }

    fn respond(&self, id: &Value, result: Value) {
        self.ctx.send(&json!({ "id": id, "result": result }));
    }

    fn error(&self, id: &Value, code: i64, message: &str) {
        self.ctx.send(&json!({ "id": id, "error": { "code": code, "message": message } }));
    }

    fn handle(&mut self, msg: Value) {
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
        let id = msg.get("id").cloned();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        if msg.get("jsonrpc").is_some() {
            if let Some(id) = &id {
                self.error(id, -32600, "app-server messages carry no jsonrpc field");
            }
            return;
        }
        let Some(id) = id else {
            if method == "initialized" {
                self.initialized = true;
            }
            return;
        };
        match method.as_str() {
            "initialize" => {
                if self.initialize_seen {
                    return self.error(&id, -32600, "Already initialized");
                }
                self.initialize_seen = true;
                let name = params.pointer("/clientInfo/name").and_then(Value::as_str).unwrap_or("?");
                self.respond(
                    &id,
                    json!({
                        "userAgent": format!("{name}/0.169.0 (fake)"),
                        "codexHome": "/tmp/fake-codex-home",
                        "platformFamily": "unix",
                        "platformOs": "linux",
                    }),
                );
                self.notify("configWarning", json!({ "summary": "fake warning", "details": null }));
            }
            "thread/start" | "thread/resume" if !(self.initialize_seen && self.initialized) => {
                self.error(&id, -32600, "Not initialized");
            }
            "thread/start" => {
                let thread = new_id("thread");
                self.ctx.save_session(&thread, "");
                let value = thread_value(&thread, &params);
                self.respond(&id, json!({ "thread": value }));
                self.notify("thread/started", json!({ "thread": value }));
                self.thread = Some(thread);
            }
            "thread/resume" => {
                let thread = params.get("threadId").and_then(Value::as_str).unwrap_or_default().to_string();
                if !self.ctx.session_exists(&thread) {
                    return self.error(&id, -32600, &format!("no rollout found for thread id {thread}"));
                }
                self.respond(&id, json!({ "thread": thread_value(&thread, &params) }));
                self.thread = Some(thread);
            }
            "turn/start" => {
                let Some(thread) = self.thread.clone() else {
                    return self.error(&id, -32600, "thread not found");
                };
                if params.get("threadId").and_then(Value::as_str) != Some(thread.as_str()) {
                    return self.error(&id, -32600, "thread not found");
                }
                let text = params.pointer("/input/0/text").and_then(Value::as_str).unwrap_or_default().to_string();
                let turn = new_id("turn");
                self.respond(&id, json!({ "turn": turn_value(&turn, "inProgress") }));
                self.run_turn(&thread, &turn, &text);
            }
            "turn/interrupt" => self.respond(&id, json!({})),
            _ => self.error(&id, -32601, &format!("unknown method {method}")),
        }
    }

    fn run_turn(&mut self, thread: &str, turn: &str, text: &str) {
        self.notify(
            "thread/status/changed",
            json!({ "threadId": thread, "status": { "type": "active", "activeFlags": [] } }),
        );
        self.notify("turn/started", json!({ "threadId": thread, "turn": turn_value(turn, "inProgress") }));
        let user_item = json!({ "type": "userMessage", "id": new_id("user"), "content": [{ "type": "text", "text": text, "text_elements": [] }] });
        self.notify("item/started", json!({ "item": user_item, "threadId": thread, "turnId": turn }));
        self.notify("item/completed", json!({ "item": user_item, "threadId": thread, "turnId": turn }));
        let status = match parse(text) {
            Script::Echo => self.reply(thread, turn, &format!("FAKE-REPLY: you said '{text}'")),
            Script::Note(spec) => {
                let said = self.ctx.note(&spec);
                self.reply(thread, turn, &said)
            }
            Script::Recall => {
                let previous = self.ctx.recall(thread);
                self.reply(thread, turn, &format!("FAKE-REPLY: previous input was '{previous}'"))
            }
            Script::RunCmd(cmd) => self.run_cmd(thread, turn, &cmd),
            Script::WriteFile(path) => self.write(thread, turn, &path),
            Script::Slow(limit) => match self.wait_for(None, limit) {
                Some(Waited::Interrupted) => "interrupted",
                _ => self.reply(thread, turn, "FAKE-REPLY: slow reply done"),
            },
            Script::Stubborn => {
                std::thread::sleep(Duration::from_secs(20));
                self.reply(thread, turn, "FAKE-REPLY: finally")
            }
            Script::Plan => {
                let steps = |done: usize| -> Vec<Value> {
                    PLAN_STEPS
                        .iter()
                        .enumerate()
                        .map(|(i, s)| {
                            let status = if i < done {
                                "completed"
                            } else if i == done {
                                "inProgress"
                            } else {
                                "pending"
                            };
                            json!({ "step": s, "status": status })
                        })
                        .collect()
                };
                self.notify(
                    "turn/plan/updated",
                    json!({ "threadId": thread, "turnId": turn, "explanation": null, "plan": steps(0) }),
                );
                self.notify(
                    "turn/plan/updated",
                    json!({ "threadId": thread, "turnId": turn, "explanation": null, "plan": steps(3) }),
                );
                self.reply(thread, turn, "FAKE-REPLY: planned")
            }
            Script::Ask(question) => {
                let request = self.next_request;
                self.next_request += 1;
                self.ctx.send(&json!({ "method": "item/tool/requestUserInput", "id": request, "params": {
                    "threadId": thread, "turnId": turn, "itemId": new_id("ask"), "isBlocking": true,
                    "questions": [{ "id": "q1", "header": "Question", "question": question,
                        "options": [{ "label": "yes", "description": "" }, { "label": "no", "description": "" }] }],
                } }));
                match self.wait_for(Some(request), WAIT) {
                    Some(Waited::Result(result)) => {
                        let answer =
                            result.pointer("/answers/q1/answers/0").and_then(Value::as_str).unwrap_or("").to_string();
                        self.notify("serverRequest/resolved", json!({ "threadId": thread, "requestId": request }));
                        self.reply(thread, turn, &format!("FAKE-REPLY: you answered '{answer}'"))
                    }
                    _ => "interrupted",
                }
            }
            Script::Fail => {
                let error = json!({ "message": "fake model: bad request (FAIL_TURN)" });
                self.notify("error", json!({ "error": error, "willRetry": false, "threadId": thread, "turnId": turn }));
                self.finish(thread, turn, "failed", Some(error));
                return;
            }
            Script::Crash { once, forget } => {
                if !once || self.ctx.crash_once(if forget { "codex-forget" } else { "codex" }) {
                    if forget {
                        self.ctx.forget_session(thread);
                    }
                    eprintln!("fake-agent: crashing as asked");
                    std::process::exit(3);
                }
                self.reply(thread, turn, "FAKE-REPLY: survived")
            }
            Script::Garbage => {
                self.ctx.send_garbage("fake/unknownThing", json!({ "id": 9999, "result": {} }));
                self.reply(thread, turn, "FAKE-REPLY: after garbage")
            }
        };
        self.finish(thread, turn, status, None);
        self.ctx.save_session(thread, text);
    }

    fn run_cmd(&mut self, thread: &str, turn: &str, cmd: &str) -> &'static str {
        let item_id = self.item_id();
        let cwd = self.ctx.cwd.clone();
        let item = |status: &str, exit: Value, output: Value| {
            json!({
                "type": "commandExecution", "id": item_id, "command": format!("/bin/bash -lc '{cmd}'"),
                "cwd": cwd, "processId": null, "source": "agent", "status": status,
                "commandActions": [{ "type": "unknown", "command": cmd }],
                "aggregatedOutput": output, "exitCode": exit, "durationMs": null,
            })
        };
        self.notify(
            "item/started",
            json!({ "item": item("inProgress", Value::Null, Value::Null), "threadId": thread, "turnId": turn }),
        );
        let decision = if self.allowed.contains(cmd) {
            "accept".to_string()
        } else {
            let request = self.next_request;
            self.next_request += 1;
            self.ctx.send(&json!({ "method": "item/commandExecution/requestApproval", "id": request, "params": {
                "kind": "command", "threadId": thread, "turnId": turn, "itemId": item_id, "startedAtMs": 0,
                "environmentId": "local", "command": format!("/bin/bash -lc '{cmd}'"), "cwd": self.ctx.cwd,
                "commandActions": [{ "type": "unknown", "command": cmd }],
                "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"],
            } }));
            let waited = self.wait_for(Some(request), WAIT);
            self.notify("serverRequest/resolved", json!({ "threadId": thread, "requestId": request }));
            match waited {
                Some(Waited::Result(result)) => {
                    result.get("decision").and_then(Value::as_str).unwrap_or("?").to_string()
                }
                _ => "interrupted".to_string(),
            }
        };
        match decision.as_str() {
            "accept" | "acceptForSession" => {
                if decision == "acceptForSession" {
                    self.allowed.insert(cmd.to_string());
                }
                let (code, output) = run_command(cmd);
                self.notify(
                    "item/commandExecution/outputDelta",
                    json!({ "threadId": thread, "turnId": turn, "itemId": item_id, "delta": output }),
                );
                let status = if code == 0 { "completed" } else { "failed" };
                self.notify(
                    "item/completed",
                    json!({ "item": item(status, json!(code), json!(output)), "threadId": thread, "turnId": turn }),
                );
                self.reply(thread, turn, &format!("FAKE-REPLY: tool finished. exit={code}"))
            }
            "decline" => {
                self.notify(
                    "item/completed",
                    json!({ "item": item("declined", Value::Null, Value::Null), "threadId": thread, "turnId": turn }),
                );
                self.reply(thread, turn, "FAKE-REPLY: tool finished. output=\"rejected by user\"")
            }
            "cancel" => {
                self.notify(
                    "item/completed",
                    json!({ "item": item("declined", Value::Null, Value::Null), "threadId": thread, "turnId": turn }),
                );
                "interrupted"
            }
            "interrupted" => "interrupted",
            other => {
                eprintln!("fake-agent: invalid decision {other}");
                "failed"
            }
        }
    }

    fn write(&mut self, thread: &str, turn: &str, path: &str) -> &'static str {
        let item_id = self.item_id();
        let abs = self.ctx.cwd.join(path).to_string_lossy().into_owned();
        let item = |status: &str| {
            json!({
                "type": "fileChange", "id": item_id, "status": status,
                "changes": [{ "path": abs, "kind": { "type": "add" }, "diff": FILE_CONTENT }],
            })
        };
        self.notify("item/started", json!({ "item": item("inProgress"), "threadId": thread, "turnId": turn }));
        let request = self.next_request;
        self.next_request += 1;
        self.ctx.send(&json!({ "method": "item/fileChange/requestApproval", "id": request, "params": {
            "threadId": thread, "turnId": turn, "itemId": item_id, "startedAtMs": 0, "reason": null, "grantRoot": null,
        } }));
        let waited = self.wait_for(Some(request), WAIT);
        self.notify("serverRequest/resolved", json!({ "threadId": thread, "requestId": request }));
        let decision = match waited {
            Some(Waited::Result(result)) => result.get("decision").and_then(Value::as_str).unwrap_or("?").to_string(),
            _ => return "interrupted",
        };
        match decision.as_str() {
            "accept" | "acceptForSession" => {
                let status = if write_file(&abs).is_ok() { "completed" } else { "failed" };
                self.notify("item/completed", json!({ "item": item(status), "threadId": thread, "turnId": turn }));
                self.notify("turn/diff/updated", json!({ "threadId": thread, "turnId": turn, "diff": format!("+++ b/{path}\n+hello from fake model\n") }));
                self.reply(thread, turn, "FAKE-REPLY: file written")
            }
            "decline" => {
                self.notify("item/completed", json!({ "item": item("declined"), "threadId": thread, "turnId": turn }));
                self.reply(thread, turn, "FAKE-REPLY: tool finished. output=\"patch rejected by user\"")
            }
            _ => {
                self.notify("item/completed", json!({ "item": item("declined"), "threadId": thread, "turnId": turn }));
                "interrupted"
            }
        }
    }

    /// Streams one agent message and reports the model call's tokens; the turn completes.
    fn reply(&mut self, thread: &str, turn: &str, text: &str) -> &'static str {
        let item_id = format!("msg_{}", self.item_id());
        let item = |t: &str| json!({ "type": "agentMessage", "id": item_id, "text": t, "phase": null });
        self.notify("item/started", json!({ "item": item(""), "threadId": thread, "turnId": turn }));
        self.notify(
            "item/agentMessage/delta",
            json!({ "threadId": thread, "turnId": turn, "itemId": item_id, "delta": text }),
        );
        self.notify("item/completed", json!({ "item": item(text), "threadId": thread, "turnId": turn }));
        let last = json!({ "totalTokens": 18, "inputTokens": 11, "cachedInputTokens": 0, "cacheWriteInputTokens": 0, "outputTokens": 7, "reasoningOutputTokens": 0 });
        self.notify("thread/tokenUsage/updated", json!({ "threadId": thread, "turnId": turn, "tokenUsage": { "total": last, "last": last, "modelContextWindow": 258400 } }));
        "completed"
    }

    fn finish(&self, thread: &str, turn: &str, status: &str, error: Option<Value>) {
        self.notify("thread/status/changed", json!({ "threadId": thread, "status": { "type": "idle" } }));
        let mut value = turn_value(turn, status);
        value["error"] = error.unwrap_or(Value::Null);
        self.notify("turn/completed", json!({ "threadId": thread, "turn": value }));
    }

    /// Reads until the response to `request` (or any `turn/interrupt`), answering what else comes.
    fn wait_for(&mut self, request: Option<u64>, timeout: Duration) -> Option<Waited> {
        loop {
            let msg = match self.ctx.recv(Some(timeout)) {
                Recv::Msg(msg) => msg,
                Recv::Timeout => return None,
                Recv::Eof => std::process::exit(0),
            };
            let id = msg.get("id").cloned();
            match (msg.get("method").and_then(Value::as_str), id) {
                (None, Some(id)) if request.is_some() && id.as_u64() == request => {
                    return Some(Waited::Result(msg.get("result").cloned().unwrap_or(Value::Null)));
                }
                (None, Some(id)) => eprintln!("fake-agent: response to unknown request {id}"),
                (Some("turn/interrupt"), Some(id)) => {
                    self.respond(&id, json!({}));
                    return Some(Waited::Interrupted);
                }
                (Some("turn/start"), Some(id)) => self.error(&id, -32600, "a turn is already running"),
                (Some(_), Some(id)) => self.error(&id, -32601, "unexpected during a turn"),
                _ => {}
            }
        }
    }

    fn item_id(&mut self) -> String {
        self.next_item += 1;
        format!("call_{}", self.next_item)
    }
}

fn thread_value(id: &str, params: &Value) -> Value {
    json!({ "id": id, "sessionId": id, "cwd": params.get("cwd"), "modelProvider": "fake", "model": "fake-model", "preview": "" })
}

fn turn_value(id: &str, status: &str) -> Value {
    json!({ "id": id, "rootTurnId": id, "items": [], "itemsView": "notLoaded", "status": status, "error": null })
}
