//! Applying a router plan: every effect in one store transaction, returning the runtime
//! commands to hand to the runner once it committed. A crash before the commit leaves nothing;
//! after it, the turns are durable rows that `Engine::recover` picks up.

use chrono::Utc;
use serde_json::{Value, json};
use taskgate_core::classify::Decision;
use taskgate_core::model::{
    Answer, Approval, ApprovalStatus, Channel, Conversation, Id, NewEvent, NewOutbound, RuntimeSession, SessionStatus,
    StateMachine, TaskStatus, Turn,
};
use taskgate_core::route::{Effect, ExecRef, Plan, Sender, TaskRef};
use taskgate_core::runtime::ApprovalDecision;
use taskgate_core::store::{NewExecution, NewTask, Store, StoreError, StoreResult};

/// What the runner does after the transaction committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run `turn` (a durable row of `session`) when the execution is free; FIFO behind others.
    Turn {
        execution: Id,
        session: RuntimeSession,
        turn: Turn,
    },
    Interrupt {
        execution: Id,
    },
    /// Deliver `text` as the answer to the question the execution's turn waits on.
    Answer {
        execution: Id,
        text: String,
    },
    /// Shut the sticky session's process down; the row is already closed.
    Close {
        execution: Id,
    },
    Decide {
        approval: Id,
        request_id: String,
        action: String,
        decision: ApprovalDecision,
        note: Option<String>,
    },
}

/// Where the plan's replies go and who sent the message.
pub struct Origin<'a> {
    pub conversation: &'a Conversation,
    pub sender: &'a Sender,
    /// The message the plan answers: a reply with buttons (a clarify) keeps it, so that a
    /// press completes this message with the chosen reading (`Engine::choose`).
    pub text: &'a str,
    /// Model for new runtime sessions, per agent name.
    pub model_of: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

pub struct Applied {
    pub commands: Vec<Command>,
    /// The task the plan was about, if any (for logs and tests).
    pub task: Option<Id>,
}

