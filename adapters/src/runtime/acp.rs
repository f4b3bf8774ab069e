//! Any Agent Client Protocol agent: JSON-RPC 2.0 over stdio, typed with
//! `agent-client-protocol-schema`.
//!
//! `initialize` → `session/new` (or `session/load` when resuming and advertised) → one
//! `session/prompt` per turn, whose response carries the stop reason; `session/update`
//! notifications stream text, plans and tool calls; `session/request_permission` asks.
//!
//! One connection can host several sessions, but agents do not advertise whether they cope
//! with that (ACP has no capability for it), so a session shares its agent process only when
//! its spec asks (`share_process: Some(true)`); then sessions of one process key (program,
//! arguments, environment) are sessions of one connection (see [`super::shared`]), each with
//! its own `cwd` and MCP servers in `session/new`. A session that leaves is closed with
//! `session/close` where the agent advertises `sessionCapabilities.close`, else forgotten.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use agent_client_protocol_schema::ProtocolVersion;
use agent_client_protocol_schema::v1::{
    CancelNotification, ClientCapabilities, ContentBlock, ImageContent, Implementation, InitializeRequest,
    InitializeResponse, LoadSessionRequest, NewSessionRequest, NewSessionResponse, PermissionOption,
    PermissionOptionKind, PlanEntryStatus, PromptRequest, PromptResponse, RequestPermissionOutcome,
    RequestPermissionRequest, RequestPermissionResponse, ResourceLink, SelectedPermissionOutcome, SessionNotification,
    SessionUpdate, StopReason, TextContent, ToolCallContent, ToolCallStatus, ToolKind,
};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;
use taskgate_core::runtime::{
    AgentRuntime, AgentSession, ApprovalDecision, ApprovalKind, ApprovalRequest, CommandStatus, FileChange, InputFile,
    PlanStep, PlanStepStatus, RuntimeError, RuntimeEvent, SessionSpec, TurnOutcome, one_line, output_tail,
};
use tokio::sync::mpsc;

use super::RuntimeOptions;
use super::jsonrpc::{METHOD_NOT_FOUND, Message, Rpc, RpcError, id_text, parse};
use super::session::{self, Command, Driver, Io};
use super::shared::{Dialect, Pool};

/// Starts sessions with any ACP agent (`gemini --experimental-acp`, `opencode acp`, ...).
#[derive(Debug, Clone, Default)]
pub struct AcpRuntime {
    options: RuntimeOptions,
    pool: Arc<Pool>,
}

impl AcpRuntime {
    pub fn new(options: RuntimeOptions) -> Self {
        AcpRuntime { options, pool: Arc::default() }
    }

    pub(crate) fn on_pool(options: RuntimeOptions, pool: Arc<Pool>) -> Self {
        AcpRuntime { options, pool }
    }
}

/// Only sessions that ask for it share a connection.
pub(crate) fn process_key(spec: &SessionSpec) -> Option<String> {
    (spec.share_process == Some(true)).then(|| super::shared_key(spec, &spec.args))
}

#[async_trait]
impl AgentRuntime for AcpRuntime {
    async fn start(&self, spec: SessionSpec) -> Result<Box<dyn AgentSession>, RuntimeError> {
        let options = self.options.clone();
        let make = |out| Acp::new(&spec, &options, out);
        let Some(key) = process_key(&spec) else {
            return session::start(&spec, &spec.args, &self.options, make).await;
        };
        // `session/new` carries the MCP servers (token included): the shared process has none.
        let mut process = spec.clone();
        process.mcp = None;
        process.cwd = super::absolute_cwd(&spec);
        let link = self.pool.connect(&key, Dialect::Acp, &process, &spec.args, &self.options)?;
        session::start_on(link, &spec.agent, &self.options, make).await
    }

    fn process_key(&self, spec: &SessionSpec) -> Option<String> {
        process_key(spec)
    }
}

