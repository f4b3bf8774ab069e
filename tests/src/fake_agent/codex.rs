//! Fake `codex app-server`: JSON-RPC without the `jsonrpc` field, shaped after
//! `codex-app-server-transcript-*.jsonl` and `codex-app-server-turn-interrupt.jsonl`.
//!
//! Like the real one, a process hosts many threads: `thread/start` / `thread/resume` load a
//! thread (with its own `cwd`, and the MCP server in its `config` overrides) and subscribe the
//! connection to it; every notification and server request names its `threadId`; turns of
//! different threads run at once (each on an OS thread of its own, while the main thread keeps
//! reading stdin and hands answers and interrupts to the turn they belong to); server request
//! ids are unique on the connection; `thread/unsubscribe` stops the thread's events (the
//! thread stays loaded, as codex keeps it for a while). Every `turn/start` is logged to
//! `--prompts` with this process's pid, so tests can tell which process ran which thread.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{Context, FILE_CONTENT, Recv, Tools, new_id, run_command_in, write_file};
use crate::mcp::Mcp;
use crate::script::{PLAN_STEPS, Script, parse};

const WAIT: Duration = Duration::from_secs(60);

/// What the reader and the turns share.
struct Shared {
    tools: Tools,
    /// The MCP server from the command line (`-c mcp_servers.*`), for threads without one.
    mcp: Option<Mcp>,
    next_request: AtomicU64,
    next_item: AtomicU64,
    /// Server requests waiting for their answer: id → the turn that asked.
    waiting: Mutex<HashMap<u64, mpsc::Sender<Signal>>>,
    /// Loaded threads by id.
    threads: Mutex<HashMap<String, Thread>>,
}

struct Thread {
    cwd: PathBuf,
    mcp: Option<Mcp>,
    subscribed: bool,
    /// The running turn: its id and where its interrupt goes.
    turn: Option<(String, mpsc::Sender<Signal>)>,
    /// Commands approved for the rest of the thread (`acceptForSession`).
    allowed: Arc<Mutex<HashSet<String>>>,
}

enum Signal {
    Answer { request: u64, result: Option<Value> },
    Interrupt,
}

enum Waited {
    Result(Value),
    Interrupted,
}

struct Fake {
    ctx: Context,
    shared: Arc<Shared>,
    initialize_seen: bool,
    initialized: bool,
}

pub fn run(ctx: Context) -> i32 {
    let shared = Arc::new(Shared {
        tools: ctx.tools(),
        mcp: ctx.mcp.clone(),
        next_request: AtomicU64::new(0),
        next_item: AtomicU64::new(0),
        waiting: Mutex::new(HashMap::new()),
        threads: Mutex::new(HashMap::new()),
    });
    let mut fake = Fake { ctx, shared, initialize_seen: false, initialized: false };
    loop {
        match fake.ctx.recv(None) {
            Recv::Msg(msg) => fake.handle(msg),
            Recv::Eof | Recv::Timeout => return 0,
        }
    }
}

impl Shared {
    fn send(&self, msg: &Value) {
        self.tools.send(msg);
    }

    fn respond(&self, id: &Value, result: Value) {
        self.send(&json!({ "id": id, "result": result }));
    }

    fn error(&self, id: &Value, code: i64, message: &str) {
        self.send(&json!({ "id": id, "error": { "code": code, "message": message } }));
    }

    fn subscribed(&self, thread: &str) -> bool {
        self.threads.lock().unwrap().get(thread).is_some_and(|t| t.subscribed)
    }

    /// Sends a notification about `thread` if this connection still listens to it.
    fn notify(&self, thread: &str, method: &str, params: Value) {
        if self.subscribed(thread) {
            self.send(&json!({ "method": method, "params": params }));
        }
    }
}