/// Applies `plan` with `tx` (a transaction; the caller commits).
pub async fn apply(
    tx: &dyn Store,
    plan: &Plan,
    alternatives: &[Decision],
    target: Option<Id>,
    origin: &Origin<'_>,
) -> StoreResult<Applied> {
    let mut created_task: Option<Id> = None;
    let mut created_exec: Option<Id> = None;
    // The task replies are filed under: the last one the plan named, else the decision's.
    let mut current_task: Option<Id> = target;
    let mut commands = Vec::new();
    // A Resolve that found the approval already decided replaces the router's "Approved: …".
    let mut replace_next_reply: Option<String> = None;

    let task_of = |r: TaskRef, created: Option<Id>| -> StoreResult<Id> {
        match r {
            TaskRef::Existing(id) => Ok(id),
            TaskRef::Created => {
                created.ok_or_else(|| StoreError::NotFound { entity: "created task", id: "plan".into() })
            }
        }
    };

    for effect in &plan.effects {
        match effect {
            Effect::CreateTask { title, goal, project_id } => {
                let task = tx
                    .create_task(NewTask {
                        project_id: Some(*project_id),
                        title: title.clone(),
                        goal: goal.clone(),
                        created_by: Some(origin.sender.person_id),
                    })
                    .await?;
                created_task = Some(task.id);
                current_task = Some(task.id);
            }
            Effect::CreateExecution { task, agent, role } => {
                let task_id = task_of(*task, created_task)?;
                let exec = tx.create_execution(NewExecution { task_id, agent: agent.clone(), role: *role }).await?;
                created_exec = Some(exec.id);
                current_task = Some(task_id);
            }
            Effect::Focus { task } => {
                let task_id = task_of(*task, created_task)?;
                tx.set_focus(origin.conversation.id, Some(task_id)).await?;
                current_task = Some(task_id);
            }
            Effect::StartTurn { execution, input, .. } => {
                let exec_id = match execution {
                    ExecRef::Existing(id) => *id,
                    ExecRef::Created => created_exec
                        .ok_or_else(|| StoreError::NotFound { entity: "created execution", id: "plan".into() })?,
                };
                commands.push(turn(tx, exec_id, input, origin).await?);
            }
            // No adapter steers a running turn yet; the router only steers when told it can,
            // so a steer that arrives anyway waits its turn rather than being lost.
            Effect::QueueTurn { execution, input } | Effect::SteerTurn { execution, input } => {
                commands.push(turn(tx, *execution, input, origin).await?);
            }
            Effect::InterruptTurn { execution } => commands.push(Command::Interrupt { execution: *execution }),
            Effect::AnswerQuestion { execution, text } => {
                let task_id = tx.execution(*execution).await?.task_id;
                // Filed under the execution, so the context loader sees the question answered.
                tx.append_event(NewEvent {
                    task_id,
                    execution_id: Some(*execution),
                    kind: taskgate_core::model::EventKind::Runtime,
                    channel: Some(origin.sender.channel),
                    actor: Some(origin.sender.name.clone()),
                    body: json!({"type": QUESTION_ANSWERED, "text": text, "person_id": origin.sender.person_id}),
                })
                .await?;
                super::status::task(tx, task_id, TaskStatus::Running).await?;
                current_task = Some(task_id);
                commands.push(Command::Answer { execution: *execution, text: text.clone() });
            }
            Effect::CloseSession { execution } => {
                if let Some(mut session) = tx.latest_session(*execution).await?
                    && session.status.allows(SessionStatus::Closed)
                {
                    session.status = SessionStatus::Closed;
                    tx.update_session(&session).await?;
                }
                commands.push(Command::Close { execution: *execution });
            }
            Effect::Resolve { approval, answer, note } => match resolve(tx, *approval, *answer, origin).await? {
                Ok(decided) => {
                    tx.append_event(NewEvent {
                        task_id: decided.task_id,
                        execution_id: None,
                        kind: taskgate_core::model::EventKind::Approval,
                        channel: Some(origin.sender.channel),
                        actor: Some(origin.sender.name.clone()),
                        body: json!({
                            "approval": decided.id, "action": decided.action, "status": decided.status,
                            "scope": decided.scope, "decided_by": origin.sender.person_id, "note": note,
                        }),
                    })
                    .await?;
                    current_task = Some(decided.task_id);
                    commands.push(Command::Decide {
                        approval: decided.id,
                        request_id: decided.request_id.clone(),
                        action: decided.action.clone(),
                        decision: decision_of(*answer),
                        note: note.clone(),
                    });
                }
                Err(text) => replace_next_reply = Some(text),
            },
            Effect::Record { task, kind, body } => {
                let task_id = task_of(*task, created_task)?;
                current_task = Some(task_id);
                tx.append_event(NewEvent {
                    task_id,
                    execution_id: None,
                    kind: *kind,
                    channel: Some(origin.sender.channel),
                    actor: Some(origin.sender.name.clone()),
                    body: body.clone(),
                })
                .await?;
            }
            Effect::Reply { text, buttons } => {
                let (text, buttons) = match replace_next_reply.take() {
                    Some(replacement) => (replacement, Vec::new()),
                    None => (text.clone(), buttons.clone()),
                };
                // Each button's `choice` indexes `options`: the reading it stands for.
                let options: Vec<Value> = buttons
                    .iter()
                    .filter_map(|b| alternatives.get(b.choice))
                    .map(|d| serde_json::to_value(d).unwrap_or(Value::Null))
                    .collect();
                let buttons: Vec<Value> =
                    buttons.iter().map(|b| json!({"label": b.label, "choice": b.choice})).collect();
                let mut payload = reply_payload(origin.conversation, &text, buttons, options);
                if payload["buttons"].as_array().is_some_and(|b| !b.is_empty()) {
                    payload[SOURCE_TEXT] = json!(origin.text);
                }
                tx.outbox_enqueue(NewOutbound {
                    channel: origin.conversation.channel,
                    chat_id: origin.conversation.chat_id.clone(),
                    task_id: current_task,
                    approval_id: None,
                    payload,
                })
                .await?;
            }
        }
    }
    // A Resolve with no reply after it still tells the person.
    if let Some(text) = replace_next_reply {
        tx.outbox_enqueue(NewOutbound {
            channel: origin.conversation.channel,
            chat_id: origin.conversation.chat_id.clone(),
            task_id: current_task,
            approval_id: None,
            payload: reply_payload(origin.conversation, &text, Vec::new(), Vec::new()),
        })
        .await?;
    }
    Ok(Applied { commands, task: current_task })
}

