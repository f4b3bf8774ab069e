//! The append-only timeline: what happened to a task, in order. Bodies are typed
//! ([`EventBody`]); JSON is only how the store keeps them and how the API shows them.

use serde::{Deserialize, Serialize};

use super::{ApprovalStatus, Channel, Id, Scope, Timestamp, named_enum};
use crate::classify::Intent;
use crate::runtime::{
    ApprovalDecision, ApprovalRequest, CommandStatus, FileChange, PlanStep, RuntimeEvent, TurnOutcome, Usage,
};

named_enum! {
    /// What a timeline entry records (derived from its body; stored for filtering).
    pub enum EventKind: "event kind" {
        /// A person's message, with its channel.
        Message = "message",
        /// The classifier's decision and its reason.
        Decision = "decision",
        /// Streamed agent output, plans, session start/death.
        Runtime = "runtime",
        Command = "command",
        FileChange = "file_change",
        Approval = "approval",
        /// A turn's outcome.
        Result = "result",
        Note = "note",
        Status = "status",
    }
}

/// An entry of a task's append-only timeline. Entries are never updated or deleted; `id`
/// orders them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Id,
    pub task_id: Id,
    pub execution_id: Option<Id>,
    pub kind: EventKind,
    pub channel: Option<Channel>,
    pub actor: Option<String>,
    pub body: EventBody,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub task_id: Id,
    pub execution_id: Option<Id>,
    pub channel: Option<Channel>,
    pub actor: Option<String>,
    pub body: EventBody,
}

/// A command a turn ran, as its evidence keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandRun {
    pub command: String,
    pub exit_code: Option<i32>,
}

/// What a finished turn leaves as evidence (restart-note entries cite it as `turn:<id>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnEvidence {
    /// `turn:<id>`.
    pub id: String,
    #[serde(default)]
    pub commands: Vec<CommandRun>,
    #[serde(default)]
    pub files: Vec<String>,
}

/// A timeline entry's body. The JSON form is tagged by `type` (`{"type": "agent_text", ...}`).
/// Rows this build cannot read (written by a newer one) come back as [`EventBody::Unknown`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EventBody {
    Known(Body),
    Unknown(serde_json::Value),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    // People.
    Message {
        text: String,
        from: String,
        person_id: Option<Id>,
        channel: Option<Channel>,
    },
    Decision {
        intent: Intent,
        confidence: f32,
        reason: String,
    },
    /// A file that came with a person's message (recorded after it): what it was, not where.
    Attachment {
        name: String,
        kind: crate::attachment::AttachmentKind,
        mime: String,
        size: u64,
        sha256: String,
    },
    /// The person answered the question an execution's turn waited on.
    QuestionAnswered {
        text: String,
        person_id: Id,
    },
    ApprovalDecided {
        approval: Id,
        action: String,
        status: ApprovalStatus,
        scope: Option<Scope>,
        /// The person who decided; `None` when a standing rule did.
        decided_by: Option<Id>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<Id>,
        note: Option<String>,
    },

    // Agents (what the runtime reported).
    SessionReady {
        provider_session_id: String,
        resumed: bool,
    },
    TurnStarted {
        turn_id: Option<String>,
    },
    AgentText {
        text: String,
    },
    Plan {
        steps: Vec<PlanStep>,
    },
    CommandStarted {
        id: String,
        command: String,
    },
    CommandFinished {
        id: String,
        command: String,
        status: CommandStatus,
        exit_code: Option<i32>,
        output_tail: String,
    },
    FileChanged {
        id: String,
        changes: Vec<FileChange>,
        applied: bool,
    },
    ApprovalRequested {
        approval: Id,
        #[serde(flatten)]
        request: ApprovalRequest,
    },
    ApprovalResolved {
        request_id: String,
        decision: Option<ApprovalDecision>,
    },
    Question {
        request_id: String,
        text: String,
    },
    Died {
        reason: String,
        restarting: bool,
    },
    TurnFinished {
        turn: Id,
        outcome: TurnOutcome,
        usage: Option<Usage>,
        summary: String,
        evidence: TurnEvidence,
    },

    // The gateway.
    /// An approval nobody can answer any more (its turn ended, or its request died with a
    /// process).
    ApprovalExpired {
        approval: Id,
        action: String,
        reason: String,
    },
    /// A turn stopped because its runner went away (a gateway stop or crash); it runs again.
    TurnHandedOver {
        turn: Id,
        reason: String,
    },
    AnswerUndelivered {
        error: String,
    },
    AnswerQueued {
        error: String,
    },
    DecisionUndelivered {
        approval: Id,
        error: String,
    },
    NoteEntry {
        entry: Id,
        kind: super::NoteKind,
        text: String,
        evidence: Vec<String>,
        commit: Option<String>,
    },
    NoteField {
        field: String,
        value: String,
        previous: Option<String>,
    },
}