enum Pending {
    Initialize,
    NewSession,
    LoadSession(String),
    Prompt,
}

/// What we know about a tool call, merged from `tool_call` and its updates.
#[derive(Default)]
struct Tool {
    kind: Option<ToolKind>,
    title: String,
    command: Option<String>,
    changes: Vec<FileChange>,
    output: String,
    raw_output: Option<Value>,
}

struct Permission {
    rpc_id: Value,
    options: Vec<PermissionOption>,
    tool_call_id: String,
}

struct Acp {
    rpc: Rpc<Pending>,
    cwd: std::path::PathBuf,
    resume: Option<String>,
    /// The gateway's MCP server, offered in `session/new` and `session/load`.
    mcp: Option<taskgate_core::runtime::McpServer>,
    client: Implementation,
    session_id: Option<String>,
    /// While `session/load` replays history, its updates are old news.
    loading: bool,
    /// A turn is running; true once the person asked to stop it.
    turn: Option<bool>,
    tools: HashMap<String, Tool>,
    denied: HashSet<String>,
    permissions: HashMap<String, Permission>,
}

impl Acp {
    fn new(spec: &SessionSpec, options: &RuntimeOptions, out: mpsc::UnboundedSender<String>) -> Self {
        Acp {
            rpc: Rpc::new(out, true),
            cwd: super::absolute_cwd(spec),
            resume: spec.resume.clone(),
            mcp: spec.mcp.clone(),
            client: Implementation::new(options.client_name.clone(), options.client_version.clone()),
            session_id: None,
            loading: false,
            turn: None,
            tools: HashMap::new(),
            denied: HashSet::new(),
            permissions: HashMap::new(),
        }
    }

    /// The gateway's MCP server in the agent's best transport; none when there is nothing to
    /// offer (or no bridge for an agent without HTTP).
    fn mcp_servers(&self, speaks_http: bool) -> Vec<agent_client_protocol_schema::v1::McpServer> {
        let Some(mcp) = &self.mcp else { return Vec::new() };
        super::mcp::acp_server(mcp, speaks_http)
            .and_then(|v| {
                serde_json::from_value(v).map_err(|e| tracing::warn!(error = %e, "cannot offer the MCP server")).ok()
            })
            .into_iter()
            .collect()
    }

    fn request(&mut self, method: &str, params: impl Serialize, tag: Pending) {
        match serde_json::to_value(params) {
            Ok(params) => {
                self.rpc.request(method, params, tag);
            }
            Err(e) => tracing::error!(method, error = %e, "could not encode an ACP request"),
        }
    }