/// Timeline event type: the person answered the question an execution's turn waited on.
pub const QUESTION_ANSWERED: &str = "question_answered";

/// Payload field of a clarify: the message its buttons complete. Channels render such buttons
/// as choices (`options[choice]` is a classifier `Decision`), never as approval buttons.
pub const SOURCE_TEXT: &str = "source_text";

/// The outbox payload channels render: text, buttons, and what each button means.
pub fn reply_payload(conversation: &Conversation, text: &str, buttons: Vec<Value>, options: Vec<Value>) -> Value {
    json!({
        "text": text,
        "buttons": buttons,
        "options": options,
        "thread_id": conversation.thread_id,
    })
}

/// A durable turn for `exec`: in its sticky session when that is usable, else in a new session
/// row. A new row after a dead one keeps the dead one's provider id, so the runner resumes it;
/// after `/new` (closed) it starts clean.
async fn turn(tx: &dyn Store, exec: Id, input: &str, origin: &Origin<'_>) -> StoreResult<Command> {
    let latest = tx.latest_session(exec).await?;
    let session = match latest {
        Some(s) if s.status.is_usable() => s,
        other => {
            let agent = tx.execution(exec).await?.agent;
            let mut fresh = tx.create_session(exec, (origin.model_of)(&agent).as_deref()).await?;
            if let Some(dead) = other.filter(|s| s.status == SessionStatus::Dead)
                && dead.provider_session_id.is_some()
            {
                fresh.provider_session_id = dead.provider_session_id;
                fresh = tx.update_session(&fresh).await?;
            }
            fresh
        }
    };
    let turn = tx.create_turn(session.id, input).await?;
    Ok(Command::Turn { execution: exec, session, turn })
}

/// Decides the approval once. `Err(text)` is the reply for a late answer: who decided first.
async fn resolve(tx: &dyn Store, id: Id, answer: Answer, origin: &Origin<'_>) -> StoreResult<Result<Approval, String>> {
    let mut approval = tx.approval(id).await?;
    let now = Utc::now();
    // The error repeats what the row already says; the reply is built from the row.
    if approval.decide(answer, origin.sender.person_id, origin.sender.channel, now).is_err() {
        return Ok(Err(already_decided(tx, &approval).await?));
    }
    match tx.update_approval(&approval).await {
        Ok(updated) => Ok(Ok(updated)),
        // Someone else decided between our read and our write: report theirs.
        Err(StoreError::Conflict { .. }) => {
            let current = tx.approval(id).await?;
            Ok(Err(already_decided(tx, &current).await?))
        }
        Err(e) => Err(e),
    }
}

/// "Already approved by Ada (Telegram, 10:42)."
pub async fn already_decided(store: &dyn Store, approval: &Approval) -> StoreResult<String> {
    let who = match approval.decided_by {
        Some(person) => match store.person(person).await {
            Ok(p) => p.name,
            Err(StoreError::NotFound { .. }) => "someone".to_owned(),
            Err(e) => return Err(e),
        },
        None => "someone".to_owned(),
    };
    let verdict = match approval.status {
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Denied | ApprovalStatus::Cancelled => "denied",
        ApprovalStatus::Expired => "expired",
        ApprovalStatus::Pending => "pending",
    };
    let channel = approval.decided_channel.map(channel_name);
    let at = approval.decided_at.map(|at| at.format("%H:%M").to_string());
    let details = match (channel, at) {
        (Some(c), Some(at)) => format!(" ({c}, {at})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(at)) => format!(" ({at})"),
        (None, None) => String::new(),
    };
    Ok(format!("Already {verdict} by {who}{details}."))
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Telegram => "Telegram",
        Channel::Feishu => "Feishu",
        Channel::Web => "web",
    }
}

pub fn decision_of(answer: Answer) -> ApprovalDecision {
    match answer {
        Answer::Approve(taskgate_core::model::Scope::Once) => ApprovalDecision::AllowOnce,
        Answer::Approve(taskgate_core::model::Scope::Always) => ApprovalDecision::AllowForSession,
        Answer::Deny => ApprovalDecision::Deny,
        Answer::DenyAndStop => ApprovalDecision::DenyAndStop,
    }
}