impl From<Body> for EventBody {
    fn from(body: Body) -> Self {
        EventBody::Known(body)
    }
}

impl EventBody {
    pub fn known(&self) -> Option<&Body> {
        match self {
            EventBody::Known(body) => Some(body),
            EventBody::Unknown(_) => None,
        }
    }

    pub fn kind(&self) -> EventKind {
        match self {
            EventBody::Known(body) => body.kind(),
            EventBody::Unknown(_) => EventKind::Status,
        }
    }

    /// Reads a stored body; what this build does not know stays as it was.
    pub fn from_json(value: serde_json::Value) -> Self {
        match serde_json::from_value::<Body>(value.clone()) {
            Ok(body) => EventBody::Known(body),
            Err(_) => EventBody::Unknown(value),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

impl Body {
    pub fn kind(&self) -> EventKind {
        match self {
            Body::Message { .. } | Body::Attachment { .. } => EventKind::Message,
            Body::Decision { .. } => EventKind::Decision,
            Body::ApprovalDecided { .. }
            | Body::ApprovalRequested { .. }
            | Body::ApprovalResolved { .. }
            | Body::ApprovalExpired { .. } => EventKind::Approval,
            Body::CommandStarted { .. } | Body::CommandFinished { .. } => EventKind::Command,
            Body::FileChanged { .. } => EventKind::FileChange,
            Body::TurnFinished { .. } => EventKind::Result,
            Body::NoteEntry { .. } | Body::NoteField { .. } => EventKind::Note,
            Body::QuestionAnswered { .. }
            | Body::SessionReady { .. }
            | Body::TurnStarted { .. }
            | Body::AgentText { .. }
            | Body::Plan { .. }
            | Body::Question { .. }
            | Body::Died { .. }
            | Body::TurnHandedOver { .. }
            | Body::AnswerUndelivered { .. }
            | Body::AnswerQueued { .. }
            | Body::DecisionUndelivered { .. } => EventKind::Runtime,
        }
    }

    /// The timeline body of what a runtime reported. Approvals and turn ends carry more than
    /// the event (the approval row, the turn's evidence), so their bodies are built where
    /// that is known; here they get `None`.
    pub fn of_runtime(event: &RuntimeEvent) -> Option<Body> {
        Some(match event.clone() {
            RuntimeEvent::SessionReady { provider_session_id, resumed } => {
                Body::SessionReady { provider_session_id, resumed }
            }
            RuntimeEvent::TurnStarted { turn_id } => Body::TurnStarted { turn_id },
            RuntimeEvent::AgentText { text } => Body::AgentText { text },
            RuntimeEvent::Plan { steps } => Body::Plan { steps },
            RuntimeEvent::CommandStarted { id, command } => Body::CommandStarted { id, command },
            RuntimeEvent::CommandFinished { id, command, status, exit_code, output_tail } => {
                Body::CommandFinished { id, command, status, exit_code, output_tail }
            }
            RuntimeEvent::FileChanged { id, changes, applied } => Body::FileChanged { id, changes, applied },
            RuntimeEvent::ApprovalResolved { request_id, decision } => Body::ApprovalResolved { request_id, decision },
            RuntimeEvent::Question { request_id, text } => Body::Question { request_id, text },
            RuntimeEvent::Died { reason, restarting } => Body::Died { reason, restarting },
            RuntimeEvent::ApprovalRequested(_) | RuntimeEvent::TurnFinished { .. } => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bodies_round_trip_through_json_tagged_by_type() {
        let body: EventBody = Body::AgentText { text: "hi".into() }.into();
        assert_eq!(body.to_json(), json!({"type": "agent_text", "text": "hi"}));
        assert_eq!(EventBody::from_json(body.to_json()), body);
        assert_eq!(body.kind(), EventKind::Runtime);
    }

    #[test]
    fn an_approval_request_keeps_its_fields_flat() {
        let body: EventBody = Body::ApprovalRequested {
            approval: 7,
            request: ApprovalRequest {
                request_id: "r1".into(),
                kind: crate::runtime::ApprovalKind::Command,
                action: "run `ls`".into(),
                detail: None,
                cwd: None,
                reason: None,
            },
        }
        .into();
        let value = body.to_json();
        assert_eq!(value["type"], "approval_requested");
        assert_eq!(value["action"], "run `ls`");
        assert_eq!(value["approval"], 7);
        assert_eq!(EventBody::from_json(value), body);
    }

    #[test]
    fn unknown_rows_are_kept_as_they_were() {
        let raw = json!({"type": "from_the_future", "x": 1});
        let body = EventBody::from_json(raw.clone());
        assert_eq!(body, EventBody::Unknown(raw.clone()));
        assert_eq!(body.to_json(), raw);
    }
}
