//! What one conversation looks like to the classifier and the router, read from the store.
//!
//! The visible tasks are the ones the conversation is focused on or that the bot has written
//! about in this chat (the outbox remembers that), most recently updated first.

use std::collections::BTreeSet;

use taskgate_core::classify::{self, Chat};
use taskgate_core::model::{
    Approval, ApprovalStatus, Body, Conversation, Event, EventKind, Id, Task, TaskStatus, TurnStatus,
};
use taskgate_core::route::{ApprovalState, ConversationState, ExecutionState, ProjectInfo, TaskState};
use taskgate_core::store::{Store, StoreResult};

use super::display_agent;

/// How many tasks a conversation shows the classifier.
const VISIBLE_TASKS: u64 = 10;
/// How much of each visible task's timeline a decision reads: its newest results and file
/// changes (the latest result, the files touched lately), and for a task waiting for an answer
/// its newest events (the question still open). Bounded, so a message costs the same on a
/// task with ten events and on one with ten thousand.
const RECENT_EVENTS: u64 = 200;
const RECENT_OF_A_KIND: u64 = 20;

/// The inputs of one decision.
pub struct Loaded {
    pub context: classify::Context,
    pub state: ConversationState,
}

/// How the message reached the bot: the chat kind, whether it was addressed, what it replies to.
pub struct Addressing {
    pub chat: Chat,
    pub mentioned: bool,
    pub reply_to: Option<Id>,
}

/// Reads the conversation's tasks, executions, sessions and approvals. Only approvals still
/// waiting for an answer are pending: a decided or expired one is never offered to the
/// classifier, so "stop" or "yes, do that" after an earlier decision means what it says.
pub async fn load(
    store: &dyn Store,
    conversation: &Conversation,
    project: ProjectInfo,
    agents: Vec<String>,
    addressing: Addressing,
) -> StoreResult<Loaded> {
    let Addressing { chat, mentioned, reply_to } = addressing;
    let mut ids: Vec<Id> = store.chat_tasks(conversation.channel, &conversation.chat_id, VISIBLE_TASKS).await?;
    for extra in [conversation.focused_task_id, reply_to].into_iter().flatten() {
        if !ids.contains(&extra) {
            ids.push(extra);
        }
    }
    // A reply to a message about a task that no longer exists: not visible, not fatal.
    let mut tasks = store.tasks_by_id(&ids).await?;
    tasks.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    tasks.truncate(VISIBLE_TASKS as usize);

    // Executions, their sessions, open turns and pending approvals of every visible task, in
    // one read each.
    let task_ids: Vec<Id> = tasks.iter().map(|t| t.id).collect();
    let executions = store.executions_of(&task_ids).await?;
    let exec_ids: Vec<Id> = executions.iter().map(|e| e.id).collect();
    let sessions = store.latest_sessions(&exec_ids).await?;
    let session_ids: Vec<Id> = sessions.iter().map(|s| s.id).collect();
    let open_turns = store.open_turns_of(&session_ids).await?;
    let approvals = store.pending_approvals_of(&task_ids).await?;
    let outcomes =
        store.recent_events_of(&task_ids, &[EventKind::Result, EventKind::FileChange], RECENT_OF_A_KIND).await?;
    let rows = Rows { executions, sessions, open_turns, approvals, outcomes };

    let mut states = Vec::with_capacity(tasks.len());
    for task in tasks {
        states.push(task_state(store, task, &rows).await?);
    }

    let mut pending: Vec<&ApprovalState> = states
        .iter()
        .flat_map(|t| t.approvals.iter())
        .filter(|a| a.approval.status == ApprovalStatus::Pending)
        .collect();
    pending.sort_by_key(|a| a.approval.id);
    let pending_approvals = pending
        .into_iter()
        .map(|a| classify::ApprovalRef {
            id: a.approval.id.to_string(),
            task: a.approval.task_id.to_string(),
            agent: Some(a.agent.to_lowercase()),
            action: a.approval.action.clone(),
        })
        .collect();

    let context = classify::Context {
        chat,
        mentioned,
        reply_to: reply_to.map(|id| id.to_string()),
        active_task: conversation.focused_task_id.map(|id| id.to_string()),
        tasks: states.iter().map(task_ref).collect(),
        pending_approvals,
        agents,
    };
    let state = ConversationState {
        conversation_id: conversation.id,
        focused_task: conversation.focused_task_id,
        project,
        tasks: states,
    };
    Ok(Loaded { context, state })
}

/// The rows of the visible tasks read in one go, handed out per task.
struct Rows {
    executions: Vec<taskgate_core::model::Execution>,
    sessions: Vec<taskgate_core::model::RuntimeSession>,
    open_turns: Vec<taskgate_core::model::Turn>,
    approvals: Vec<Approval>,
    /// Results and file changes, newest few per task.
    outcomes: Vec<Event>,
}

