//! `codex app-server`: JSON-RPC over stdio without the `jsonrpc` field.
//!
//! `initialize` → `initialized` → `thread/start` (or `thread/resume`) → one `turn/start` per turn.
//! Approvals arrive as server requests; file-change approvals carry no diff, so the diff comes
//! from the preceding `item/started` of that item.
//!
//! One app-server hosts many threads: sessions with the same process key (program, arguments,
//! environment, which includes `CODEX_HOME`) are threads of one process (see [`super::shared`]).
//! Everything else is set per thread in `thread/start` / `thread/resume`: `cwd`,
//! `approvalPolicy`, `sandbox`, `model`, and the gateway's MCP server with the session's own
//! token (as `config` overrides, which codex applies to that thread only).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use taskgate_core::runtime::{
    AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus, FileChange, PlanStep,
    PlanStepStatus, RuntimeError, RuntimeEvent, SessionSpec, TurnOutcome, Usage, output_tail,
};
use tokio::sync::mpsc;

use super::RuntimeOptions;
use super::jsonrpc::{METHOD_NOT_FOUND, Message, Rpc, id_text, parse};
use super::session::{self, Command, Driver, Io, Reply};
use super::shared::{Dialect, Pool};

/// Starts `codex app-server` sessions; its clones share their app-servers.
#[derive(Debug, Clone, Default)]
pub struct CodexRuntime {
    options: RuntimeOptions,
    pool: Arc<Pool>,
}

impl CodexRuntime {
    pub fn new(options: RuntimeOptions) -> Self {
        CodexRuntime { options, pool: Arc::default() }
    }

    pub(crate) fn on_pool(options: RuntimeOptions, pool: Arc<Pool>) -> Self {
        CodexRuntime { options, pool }
    }
}

/// `app-server` unless the operator's arguments name it.
fn app_server_args(spec: &SessionSpec) -> Vec<String> {
    let mut args = spec.args.clone();
    if !args.iter().any(|a| a == "app-server") {
        args.insert(0, "app-server".to_string());
    }
    args
}

/// Sessions share an app-server unless the spec asks for one of its own.
pub(crate) fn process_key(spec: &SessionSpec) -> Option<String> {
    (spec.share_process != Some(false)).then(|| super::shared_key(spec, &app_server_args(spec)))
}

#[async_trait]
impl AgentRuntime for CodexRuntime {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        let args = app_server_args(&spec);
        // The process carries nothing of one session: the MCP server (and its token) goes
        // with the thread, and a shared process outlives the session that started it.
        let mut process = spec.clone();
        process.mcp = None;
        process.cwd = super::absolute_cwd(&spec);
        let options = self.options.clone();
        let make = |out| Codex::new(&spec, &options, out);
        match process_key(&spec) {
            Some(key) => {
                let link = self.pool.connect(&key, Dialect::Codex, &process, &args, &self.options)?;
                session::start_on(link, &spec.agent, &self.options, make).await
            }
            None => session::start(&process, &args, &self.options, make).await,
        }
    }

    fn process_key(&self, spec: &SessionSpec) -> Option<String> {
        process_key(spec)
    }
}

enum Pending {
    Initialize,
    ThreadStart,
    ThreadResume,
    TurnStart(Reply),
    Interrupt,
}

struct Turn {
    id: Option<String>,
    usage: Usage,
    saw_usage: bool,
    error: Option<String>,
    interrupt_wanted: bool,
}

struct Approval {
    rpc_id: Value,
}

struct Question {
    rpc_id: Value,
    question_ids: Vec<String>,
}

struct Codex {
    rpc: Rpc<Pending>,
    client_name: String,
    client_version: String,
    cwd: String,
    model: Option<String>,
    approval_policy: Option<String>,
    sandbox: Option<String>,
    /// Per-thread config overrides: the gateway's MCP server with this session's token.
    config: Option<Value>,
    resume: Option<String>,
    thread_id: Option<String>,
    turn: Option<Turn>,
    /// `item/started` payloads by item id: commands for their display text, file changes for diffs.
    commands: HashMap<String, String>,
    file_changes: HashMap<String, Vec<FileChange>>,
    approvals: HashMap<String, Approval>,
    questions: HashMap<String, Question>,
}