    fn on_response(&mut self, tag: Pending, outcome: Result<Value, RpcError>, io: &mut Io) {
        match (tag, outcome) {
            (Pending::Initialize, Ok(result)) => {
                let capabilities =
                    serde_json::from_value::<InitializeResponse>(result).map(|r| r.agent_capabilities).ok();
                let can_load = capabilities.as_ref().is_some_and(|c| c.load_session);
                let speaks_http = capabilities.as_ref().is_some_and(|c| c.mcp_capabilities.http);
                let servers = self.mcp_servers(speaks_http);
                match self.resume.clone() {
                    Some(id) if can_load => {
                        self.loading = true;
                        let request = LoadSessionRequest::new(id.clone(), self.cwd.clone()).mcp_servers(servers);
                        self.request("session/load", request, Pending::LoadSession(id));
                    }
                    Some(_) => io.fail(RuntimeError::Resume("the agent cannot load sessions".into())),
                    None => {
                        let request = NewSessionRequest::new(self.cwd.clone()).mcp_servers(servers);
                        self.request("session/new", request, Pending::NewSession);
                    }
                }
            }
            (Pending::Initialize, Err(e)) => io.fail(RuntimeError::Handshake(format!("initialize: {e}"))),
            (Pending::NewSession, Ok(result)) => match serde_json::from_value::<NewSessionResponse>(result) {
                Ok(response) => {
                    let id = response.session_id.0.to_string();
                    self.session_id = Some(id.clone());
                    io.session_ready(id, false);
                    io.ready();
                }
                Err(e) => io.fail(RuntimeError::Handshake(format!("session/new: {e}"))),
            },
            (Pending::NewSession, Err(e)) => io.fail(RuntimeError::Handshake(format!("session/new: {e}"))),
            (Pending::LoadSession(id), Ok(_)) => {
                self.loading = false;
                self.session_id = Some(id.clone());
                io.session_ready(id, true);
                io.ready();
            }
            (Pending::LoadSession(_), Err(e)) => io.fail(RuntimeError::Resume(e.message)),
            (Pending::Prompt, outcome) => {
                let Some(cancelled) = self.turn.take() else { return };
                let outcome = match outcome.map(serde_json::from_value::<PromptResponse>) {
                    Ok(Ok(response)) => match response.stop_reason {
                        StopReason::EndTurn => TurnOutcome::Completed,
                        StopReason::Cancelled => TurnOutcome::Interrupted,
                        StopReason::MaxTokens => {
                            TurnOutcome::Failed { message: "the agent hit its token limit".into() }
                        }
                        StopReason::MaxTurnRequests => {
                            TurnOutcome::Failed { message: "the agent hit its request limit".into() }
                        }
                        StopReason::Refusal => TurnOutcome::Failed { message: "the agent refused".into() },
                        _ => TurnOutcome::Completed,
                    },
                    Ok(Err(e)) => TurnOutcome::Failed { message: format!("unreadable prompt response: {e}") },
                    Err(_) if cancelled => TurnOutcome::Interrupted,
                    Err(e) => TurnOutcome::Failed { message: one_line(&e.message, 300) },
                };
                self.withdraw_pending(io);
                self.tools.clear();
                self.denied.clear();
                io.emit(RuntimeEvent::TurnFinished { outcome, usage: None });
            }
        }
    }

