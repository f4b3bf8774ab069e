//! The normalized events every runtime adapter produces, and the decisions it accepts.

use serde::{Deserialize, Serialize};

/// One thing an agent did or asked, the same for every protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuntimeEvent {
    /// The provider session exists (started, resumed, or first identified) and takes turns.
    SessionReady {
        provider_session_id: String,
        resumed: bool,
    },
    /// A turn was accepted by the agent.
    TurnStarted {
        turn_id: Option<String>,
    },
    /// Streamed agent text; consecutive events concatenate.
    AgentText {
        text: String,
    },
    /// The agent's current plan or todo list (the whole list each time).
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
        /// The last few lines of output, bounded in size.
        output_tail: String,
    },
    /// Files the agent changed (or tried to, when `applied` is false).
    FileChanged {
        id: String,
        changes: Vec<FileChange>,
        applied: bool,
    },
    ApprovalRequested(ApprovalRequest),
    /// An approval left the pending state: decided here (`decision` set) or withdrawn by the
    /// agent, e.g. because the turn ended (`decision` empty).
    ApprovalResolved {
        request_id: String,
        decision: Option<ApprovalDecision>,
    },
    /// The agent asks the person something; answer with [`crate::runtime::AgentSession::answer`].
    Question {
        request_id: String,
        text: String,
    },
    /// A turn ended; the session stays for the next one.
    TurnFinished {
        outcome: TurnOutcome,
        usage: Option<Usage>,
    },
    /// The agent process is gone. `restarting` says whether a supervisor is replacing it.
    Died {
        reason: String,
        restarting: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStep {
    pub text: String,
    pub status: PlanStepStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStepStatus {
    Pending,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    Succeeded,
    Failed,
    /// Not run because the person (or policy) declined it.
    Declined,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChange {
    pub path: String,
    /// Unified diff or the new content, as the agent reported it.
    pub diff: Option<String>,
}

/// What kind of action waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    Command,
    FileChange,
    Tool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The id to pass back to `decide`; unique within one runtime session.
    pub request_id: String,
    pub kind: ApprovalKind,
    /// Human text, e.g. "run `npm test`" or "edit src/app.rs".
    pub action: String,
    /// What the action would do in full: a file change's diff, a tool's input as JSON.
    pub detail: Option<String>,
    /// Where a command would run, when the agent says (else the session's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Why the agent wants to do it, when the protocol carries a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A person's answer, mapped onto each protocol's own choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalDecision {
    AllowOnce,
    AllowForSession,
    /// Refuse the action; the turn goes on without it.
    Deny,
    /// Refuse the action and end the turn.
    DenyAndStop,
}

impl ApprovalDecision {
    pub fn allows(self) -> bool {
        matches!(self, ApprovalDecision::AllowOnce | ApprovalDecision::AllowForSession)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TurnOutcome {
    Completed,
    Failed {
        message: String,
    },
    Interrupted,
    /// Ended by the per-turn time limit.
    TimedOut {
        limit_secs: u64,
    },
}

/// Token counts and cost for one turn, when the agent reports them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}