async fn task_state(store: &dyn Store, task: Task, rows: &Rows) -> StoreResult<TaskState> {
    // A question still open is among the newest events of a task waiting for an answer.
    let timeline = match task.status {
        TaskStatus::WaitingInput => store.recent_events(task.id, RECENT_EVENTS).await?,
        _ => Vec::new(),
    };
    let outcomes = rows.outcomes.iter().filter(|e| e.task_id == task.id);
    let mut executions = Vec::new();
    for execution in rows.executions.iter().filter(|e| e.task_id == task.id).cloned() {
        let session = rows.sessions.iter().find(|s| s.execution_id == execution.id).cloned();
        let open: Vec<&taskgate_core::model::Turn> = match &session {
            Some(s) => rows.open_turns.iter().filter(|t| t.session_id == s.id).collect(),
            None => Vec::new(),
        };
        let in_flight = open.iter().any(|t| t.status != TurnStatus::Queued);
        let busy = !open.is_empty();
        // Turns behind the one in flight (or behind the first queued one, about to start).
        let queued = if in_flight { open.len() - 1 } else { open.len().saturating_sub(1) };
        let pending_question = if busy && task.status == TaskStatus::WaitingInput {
            pending_question(&timeline, execution.id)
        } else {
            None
        };
        executions.push(ExecutionState {
            execution,
            session,
            busy,
            queued,
            // No runtime adapter accepts input into a running turn yet.
            can_steer: false,
            pending_question,
        });
    }

    let mut approvals = Vec::new();
    for approval in rows.approvals.iter().filter(|a| a.task_id == task.id).cloned() {
        approvals.push(approval_state(store, approval, &executions, &rows.open_turns).await?);
    }

    let latest_result = outcomes.clone().rev().find_map(|e| match e.body.known() {
        Some(Body::TurnFinished { summary, .. }) => Some(summary.clone()),
        _ => None,
    });
    let mut files = BTreeSet::new();
    for event in outcomes {
        if let Some(Body::FileChanged { changes, .. }) = event.body.known() {
            files.extend(changes.iter().map(|c| c.path.clone()));
        }
    }
    Ok(TaskState {
        task,
        executions,
        approvals,
        // Filled by [`seed_notes`] for the tasks the message may act on.
        restart_note: None,
        latest_result,
        changed_files: files.into_iter().collect(),
    })
}

/// The request id of the question `exec` asked last, unless an answer or the end of its turn
/// came after it (both are on the timeline, in order).
fn pending_question(timeline: &[taskgate_core::model::Event], exec: Id) -> Option<String> {
    for event in timeline.iter().rev().filter(|e| e.execution_id == Some(exec)) {
        match event.body.known() {
            Some(Body::TurnFinished { .. } | Body::QuestionAnswered { .. }) => return None,
            Some(Body::Question { request_id, .. }) => return Some(request_id.clone()),
            _ => {}
        }
    }
    None
}

async fn approval_state(
    store: &dyn Store,
    approval: Approval,
    executions: &[ExecutionState],
    open_turns: &[taskgate_core::model::Turn],
) -> StoreResult<ApprovalState> {
    let agent = agent_of(&approval, executions, open_turns);
    let decided_by_name = match approval.decided_by {
        Some(person) => match store.person(person).await {
            Ok(p) => Some(p.name),
            Err(taskgate_core::store::StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    Ok(ApprovalState { approval, agent, decided_by_name })
}

/// The display name of the agent that asked: the execution owning the approval's turn, else
/// the task's main execution.
fn agent_of(approval: &Approval, executions: &[ExecutionState], open_turns: &[taskgate_core::model::Turn]) -> String {
    let owner = approval.turn_id.and_then(|turn| {
        let session = open_turns.iter().find(|t| t.id == turn)?.session_id;
        executions.iter().find(|e| e.session.as_ref().is_some_and(|s| s.id == session))
    });
    let main = || executions.iter().rev().find(|e| e.execution.role == taskgate_core::model::Role::Editor);
    owner
        .or_else(main)
        .or(executions.last())
        .map_or_else(|| "The agent".to_owned(), |e| display_agent(&e.execution.agent))
}

/// Fills in the restart note, within `seed_chars`, of the tasks among `tasks` that are
/// visible: what a fresh session of them is seeded with. Only for the tasks a first prompt
/// carries (`Plan::seeded`), because the note reads a task's whole timeline (and git): on
/// every message, that cost would grow with history.
pub async fn seed_notes(
    store: &dyn Store,
    state: &mut ConversationState,
    tasks: &[Id],
    seed_chars: usize,
) -> StoreResult<()> {
    for t in state.tasks.iter_mut().filter(|t| tasks.contains(&t.task.id) && t.restart_note.is_none()) {
        let timeline = store.timeline(t.task.id).await?;
        let executions: Vec<_> = t.executions.iter().map(|e| e.execution.clone()).collect();
        t.restart_note = crate::notes::load_from(store, &t.task, &timeline, &executions).await?.seed(seed_chars);
    }
    Ok(())
}

fn task_ref(t: &TaskState) -> classify::TaskRef {
    let mut agents: Vec<String> = Vec::new();
    for e in &t.executions {
        if !agents.contains(&e.execution.agent) {
            agents.push(e.execution.agent.clone());
        }
    }
    classify::TaskRef { id: t.task.id.to_string(), title: t.task.title.clone(), status: t.task.status, agents }
}
