//! A plan: the effects of one decision, in order. Both directions produce plans: a person's
//! message through the router ([`crate::route`]), an agent's event through
//! [`crate::react`]. The bot applies a plan in one database transaction, so a crash leaves it
//! either fully recorded or not at all; runtime work it asks for (a turn, an interrupt, a
//! decision for the agent) becomes rows the execution's owner picks up.

use crate::model::{Answer, Body, Id, Role, SessionStatus, TaskStatus, TurnStatus};
use crate::reply::Reply;
use crate::runtime::ApprovalRequest;

/// A task named by a plan: one that exists, or the one this plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRef {
    Existing(Id),
    Created,
}

/// An execution named by a plan: one that exists, or the one this plan creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecRef {
    Existing(Id),
    Created,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    // From people (the router).
    CreateTask {
        title: String,
        goal: String,
        project_id: Id,
    },
    CreateExecution {
        task: TaskRef,
        agent: String,
        role: Role,
    },
    /// The conversation's follow-ups now go to this task.
    Focus {
        task: TaskRef,
    },
    /// Run a turn. `fresh_session` says the input is a first prompt (seeded with the task's
    /// context) for a session that does not exist yet.
    StartTurn {
        execution: ExecRef,
        input: String,
        fresh_session: bool,
    },
    /// Run a turn after the ones already waiting.
    QueueTurn {
        execution: Id,
        input: String,
    },
    /// Inject input into the running turn.
    SteerTurn {
        execution: Id,
        input: String,
    },
    /// Answer the question the running turn waits on.
    AnswerQuestion {
        execution: Id,
        text: String,
    },
    /// Stop the running turn; the session stays.
    InterruptTurn {
        execution: Id,
    },
    /// Close the sticky session: the next turn starts a fresh one.
    CloseSession {
        execution: Id,
    },
    /// `/new` with a handoff: one last turn (`input`) in the sticky session, asking the agent
    /// to record its findings in the restart note; the session is closed with it, so the next
    /// turn starts a fresh one seeded with the note.
    Handoff {
        execution: Id,
        input: String,
    },
    /// Answer an approval. `note` carries the rest of a "no, do X instead" to the agent.
    Resolve {
        approval: Id,
        answer: Answer,
        note: Option<String>,
    },
    /// Append to the task's timeline.
    Record {
        task: TaskRef,
        body: Body,
    },
    /// A reply to whoever spoke (the router), or news for the task's chat (agents).
    Reply(Reply),
    /// What the person is told about the turn the effect before started, queued, interrupted
    /// or answered ("Queued for Codex, 1 ahead"): not a message of its own but that turn's live
    /// status, shown (silently) only if the turn lasts.
    Ack(String),

    // From agents (the reaction to a runtime event, applied by the execution's owner).
    /// Move the owner's turn.
    SetTurn {
        turn: Id,
        to: TurnStatus,
        summary: Option<String>,
    },
    /// Move the owner's session row; `provider_session_id` records the provider's id.
    SetSession {
        session: Id,
        to: SessionStatus,
        provider_session_id: Option<String>,
    },
    SetExecution {
        to: crate::model::ExecutionStatus,
    },
    /// Move the task (through the state machine; an illegal move is skipped, not forced).
    SetTask {
        to: TaskStatus,
    },
    /// The agent asks to act: a durable approval, its timeline entry and its card (`text`
    /// with `detail`). With `rule`, a standing rule approves it at once: no card.
    AskApproval {
        turn: Option<Id>,
        request: ApprovalRequest,
        text: String,
        detail: Option<String>,
        rule: Option<Id>,
    },
    /// Approvals of `turn` still pending can no longer be answered.
    ExpireApprovals {
        turn: Id,
        reason: String,
    },
    /// The agent withdrew one request.
    WithdrawApproval {
        request_id: String,
    },
    /// The turn's live status line (one message per turn, edited in place). While the turn
    /// runs (`running`), the line carries a Stop button.
    Live {
        turn: Id,
        line: String,
        running: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub effects: Vec<Effect>,
    /// Tasks whose context (title, restart note, latest result) went into a first prompt. The
    /// restart note costs a whole timeline and git to read, so the engine routes without it
    /// and reads it only for these tasks, routing again with it.
    pub seeded: Vec<Id>,
}

impl Plan {
    pub fn push(&mut self, effect: Effect) -> &mut Self {
        self.effects.push(effect);
        self
    }

    /// Whether applying the plan may queue a message for a chat (a reply, a card, a status
    /// line, a decision shown): the outbox senders are then woken instead of finding it at
    /// their next poll.
    pub fn speaks(&self) -> bool {
        self.effects.iter().any(|e| {
            matches!(
                e,
                Effect::Reply(_)
                    | Effect::Ack(_)
                    | Effect::Resolve { .. }
                    | Effect::AskApproval { .. }
                    | Effect::ExpireApprovals { .. }
                    | Effect::WithdrawApproval { .. }
                    | Effect::Live { .. }
            )
        })
    }

    pub fn reply(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Effect::Reply(Reply::text(text)))
    }

    /// The text of the plan's replies and acknowledgements, joined: what the user reads.
    pub fn reply_text(&self) -> String {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(reply) => Some(reply.text.as_str()),
                Effect::Ack(line) => Some(line.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