impl Fake {
    fn handle(&mut self, msg: Value) {
        let shared = self.shared.clone();
        let method = msg.get("method").and_then(Value::as_str).unwrap_or_default().to_string();
        let id = msg.get("id").cloned();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        if msg.get("jsonrpc").is_some() {
            if let Some(id) = &id {
                shared.error(id, -32600, "app-server messages carry no jsonrpc field");
            }
            return;
        }
        let Some(id) = id else {
            if method == "initialized" {
                self.initialized = true;
            }
            return;
        };
        if method.is_empty() {
            // An answer to one of our requests: to the turn that waits for it.
            let request = id.as_u64().unwrap_or(u64::MAX);
            match shared.waiting.lock().unwrap().remove(&request) {
                Some(turn) => {
                    let _ = turn.send(Signal::Answer { request, result: msg.get("result").cloned() });
                }
                None => eprintln!("fake-agent: response to unknown request {id}"),
            }
            return;
        }
        match method.as_str() {
            "initialize" => {
                if self.initialize_seen {
                    return shared.error(&id, -32600, "Already initialized");
                }
                self.initialize_seen = true;
                let name = params.pointer("/clientInfo/name").and_then(Value::as_str).unwrap_or("?");
                shared.respond(
                    &id,
                    json!({
                        "userAgent": format!("{name}/0.169.0 (fake)"),
                        "codexHome": "/tmp/fake-codex-home",
                        "platformFamily": "unix",
                        "platformOs": "linux",
                    }),
                );
                shared.send(
                    &json!({ "method": "configWarning", "params": { "summary": "fake warning", "details": null } }),
                );
            }
            _ if !(self.initialize_seen && self.initialized) => shared.error(&id, -32600, "Not initialized"),
            "thread/start" => {
                let thread = new_id("thread");
                shared.tools.save_session(&thread, "");
                self.load(&thread, &params);
                let value = thread_value(&thread, &params);
                shared.respond(&id, json!({ "thread": value }));
                shared.notify(&thread, "thread/started", json!({ "thread": value }));
            }
            "thread/resume" => {
                let thread = params.get("threadId").and_then(Value::as_str).unwrap_or_default().to_string();
                if !shared.tools.session_exists(&thread) {
                    return shared.error(&id, -32600, &format!("no rollout found for thread id {thread}"));
                }
                self.load(&thread, &params);
                shared.respond(&id, json!({ "thread": thread_value(&thread, &params) }));
            }
            "thread/unsubscribe" => {
                let thread = params.get("threadId").and_then(Value::as_str).unwrap_or_default();
                let status = match shared.threads.lock().unwrap().get_mut(thread) {
                    None => "notLoaded",
                    Some(t) if t.subscribed => {
                        t.subscribed = false;
                        "unsubscribed"
                    }
                    Some(_) => "notSubscribed",
                };
                shared.respond(&id, json!({ "status": status }));
            }
            "turn/start" => {
                let thread = params.get("threadId").and_then(Value::as_str).unwrap_or_default().to_string();
                let text = params.pointer("/input/0/text").and_then(Value::as_str).unwrap_or_default().to_string();
                let turn = new_id("turn");
                let (signals, inbox) = mpsc::channel();
                let (cwd, mcp, allowed) = {
                    let mut threads = shared.threads.lock().unwrap();
                    let Some(state) = threads.get_mut(&thread) else {
                        return shared.error(&id, -32600, "thread not found");
                    };
                    if state.turn.is_some() {
                        return shared.error(&id, -32600, "a turn is already running");
                    }
                    state.turn = Some((turn.clone(), signals.clone()));
                    (state.cwd.clone(), state.mcp.clone(), state.allowed.clone())
                };
                shared.respond(&id, json!({ "turn": turn_value(&turn, "inProgress") }));
                shared.tools.log_input(&text, params.get("input").unwrap_or(&Value::Null));
                let run =
                    TurnRun { shared: shared.clone(), thread, turn, cwd, mcp, allowed, signals: inbox, own: signals };
                std::thread::spawn(move || run.run(&text));
            }
            "turn/interrupt" => {
                let thread = params.get("threadId").and_then(Value::as_str).unwrap_or_default();
                let turn = params.get("turnId").and_then(Value::as_str).unwrap_or_default();
                if let Some(state) = shared.threads.lock().unwrap().get(thread)
                    && let Some((running, signals)) = &state.turn
                    && running == turn
                {
                    let _ = signals.send(Signal::Interrupt);
                }
                shared.respond(&id, json!({}));
            }
            _ => shared.error(&id, -32601, &format!("unknown method {method}")),
        }
    }