    fn on_update(&mut self, params: Value, io: &mut Io) {
        let notification: SessionNotification = match serde_json::from_value(params) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(agent = %io.agent, error = %e, "skipping an unknown session/update");
                return;
            }
        };
        if self.loading || self.session_id.as_deref() != Some(&*notification.session_id.0) {
            return;
        }
        match notification.update {
            SessionUpdate::AgentMessageChunk(chunk) => {
                if let ContentBlock::Text(text) = chunk.content {
                    io.emit(RuntimeEvent::AgentText { text: text.text });
                }
            }
            SessionUpdate::Plan(plan) => {
                let steps = plan
                    .entries
                    .into_iter()
                    .map(|e| PlanStep {
                        text: e.content,
                        status: match e.status {
                            PlanEntryStatus::Completed => PlanStepStatus::Completed,
                            PlanEntryStatus::InProgress => PlanStepStatus::InProgress,
                            _ => PlanStepStatus::Pending,
                        },
                    })
                    .collect();
                io.emit(RuntimeEvent::Plan { steps });
            }
            SessionUpdate::ToolCall(call) => {
                let id = call.tool_call_id.0.to_string();
                let mut tool = Tool { kind: Some(call.kind), title: call.title, ..Tool::default() };
                tool.merge(call.raw_input.as_ref(), &call.content, call.raw_output);
                self.tools.insert(id.clone(), tool);
                self.tool_progress(&id, Some(call.status), io);
            }
            SessionUpdate::ToolCallUpdate(update) => {
                let id = update.tool_call_id.0.to_string();
                let fields = update.fields;
                let tool = self.tools.entry(id.clone()).or_default();
                if let Some(kind) = fields.kind {
                    tool.kind = Some(kind);
                }
                if let Some(title) = fields.title {
                    tool.title = title;
                }
                tool.merge(fields.raw_input.as_ref(), fields.content.as_deref().unwrap_or_default(), fields.raw_output);
                self.tool_progress(&id, fields.status, io);
            }
            _ => {}
        }
    }

    /// Emits command start/finish and file changes as a tool call moves through its states.
    fn tool_progress(&mut self, id: &str, status: Option<ToolCallStatus>, io: &mut Io) {
        let Some(tool) = self.tools.get(id) else { return };
        let execute = tool.kind == Some(ToolKind::Execute);
        match status {
            Some(ToolCallStatus::InProgress) if execute => {
                io.emit(RuntimeEvent::CommandStarted { id: id.to_string(), command: tool.command_text() });
            }
            Some(done @ (ToolCallStatus::Completed | ToolCallStatus::Failed)) => {
                let Some(tool) = self.tools.remove(id) else { return };
                let denied = self.denied.remove(id);
                let ok = done == ToolCallStatus::Completed;
                if execute {
                    let exit_code = tool
                        .raw_output
                        .as_ref()
                        .and_then(|o| o.get("exitCode").or_else(|| o.get("exit_code")))
                        .and_then(Value::as_i64)
                        .and_then(|c| i32::try_from(c).ok());
                    let status = match (denied, ok) {
                        (true, _) => CommandStatus::Declined,
                        (false, true) => CommandStatus::Succeeded,
                        (false, false) => CommandStatus::Failed,
                    };
                    io.emit(RuntimeEvent::CommandFinished {
                        id: id.to_string(),
                        command: tool.command_text(),
                        status,
                        exit_code,
                        output_tail: output_tail(&tool.output, 20, 2000),
                    });
                } else if !tool.changes.is_empty() {
                    io.emit(RuntimeEvent::FileChanged {
                        id: id.to_string(),
                        changes: tool.changes,
                        applied: ok && !denied,
                    });
                }
            }
            _ => {}
        }
    }

    fn on_permission(&mut self, rpc_id: Value, params: Value, io: &mut Io) {
        let request: RequestPermissionRequest = match serde_json::from_value(params) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(agent = %io.agent, error = %e, "refusing a malformed permission request");
                self.rpc.respond_error(&rpc_id, -32602, "invalid params");
                return;
            }
        };
        let tool_call_id = request.tool_call.tool_call_id.0.to_string();
        let fields = request.tool_call.fields;
        let tool = self.tools.entry(tool_call_id.clone()).or_default();
        if let Some(kind) = fields.kind {
            tool.kind = Some(kind);
        }
        if let Some(title) = fields.title {
            tool.title = title;
        }
        tool.merge(fields.raw_input.as_ref(), fields.content.as_deref().unwrap_or_default(), None);
        let (kind, action, detail) = match tool.kind {
            Some(ToolKind::Execute) => (ApprovalKind::Command, format!("run `{}`", tool.command_text()), None),
            Some(ToolKind::Edit | ToolKind::Delete | ToolKind::Move) => {
                let paths: Vec<&str> = tool.changes.iter().map(|c| c.path.as_str()).collect();
                let action = if paths.is_empty() { tool.title.clone() } else { format!("edit {}", paths.join(", ")) };
                let diff: Vec<String> = tool
                    .changes
                    .iter()
                    .filter_map(|c| c.diff.as_ref().map(|d| format!("--- {}\n{d}", c.path)))
                    .collect();
                (ApprovalKind::FileChange, action, (!diff.is_empty()).then(|| diff.join("\n")))
            }
            _ => (ApprovalKind::Tool, tool.title.clone(), None),
        };
        let request_id = id_text(&rpc_id);
        self.permissions.insert(request_id.clone(), Permission { rpc_id, options: request.options, tool_call_id });
        io.emit(RuntimeEvent::ApprovalRequested(ApprovalRequest {
            request_id,
            kind,
            action,
            detail,
            cwd: None,
            reason: None,
        }));
    }

    fn respond_permission(&self, rpc_id: &Value, outcome: RequestPermissionOutcome) {
        match serde_json::to_value(RequestPermissionResponse::new(outcome)) {
            Ok(result) => self.rpc.respond(rpc_id, result),
            Err(e) => tracing::error!(error = %e, "could not encode a permission response"),
        }
    }

    fn decide(&mut self, request_id: &str, decision: ApprovalDecision, io: &mut Io) -> Result<(), RuntimeError> {
        let permission =
            self.permissions.remove(request_id).ok_or_else(|| RuntimeError::UnknownRequest(request_id.to_string()))?;
        let pick = |kinds: &[PermissionOptionKind]| {
            kinds.iter().find_map(|k| permission.options.iter().find(|o| o.kind == *k)).map(|o| o.option_id.clone())
        };
        use PermissionOptionKind::{AllowAlways, AllowOnce, RejectAlways, RejectOnce};
        let chosen = match decision {
            ApprovalDecision::AllowOnce => pick(&[AllowOnce, AllowAlways]),
            ApprovalDecision::AllowForSession => pick(&[AllowAlways, AllowOnce]),
            ApprovalDecision::Deny => pick(&[RejectOnce, RejectAlways]),
            ApprovalDecision::DenyAndStop => None,
        };
        if !decision.allows() {
            self.denied.insert(permission.tool_call_id.clone());
        }
        match chosen {
            Some(option) => {
                self.respond_permission(
                    &permission.rpc_id,
                    RequestPermissionOutcome::Selected(SelectedPermissionOutcome::new(option)),
                );
            }
            // No matching option, or stop asked for: `session/cancel`, then "cancelled" to every
            // pending request, as the protocol requires of a client that cancels.
            None => {
                self.cancel(io);
                self.respond_permission(&permission.rpc_id, RequestPermissionOutcome::Cancelled);
            }
        }
        io.emit(RuntimeEvent::ApprovalResolved { request_id: request_id.to_string(), decision: Some(decision) });
        Ok(())
    }

    fn cancel(&mut self, io: &mut Io) {
        let Some(cancelled) = self.turn.as_mut() else { return };
        *cancelled = true;
        if let Some(id) = self.session_id.clone() {
            match serde_json::to_value(CancelNotification::new(id)) {
                Ok(params) => self.rpc.notify("session/cancel", Some(params)),
                Err(e) => tracing::error!(error = %e, "could not encode session/cancel"),
            }
        }
        for (request_id, permission) in std::mem::take(&mut self.permissions) {
            self.respond_permission(&permission.rpc_id, RequestPermissionOutcome::Cancelled);
            io.emit(RuntimeEvent::ApprovalResolved { request_id, decision: None });
        }
    }

    fn withdraw_pending(&mut self, io: &mut Io) {
        for (request_id, _) in self.permissions.drain() {
            io.emit(RuntimeEvent::ApprovalResolved { request_id, decision: None });
        }
    }
}

