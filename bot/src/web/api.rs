//! The JSON API the console page uses, and anyone else with the token: tasks with their
//! executions, timelines and approvals, and answering approvals. Described in `bot/openapi.json`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskgate_core::model::{
    Answer, Approval, ApprovalRule, ApprovalStatus, AuditEntry, Body, Event, Execution, Id, NoteEntry, Project, Role,
    RuntimeSession, Scope, Task, TaskStatus, Timestamp,
};
use taskgate_core::runtime::ApprovalKind;
use taskgate_core::store::{Store, StoreError};

use super::auth::Authenticated;
use super::{ApiError, Console};
use crate::engine::Pressed;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Tasks listed at most (newest first).
const MAX_TASKS: u64 = 500;

/// `GET /api/session`: reached only when logged in, so it says who the console user is, how
/// they got in, and the agents (and roles) a task can be given.
pub async fn session(
    Extension(console): Extension<Arc<Console>>,
    who: Option<Extension<Authenticated>>,
) -> Json<Value> {
    let (via, expires_at) = match who.map(|Extension(w)| w) {
        Some(Authenticated::Session(s)) => ("session", Some(s.expires_at)),
        _ => ("token", None),
    };
    let agents: Vec<&String> = console.engine.config().agents.keys().collect();
    Json(json!({
        "authenticated": true,
        "display_name": console.display_name,
        "via": via,
        "expires_at": expires_at,
        "agents": agents,
        "roles": [Role::Editor, Role::Reviewer, Role::Tester],
    }))
}

pub async fn projects(Extension(console): Extension<Arc<Console>>) -> ApiResult<Vec<Project>> {
    Ok(Json(console.store.projects().await?))
}

#[derive(Debug, Deserialize)]
pub struct TaskFilter {
    /// Project name.
    project: Option<String>,
    status: Option<String>,
    /// Agent name: tasks with an execution of that agent.
    agent: Option<String>,
    /// Words the task's title, goal, messages or agent replies contain (all of them, any case).
    q: Option<String>,
    limit: Option<u64>,
}

/// A task as the list shows it.
#[derive(Debug, Serialize)]
pub struct TaskSummary {
    #[serde(flatten)]
    task: Task,
    project: Option<String>,
    agents: Vec<String>,
    pending_approvals: usize,
    /// When something last happened to it: its newest timeline entry or status change.
    last_activity: Timestamp,
    /// With `q`: the line of the timeline that matched, when the title alone did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    matched: Option<String>,
}

pub async fn tasks(
    Extension(console): Extension<Arc<Console>>,
    Query(filter): Query<TaskFilter>,
) -> ApiResult<Vec<TaskSummary>> {
    let status = match filter.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<TaskStatus>().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?),
        None => None,
    };
    let store = console.store.as_ref();
    let projects: HashMap<Id, String> = store.projects().await?.into_iter().map(|p| (p.id, p.name)).collect();
    let mut pending: HashMap<Id, usize> = HashMap::new();
    for approval in store.pending_approvals(None).await? {
        *pending.entry(approval.task_id).or_default() += 1;
    }
    let limit = filter.limit.unwrap_or(200).min(MAX_TASKS);
    let words: Vec<String> = filter.q.as_deref().unwrap_or("").split_whitespace().map(str::to_lowercase).collect();
    let latest = console.activity.latest(store).await?;
    let mut out = Vec::new();
    for task in store.tasks(limit).await? {
        if status.is_some_and(|s| s != task.status) {
            continue;
        }
        let project = task.project_id.and_then(|id| projects.get(&id).cloned());
        if filter.project.as_deref().is_some_and(|p| !p.is_empty() && project.as_deref() != Some(p)) {
            continue;
        }
        let mut agents: Vec<String> = store.executions(task.id).await?.into_iter().map(|e| e.agent).collect();
        agents.dedup();
        if filter.agent.as_deref().is_some_and(|a| !a.is_empty() && !agents.iter().any(|x| x == a)) {
            continue;
        }
        let matched = match search(store, &task, &words).await? {
            Found::No => continue,
            Found::Title => None,
            Found::Line(line) => Some(line),
        };
        let pending_approvals = pending.get(&task.id).copied().unwrap_or(0);
        let last_activity = latest.get(&task.id).map_or(task.updated_at, |at| (*at).max(task.updated_at));
        out.push(TaskSummary { task, project, agents, pending_approvals, last_activity, matched });
    }
    out.sort_by(|a, b| b.last_activity.cmp(&a.last_activity).then(b.task.id.cmp(&a.task.id)));
    Ok(Json(out))
}

enum Found {
    No,
    /// The title or goal holds every word (or there are none).
    Title,
    /// A timeline line does: people's messages, agent replies, questions, turn summaries.
    Line(String),
}

