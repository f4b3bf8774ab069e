//! What one conversation looks like to the classifier and the router, read from the store.
//!
//! The visible tasks are the ones the conversation is focused on or that the bot has written
//! about in this chat (the outbox remembers that), most recently updated first.

use std::collections::BTreeSet;

use taskgate_core::classify::{self, Chat};
use taskgate_core::model::{Approval, ApprovalStatus, Body, Conversation, Id, Task, TaskStatus, TurnStatus};
use taskgate_core::route::{ApprovalState, ConversationState, ExecutionState, ProjectInfo, TaskState};
use taskgate_core::store::{Store, StoreResult};

use super::display_agent;

/// How many tasks a conversation shows the classifier.
const VISIBLE_TASKS: u64 = 10;

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
    seed_chars: usize,
) -> StoreResult<Loaded> {
    let Addressing { chat, mentioned, reply_to } = addressing;
    let mut ids: Vec<Id> = store.chat_tasks(conversation.channel, &conversation.chat_id, VISIBLE_TASKS).await?;
    for extra in [conversation.focused_task_id, reply_to].into_iter().flatten() {
        if !ids.contains(&extra) {
            ids.push(extra);
        }
    }
    let mut tasks = Vec::with_capacity(ids.len());
    for id in ids {
        match store.task(id).await {
            Ok(task) => tasks.push(task),
            // A reply to a message about a task that no longer exists: not visible, not fatal.
            Err(taskgate_core::store::StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    tasks.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(b.id.cmp(&a.id)));
    tasks.truncate(VISIBLE_TASKS as usize);

    let mut states = Vec::with_capacity(tasks.len());
    for task in tasks {
        states.push(task_state(store, task, seed_chars).await?);
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

async fn task_state(store: &dyn Store, task: Task, seed_chars: usize) -> StoreResult<TaskState> {
    // The timeline gives the latest result, the files touched (for seeding new sessions) and
    // the questions agents asked.
    let timeline = store.timeline(task.id).await?;
    let mut executions = Vec::new();
    let rows = store.executions(task.id).await?;
    for execution in rows.iter().cloned() {
        let session = store.latest_session(execution.id).await?;
        let open = match &session {
            Some(s) => store.open_turns(Some(s.id)).await?,
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
    for approval in store.pending_approvals(Some(task.id)).await? {
        approvals.push(approval_state(store, approval, &executions).await?);
    }

    let latest_result = timeline.iter().rev().find_map(|e| match e.body.known() {
        Some(Body::TurnFinished { summary, .. }) => Some(summary.clone()),
        _ => None,
    });
    let mut files = BTreeSet::new();
    for event in &timeline {
        if let Some(Body::FileChanged { changes, .. }) = event.body.known() {
            files.extend(changes.iter().map(|c| c.path.clone()));
        }
    }
    // What a fresh session is seeded with: the note within `notes.seed_chars`.
    let restart_note = crate::notes::load_from(store, &task, &timeline, &rows).await?.seed(seed_chars);
    Ok(TaskState {
        task,
        executions,
        approvals,
        restart_note,
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
) -> StoreResult<ApprovalState> {
    let agent = agent_of(store, &approval, executions).await?;
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
async fn agent_of(store: &dyn Store, approval: &Approval, executions: &[ExecutionState]) -> StoreResult<String> {
    if let Some(turn) = approval.turn_id {
        for e in executions {
            if let Some(session) = &e.session
                && store.open_turns(Some(session.id)).await?.iter().any(|t| t.id == turn)
            {
                return Ok(display_agent(&e.execution.agent));
            }
        }
    }
    let main = executions.iter().rev().find(|e| e.execution.role == taskgate_core::model::Role::Editor);
    Ok(main.or(executions.last()).map_or_else(|| "The agent".to_owned(), |e| display_agent(&e.execution.agent)))
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