impl Tool {
    fn merge(&mut self, raw_input: Option<&Value>, content: &[ToolCallContent], raw_output: Option<Value>) {
        if let Some(command) = raw_input.and_then(command_of) {
            self.command = Some(command);
        }
        for item in content {
            match item {
                ToolCallContent::Diff(diff) => {
                    let path = diff.path.to_string_lossy().into_owned();
                    let mut text = String::new();
                    for line in diff.old_text.as_deref().unwrap_or_default().lines() {
                        text.push_str(&format!("-{line}\n"));
                    }
                    for line in diff.new_text.lines() {
                        text.push_str(&format!("+{line}\n"));
                    }
                    self.changes.retain(|c| c.path != path);
                    self.changes.push(FileChange { path, diff: Some(text) });
                }
                ToolCallContent::Content(c) => {
                    if let ContentBlock::Text(TextContent { text, .. }) = &c.content {
                        self.output.push_str(text);
                    }
                }
                _ => {}
            }
        }
        if raw_output.is_some() {
            self.raw_output = raw_output;
        }
    }

    fn command_text(&self) -> String {
        self.command.clone().unwrap_or_else(|| self.title.clone())
    }
}

/// The shell command in a tool's raw input, in the shapes agents use.
/// A prompt's content: the text, then each image as image content (base64) and every other
/// file as a resource link to its `file://` path. An image that cannot be read becomes a
/// resource link too, so the agent can still look.
fn prompt_blocks(text: String, files: &[InputFile]) -> Vec<ContentBlock> {
    let mut blocks = vec![ContentBlock::Text(TextContent::new(text))];
    for file in files {
        let bytes = if file.image { std::fs::read(&file.path).ok() } else { None };
        blocks.push(match bytes {
            Some(bytes) => ContentBlock::Image(ImageContent::new(BASE64.encode(bytes), file.mime.clone())),
            None => {
                let mut link = ResourceLink::new(file.name.clone(), format!("file://{}", file.path.display()));
                link.mime_type = Some(file.mime.clone());
                ContentBlock::ResourceLink(link)
            }
        });
    }
    blocks
}

