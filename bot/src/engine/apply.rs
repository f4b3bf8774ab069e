//! The interpreter: one plan, from a person (the router) or from an agent (the reaction to a
//! runtime event), applied in one store transaction. Work for the agents becomes rows (a
//! queued turn, an order for the execution's owner); the executions given work are returned
//! so the caller can wake their owners once the transaction committed.
//!
//! [`commit`] is the one way a plan reaches the database: it opens the transaction, checks the
//! owner's lease first when an agent's plan is applied (a stale owner's writes are refused),
//! and runs the plan again when the database was only busy.

use std::time::Duration;

use chrono::Utc;
use taskgate_adapters::store::SeaStore;
use taskgate_core::classify::Decision;
use taskgate_core::model::{
    Answer, Approval, ApprovalStatus, Body, Channel, Conversation, Id, Lease, NewApprovalRule, NewAuditEntry, NewEvent,
    NewOutbound, Order, RuntimeSession, Scope, SessionStatus, StateMachine, TaskStatus, TurnStatus,
};
use taskgate_core::plan::{Effect, ExecRef, Plan, TaskRef};
use taskgate_core::react;
use taskgate_core::reply::{Action, Button, Reply, ReplyKind};
use taskgate_core::route::Sender;
use taskgate_core::store::{NewApproval, NewExecution, NewTask, Store, StoreError, StoreResult};
use taskgate_core::wording::{self, Decider};

use super::status;

/// Whose plan this is, and what its effects need to know about where they happen.
pub enum Origin<'a> {
    /// A person's message in a conversation.
    Person {
        conversation: &'a Conversation,
        sender: &'a Sender,
        /// The message the plan answers: a reply with choices (a clarify) keeps it, so a press
        /// completes this message with the chosen reading.
        text: &'a str,
        /// The platform's id of the message, for threaded answers in groups.
        message_id: Option<&'a str>,
        /// Model for new runtime sessions, per agent name.
        model_of: &'a (dyn Fn(&str) -> Option<String> + Sync),
        /// Files that came with the message: they go to the agent with the turns it queues.
        files: &'a [taskgate_core::attachment::Attachment],
        /// The inbox row of the message: marked handled in the plan's transaction.
        inbound: Option<Id>,
    },
    /// An agent's event, applied by the owner of its execution.
    Agent {
        task: Id,
        execution: Id,
        /// The turn in flight: its final message answers the message that asked for it.
        turn: Option<Id>,
        /// Display name ("Codex"), the timeline's actor.
        agent: &'a str,
        model: Option<&'a str>,
    },
}

impl Origin<'_> {
    fn channel(&self) -> Option<Channel> {
        match self {
            Origin::Person { sender, .. } => Some(sender.channel),
            Origin::Agent { .. } => None,
        }
    }

    fn actor(&self) -> String {
        match self {
            Origin::Person { sender, .. } => sender.name.clone(),
            Origin::Agent { agent, .. } => (*agent).to_owned(),
        }
    }

    fn execution(&self) -> Option<Id> {
        match self {
            Origin::Person { .. } => None,
            Origin::Agent { execution, .. } => Some(*execution),
        }
    }
}

#[derive(Debug, Default)]
pub struct Applied {
    /// The task the plan was about, if any (for logs and tests).
    pub task: Option<Id>,
    /// Executions given work (a turn, an order): their owners should look now.
    pub wake: Vec<Id>,
    /// Approvals the plan created.
    pub approvals: Vec<Id>,
    /// Requests a standing rule approved: (request id, approval) for the owner to deliver.
    pub auto_approved: Vec<(String, Id)>,
    /// The message's inbox row was handled already (another drain leader decided it):
    /// nothing was written.
    pub decided_before: bool,
}

