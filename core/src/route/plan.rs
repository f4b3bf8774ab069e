//! A plan: the effects of one decision, in order. The bot applies a plan in one database
//! transaction and then hands runtime commands to the agent layer, so a crash between the two
//! leaves the plan either fully recorded or not at all.

use crate::model::{Answer, EventKind, Id, Role};

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

/// A reply button. `choice` indexes the options the bot stored with the message, so the
/// button's payload stays within Telegram's 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Button {
    pub label: String,
    pub choice: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
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
    /// Run a turn now. `fresh_session` closes nothing: it says the input is a first prompt
    /// (seeded with the task's context) for a session that does not exist yet.
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
    /// Answer the question the running turn waits on (see `ExecutionState::pending_question`).
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
    /// Answer an approval. `note` carries the rest of a "no, do X instead" to the agent.
    Resolve {
        approval: Id,
        answer: Answer,
        note: Option<String>,
    },
    /// Append to the task's timeline.
    Record {
        task: TaskRef,
        kind: EventKind,
        body: serde_json::Value,
    },
    Reply {
        text: String,
        buttons: Vec<Button>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub effects: Vec<Effect>,
}

impl Plan {
    pub fn push(&mut self, effect: Effect) -> &mut Self {
        self.effects.push(effect);
        self
    }

    pub fn reply(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Effect::Reply { text: text.into(), buttons: Vec::new() })
    }

    /// The text of the plan's replies, joined: what the user reads.
    pub fn reply_text(&self) -> String {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
