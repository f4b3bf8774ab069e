//! What the gateway knows about the conversation when a message arrives (the contract's input).

use serde::{Deserialize, Serialize};

/// One-to-one chat with the bot, or a group chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chat {
    #[default]
    Direct,
    Group,
}

pub use crate::model::TaskStatus;

/// A task visible in the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRef {
    pub id: String,
    pub title: String,
    pub status: TaskStatus,
    /// Agents that have executions in this task.
    #[serde(default)]
    pub agents: Vec<String>,
}

/// An approval waiting for an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRef {
    pub id: String,
    pub task: String,
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub action: String,
}

/// The conversation context of one message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub chat: Chat,
    /// Group only: the bot was @-mentioned, addressed by a command, or replied to.
    #[serde(default)]
    pub mentioned: bool,
    /// The task whose bot message the user replied to (or pressed a button on).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The task this conversation is focused on.
    #[serde(default)]
    pub active_task: Option<String>,
    /// Most recently active first.
    #[serde(default)]
    pub tasks: Vec<TaskRef>,
    /// Oldest first.
    #[serde(default)]
    pub pending_approvals: Vec<ApprovalRef>,
    /// Configured agent names; only these may be returned.
    #[serde(default)]
    pub agents: Vec<String>,
}

impl Context {
    pub fn task(&self, id: &str) -> Option<&TaskRef> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// Index of a task in `tasks` (the classifier works with indices to avoid clones).
    pub(crate) fn task_index(&self, id: &str) -> Option<usize> {
        self.tasks.iter().position(|t| t.id == id)
    }

    pub(crate) fn approvals_of(&self, task: &str) -> impl Iterator<Item = &ApprovalRef> {
        self.pending_approvals.iter().filter(move |a| a.task == task)
    }

    pub(crate) fn has_agent(&self, agent: &str) -> bool {
        self.agents.iter().any(|a| a == agent)
    }
}

/// One input line: `{"id": ..., "text": ..., "context": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub id: String,
    pub text: String,
    pub context: Context,
}
