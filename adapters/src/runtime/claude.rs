//! Claude Code through its stdio control protocol (what the Agent SDKs use):
//! `claude --output-format stream-json --verbose --input-format stream-json
//! --permission-prompt-tool stdio [--resume ID] [--model M]`, one process per session.
//!
//! Each user line is a turn and a `result` line ends it. Permission prompts arrive as
//! `control_request`/`can_use_tool` and are answered with `control_response`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use taskgate_core::runtime::{
    AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus, FileChange, InputFile,
    PlanStep, PlanStepStatus, RuntimeError, RuntimeEvent, SessionSpec, TurnOutcome, Usage, one_line, output_tail,
};
use tokio::sync::mpsc;

use super::RuntimeOptions;
use super::session::{self, Command, Driver, Io};

/// Starts `claude` stream-json sessions.
#[derive(Debug, Clone, Default)]
pub struct ClaudeRuntime {
    options: RuntimeOptions,
}

impl ClaudeRuntime {
    pub fn new(options: RuntimeOptions) -> Self {
        ClaudeRuntime { options }
    }
}

#[async_trait]
impl AgentRuntime for ClaudeRuntime {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        let mut args = spec.args.clone();
        for flag in [
            "--output-format",
            "stream-json",
            "--verbose",
            "--input-format",
            "stream-json",
            "--permission-prompt-tool",
            "stdio",
        ] {
            args.push(flag.to_string());
        }
        // A read-only session (a reviewer) plans instead of editing, unless the operator chose
        // a permission mode.
        if spec.sandbox.as_deref() == Some("read-only") && !args.iter().any(|a| a == "--permission-mode") {
            args.extend(["--permission-mode".to_string(), "plan".to_string()]);
        }
        if let Some(id) = &spec.resume {
            args.extend(["--resume".to_string(), id.clone()]);
        }
        if let Some(model) = &spec.model {
            args.extend(["--model".to_string(), model.clone()]);
        }
        args.extend(super::mcp::claude_args(spec.mcp.as_ref()));
        let resuming = spec.resume.is_some();
        session::start(&spec, &args, &self.options, |out| Claude::new(&spec, out)).await.map_err(|e| match e {
            // Claude exits at once when it cannot find the session to resume.
            RuntimeError::Handshake(message) if resuming => RuntimeError::Resume(message),
            other => other,
        })
    }
}

enum Control {
    Initialize,
    Interrupt,
}

struct Permission {
    claude_id: String,
    tool_use_id: Option<String>,
    input: Value,
    suggestions: Option<Value>,
    /// `AskUserQuestion`: answered with text rather than allowed or denied.
    question: bool,
}

struct Tool {
    name: String,
    input: Value,
}

struct Claude {
    out: mpsc::UnboundedSender<String>,
    next_request: u64,
    controls: HashMap<String, Control>,
    resume: Option<String>,
    session_id: Option<String>,
    turn: Option<bool>,
    tools: HashMap<String, Tool>,
    denied: HashSet<String>,
    permissions: HashMap<String, Permission>,
    cost_so_far: f64,
}

const DENY_MESSAGE: &str = "The user denied this action.";

impl Claude {
    fn new(spec: &SessionSpec, out: mpsc::UnboundedSender<String>) -> Self {
        Claude {
            out,
            next_request: 0,
            controls: HashMap::new(),
            resume: spec.resume.clone(),
            session_id: spec.resume.clone(),
            turn: None,
            tools: HashMap::new(),
            denied: HashSet::new(),
            permissions: HashMap::new(),
            cost_so_far: 0.0,
        }
    }

    fn send(&self, msg: Value) {
        let _ = self.out.send(msg.to_string());
    }

    fn control(&mut self, subtype: &str, tag: Control) {
        self.next_request += 1;
        let request_id = format!("req_{}_{subtype}", self.next_request);
        self.send(json!({ "type": "control_request", "request_id": request_id, "request": { "subtype": subtype } }));
        self.controls.insert(request_id, tag);
    }

    fn control_response(&self, request_id: &str, response: Value) {
        self.send(json!({
            "type": "control_response",
            "response": { "subtype": "success", "request_id": request_id, "response": response },
        }));
    }

    fn control_error(&self, request_id: &str, error: &str) {
        self.send(json!({
            "type": "control_response",
            "response": { "subtype": "error", "request_id": request_id, "error": error },
        }));
    }