impl Codex {
    fn new(spec: &SessionSpec, options: &RuntimeOptions, out: mpsc::UnboundedSender<String>) -> Self {
        Codex {
            rpc: Rpc::new(out, false),
            client_name: options.client_name.clone(),
            client_version: options.client_version.clone(),
            cwd: super::absolute_cwd(spec).to_string_lossy().into_owned(),
            model: spec.model.clone(),
            approval_policy: spec.approval_policy.clone(),
            sandbox: spec.sandbox.clone(),
            config: spec.mcp.as_ref().map(super::mcp::codex_thread_config),
            resume: spec.resume.clone(),
            thread_id: None,
            turn: None,
            commands: HashMap::new(),
            file_changes: HashMap::new(),
            approvals: HashMap::new(),
            questions: HashMap::new(),
        }
    }

    fn thread_params(&self) -> Value {
        let mut params = json!({ "cwd": self.cwd });
        if let Some(policy) = &self.approval_policy {
            params["approvalPolicy"] = json!(policy);
        }
        if let Some(sandbox) = &self.sandbox {
            params["sandbox"] = json!(sandbox);
        }
        if let Some(model) = &self.model {
            params["model"] = json!(model);
        }
        if let Some(config) = &self.config {
            params["config"] = config.clone();
        }
        params
    }

    fn on_response(&mut self, tag: Pending, outcome: Result<Value, super::jsonrpc::RpcError>, io: &mut Io) {
        match (tag, outcome) {
            (Pending::Initialize, Ok(_)) => {
                self.rpc.notify("initialized", None);
                match self.resume.clone() {
                    Some(thread_id) => {
                        let mut params = self.thread_params();
                        params["threadId"] = json!(thread_id);
                        params["excludeTurns"] = json!(true);
                        self.rpc.request("thread/resume", params, Pending::ThreadResume);
                    }
                    None => {
                        let params = self.thread_params();
                        self.rpc.request("thread/start", params, Pending::ThreadStart);
                    }
                }
            }
            (Pending::Initialize, Err(e)) => io.fail(RuntimeError::Handshake(format!("initialize: {e}"))),
            (tag @ (Pending::ThreadStart | Pending::ThreadResume), Ok(result)) => {
                let resumed = matches!(tag, Pending::ThreadResume);
                match result.pointer("/thread/id").and_then(Value::as_str) {
                    Some(id) => {
                        self.thread_id = Some(id.to_string());
                        io.session_ready(id.to_string(), resumed);
                        io.ready();
                    }
                    None => io.fail(RuntimeError::Handshake("thread response without an id".into())),
                }
            }
            (Pending::ThreadStart, Err(e)) => io.fail(RuntimeError::Handshake(format!("thread/start: {e}"))),
            (Pending::ThreadResume, Err(e)) => io.fail(RuntimeError::Resume(e.message)),
            (Pending::TurnStart(reply), Ok(result)) => {
                let id = result.pointer("/turn/id").and_then(Value::as_str).map(str::to_owned);
                if let Some(id) = id {
                    self.set_turn_id(id, io);
                }
                let _ = reply.send(Ok(()));
            }
            (Pending::TurnStart(reply), Err(e)) => {
                self.turn = None;
                let _ = reply.send(Err(RuntimeError::Unsupported(format!("turn/start: {e}"))));
            }
            (Pending::Interrupt, Ok(_)) => {}
            (Pending::Interrupt, Err(e)) => tracing::warn!(agent = %io.agent, "turn/interrupt failed: {e}"),
        }
    }

    /// Learns the running turn's id (from the response or `turn/started`, whichever is first).
    fn set_turn_id(&mut self, id: String, io: &mut Io) {
        let Some(turn) = self.turn.as_mut() else { return };
        if turn.id.is_some() {
            return;
        }
        turn.id = Some(id.clone());
        io.emit(RuntimeEvent::TurnStarted { turn_id: Some(id) });
        if turn.interrupt_wanted {
            self.send_interrupt();
        }
    }

    fn send_interrupt(&mut self) {
        if let (Some(thread_id), Some(turn_id)) =
            (self.thread_id.clone(), self.turn.as_ref().and_then(|t| t.id.clone()))
        {
            self.rpc.request("turn/interrupt", json!({ "threadId": thread_id, "turnId": turn_id }), Pending::Interrupt);
        }
    }