/// Whether `task` holds every one of `words` (lowercase): its title and goal first, else one
/// line of its timeline's text.
async fn search(store: &dyn Store, task: &Task, words: &[String]) -> Result<Found, StoreError> {
    let holds = |text: &str| {
        let text = text.to_lowercase();
        words.iter().all(|w| text.contains(w.as_str()))
    };
    if words.is_empty() || holds(&format!("{} {}", task.title, task.goal)) {
        return Ok(Found::Title);
    }
    for event in store.timeline(task.id).await?.iter().rev() {
        let text = match event.body.known() {
            Some(
                Body::Message { text, .. }
                | Body::AgentText { text }
                | Body::Question { text, .. }
                | Body::QuestionAnswered { text, .. }
                | Body::NoteEntry { text, .. },
            ) => text.as_str(),
            Some(Body::TurnFinished { summary, .. }) => summary.as_str(),
            Some(Body::CommandFinished { command, .. }) => command.as_str(),
            _ => continue,
        };
        if holds(text) {
            let line = text.lines().find(|l| holds(l)).unwrap_or(text);
            return Ok(Found::Line(line.chars().take(160).collect()));
        }
    }
    Ok(Found::No)
}

/// An execution with its newest runtime session.
#[derive(Debug, Serialize)]
pub struct ExecutionView {
    #[serde(flatten)]
    execution: Execution,
    session: Option<RuntimeSession>,
}

/// An approval with the names people read: the task's title and who decided, and what the
/// agent asked in full (a command's directory, a file change's diff) so it is seen before it
/// is decided.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalView {
    #[serde(flatten)]
    approval: Approval,
    task_title: Option<String>,
    decided_by_name: Option<String>,
    request: Option<RequestView>,
    /// The task's project directory: the page shows paths relative to it.
    project_path: Option<String>,
}

impl ApprovalView {
    pub fn id(&self) -> Id {
        self.approval.id
    }

    pub fn status(&self) -> ApprovalStatus {
        self.approval.status
    }
}

/// The agent's request behind an approval, from its `approval_requested` timeline entry.
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    kind: ApprovalKind,
    /// A file change's diff, or a tool's input.
    detail: Option<String>,
    /// Where a command would run.
    cwd: Option<String>,
    /// Why the agent wants it, when it said.
    reason: Option<String>,
    /// The agent that asked.
    agent: Option<String>,
}