    fn on_control_response(&mut self, response: &Value, io: &mut Io) {
        let request_id = response.get("request_id").and_then(Value::as_str).unwrap_or_default();
        let Some(tag) = self.controls.remove(request_id) else {
            tracing::warn!(agent = %io.agent, request_id, "skipping a control response to an unknown request");
            return;
        };
        let ok = response.get("subtype").and_then(Value::as_str) == Some("success");
        match tag {
            Control::Initialize if ok => {
                if let Some(id) = self.resume.clone() {
                    io.session_ready(id, true);
                }
                io.ready();
            }
            Control::Initialize => {
                let error = response.get("error").and_then(Value::as_str).unwrap_or("initialize was refused");
                io.fail(RuntimeError::Handshake(error.to_string()));
            }
            Control::Interrupt if !ok => tracing::warn!(agent = %io.agent, "claude refused the interrupt"),
            Control::Interrupt => {}
        }
    }

    fn on_control_request(&mut self, request_id: String, request: &Value, io: &mut Io) {
        match request.get("subtype").and_then(Value::as_str) {
            Some("can_use_tool") => self.on_permission(request_id, request, io),
            other => {
                tracing::warn!(agent = %io.agent, subtype = ?other, "refusing an unsupported claude control request");
                self.control_error(&request_id, "not supported by this client");
            }
        }
    }

    fn on_permission(&mut self, claude_id: String, request: &Value, io: &mut Io) {
        let tool = request.get("tool_name").and_then(Value::as_str).unwrap_or("a tool").to_string();
        let input = request.get("input").cloned().unwrap_or(Value::Null);
        let tool_use_id = request.get("tool_use_id").and_then(Value::as_str).map(str::to_owned);
        let suggestions = request.get("permission_suggestions").cloned();
        // Ids are claude's own (UUIDs): unique, and what the answer must carry.
        let request_id = claude_id.clone();
        if tool == "AskUserQuestion" {
            let text = questions(&input)
                .iter()
                .map(
                    |(q, options)| {
                        if options.is_empty() { q.clone() } else { format!("{q} ({})", options.join(" / ")) }
                    },
                )
                .collect::<Vec<_>>()
                .join("\n");
            self.permissions
                .insert(request_id.clone(), Permission { claude_id, tool_use_id, input, suggestions, question: true });
            io.emit(RuntimeEvent::Question { request_id, text });
            return;
        }
        let (kind, action, detail) = describe(&tool, &input);
        // The agent's own words for why, where the CLI passes them on.
        let reason = ["decision_reason", "title"]
            .iter()
            .find_map(|k| request.get(*k).and_then(Value::as_str).filter(|r| !r.trim().is_empty()))
            .map(str::to_owned)
            .or_else(|| input.get("description").and_then(Value::as_str).map(str::to_owned));
        self.permissions
            .insert(request_id.clone(), Permission { claude_id, tool_use_id, input, suggestions, question: false });
        io.emit(RuntimeEvent::ApprovalRequested(ApprovalRequest {
            request_id,
            kind,
            action,
            detail,
            cwd: None,
            reason,
        }));
    }