    fn on_notification(&mut self, method: &str, params: Value, io: &mut Io) {
        match method {
            "turn/started" => {
                if let Some(id) = params.pointer("/turn/id").and_then(Value::as_str) {
                    self.set_turn_id(id.to_string(), io);
                }
            }
            "item/agentMessage/delta" => {
                if let Some(delta) = params.get("delta").and_then(Value::as_str) {
                    io.emit(RuntimeEvent::AgentText { text: delta.to_string() });
                }
            }
            "turn/plan/updated" => {
                let steps = params
                    .get("plan")
                    .and_then(Value::as_array)
                    .map(|steps| steps.iter().filter_map(plan_step).collect())
                    .unwrap_or_default();
                io.emit(RuntimeEvent::Plan { steps });
            }
            "item/started" => self.on_item(params.get("item").unwrap_or(&Value::Null), false, io),
            "item/completed" => self.on_item(params.get("item").unwrap_or(&Value::Null), true, io),
            "thread/tokenUsage/updated" => {
                let same_turn = self
                    .turn
                    .as_ref()
                    .and_then(|t| t.id.as_deref())
                    .is_some_and(|id| params.get("turnId").and_then(Value::as_str) == Some(id));
                if let (true, Some(turn), Some(last)) =
                    (same_turn, self.turn.as_mut(), params.pointer("/tokenUsage/last"))
                {
                    add(&mut turn.usage.input_tokens, last.get("inputTokens"));
                    add(&mut turn.usage.output_tokens, last.get("outputTokens"));
                    add(&mut turn.usage.cached_input_tokens, last.get("cachedInputTokens"));
                    turn.saw_usage = true;
                }
            }
            "error" => {
                let will_retry = params.get("willRetry").and_then(Value::as_bool).unwrap_or(false);
                let message = params.pointer("/error/message").and_then(Value::as_str).unwrap_or("error");
                tracing::warn!(agent = %io.agent, will_retry, "codex error: {message}");
                if let (false, Some(turn)) = (will_retry, self.turn.as_mut()) {
                    turn.error = Some(message.to_string());
                }
            }
            "serverRequest/resolved" => {
                let Some(id) = params.get("requestId") else { return };
                let key = id_text(id);
                // Still pending here means codex withdrew it (turn ended), not that we decided.
                if self.approvals.remove(&key).is_some() {
                    io.emit(RuntimeEvent::ApprovalResolved { request_id: key, decision: None });
                } else {
                    self.questions.remove(&key);
                }
            }
            "turn/completed" => self.on_turn_completed(&params, io),
            _ => tracing::trace!(agent = %io.agent, method, "ignoring codex notification"),
        }
    }