/// Applies `plan` in one transaction and commits it. With `lease`, the transaction first
/// checks that the caller still owns the execution (and extends the lease); a stale owner gets
/// [`StoreError::Fenced`] and nothing is written. A busy database is retried a few times.
pub async fn commit(
    store: &SeaStore,
    plan: &Plan,
    origin: &Origin<'_>,
    lease: Option<(&Lease, chrono::Duration)>,
) -> StoreResult<Applied> {
    let mut delay = Duration::from_millis(10);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let tx = store.begin().await?;
            if let Some((lease, length)) = lease {
                tx.check_lease(lease, Utc::now() + length).await?;
            }
            // First, so a second drain leader deciding the same message waits on the row's
            // lock and then finds it handled.
            if let Origin::Person { inbound: Some(id), .. } = origin
                && !tx.inbox_done(*id).await?
            {
                return Ok(Applied { decided_before: true, ..Applied::default() });
            }
            let applied = apply(&tx, plan, origin).await?;
            tx.commit().await?;
            Ok(applied)
        }
        .await;
        match result {
            Err(StoreError::Busy(why)) if attempt < 6 => {
                tracing::debug!(%why, attempt, "applying a plan: the database is busy; trying again");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

/// Applies `plan` with `tx` (a transaction; the caller commits).
pub async fn apply(tx: &dyn Store, plan: &Plan, origin: &Origin<'_>) -> StoreResult<Applied> {
    let mut created_task: Option<Id> = None;
    let mut created_exec: Option<Id> = None;
    let mut applied = Applied::default();
    let mut current_task: Option<Id> = match origin {
        Origin::Agent { task, .. } => Some(*task),
        Origin::Person { .. } => None,
    };
    // A Resolve that found the approval already decided says who decided first.
    let mut replace_next_reply: Option<String> = None;
    // The turn the last effect started, queued, interrupted or answered: what an `Ack` is about.
    let mut last_turn: Option<Id> = None;
    // A turn handed over (a restart): the turn queued again after it carries its files.
    let mut rerun_of: Option<Id> = None;

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
                let created_by = match origin {
                    Origin::Person { sender, .. } => Some(sender.person_id),
                    Origin::Agent { .. } => None,
                };
                let task = tx
                    .create_task(NewTask {
                        project_id: Some(*project_id),
                        title: title.clone(),
                        goal: goal.clone(),
                        created_by,
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
                if let Origin::Person { conversation, .. } = origin {
                    tx.set_focus(conversation.id, Some(task_id)).await?;
                }
                current_task = Some(task_id);
            }
            Effect::StartTurn { execution, input, .. } => {
                let exec = match execution {
                    ExecRef::Existing(id) => *id,
                    ExecRef::Created => created_exec
                        .ok_or_else(|| StoreError::NotFound { entity: "created execution", id: "plan".into() })?,
                };
                last_turn = Some(queue_turn(tx, exec, input, origin).await?);
                applied.wake.push(exec);
            }
            // No adapter steers a running turn yet; the router only steers when told it can,
            // so a steer that arrives anyway waits its turn rather than being lost.
            Effect::QueueTurn { execution, input } | Effect::SteerTurn { execution, input } => {
                let turn = queue_turn(tx, *execution, input, origin).await?;
                if let Some(old) = rerun_of.take() {
                    let files = tx.turn_attachments(old).await?;
                    if !files.is_empty() {
                        tx.attach_to_turn(turn, &files).await?;
                    }
                }
                last_turn = Some(turn);
                applied.wake.push(*execution);
            }
            Effect::AnswerQuestion { execution, text } => {
                let task_id = tx.execution(*execution).await?.task_id;
                let person_id = match origin {
                    Origin::Person { sender, .. } => sender.person_id,
                    Origin::Agent { .. } => 0,
                };
                // Filed under the execution, so the context loader sees the question answered.
                record(tx, task_id, Some(*execution), origin, Body::QuestionAnswered { text: text.clone(), person_id })
                    .await?;
                status::task(tx, task_id, TaskStatus::Running).await?;
                current_task = Some(task_id);
                tx.give_order(*execution, &Order::Answer { text: text.clone() }).await?;
                last_turn = running_turn(tx, *execution).await?;
                applied.wake.push(*execution);
            }
            Effect::InterruptTurn { execution } => {
                tx.give_order(*execution, &Order::Interrupt).await?;
                last_turn = running_turn(tx, *execution).await?;
                applied.wake.push(*execution);
            }
            Effect::Ack(line) => {
                // Not news of its own: the status line of the turn it is about.
                let Some(turn) = last_turn else { continue };
                let reply = Reply {
                    text: line.clone(),
                    kind: ReplyKind::Status,
                    live: Some(react::live_key(turn)),
                    ..Reply::default()
                };
                send(tx, reply, current_task, None, origin).await?;
            }
            Effect::CloseSession { execution } => {
                if let Some(mut session) = tx.latest_session(*execution).await?
                    && session.status.allows(SessionStatus::Closed)
                {
                    session.status = SessionStatus::Closed;
                    tx.update_session(&session).await?;
                }
                tx.give_order(*execution, &Order::Close).await?;
                applied.wake.push(*execution);
            }
            Effect::Handoff { execution, input } => {
                // The last turn of the sticky session, then the row is closed: the next turn
                // gets a fresh one. No close order: the handoff needs the process; the actor
                // ends it when the fresh session starts.
                last_turn = Some(queue_turn(tx, *execution, input, origin).await?);
                if let Some(mut session) = tx.latest_session(*execution).await?
                    && session.status.allows(SessionStatus::Closed)
                {
                    session.status = SessionStatus::Closed;
                    tx.update_session(&session).await?;
                }
                applied.wake.push(*execution);
            }
            Effect::Resolve { approval, answer, note } => match resolve(tx, *approval, *answer, origin).await? {
                Ok(decided) => {
                    let exec = approval_execution(tx, &decided).await?;
                    let rule = match (decided.scope, exec) {
                        (Some(Scope::Project), Some(exec)) => Some(standing_rule(tx, &decided, exec, origin).await?),
                        _ => None,
                    };
                    let body = Body::ApprovalDecided {
                        approval: decided.id,
                        action: decided.action.clone(),
                        status: decided.status,
                        scope: decided.scope,
                        decided_by: decided.decided_by,
                        rule: None,
                        note: note.clone(),
                    };
                    record(tx, decided.task_id, decided.execution_id, origin, body).await?;
                    audit(tx, &decided, origin, rule).await?;
                    show_decision(tx, &decided, decider(origin), None).await?;
                    current_task = Some(decided.task_id);
                    if let Some(exec) = exec {
                        tx.give_order(exec, &Order::Decide { approval: decided.id }).await?;
                        if let Some(note) = note {
                            // The denial's instruction ("no, run only the unit tests") is the next turn.
                            let input = format!("The person declined {} and said: {note}", decided.action);
                            queue_turn(tx, exec, &input, origin).await?;
                        }
                        applied.wake.push(exec);
                    }
                }
                Err(text) => replace_next_reply = Some(text),
            },
            Effect::Record { task, body } => {
                if let Body::TurnHandedOver { turn, .. } = body {
                    rerun_of = Some(*turn);
                }
                let task_id = task_of(*task, created_task)?;
                current_task = Some(task_id);
                record(tx, task_id, origin.execution(), origin, body.clone()).await?;
            }
            Effect::Reply(reply) => {
                let reply = match replace_next_reply.take() {
                    Some(replacement) => Reply::text(replacement),
                    None => reply.clone(),
                };
                send(tx, reply, current_task, None, origin).await?;
            }
            Effect::SetTurn { turn, to, summary } => {
                let mut row = tx.turn(*turn).await?;
                status::turn(tx, &mut row, *to, summary.clone()).await?;
            }
            Effect::SetSession { session, to, provider_session_id } => {
                let mut row = tx.session(*session).await?;
                if let Some(id) = provider_session_id
                    && row.provider_session_id.as_ref() != Some(id)
                {
                    row.provider_session_id = Some(id.clone());
                    row = tx.update_session(&row).await?;
                }
                // Ready after a start; a session already busy with a turn stays busy.
                let to = if *to == SessionStatus::Ready
                    && row.status == SessionStatus::Busy
                    && provider_session_id.is_some()
                {
                    SessionStatus::Busy
                } else {
                    *to
                };
                status::session(tx, &mut row, to).await?;
            }
            Effect::SetExecution { to } => {
                if let Some(exec) = origin.execution() {
                    status::execution(tx, exec, *to).await?;
                }
            }
            Effect::SetTask { to } => {
                if let Some(task) = current_task {
                    status::task(tx, task, *to).await?;
                }
            }
            Effect::AskApproval { turn, request, text, detail, rule } => {
                let Origin::Agent { task, execution, .. } = origin else { continue };
                let mut approval = tx
                    .create_approval(NewApproval {
                        task_id: *task,
                        execution_id: Some(*execution),
                        turn_id: *turn,
                        request_id: request.request_id.clone(),
                        action: request.action.clone(),
                    })
                    .await?;
                record(
                    tx,
                    *task,
                    Some(*execution),
                    origin,
                    Body::ApprovalRequested { approval: approval.id, request: request.clone() },
                )
                .await?;
                applied.approvals.push(approval.id);
                if let Some(rule) = rule {
                    approval.status = ApprovalStatus::Approved;
                    approval.scope = Some(Scope::Once);
                    approval.rule_id = Some(*rule);
                    approval.decided_at = Some(Utc::now());
                    let approval = tx.update_approval(&approval).await?;
                    let body = Body::ApprovalDecided {
                        approval: approval.id,
                        action: approval.action.clone(),
                        status: approval.status,
                        scope: approval.scope,
                        decided_by: None,
                        rule: Some(*rule),
                        note: None,
                    };
                    record(tx, *task, Some(*execution), origin, body).await?;
                    audit(tx, &approval, origin, Some(*rule)).await?;
                    applied.auto_approved.push((request.request_id.clone(), approval.id));
                    continue;
                }
                let card = Reply {
                    text: text.clone(),
                    buttons: approval_buttons(&approval),
                    kind: ReplyKind::Approval,
                    live: Some(approval_key(approval.id)),
                    detail: detail.clone(),
                    ..Reply::default()
                };
                send(tx, card, Some(*task), Some(approval.id), origin).await?;
            }
            Effect::ExpireApprovals { turn, reason } => {
                let Some(task) = current_task else { continue };
                for approval in tx.pending_approvals(Some(task)).await? {
                    if approval.turn_id == Some(*turn) {
                        expire(tx, approval, reason, origin).await?;
                    }
                }
            }
            Effect::WithdrawApproval { request_id } => {
                let (Some(task), Some(exec)) = (current_task, origin.execution()) else { continue };
                for approval in tx.pending_approvals(Some(task)).await? {
                    if &approval.request_id == request_id && approval.execution_id == Some(exec) {
                        expire(tx, approval, "the agent withdrew the request", origin).await?;
                    }
                }
            }
            Effect::Live { turn, line, running } => {
                // While the turn runs, its status carries the brake.
                let buttons = match (running, current_task) {
                    (true, Some(task)) => vec![Button { label: "Stop".into(), action: Action::Stop { task } }],
                    _ => Vec::new(),
                };
                let reply = Reply {
                    text: line.clone(),
                    buttons,
                    kind: ReplyKind::Status,
                    live: Some(react::live_key(*turn)),
                    ..Reply::default()
                };
                send(tx, reply, current_task, None, origin).await?;
            }
        }
    }
    // A Resolve with no reply after it still tells the person.
    if let Some(text) = replace_next_reply {
        send(tx, Reply::text(text), current_task, None, origin).await?;
    }
    applied.task = current_task;
    applied.wake.dedup();
    Ok(applied)
}

/// Approve (once), for this session, always in this project, deny: each naming the approval
/// and its nonce.
pub fn approval_buttons(approval: &Approval) -> Vec<Button> {
    let button = |label: &str, answer| Button {
        label: label.into(),
        action: Action::Decide { approval: approval.id, nonce: approval.nonce.clone(), answer },
    };
    vec![
        button("Approve", Answer::Approve(Scope::Once)),
        button("Deny", Answer::Deny),
        button("This session", Answer::Approve(Scope::Always)),
        button("Always here", Answer::Approve(Scope::Project)),
    ]
}

/// Enqueues `reply`. A person's plan answers in their conversation (threaded to their message
/// in groups); an agent's news goes to the chat that last heard about the task (the web
/// console's task page when no chat has).
async fn send(
    tx: &dyn Store,
    mut reply: Reply,
    task: Option<Id>,
    approval: Option<Id>,
    origin: &Origin<'_>,
) -> StoreResult<()> {
    let (channel, chat_id) = match origin {
        Origin::Person { conversation, text, message_id, .. } => {
            reply.thread_id = conversation.thread_id.clone();
            if reply.reply_to.is_none() {
                reply.reply_to = message_id.map(str::to_owned);
            }
            if reply.buttons.iter().any(|b| matches!(b.action, Action::Choose { .. })) {
                reply.source_text = Some((*text).to_owned());
            }
            (conversation.channel, conversation.chat_id.clone())
        }
        Origin::Agent { task, turn, .. } => match tx.latest_outbound(*task).await? {
            Some(o) => {
                reply.thread_id = o.payload.thread_id.clone();
                if reply.reply_to.is_none()
                    && reply.kind != ReplyKind::Status
                    && let Some(turn) = turn
                {
                    reply.reply_to = asked_by(tx, o.channel, &o.chat_id, *turn).await?;
                }
                (o.channel, o.chat_id)
            }
            None => (Channel::Web, format!("task-{task}")),
        },
    };
    // Streamed drafts are shown only where a chat can show one (Telegram private chats).
    if reply.kind == ReplyKind::Draft && channel != Channel::Telegram {
        return Ok(());
    }
    tx.outbox_enqueue(NewOutbound { channel, chat_id, task_id: task, approval_id: approval, payload: reply }).await?;
    Ok(())
}

/// The platform id of the message that asked for `turn` (set only where answers are threaded,
/// in groups): its acknowledgement, the turn's first status, replied to it.
async fn asked_by(tx: &dyn Store, channel: Channel, chat: &str, turn: Id) -> StoreResult<Option<String>> {
    let key = react::live_key(turn);
    let recent = tx.outbox_recent(channel, chat, 50).await?;
    Ok(recent.into_iter().find(|r| r.payload.live.as_deref() == Some(key.as_str())).and_then(|r| r.payload.reply_to))
}

async fn record(tx: &dyn Store, task: Id, execution: Option<Id>, origin: &Origin<'_>, body: Body) -> StoreResult<()> {
    tx.append_event(NewEvent {
        task_id: task,
        execution_id: execution,
        channel: origin.channel(),
        actor: Some(origin.actor()),
        body: body.into(),
    })
    .await
    .map(|_| ())
}

async fn expire(tx: &dyn Store, mut approval: Approval, reason: &str, origin: &Origin<'_>) -> StoreResult<()> {
    let Ok(next) = approval.status.transition(ApprovalStatus::Expired) else { return Ok(()) };
    approval.status = next;
    approval.decided_at = Some(Utc::now());
    let approval = match tx.update_approval(&approval).await {
        Ok(approval) => approval,
        // Someone decided it meanwhile: theirs stands.
        Err(StoreError::Conflict { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    let body =
        Body::ApprovalExpired { approval: approval.id, action: approval.action.clone(), reason: reason.to_owned() };
    record(tx, approval.task_id, approval.execution_id, origin, body).await?;
    audit(tx, &approval, origin, None).await?;
    show_decision(tx, &approval, Decider::Person { name: "the gateway", channel: None }, Some(reason)).await
}

/// The live key an approval's card and its later edits share: every copy of a card is edited
/// in place when the approval is decided or expires.
pub fn approval_key(approval: Id) -> String {
    format!("approval:{approval}")
}

fn decider<'a>(origin: &'a Origin<'_>) -> Decider<'a> {
    match origin {
        Origin::Person { sender, .. } => Decider::Person { name: &sender.name, channel: Some(sender.channel) },
        Origin::Agent { agent, .. } => Decider::Person { name: agent, channel: None },
    }
}

/// Every card that showed `approval` is edited to say how it ended, and loses its buttons.
async fn show_decision(tx: &dyn Store, approval: &Approval, by: Decider<'_>, reason: Option<&str>) -> StoreResult<()> {
    let line = wording::decision_line(approval.status, approval.scope, by, reason);
    let mut edited: Vec<(Channel, String)> = Vec::new();
    for card in tx.approval_cards(approval.id).await? {
        let place = (card.channel, card.chat_id.clone());
        if edited.contains(&place) {
            continue;
        }
        edited.push(place);
        let reply = Reply {
            text: format!("{}\n\n{line}", card.payload.text),
            kind: ReplyKind::Status,
            thread_id: card.payload.thread_id.clone(),
            live: Some(approval_key(approval.id)),
            ..Reply::default()
        };
        // Not an approval card itself (`approval_id` empty): it must not be edited again.
        tx.outbox_enqueue(NewOutbound {
            channel: card.channel,
            chat_id: card.chat_id,
            task_id: Some(approval.task_id),
            approval_id: None,
            payload: reply,
        })
        .await?;
    }
    Ok(())
}

/// The decision on the audit log: who, where, what, with which scope or rule.
async fn audit(tx: &dyn Store, approval: &Approval, origin: &Origin<'_>, rule: Option<Id>) -> StoreResult<()> {
    let (who, person_id, channel, place) = match (origin, rule) {
        (_, Some(rule)) if approval.decided_by.is_none() => (format!("rule #{rule}"), None, None, String::new()),
        (Origin::Person { sender, conversation, .. }, _) => {
            (sender.name.clone(), Some(sender.person_id), Some(sender.channel), conversation.chat_id.clone())
        }
        (Origin::Agent { .. }, _) => ("gateway".to_owned(), None, None, String::new()),
    };
    tx.append_audit(NewAuditEntry {
        approval_id: approval.id,
        task_id: approval.task_id,
        who,
        person_id,
        channel,
        place,
        action: approval.action.clone(),
        decision: approval.status,
        scope: approval.scope,
        rule_id: rule.or(approval.rule_id),
    })
    .await
    .map(|_| ())
}

/// "Always in this project": a standing rule for exactly this action of this agent.
async fn standing_rule(tx: &dyn Store, approval: &Approval, exec: Id, origin: &Origin<'_>) -> StoreResult<Id> {
    let agent = tx.execution(exec).await?.agent;
    let project_id = tx.task(approval.task_id).await?.project_id;
    if let Some(rule) = tx.matching_rule(project_id, &agent, &approval.action).await? {
        return Ok(rule.id);
    }
    let created_by = match origin {
        Origin::Person { sender, .. } => Some(sender.person_id),
        Origin::Agent { .. } => None,
    };
    Ok(tx.add_rule(NewApprovalRule { project_id, agent, action: approval.action.clone(), created_by }).await?.id)
}

/// The execution whose agent asked: recorded on the approval, else found through its turn.
async fn approval_execution(tx: &dyn Store, approval: &Approval) -> StoreResult<Option<Id>> {
    if let Some(exec) = approval.execution_id {
        return Ok(Some(exec));
    }
    let Some(turn) = approval.turn_id else { return Ok(None) };
    let turn = tx.turn(turn).await?;
    Ok(Some(tx.session(turn.session_id).await?.execution_id))
}

/// The turn `exec` runs now (running or waiting for an approval), if any.
async fn running_turn(tx: &dyn Store, exec: Id) -> StoreResult<Option<Id>> {
    Ok(tx.execution_turns(exec).await?.into_iter().find(|t| t.status != TurnStatus::Queued).map(|t| t.id))
}

/// A queued turn for `exec`: in its sticky session when that is usable, else in a new session
/// row. A new row after a dead one keeps the dead one's provider id, so the owner resumes it;
/// after `/new` (closed) it starts clean.
async fn queue_turn(tx: &dyn Store, exec: Id, input: &str, origin: &Origin<'_>) -> StoreResult<Id> {
    let latest = tx.latest_session(exec).await?;
    let session: RuntimeSession = match latest {
        Some(s) if s.status.is_usable() => s,
        other => {
            let agent = tx.execution(exec).await?.agent;
            let model = match origin {
                Origin::Person { model_of, .. } => model_of(&agent),
                Origin::Agent { model, .. } => model.map(str::to_owned),
            };
            let mut fresh = tx.create_session(exec, model.as_deref()).await?;
            if let Some(dead) = other.filter(|s| s.status == SessionStatus::Dead)
                && dead.provider_session_id.is_some()
            {
                fresh.provider_session_id = dead.provider_session_id;
                fresh = tx.update_session(&fresh).await?;
            }
            fresh
        }
    };
    let turn = tx.create_turn(session.id, input).await?.id;
    if let Origin::Person { files, .. } = origin
        && !files.is_empty()
    {
        tx.attach_to_turn(turn, files).await?;
    }
    Ok(turn)
}

/// Decides the approval once. `Err(text)` is the reply for a late answer: who decided first.
async fn resolve(tx: &dyn Store, id: Id, answer: Answer, origin: &Origin<'_>) -> StoreResult<Result<Approval, String>> {
    let Origin::Person { sender, .. } = origin else {
        return Ok(Err("Only people decide approvals.".into()));
    };
    let mut approval = tx.approval(id).await?;
    // The error repeats what the row already says; the reply is built from the row.
    if approval.decide(answer, sender.person_id, sender.channel, Utc::now()).is_err() {
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

/// A clarify's reading for button `choice` of `reply`, if it is a clarify.
pub fn reading(reply: &Reply, choice: usize) -> Option<(Decision, String, String)> {
    let source = reply.source_text.clone()?;
    reply.buttons.iter().find_map(|b| match &b.action {
        Action::Choose { choice: c, reading } if *c == choice => {
            Some((reading.clone(), source.clone(), b.label.clone()))
        }
        _ => None,
    })
}