    fn on_assistant(&mut self, message: &Value, io: &mut Io) {
        for block in message.pointer("/message/content").and_then(Value::as_array).into_iter().flatten() {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => {
                    if let Some(text) = block.get("text").and_then(Value::as_str) {
                        io.emit(RuntimeEvent::AgentText { text: text.to_string() });
                    }
                }
                Some("tool_use") => {
                    let id = block.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                    let name = block.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    let input = block.get("input").cloned().unwrap_or(Value::Null);
                    match name.as_str() {
                        "Bash" => {
                            let command = input.get("command").and_then(Value::as_str).unwrap_or_default();
                            io.emit(RuntimeEvent::CommandStarted { id: id.clone(), command: command.to_string() });
                        }
                        "TodoWrite" => io.emit(RuntimeEvent::Plan { steps: todos(&input) }),
                        _ => {}
                    }
                    self.tools.insert(id, Tool { name, input });
                }
                _ => {}
            }
        }
    }

    fn on_tool_results(&mut self, message: &Value, io: &mut Io) {
        let Some(blocks) = message.pointer("/message/content").and_then(Value::as_array) else { return };
        for block in blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result")) {
            let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or_default().to_string();
            let Some(tool) = self.tools.remove(&id) else { continue };
            let is_error = block.get("is_error").and_then(Value::as_bool).unwrap_or(false);
            let denied = self.denied.remove(&id);
            let output = result_text(block.get("content"));
            match tool.name.as_str() {
                "Bash" => {
                    let command = tool.input.get("command").and_then(Value::as_str).unwrap_or_default().to_string();
                    let (status, exit_code) = match (denied, is_error) {
                        (true, _) => (CommandStatus::Declined, None),
                        (false, true) => (CommandStatus::Failed, exit_code(&output)),
                        (false, false) => (CommandStatus::Succeeded, Some(0)),
                    };
                    io.emit(RuntimeEvent::CommandFinished {
                        id,
                        command,
                        status,
                        exit_code,
                        output_tail: output_tail(&output, 20, 2000),
                    });
                }
                "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
                    let path = file_path(&tool.input).unwrap_or_default();
                    let diff = file_diff(&tool.name, &tool.input);
                    io.emit(RuntimeEvent::FileChanged {
                        id,
                        changes: vec![FileChange { path, diff }],
                        applied: !is_error,
                    });
                }
                _ => {}
            }
        }
    }

    fn on_result(&mut self, result: &Value, io: &mut Io) {
        let Some(interrupted) = self.turn.take() else {
            tracing::debug!(agent = %io.agent, "result without a running turn");
            return;
        };
        let subtype = result.get("subtype").and_then(Value::as_str).unwrap_or_default();
        let is_error = result.get("is_error").and_then(Value::as_bool).unwrap_or(false);
        let text = result.get("result").and_then(Value::as_str);
        let outcome = match (subtype, is_error) {
            ("success", false) => TurnOutcome::Completed,
            ("error_during_execution", _) if interrupted => TurnOutcome::Interrupted,
            ("success", true) => TurnOutcome::Failed { message: one_line(text.unwrap_or("the turn failed"), 300) },
            (other, _) => {
                let errors =
                    result.get("errors").and_then(Value::as_array).and_then(|e| e.first()).and_then(Value::as_str);
                TurnOutcome::Failed { message: one_line(errors.or(text).unwrap_or(other), 300) }
            }
        };
        let usage = result.get("usage").map(|u| {
            let total = result.get("total_cost_usd").and_then(Value::as_f64);
            let cost = total.map(|t| (t - self.cost_so_far).max(0.0));
            if let Some(t) = total {
                self.cost_so_far = t;
            }
            Usage {
                input_tokens: u.get("input_tokens").and_then(Value::as_u64),
                output_tokens: u.get("output_tokens").and_then(Value::as_u64),
                cached_input_tokens: u.get("cache_read_input_tokens").and_then(Value::as_u64),
                cost_usd: cost,
            }
        });
        self.withdraw_pending(io);
        self.tools.clear();
        self.denied.clear();
        io.emit(RuntimeEvent::TurnFinished { outcome, usage });
    }

    fn withdraw_pending(&mut self, io: &mut Io) {
        for (request_id, permission) in self.permissions.drain() {
            if !permission.question {
                io.emit(RuntimeEvent::ApprovalResolved { request_id, decision: None });
            }
        }
    }

    fn decide(&mut self, request_id: &str, decision: ApprovalDecision, io: &mut Io) -> Result<(), RuntimeError> {
        let permission = match self.permissions.remove(request_id) {
            Some(p) if !p.question => p,
            Some(p) => {
                self.permissions.insert(request_id.to_string(), p);
                return Err(RuntimeError::UnknownRequest(request_id.to_string()));
            }
            None => return Err(RuntimeError::UnknownRequest(request_id.to_string())),
        };
        let response = match decision {
            ApprovalDecision::AllowOnce => json!({ "behavior": "allow", "updatedInput": permission.input }),
            ApprovalDecision::AllowForSession => {
                let mut response = json!({ "behavior": "allow", "updatedInput": permission.input });
                if let Some(rules) = session_scoped(permission.suggestions.as_ref()) {
                    response["updatedPermissions"] = rules;
                }
                response
            }
            ApprovalDecision::Deny => json!({ "behavior": "deny", "message": DENY_MESSAGE }),
            ApprovalDecision::DenyAndStop => {
                if let Some(interrupted) = self.turn.as_mut() {
                    *interrupted = true;
                }
                json!({ "behavior": "deny", "message": DENY_MESSAGE, "interrupt": true })
            }
        };
        if !decision.allows()
            && let Some(id) = permission.tool_use_id
        {
            self.denied.insert(id);
        }
        self.control_response(&permission.claude_id, response);
        io.emit(RuntimeEvent::ApprovalResolved { request_id: request_id.to_string(), decision: Some(decision) });
        Ok(())
    }

    fn answer(&mut self, request_id: &str, text: &str) -> Result<(), RuntimeError> {
        let permission = match self.permissions.remove(request_id) {
            Some(p) if p.question => p,
            Some(p) => {
                self.permissions.insert(request_id.to_string(), p);
                return Err(RuntimeError::UnknownRequest(request_id.to_string()));
            }
            None => return Err(RuntimeError::UnknownRequest(request_id.to_string())),
        };
        // AskUserQuestion takes its answers as `updatedInput.answers`, keyed by question text.
        let answers: serde_json::Map<String, Value> =
            questions(&permission.input).into_iter().map(|(q, _)| (q, Value::from(text))).collect();
        let mut input = permission.input;
        input["answers"] = Value::Object(answers);
        self.control_response(&permission.claude_id, json!({ "behavior": "allow", "updatedInput": input }));
        Ok(())
    }
}

