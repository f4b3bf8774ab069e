//! What the router knows when it decides: the conversation, the tasks visible in it with their
//! executions and approvals, and who is speaking. The bot reads this from the store; the router
//! only looks at it.

use crate::model::{Approval, Channel, Execution, Id, Role, RuntimeSession, Task, Timestamp};

/// What happens to a follow-up while the execution is still working on a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusyPolicy {
    /// Run it after the current turn ("queued, 1 ahead").
    #[default]
    Queue,
    /// Inject it into the running turn where the agent supports that; else queue.
    Steer,
    /// Stop the current turn and run this one instead.
    Interrupt,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sender {
    pub person_id: Id,
    pub name: String,
    pub channel: Channel,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProjectInfo {
    pub id: Id,
    pub name: String,
    pub default_agent: String,
    pub busy_policy: BusyPolicy,
    /// `[notes] handoff`: `/new` first asks a usable session to record its findings.
    pub handoff: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionState {
    pub execution: Execution,
    /// The sticky session, if one was started.
    pub session: Option<RuntimeSession>,
    /// A turn is in flight.
    pub busy: bool,
    /// Turns waiting behind the one in flight.
    pub queued: usize,
    /// The agent accepts input into a running turn.
    pub can_steer: bool,
    /// Request id of the question the turn in flight waits on: the next follow-up answers it
    /// rather than queueing behind a turn that cannot end without it.
    pub pending_question: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalState {
    pub approval: Approval,
    /// Display name of the agent that asked ("Codex").
    pub agent: String,
    /// Display name of whoever decided, once someone did.
    pub decided_by_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub task: Task,
    pub executions: Vec<ExecutionState>,
    /// Pending approvals, and decided ones that a late answer may still name.
    pub approvals: Vec<ApprovalState>,
    /// The condensed restart note, fed to every new session or execution.
    pub restart_note: Option<String>,
    /// Summary of the latest finished turn.
    pub latest_result: Option<String>,
    pub changed_files: Vec<String>,
}

impl TaskState {
    /// The execution a plain follow-up goes to: the newest editor still alive, else the newest
    /// execution of any role.
    pub fn main_execution(&self) -> Option<&ExecutionState> {
        let alive = |e: &&ExecutionState| e.execution.status != crate::model::ExecutionStatus::Cancelled;
        self.executions
            .iter()
            .rev()
            .filter(alive)
            .find(|e| e.execution.role == Role::Editor)
            .or_else(|| self.executions.iter().rev().find(alive))
    }

    /// The busy execution whose turn waits on the person's answer, newest first.
    pub fn asking_execution(&self) -> Option<&ExecutionState> {
        self.executions.iter().rev().find(|e| e.busy && e.pending_question.is_some())
    }

    pub fn busy_execution(&self) -> Option<&ExecutionState> {
        self.executions.iter().rev().find(|e| e.busy)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationState {
    pub conversation_id: Id,
    pub focused_task: Option<Id>,
    /// The project new tasks go to.
    pub project: ProjectInfo,
    /// Tasks visible in this conversation, most recently active first.
    pub tasks: Vec<TaskState>,
}

impl ConversationState {
    pub fn task(&self, id: Id) -> Option<&TaskState> {
        self.tasks.iter().find(|t| t.task.id == id)
    }

    pub fn approval(&self, id: Id) -> Option<(&TaskState, &ApprovalState)> {
        self.tasks.iter().find_map(|t| t.approvals.iter().find(|a| a.approval.id == id).map(|a| (t, a)))
    }
}