    /// Loads (or re-subscribes to) a thread with the settings of `thread/start` / `thread/resume`.
    fn load(&self, thread: &str, params: &Value) {
        let cwd = params.get("cwd").and_then(Value::as_str).map(PathBuf::from).unwrap_or_else(|| self.ctx.cwd.clone());
        let mcp = params.get("config").and_then(Mcp::from_codex_config).or_else(|| self.shared.mcp.clone());
        let mut threads = self.shared.threads.lock().unwrap();
        let state = threads.entry(thread.to_string()).or_insert_with(|| Thread {
            cwd: cwd.clone(),
            mcp: None,
            subscribed: true,
            turn: None,
            allowed: Arc::default(),
        });
        state.cwd = cwd;
        state.mcp = mcp;
        state.subscribed = true;
    }
}

/// One turn of one thread, on an OS thread of its own.
struct TurnRun {
    shared: Arc<Shared>,
    thread: String,
    turn: String,
    cwd: PathBuf,
    mcp: Option<Mcp>,
    allowed: Arc<Mutex<HashSet<String>>>,
    signals: mpsc::Receiver<Signal>,
    /// Where answers to this turn's requests are sent.
    own: mpsc::Sender<Signal>,
}

impl TurnRun {
    fn notify(&self, method: &str, mut params: Value) {
        params["threadId"] = json!(self.thread);
        self.shared.notify(&self.thread, method, params);
    }

    /// Asks the client; returns the request id to wait for.
    fn request(&self, method: &str, mut params: Value) -> u64 {
        let request = self.shared.next_request.fetch_add(1, Ordering::SeqCst);
        params["threadId"] = json!(self.thread);
        params["turnId"] = json!(self.turn);
        self.shared.waiting.lock().unwrap().insert(request, self.own.clone());
        if self.shared.subscribed(&self.thread) {
            self.shared.send(&json!({ "method": method, "id": request, "params": params }));
        }
        request
    }

    fn run(self, text: &str) {
        let (thread, turn) = (self.thread.clone(), self.turn.clone());
        self.notify("thread/status/changed", json!({ "status": { "type": "active", "activeFlags": [] } }));
        self.notify("turn/started", json!({ "turn": turn_value(&turn, "inProgress") }));
        let user_item = json!({ "type": "userMessage", "id": new_id("user"), "content": [{ "type": "text", "text": text, "text_elements": [] }] });
        self.notify("item/started", json!({ "item": user_item, "turnId": turn }));
        self.notify("item/completed", json!({ "item": user_item, "turnId": turn }));
        let status = match parse(text) {
            Script::Echo => self.reply(&format!("FAKE-REPLY: you said '{text}'")),
            Script::Reply(reply) => self.reply(&reply),
            Script::Stream(more) => {
                let turn = &self.turn;
                let item_id = format!("msg_{}", self.item_id());
                let said = format!("FAKE-REPLY: you said '{text}'");
                let item = |t: &str| json!({ "type": "agentMessage", "id": item_id, "text": t, "phase": null });
                self.notify("item/started", json!({ "item": item(""), "turnId": turn }));
                self.notify("item/agentMessage/delta", json!({ "turnId": turn, "itemId": item_id, "delta": said }));
                match self.wait_for(None, more) {
                    Some(Waited::Interrupted) => "interrupted",
                    _ => {
                        self.notify("item/completed", json!({ "item": item(&said), "turnId": turn }));
                        "completed"
                    }
                }
            }
            Script::Note(spec) => {
                let said = match &self.mcp {
                    Some(mcp) => format!("FAKE-REPLY: noted: {}", mcp.run(&spec)),
                    None => "FAKE-REPLY: no MCP server was offered".to_owned(),
                };
                self.reply(&said)
            }
            Script::Recall => {
                let previous = self.shared.tools.recall(&thread);
                self.reply(&format!("FAKE-REPLY: previous input was '{previous}'"))
            }
            Script::RunCmd(cmd) => self.run_cmd(&cmd),
            Script::WriteFile(path) => self.write(&path),
            Script::Slow(limit) => match self.wait_for(None, limit) {
                Some(Waited::Interrupted) => "interrupted",
                _ => self.reply("FAKE-REPLY: slow reply done"),
            },
            Script::Stubborn => {
                std::thread::sleep(Duration::from_secs(20));
                self.reply("FAKE-REPLY: finally")
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
                self.notify("turn/plan/updated", json!({ "turnId": turn, "explanation": null, "plan": steps(0) }));
                self.notify("turn/plan/updated", json!({ "turnId": turn, "explanation": null, "plan": steps(3) }));
                self.reply("FAKE-REPLY: planned")
            }
            Script::Ask(question) => {
                let request = self.request(
                    "item/tool/requestUserInput",
                    json!({
                        "itemId": new_id("ask"), "isBlocking": true,
                        "questions": [{ "id": "q1", "header": "Question", "question": question,
                            "options": [{ "label": "yes", "description": "" }, { "label": "no", "description": "" }] }],
                    }),
                );
                match self.wait_for(Some(request), WAIT) {
                    Some(Waited::Result(result)) => {
                        let answer =
                            result.pointer("/answers/q1/answers/0").and_then(Value::as_str).unwrap_or("").to_string();
                        self.notify("serverRequest/resolved", json!({ "requestId": request }));
                        self.reply(&format!("FAKE-REPLY: you answered '{answer}'"))
                    }
                    _ => "interrupted",
                }
            }
            Script::Fail => {
                let error = json!({ "message": "fake model: bad request (FAIL_TURN)" });
                self.notify("error", json!({ "error": error, "willRetry": false, "turnId": turn }));
                self.finish("failed", Some(error));
                return;
            }
            Script::Crash { once, forget } => {
                if !once || self.shared.tools.crash_once(if forget { "codex-forget" } else { "codex" }) {
                    if forget {
                        self.shared.tools.forget_session(&thread);
                    }
                    eprintln!("fake-agent: crashing as asked");
                    std::process::exit(3);
                }
                self.reply("FAKE-REPLY: survived")
            }
            Script::Garbage => {
                self.shared.tools.send_garbage("fake/unknownThing", json!({ "id": 9999, "result": {} }));
                self.reply("FAKE-REPLY: after garbage")
            }
        };
        // Saved before the turn ends, so the client's next turn finds it.
        self.shared.tools.save_session(&thread, text);
        self.finish(status, None);
    }