/// The requests behind a task's approvals, by approval id.
async fn requests(store: &dyn Store, task: Id) -> Result<HashMap<Id, RequestView>, StoreError> {
    let mut out = HashMap::new();
    for event in store.timeline(task).await? {
        if let Some(Body::ApprovalRequested { approval, request }) = event.body.known() {
            out.insert(
                *approval,
                RequestView {
                    kind: request.kind,
                    detail: request.detail.clone(),
                    cwd: request.cwd.clone(),
                    reason: request.reason.clone(),
                    agent: event.actor.clone(),
                },
            );
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct TaskDetail {
    task: Task,
    project: Option<Project>,
    created_by_name: Option<String>,
    executions: Vec<ExecutionView>,
    approvals: Vec<ApprovalView>,
    /// The restart note's entries (its headline fields are on the task), staleness judged.
    note_entries: Vec<NoteEntryView>,
    /// What the gateway captured for the note from the timeline (instructions, rejected,
    /// evidence, outcomes, open), each with the event it comes from, and the next action it
    /// derived when none was set.
    note_captured: taskgate_core::notes::Captured,
}

/// A restart-note entry as the console shows it: never trusted blindly, so an entry whose
/// cited files changed since it was written carries those files.
#[derive(Debug, Serialize)]
pub struct NoteEntryView {
    #[serde(flatten)]
    entry: NoteEntry,
    /// Files its evidence depends on that changed since its commit; non-empty means stale.
    stale_because: Vec<String>,
}

pub async fn task(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> ApiResult<TaskDetail> {
    let store = console.store.as_ref();
    let task = store.task(id).await?;
    let project = match task.project_id {
        Some(p) => store.projects().await?.into_iter().find(|x| x.id == p),
        None => None,
    };
    let created_by_name = name_of(store, task.created_by).await?;
    let executions = execution_views(store, id).await?;
    let mut asked = requests(store, id).await?;
    let mut approvals = Vec::new();
    for approval in store.approvals(id, 200).await? {
        let request = asked.remove(&approval.id);
        let mut view = approval_view(store, approval, Some(task.title.clone()), request).await?;
        view.project_path = project.as_ref().map(|p| p.path.clone());
        approvals.push(view);
    }
    let note = crate::notes::load(store, &task).await?;
    let note_captured = note.captured;
    let note_entries = note
        .entries
        .into_iter()
        .map(|shown| NoteEntryView { entry: shown.entry, stale_because: shown.stale_because })
        .collect();
    Ok(Json(TaskDetail { task, project, created_by_name, executions, approvals, note_entries, note_captured }))
}

#[derive(Debug, Deserialize)]
pub struct After {
    /// Only events after this event id.
    after: Option<Id>,
}

pub async fn events(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
    Query(after): Query<After>,
) -> ApiResult<Vec<Event>> {
    let store = console.store.as_ref();
    store.task(id).await?;
    let after = after.after.unwrap_or(0);
    Ok(Json(store.timeline(id).await?.into_iter().filter(|e| e.id > after).collect()))
}

pub async fn executions(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
) -> ApiResult<Vec<ExecutionView>> {
    let store = console.store.as_ref();
    store.task(id).await?;
    Ok(Json(execution_views(store, id).await?))
}

/// `GET /api/executions/{id}/diff`: the execution's changes (see `Engine::execution_diff`).
pub async fn execution_diff(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
) -> ApiResult<Option<crate::engine::ExecutionDiff>> {
    Ok(Json(console.engine.execution_diff(id).await?))
}

async fn execution_views(store: &dyn Store, task: Id) -> Result<Vec<ExecutionView>, StoreError> {
    let mut out = Vec::new();
    for execution in store.executions(task).await? {
        let session = store.latest_session(execution.id).await?;
        out.push(ExecutionView { execution, session });
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
pub struct ApprovalFilter {
    /// One task's approvals in any status; without it, every pending approval.
    task: Option<Id>,
}

/// `GET /api/approvals`: the inbox (pending, oldest first), or one task's approvals.
pub async fn approvals(
    Extension(console): Extension<Arc<Console>>,
    Query(filter): Query<ApprovalFilter>,
) -> ApiResult<Vec<ApprovalView>> {
    let store = console.store.as_ref();
    let list = match filter.task {
        Some(task) => store.approvals(task, 200).await?,
        None => store.pending_approvals(None).await?,
    };
    Ok(Json(approval_views(store, list).await?))
}

/// Views of `list`, in its order, reading each task's title and requests once.
pub(crate) async fn approval_views(store: &dyn Store, list: Vec<Approval>) -> Result<Vec<ApprovalView>, ApiError> {
    type Known = (Option<String>, Option<String>, HashMap<Id, RequestView>);
    let mut tasks: HashMap<Id, Known> = HashMap::new();
    let paths: HashMap<Id, String> = store.projects().await?.into_iter().map(|p| (p.id, p.path)).collect();
    let mut out = Vec::with_capacity(list.len());
    for approval in list {
        let (title, path, asked) = match tasks.entry(approval.task_id) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                let task = store.task(approval.task_id).await.ok();
                let path = task.as_ref().and_then(|t| t.project_id).and_then(|p| paths.get(&p).cloned());
                slot.insert((task.map(|t| t.title), path, requests(store, approval.task_id).await?))
            }
        };
        let request = asked.get(&approval.id).cloned();
        let mut view = approval_view(store, approval, title.clone(), request).await?;
        view.project_path = path.clone();
        out.push(view);
    }
    Ok(out)
}

pub async fn approval(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> ApiResult<ApprovalView> {
    let store = console.store.as_ref();
    let approval = store.approval(id).await?;
    Ok(Json(full_view(store, approval).await?))
}

/// An approval's view with its task's title, project and request.
async fn full_view(store: &dyn Store, approval: Approval) -> Result<ApprovalView, ApiError> {
    let id = approval.id;
    approval_views(store, vec![approval])
        .await?
        .pop()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("approval {id} not found")))
}

#[derive(Debug, Default, Deserialize)]
struct ApproveBody {
    /// `once` (default) or `always` (for the rest of the agent session).
    scope: Option<String>,
}

/// `POST /api/approvals/{id}/approve`, body `{"scope": "once"|"always"}` or empty.
pub async fn approve(
    Extension(console): Extension<Arc<Console>>,
    Path(id): Path<Id>,
    body: Bytes,
) -> ApiResult<ApprovalView> {
    let body: ApproveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ApproveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("body: {e}")))?
    };
    let answer = match body.scope.as_deref() {
        None | Some("once") => Answer::Approve(Scope::Once),
        Some("always") => Answer::Approve(Scope::Always),
        Some("project") => Answer::Approve(Scope::Project),
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("scope must be once, always or project, not `{other}`"),
            ));
        }
    };
    decide(&console, id, answer).await
}