    fn on_item(&mut self, item: &Value, completed: bool, io: &mut Io) {
        let id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        match item.get("type").and_then(Value::as_str) {
            Some("commandExecution") => {
                let command = command_text(item);
                if !completed {
                    self.commands.insert(id.clone(), command.clone());
                    io.emit(RuntimeEvent::CommandStarted { id, command });
                    return;
                }
                self.commands.remove(&id);
                let status = match item.get("status").and_then(Value::as_str) {
                    Some("completed") => CommandStatus::Succeeded,
                    Some("declined") => CommandStatus::Declined,
                    _ => CommandStatus::Failed,
                };
                let exit_code = item.get("exitCode").and_then(Value::as_i64).and_then(|c| i32::try_from(c).ok());
                let output = item.get("aggregatedOutput").and_then(Value::as_str).unwrap_or_default();
                io.emit(RuntimeEvent::CommandFinished {
                    id,
                    command,
                    status,
                    exit_code,
                    output_tail: output_tail(output, 20, 2000),
                });
            }
            Some("fileChange") => {
                let changes: Vec<FileChange> = item
                    .get("changes")
                    .and_then(Value::as_array)
                    .map(|changes| {
                        changes
                            .iter()
                            .filter_map(|c| {
                                Some(FileChange {
                                    path: c.get("path")?.as_str()?.to_string(),
                                    diff: c.get("diff").and_then(Value::as_str).map(str::to_owned),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if !completed {
                    self.file_changes.insert(id, changes);
                    return;
                }
                self.file_changes.remove(&id);
                let applied = item.get("status").and_then(Value::as_str) == Some("completed");
                io.emit(RuntimeEvent::FileChanged { id, changes, applied });
            }
            _ => {}
        }
    }

    fn on_turn_completed(&mut self, params: &Value, io: &mut Io) {
        let Some(turn) = self.turn.take() else {
            tracing::debug!(agent = %io.agent, "turn/completed without a running turn");
            return;
        };
        let status = params.pointer("/turn/status").and_then(Value::as_str).unwrap_or("completed");
        let outcome = match status {
            "completed" => TurnOutcome::Completed,
            "interrupted" => TurnOutcome::Interrupted,
            _ => TurnOutcome::Failed {
                message: params
                    .pointer("/turn/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .or(turn.error)
                    .unwrap_or_else(|| "the turn failed".to_string()),
            },
        };
        self.withdraw_pending(io);
        io.emit(RuntimeEvent::TurnFinished { outcome, usage: turn.saw_usage.then_some(turn.usage) });
    }

    fn withdraw_pending(&mut self, io: &mut Io) {
        for (request_id, _) in self.approvals.drain() {
            io.emit(RuntimeEvent::ApprovalResolved { request_id, decision: None });
        }
        self.questions.clear();
    }

    fn on_request(&mut self, id: Value, method: &str, params: Value, io: &mut Io) {
        let request_id = id_text(&id);
        match method {
            "item/commandExecution/requestApproval" => {
                let command = params
                    .get("itemId")
                    .and_then(Value::as_str)
                    .and_then(|item| self.commands.get(item).cloned())
                    .unwrap_or_else(|| command_text(&params));
                self.approvals.insert(request_id.clone(), Approval { rpc_id: id });
                io.emit(RuntimeEvent::ApprovalRequested(ApprovalRequest {
                    request_id,
                    kind: ApprovalKind::Command,
                    action: format!("run `{command}`"),
                    detail: None,
                    cwd: params.get("cwd").and_then(Value::as_str).map(str::to_owned),
                    reason: params.get("reason").and_then(Value::as_str).map(str::to_owned),
                }));
            }
            "item/fileChange/requestApproval" => {
                let changes = params
                    .get("itemId")
                    .and_then(Value::as_str)
                    .and_then(|item| self.file_changes.get(item))
                    .cloned()
                    .unwrap_or_default();
                let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
                let action =
                    if paths.is_empty() { "change files".to_string() } else { format!("edit {}", paths.join(", ")) };
                let diff: Vec<String> =
                    changes.iter().filter_map(|c| c.diff.as_ref().map(|d| format!("--- {}\n{d}", c.path))).collect();
                let reason = params.get("reason").and_then(Value::as_str).map(str::to_owned);
                self.approvals.insert(request_id.clone(), Approval { rpc_id: id });
                io.emit(RuntimeEvent::ApprovalRequested(ApprovalRequest {
                    request_id,
                    kind: ApprovalKind::FileChange,
                    action,
                    detail: (!diff.is_empty()).then(|| diff.join("\n")),
                    cwd: None,
                    reason,
                }));
            }
            "item/tool/requestUserInput" => {
                let questions = params.get("questions").and_then(Value::as_array).cloned().unwrap_or_default();
                let question_ids =
                    questions.iter().filter_map(|q| q.get("id").and_then(Value::as_str).map(str::to_owned)).collect();
                let text = questions.iter().map(question_text).collect::<Vec<_>>().join("\n");
                self.questions.insert(request_id.clone(), Question { rpc_id: id, question_ids });
                io.emit(RuntimeEvent::Question { request_id, text });
            }
            _ => {
                tracing::warn!(agent = %io.agent, method, "refusing an unsupported codex request");
                self.rpc.respond_error(&id, METHOD_NOT_FOUND, "not supported by this client");
            }
        }
    }
}

impl Driver for Codex {
    fn begin(&mut self, _io: &mut Io) {
        let params = json!({
            "clientInfo": { "name": self.client_name, "title": "taskgate", "version": self.client_version },
            "capabilities": null,
        });
        self.rpc.request("initialize", params, Pending::Initialize);
    }

    fn on_line(&mut self, line: &str, io: &mut Io) {
        match parse(&io.agent, line) {
            Some(Message::Response { id, outcome }) => {
                if let Some(tag) = self.rpc.take(&io.agent, &id) {
                    self.on_response(tag, outcome, io);
                }
            }
            Some(Message::Notification { method, params }) => self.on_notification(&method, params, io),
            Some(Message::Request { id, method, params }) => self.on_request(id, &method, params, io),
            None => {}
        }
    }

    fn on_command(&mut self, command: Command, io: &mut Io) {
        match command {
            Command::Turn { text, files, reply } => {
                let Some(thread_id) = self.thread_id.clone() else {
                    let _ = reply.send(Err(RuntimeError::Dead));
                    return;
                };
                if self.turn.is_some() {
                    let _ = reply.send(Err(RuntimeError::Busy));
                    return;
                }
                self.turn = Some(Turn {
                    id: None,
                    usage: Usage::default(),
                    saw_usage: false,
                    error: None,
                    interrupt_wanted: false,
                });
                // Images go as `localImage` items: codex reads the file itself.
                let mut input = vec![json!({ "type": "text", "text": text, "text_elements": [] })];
                input.extend(files.iter().filter(|f| f.image).map(|f| json!({ "type": "localImage", "path": f.path })));
                let params = json!({ "threadId": thread_id, "input": input });
                self.rpc.request("turn/start", params, Pending::TurnStart(reply));
            }
            Command::Decide { request_id, decision, reply } => {
                let Some(approval) = self.approvals.remove(&request_id) else {
                    let _ = reply.send(Err(RuntimeError::UnknownRequest(request_id)));
                    return;
                };
                let decision_text = match decision {
                    ApprovalDecision::AllowOnce => "accept",
                    ApprovalDecision::AllowForSession => "acceptForSession",
                    ApprovalDecision::Deny => "decline",
                    ApprovalDecision::DenyAndStop => "cancel",
                };
                self.rpc.respond(&approval.rpc_id, json!({ "decision": decision_text }));
                io.emit(RuntimeEvent::ApprovalResolved { request_id, decision: Some(decision) });
                let _ = reply.send(Ok(()));
            }
            Command::Answer { request_id, text, reply } => {
                let Some(question) = self.questions.remove(&request_id) else {
                    let _ = reply.send(Err(RuntimeError::UnknownRequest(request_id)));
                    return;
                };
                let answers: serde_json::Map<String, Value> =
                    question.question_ids.into_iter().map(|qid| (qid, json!({ "answers": [text] }))).collect();
                self.rpc.respond(&question.rpc_id, json!({ "answers": answers }));
                let _ = reply.send(Ok(()));
            }
            Command::Interrupt { reply } => {
                let Some(turn) = self.turn.as_mut() else {
                    let _ = reply.send(Err(RuntimeError::NoTurn));
                    return;
                };
                if turn.id.is_some() {
                    self.send_interrupt();
                } else {
                    turn.interrupt_wanted = true;
                }
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The thread stays on a process that goes on: its turn must not run on unattended. The
    /// host releases the thread (`thread/unsubscribe`) once this session's lines are through.
    fn on_leave(&mut self, io: &mut Io) {
        for approval in self.approvals.values() {
            self.rpc.respond(&approval.rpc_id, json!({ "decision": "cancel" }));
        }
        for question in self.questions.values() {
            self.rpc.respond_error(&question.rpc_id, -32000, "the session ended");
        }
        self.questions.clear();
        match self.turn.as_ref().map(|t| t.id.is_some()) {
            Some(true) => self.send_interrupt(),
            Some(false) => {
                tracing::warn!(agent = %io.agent, "leaving before the turn's id is known; it is not interrupted")
            }
            None => {}
        }
    }

    fn on_exit(&mut self, io: &mut Io) {
        for tag in self.rpc.drain() {
            if let Pending::TurnStart(reply) = tag {
                let _ = reply.send(Err(RuntimeError::Dead));
            }
        }
        self.withdraw_pending(io);
    }
}

/// The friendliest text for a command: codex's parsed action when there is exactly one.
fn command_text(item: &Value) -> String {
    let actions = item.get("commandActions").and_then(Value::as_array);
    if let Some([only]) = actions.map(Vec::as_slice)
        && let Some(command) = only.get("command").and_then(Value::as_str)
    {
        return command.to_string();
    }
    item.get("command").and_then(Value::as_str).unwrap_or("a command").to_string()
}

fn plan_step(step: &Value) -> Option<PlanStep> {
    let status = match step.get("status")?.as_str()? {
        "completed" => PlanStepStatus::Completed,
        "inProgress" => PlanStepStatus::InProgress,
        _ => PlanStepStatus::Pending,
    };
    Some(PlanStep { text: step.get("step")?.as_str()?.to_string(), status })
}

fn question_text(question: &Value) -> String {
    let text = question.get("question").and_then(Value::as_str).unwrap_or_default();
    let options: Vec<&str> = question
        .get("options")
        .and_then(Value::as_array)
        .map(|o| o.iter().filter_map(|o| o.get("label").and_then(Value::as_str)).collect())
        .unwrap_or_default();
    if options.is_empty() { text.to_string() } else { format!("{text} ({})", options.join(" / ")) }
}

fn add(total: &mut Option<u64>, value: Option<&Value>) {
    if let Some(n) = value.and_then(Value::as_u64) {
        *total = Some(total.unwrap_or(0) + n);
    }
}