    fn run_cmd(&self, cmd: &str) -> &'static str {
        let turn = &self.turn;
        let item_id = self.item_id();
        let cwd = self.cwd.clone();
        let item = |status: &str, exit: Value, output: Value| {
            json!({
                "type": "commandExecution", "id": item_id, "command": format!("/bin/bash -lc '{cmd}'"),
                "cwd": cwd, "processId": null, "source": "agent", "status": status,
                "commandActions": [{ "type": "unknown", "command": cmd }],
                "aggregatedOutput": output, "exitCode": exit, "durationMs": null,
            })
        };
        self.notify("item/started", json!({ "item": item("inProgress", Value::Null, Value::Null), "turnId": turn }));
        let allowed = self.allowed.lock().unwrap().contains(cmd);
        let decision = if allowed {
            "accept".to_string()
        } else {
            let request = self.request(
                "item/commandExecution/requestApproval",
                json!({
                    "kind": "command", "itemId": item_id, "startedAtMs": 0,
                    "environmentId": "local", "command": format!("/bin/bash -lc '{cmd}'"), "cwd": self.cwd,
                    "commandActions": [{ "type": "unknown", "command": cmd }],
                    "availableDecisions": ["accept", "acceptForSession", "decline", "cancel"],
                }),
            );
            let waited = self.wait_for(Some(request), WAIT);
            self.notify("serverRequest/resolved", json!({ "requestId": request }));
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
                    self.allowed.lock().unwrap().insert(cmd.to_string());
                }
                let (code, output) = run_command_in(cmd, &self.cwd);
                self.notify(
                    "item/commandExecution/outputDelta",
                    json!({ "turnId": turn, "itemId": item_id, "delta": output }),
                );
                let status = if code == 0 { "completed" } else { "failed" };
                self.notify(
                    "item/completed",
                    json!({ "item": item(status, json!(code), json!(output)), "turnId": turn }),
                );
                self.reply(&format!("FAKE-REPLY: tool finished. exit={code}"))
            }
            "decline" => {
                self.notify(
                    "item/completed",
                    json!({ "item": item("declined", Value::Null, Value::Null), "turnId": turn }),
                );
                self.reply("FAKE-REPLY: tool finished. output=\"rejected by user\"")
            }
            "cancel" => {
                self.notify(
                    "item/completed",
                    json!({ "item": item("declined", Value::Null, Value::Null), "turnId": turn }),
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

    fn write(&self, path: &str) -> &'static str {
        let turn = &self.turn;
        let item_id = self.item_id();
        let abs = self.cwd.join(path).to_string_lossy().into_owned();
        let item = |status: &str| {
            json!({
                "type": "fileChange", "id": item_id, "status": status,
                "changes": [{ "path": abs, "kind": { "type": "add" }, "diff": FILE_CONTENT }],
            })
        };
        self.notify("item/started", json!({ "item": item("inProgress"), "turnId": turn }));
        let request = self.request(
            "item/fileChange/requestApproval",
            json!({ "itemId": item_id, "startedAtMs": 0, "reason": null, "grantRoot": null }),
        );
        let waited = self.wait_for(Some(request), WAIT);
        self.notify("serverRequest/resolved", json!({ "requestId": request }));
        let decision = match waited {
            Some(Waited::Result(result)) => result.get("decision").and_then(Value::as_str).unwrap_or("?").to_string(),
            _ => return "interrupted",
        };
        match decision.as_str() {
            "accept" | "acceptForSession" => {
                let status = if write_file(&abs).is_ok() { "completed" } else { "failed" };
                self.notify("item/completed", json!({ "item": item(status), "turnId": turn }));
                self.notify(
                    "turn/diff/updated",
                    json!({ "turnId": turn, "diff": format!("+++ b/{path}\n+hello from fake model\n") }),
                );
                self.reply("FAKE-REPLY: file written")
            }
            "decline" => {
                self.notify("item/completed", json!({ "item": item("declined"), "turnId": turn }));
                self.reply("FAKE-REPLY: tool finished. output=\"patch rejected by user\"")
            }
            _ => {
                self.notify("item/completed", json!({ "item": item("declined"), "turnId": turn }));
                "interrupted"
            }
        }
    }

    /// Streams one agent message and reports the model call's tokens; the turn completes.
    fn reply(&self, text: &str) -> &'static str {
        let turn = &self.turn;
        let item_id = format!("msg_{}", self.item_id());
        let item = |t: &str| json!({ "type": "agentMessage", "id": item_id, "text": t, "phase": null });
        self.notify("item/started", json!({ "item": item(""), "turnId": turn }));
        self.notify("item/agentMessage/delta", json!({ "turnId": turn, "itemId": item_id, "delta": text }));
        self.notify("item/completed", json!({ "item": item(text), "turnId": turn }));
        let last = json!({ "totalTokens": 18, "inputTokens": 11, "cachedInputTokens": 0, "cacheWriteInputTokens": 0, "outputTokens": 7, "reasoningOutputTokens": 0 });
        self.notify(
            "thread/tokenUsage/updated",
            json!({ "turnId": turn, "tokenUsage": { "total": last, "last": last, "modelContextWindow": 258400 } }),
        );
        "completed"
    }

    fn finish(&self, status: &str, error: Option<Value>) {
        // The thread takes turns again before the client hears this one ended.
        if let Some(state) = self.shared.threads.lock().unwrap().get_mut(&self.thread) {
            state.turn = None;
        }
        self.notify("thread/status/changed", json!({ "status": { "type": "idle" } }));
        let mut value = turn_value(&self.turn, status);
        value["error"] = error.unwrap_or(Value::Null);
        self.notify("turn/completed", json!({ "turn": value }));
    }

    /// Waits for the answer to `request` (or an interrupt of this turn).
    fn wait_for(&self, request: Option<u64>, timeout: Duration) -> Option<Waited> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.signals.recv_timeout(left) {
                Ok(Signal::Interrupt) => {
                    if let Some(request) = request {
                        self.shared.waiting.lock().unwrap().remove(&request);
                    }
                    return Some(Waited::Interrupted);
                }
                Ok(Signal::Answer { request: answered, result }) if Some(answered) == request => {
                    // An error answer (the client refused) ends the turn like an interrupt.
                    return Some(result.map_or(Waited::Interrupted, Waited::Result));
                }
                Ok(Signal::Answer { request: answered, .. }) => {
                    eprintln!("fake-agent: late answer to request {answered}");
                }
                Err(_) => return None,
            }
        }
    }

    fn item_id(&self) -> String {
        format!("call_{}", self.shared.next_item.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

fn thread_value(id: &str, params: &Value) -> Value {
    json!({ "id": id, "sessionId": id, "cwd": params.get("cwd"), "modelProvider": "fake", "model": "fake-model", "preview": "" })
}

fn turn_value(id: &str, status: &str) -> Value {
    json!({ "id": id, "rootTurnId": id, "items": [], "itemsView": "notLoaded", "status": status, "error": null })
}