impl Driver for Claude {
    fn begin(&mut self, _io: &mut Io) {
        self.control("initialize", Control::Initialize);
    }

    fn on_line(&mut self, line: &str, io: &mut Io) {
        let msg: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(agent = %io.agent, error = %e, len = line.len(), "skipping a non-JSON line from claude");
                return;
            }
        };
        match msg.get("type").and_then(Value::as_str) {
            Some("control_response") => self.on_control_response(msg.get("response").unwrap_or(&Value::Null), io),
            Some("control_request") => {
                let request_id = msg.get("request_id").and_then(Value::as_str).unwrap_or_default().to_string();
                self.on_control_request(request_id, msg.get("request").unwrap_or(&Value::Null), io);
            }
            Some("control_cancel_request") => {
                let id = msg.get("request_id").and_then(Value::as_str).unwrap_or_default();
                if let Some(p) = self.permissions.remove(id)
                    && !p.question
                {
                    io.emit(RuntimeEvent::ApprovalResolved { request_id: id.to_string(), decision: None });
                }
            }
            Some("system") if msg.get("subtype").and_then(Value::as_str) == Some("init") => {
                if let Some(id) = msg.get("session_id").and_then(Value::as_str) {
                    self.session_id = Some(id.to_string());
                    // Announced only when new: a resumed id was announced at the handshake.
                    io.session_ready(id.to_string(), false);
                }
            }
            Some("assistant") => self.on_assistant(&msg, io),
            Some("user") => self.on_tool_results(&msg, io),
            Some("result") => self.on_result(&msg, io),
            Some(other) => tracing::trace!(agent = %io.agent, kind = other, "ignoring claude output"),
            None => tracing::warn!(agent = %io.agent, "skipping a claude line without a type"),
        }
    }

    fn on_command(&mut self, command: Command, io: &mut Io) {
        match command {
            Command::Turn { text, files, reply } => {
                if self.turn.is_some() {
                    let _ = reply.send(Err(RuntimeError::Busy));
                    return;
                }
                let session_id = self.session_id.clone().unwrap_or_else(|| "default".to_string());
                self.send(json!({
                    "type": "user",
                    "message": { "role": "user", "content": content(text, &files) },
                    "parent_tool_use_id": null,
                    "session_id": session_id,
                }));
                self.turn = Some(false);
                io.emit(RuntimeEvent::TurnStarted { turn_id: None });
                let _ = reply.send(Ok(()));
            }
            Command::Decide { request_id, decision, reply } => {
                let _ = reply.send(self.decide(&request_id, decision, io));
            }
            Command::Answer { request_id, text, reply } => {
                let _ = reply.send(self.answer(&request_id, &text));
            }
            Command::Interrupt { reply } => {
                let Some(interrupted) = self.turn.as_mut() else {
                    let _ = reply.send(Err(RuntimeError::NoTurn));
                    return;
                };
                *interrupted = true;
                self.control("interrupt", Control::Interrupt);
                let _ = reply.send(Ok(()));
            }
        }
    }

    fn on_exit(&mut self, io: &mut Io) {
        self.withdraw_pending(io);
    }
}