/// `POST /api/approvals/{id}/deny`.
pub async fn deny(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> ApiResult<ApprovalView> {
    decide(&console, id, Answer::Deny).await
}

/// Answers through the engine, as a button press on a chat would, so the decision takes the
/// one path every channel takes (recorded, delivered to the agent, announced). 200 with the
/// decided approval when this request decided it; 409 naming who did when someone else had.
async fn decide(console: &Console, id: Id, answer: Answer) -> ApiResult<ApprovalView> {
    let store = console.store.as_ref();
    let before = store.approval(id).await?;
    if before.status != ApprovalStatus::Pending {
        return Err(already_decided(store, before).await);
    }
    let by = console.user(Some(before.task_id), "");
    let pressed = console.engine.decide(&by, id, None, answer).await?;
    console.outbox.notify_one();
    let after = store.approval(id).await?;
    match pressed {
        Pressed::Done(_) => Ok(Json(full_view(store, after).await?)),
        Pressed::Refused(_) if after.status != ApprovalStatus::Pending => Err(already_decided(store, after).await),
        Pressed::Refused(why) => Err(ApiError::new(StatusCode::CONFLICT, why)),
    }
}

/// 409 with the approval as decided: "already approved by Ada via telegram".
async fn already_decided(store: &dyn Store, approval: Approval) -> ApiError {
    let view = match full_view(store, approval).await {
        Ok(view) => view,
        Err(e) => return e,
    };
    let who = view.decided_by_name.clone().unwrap_or_else(|| "someone".into());
    let via = view.approval.decided_channel.map(|c| format!(" via {c}")).unwrap_or_default();
    let message = match view.approval.status {
        ApprovalStatus::Expired => "already expired: the turn ended before an answer".to_owned(),
        status => format!("already {status} by {who}{via}"),
    };
    let detail = serde_json::to_value(&view).unwrap_or(Value::Null);
    ApiError::new(StatusCode::CONFLICT, message).with(detail)
}

async fn approval_view(
    store: &dyn Store,
    approval: Approval,
    task_title: Option<String>,
    request: Option<RequestView>,
) -> Result<ApprovalView, ApiError> {
    let decided_by_name = name_of(store, approval.decided_by).await?;
    Ok(ApprovalView { approval, task_title, decided_by_name, request, project_path: None })
}

async fn name_of(store: &dyn Store, person: Option<Id>) -> Result<Option<String>, StoreError> {
    match person {
        Some(id) => match store.person(id).await {
            Ok(p) => Ok(Some(p.name)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        None => Ok(None),
    }
}

/// `GET /api/rules`: the standing approvals ("always allowed in this project").
pub async fn rules(Extension(console): Extension<Arc<Console>>) -> ApiResult<Vec<ApprovalRule>> {
    Ok(Json(console.store.rules(None).await?))
}

/// `POST /api/rules/{id}/revoke`: the action is asked for again from now on.
pub async fn revoke_rule(Extension(console): Extension<Arc<Console>>, Path(id): Path<Id>) -> ApiResult<Value> {
    if console.store.revoke_rule(id).await? {
        tracing::info!(rule = id, "approval rule revoked from the web console");
        Ok(Json(json!({"revoked": id})))
    } else {
        Err(ApiError::new(StatusCode::NOT_FOUND, format!("rule {id} not found (or already revoked)")))
    }
}

/// Rows listed per kind on the undelivered page.
const MAX_UNDELIVERED: u64 = 100;

/// `GET /api/undelivered`: what the gateway gave up on, newest first: messages a platform
/// never accepted (bot blocked, chat gone, refused for good) and updates set aside unanswered
/// (a flood's tail, or an update whose handling kept failing), each with why.
pub async fn undelivered(Extension(console): Extension<Arc<Console>>) -> ApiResult<Value> {
    let messages: Vec<Value> = console
        .store
        .outbox_given_up(MAX_UNDELIVERED)
        .await?
        .into_iter()
        .map(|o| {
            json!({"id": o.id, "channel": o.channel, "chat_id": o.chat_id, "task_id": o.task_id,
                   "kind": o.payload.kind, "text": o.payload.text, "error": o.last_error, "at": o.sent_at})
        })
        .collect();
    let updates: Vec<Value> = console
        .store
        .inbox_set_aside(MAX_UNDELIVERED)
        .await?
        .into_iter()
        .map(|i| json!({"id": i.id, "channel": i.channel, "error": i.last_error, "at": i.received_at}))
        .collect();
    Ok(Json(json!({"messages": messages, "updates": updates})))
}

#[derive(Debug, Deserialize)]
pub struct AuditPage {
    /// Entries after this id (for paging).
    #[serde(default)]
    after: Id,
}

/// `GET /api/audit?after=N`: approval decisions, oldest first, 200 at a time, and whether the
/// whole hash chain verifies.
pub async fn audit(Extension(console): Extension<Arc<Console>>, Query(page): Query<AuditPage>) -> ApiResult<Value> {
    let (all, broken_at) = taskgate_adapters::store::audit_log(console.store.as_ref()).await?;
    let entries: Vec<&AuditEntry> = all.iter().filter(|e| e.id > page.after).take(200).collect();
    Ok(Json(json!({"entries": entries, "verified": broken_at.is_none(), "broken_at": broken_at})))
}
