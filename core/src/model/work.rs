use super::{Id, Timestamp, named_enum, transitions};

named_enum! {
    /// What a task is doing, as the classifier and the phone see it.
    pub enum TaskStatus: "task status" {
        /// No turn is running; the runtime session, if any, is kept.
        Idle = "idle",
        Running = "running",
        WaitingApproval = "waiting_approval",
        /// The agent asked the user a question.
        WaitingInput = "waiting_input",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

// A follow-up may reopen a finished task ("try it again", "one more thing"): the task is the
// identity of the work, so nothing here is terminal. What is illegal is skipping the turn:
// a task cannot wait for an approval or an answer unless a turn is running.
transitions!(TaskStatus: "task" {
    Idle => [Running, Completed, Cancelled],
    Running => [Idle, WaitingApproval, WaitingInput, Completed, Failed, Cancelled],
    WaitingApproval => [Running, Idle, Failed, Cancelled],
    WaitingInput => [Running, Idle, Completed, Cancelled],
    Completed => [Running, Cancelled],
    Failed => [Running, Idle, Completed, Cancelled],
    Cancelled => [Running],
});

impl TaskStatus {
    /// A turn is in flight (running, or paused on the user), so `cancel` has something to stop.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Running | Self::WaitingApproval | Self::WaitingInput)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub id: Id,
    pub project_id: Option<Id>,
    pub title: String,
    pub goal: String,
    pub status: TaskStatus,
    /// The restart note's headline fields; its entries are `NoteEntry` rows.
    pub objective: Option<String>,
    pub reproduction: Option<String>,
    pub next_action: Option<String>,
    pub created_by: Option<Id>,
    pub version: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

named_enum! {
    pub enum Role: "role" {
        Editor = "editor",
        Reviewer = "reviewer",
        Tester = "tester",
    }
}

named_enum! {
    pub enum ExecutionStatus: "execution status" {
        /// Created, first turn not started yet (e.g. waiting for a free agent slot).
        Pending = "pending",
        Running = "running",
        /// Between turns: the sticky session waits for the next one.
        Idle = "idle",
        Failed = "failed",
        Completed = "completed",
        Cancelled = "cancelled",
    }
}

transitions!(ExecutionStatus: "execution" {
    Pending => [Running, Cancelled],
    Running => [Idle, Failed, Completed, Cancelled],
    Idle => [Running, Completed, Cancelled],
    Failed => [Running, Cancelled],
    Completed => [Running],
    Cancelled => [],
});

/// One attempt to move a task forward: one agent in one role.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Execution {
    pub id: Id,
    pub task_id: Id,
    pub agent: String,
    pub role: Role,
    pub status: ExecutionStatus,
    pub version: i32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

named_enum! {
    pub enum SessionStatus: "runtime session status" {
        Starting = "starting",
        /// Alive and between turns.
        Ready = "ready",
        /// A turn is in flight.
        Busy = "busy",
        /// The process died; a replacement resumes from `provider_session_id`.
        Dead = "dead",
        /// Closed on purpose (`/new`, agent or model change).
        Closed = "closed",
    }
}

// The sticky rule lives here: Busy goes back to Ready when a turn ends, whatever its outcome.
transitions!(SessionStatus: "runtime session" {
    Starting => [Ready, Dead, Closed],
    Ready => [Busy, Dead, Closed],
    Busy => [Ready, Dead, Closed],
    Dead => [],
    Closed => [],
});

impl SessionStatus {
    /// Whether the next turn may go to this session instead of a new one.
    pub fn is_usable(self) -> bool {
        matches!(self, SessionStatus::Starting | SessionStatus::Ready | SessionStatus::Busy)
    }
}

/// A process underneath an execution.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeSession {
    pub id: Id,
    pub execution_id: Id,
    /// Codex thread id, Claude session id or ACP session id: what `resume` needs.
    pub provider_session_id: Option<String>,
    pub model: Option<String>,
    pub pid: Option<i64>,
    pub status: SessionStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

named_enum! {
    pub enum TurnStatus: "turn status" {
        Queued = "queued",
        Running = "running",
        WaitingApproval = "waiting_approval",
        Completed = "completed",
        Failed = "failed",
        Interrupted = "interrupted",
    }
}

transitions!(TurnStatus: "turn" {
    Queued => [Running, Interrupted],
    Running => [WaitingApproval, Completed, Failed, Interrupted],
    WaitingApproval => [Running, Completed, Failed, Interrupted],
    Completed => [],
    Failed => [],
    Interrupted => [],
});

impl TurnStatus {
    /// The session status that follows this turn status: a finished turn, whatever its
    /// outcome, leaves its session ready for the next one.
    pub fn session_after(self) -> SessionStatus {
        match self {
            TurnStatus::Queued => SessionStatus::Ready,
            TurnStatus::Running | TurnStatus::WaitingApproval => SessionStatus::Busy,
            TurnStatus::Completed | TurnStatus::Failed | TurnStatus::Interrupted => SessionStatus::Ready,
        }
    }
}

/// One prompt → result cycle in a runtime session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Turn {
    pub id: Id,
    pub session_id: Id,
    pub input: String,
    pub summary: Option<String>,
    pub status: TurnStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What an execution's owner is told to do besides running queued turns. Orders wait in the
/// database until the owner takes them, so they reach the agent whichever replica accepted the
/// message that caused them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
pub enum Order {
    /// Stop the running turn through the protocol; the session stays.
    Interrupt,
    /// Deliver the person's answer to the question the turn waits on.
    Answer { text: String },
    /// Deliver the decision recorded on approval `approval` to the agent.
    Decide { approval: Id },
    /// Shut the session's process down (its row is already closed: `/new`).
    Close,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingOrder {
    pub id: Id,
    pub execution_id: Id,
    pub order: Order,
    pub created_at: Timestamp,
}

/// A replica's hold on an execution. `fence` grows with every claim: a write carrying an older
/// one comes from an owner that lost the execution and is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub execution: Id,
    pub owner: String,
    pub fence: i64,
}

/// An execution with work waiting for a runner, and who holds it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Work {
    pub execution: Id,
    pub owner: Option<String>,
    pub lease_expires_at: Option<Timestamp>,
    /// Grows each time work is added; the owner marks work done only up to what it saw.
    pub seq: i64,
}