/// Kind, human action and detail of a tool permission prompt.
/// A user message's content: the text alone, or the text and one base64 image block per
/// image (the Messages API's `{"type":"image","source":{"type":"base64",...}}`). An image that
/// cannot be read is named in the text instead of failing the turn.
fn content(text: String, files: &[InputFile]) -> Value {
    let images: Vec<&InputFile> = files.iter().filter(|f| f.image).collect();
    if images.is_empty() {
        return Value::String(text);
    }
    let mut text = text;
    let mut blocks = Vec::new();
    for image in images {
        match std::fs::read(&image.path) {
            Ok(bytes) => blocks.push(json!({
                "type": "image",
                "source": { "type": "base64", "media_type": image.mime, "data": BASE64.encode(bytes) },
            })),
            Err(e) => text.push_str(&format!("\n(The image {} could not be read: {e}.)", image.name)),
        }
    }
    blocks.insert(0, json!({ "type": "text", "text": text }));
    Value::Array(blocks)
}

fn describe(tool: &str, input: &Value) -> (ApprovalKind, String, Option<String>) {
    match tool {
        "Bash" => {
            let command = input.get("command").and_then(Value::as_str).unwrap_or_default();
            (ApprovalKind::Command, format!("run `{command}`"), None)
        }
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => {
            let path = file_path(input).unwrap_or_else(|| "a file".to_string());
            (ApprovalKind::FileChange, format!("edit {path}"), file_diff(tool, input))
        }
        _ => (ApprovalKind::Tool, format!("use {tool}"), Some(input.to_string())),
    }
}

fn file_path(input: &Value) -> Option<String> {
    input.get("file_path").or_else(|| input.get("notebook_path")).and_then(Value::as_str).map(str::to_owned)
}

/// Claude sends whole contents or string replacements, not diffs: render them diff-like.
fn file_diff(tool: &str, input: &Value) -> Option<String> {
    let lines = |prefix: &str, text: &str| text.lines().map(|l| format!("{prefix}{l}")).collect::<Vec<_>>().join("\n");
    match tool {
        "Write" => input.get("content").and_then(Value::as_str).map(|c| lines("+", c)),
        "Edit" => {
            let old = input.get("old_string").and_then(Value::as_str)?;
            let new = input.get("new_string").and_then(Value::as_str)?;
            Some(format!("{}\n{}", lines("-", old), lines("+", new)))
        }
        "MultiEdit" => {
            let edits = input.get("edits").and_then(Value::as_array)?;
            let parts: Vec<String> = edits
                .iter()
                .filter_map(|e| {
                    Some(format!(
                        "{}\n{}",
                        lines("-", e.get("old_string")?.as_str()?),
                        lines("+", e.get("new_string")?.as_str()?)
                    ))
                })
                .collect();
            Some(parts.join("\n"))
        }
        _ => None,
    }
}

fn result_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => {
            blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Claude's Bash failures start with "Exit code N".
fn exit_code(output: &str) -> Option<i32> {
    output.strip_prefix("Exit code ")?.split_whitespace().next()?.parse().ok()
}

fn todos(input: &Value) -> Vec<PlanStep> {
    input
        .get("todos")
        .and_then(Value::as_array)
        .map(|todos| {
            todos
                .iter()
                .filter_map(|t| {
                    let status = match t.get("status")?.as_str()? {
                        "completed" => PlanStepStatus::Completed,
                        "in_progress" => PlanStepStatus::InProgress,
                        _ => PlanStepStatus::Pending,
                    };
                    Some(PlanStep { text: t.get("content")?.as_str()?.to_string(), status })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// AskUserQuestion's questions with their option labels.
fn questions(input: &Value) -> Vec<(String, Vec<String>)> {
    input
        .get("questions")
        .and_then(Value::as_array)
        .map(|qs| {
            qs.iter()
                .filter_map(|q| {
                    let text = q.get("question")?.as_str()?.to_string();
                    let options = q
                        .get("options")
                        .and_then(Value::as_array)
                        .map(|o| o.iter().filter_map(|o| o.get("label")?.as_str().map(str::to_owned)).collect())
                        .unwrap_or_default();
                    Some((text, options))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Claude's suggested rules, narrowed to this session (they may name project settings files).
fn session_scoped(suggestions: Option<&Value>) -> Option<Value> {
    let list = suggestions?.as_array()?;
    let scoped: Vec<Value> = list
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s["destination"] = json!("session");
            s
        })
        .collect();
    (!scoped.is_empty()).then_some(Value::Array(scoped))
}