fn command_of(input: &Value) -> Option<String> {
    match input.get("command")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")),
        _ => None,
    }
}

impl Driver for Acp {
    fn begin(&mut self, _io: &mut Io) {
        let request = InitializeRequest::new(ProtocolVersion::V1)
            .client_capabilities(ClientCapabilities::new())
            .client_info(self.client.clone());
        self.request("initialize", request, Pending::Initialize);
    }

    fn on_line(&mut self, line: &str, io: &mut Io) {
        match parse(&io.agent, line) {
            Some(Message::Response { id, outcome }) => {
                if let Some(tag) = self.rpc.take(&io.agent, &id) {
                    self.on_response(tag, outcome, io);
                }
            }
            Some(Message::Notification { method, params }) => match method.as_str() {
                "session/update" => self.on_update(params, io),
                _ => tracing::debug!(agent = %io.agent, method, "ignoring an ACP notification"),
            },
            Some(Message::Request { id, method, params }) => match method.as_str() {
                "session/request_permission" => self.on_permission(id, params, io),
                // We advertise no fs or terminal capabilities, so these are refused.
                _ => {
                    tracing::warn!(agent = %io.agent, method, "refusing an unsupported ACP request");
                    self.rpc.respond_error(&id, METHOD_NOT_FOUND, "not supported by this client");
                }
            },
            None => {}
        }
    }

    fn on_command(&mut self, command: Command, io: &mut Io) {
        match command {
            Command::Turn { text, files, reply } => {
                let Some(session_id) = self.session_id.clone() else {
                    let _ = reply.send(Err(RuntimeError::Dead));
                    return;
                };
                if self.turn.is_some() {
                    let _ = reply.send(Err(RuntimeError::Busy));
                    return;
                }
                let prompt = PromptRequest::new(session_id, prompt_blocks(text, &files));
                self.request("session/prompt", prompt, Pending::Prompt);
                self.turn = Some(false);
                io.emit(RuntimeEvent::TurnStarted { turn_id: None });
                let _ = reply.send(Ok(()));
            }
            Command::Decide { request_id, decision, reply } => {
                let _ = reply.send(self.decide(&request_id, decision, io));
            }
            Command::Answer { reply, .. } => {
                let _ = reply.send(Err(RuntimeError::Unsupported("questions".into())));
            }
            Command::Interrupt { reply } => {
                if self.turn.is_none() {
                    let _ = reply.send(Err(RuntimeError::NoTurn));
                    return;
                }
                self.cancel(io);
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// The connection goes on: the running prompt is cancelled (pending permissions answered
    /// `cancelled`); the host closes the session afterwards where the agent can.
    fn on_leave(&mut self, io: &mut Io) {
        self.cancel(io);
    }

    fn on_exit(&mut self, io: &mut Io) {
        self.rpc.drain();
        self.withdraw_pending(io);
    }
}
